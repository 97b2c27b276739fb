"""A training job's own labels (``train MODEL --labels FILE``), validated like ``data import``.

The file (CSV/TSV or Parquet) holds the spec's entity key(s), ``event_timestamp`` and
``label``. Every row is checked (integer keys that exist in the platform, parseable
timestamps inside the feature snapshots, labels the model's kind accepts, entity pairs the
platform holds) before anything is trained; a bad file is refused with the first problems
and their line numbers, and nothing is registered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from ownlens_ml.data.parsers import (
    Problems,
    first_line,
    parse_float,
    parse_integer,
    parse_timestamp,
    read_header,
    read_table_file,
)
from ownlens_ml.db import get_engine, require_tables, schema
from ownlens_ml.errors import ValidationError
from ownlens_ml.features.quality import snapshot_cover
from ownlens_ml.models.spec import ModelSpec
from ownlens_ml.settings import Settings

ENTITY_TABLES = {
    "user_id": schema.users,
    "article_id": schema.articles,
    "author_id": schema.authors,
    "brand_id": schema.brands,
}
"""Where each join key's known ids live."""
LISTED = 3


def read_labels(settings: Settings, path: Path, spec: ModelSpec) -> pd.DataFrame:
    """The labels in ``path`` as a frame of the entity key(s), ``event_timestamp`` (UTC) and ``label``.

    Raises:
        ValidationError: unreadable file, missing or unexpected columns, or rows with
            problems (the first few named with their line numbers).
    """
    path = Path(path)
    wanted = [*spec.entity_key, "event_timestamp", "label"]
    header = read_header(path)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValidationError(
            f"{path}: missing column(s) {', '.join(missing)}; a {spec.name} label file has columns {', '.join(wanted)}"
        )
    extra = [c for c in header if c not in wanted]
    if extra:
        raise ValidationError(
            f"{path}: unexpected column(s) {', '.join(extra)}; a {spec.name} label file has columns {', '.join(wanted)}"
        )
    frame = read_table_file(path)
    if frame.raw.empty:
        raise ValidationError(f"{path}: no label rows; add one row per entity and label time")
    problems = Problems(frame, LISTED)
    out = {}
    for key in spec.entity_key:
        out[key], bad = parse_integer(frame.raw[key])
        problems.add(bad | frame.raw[key].isna().to_numpy(), key, "is not an integer id")
    out["event_timestamp"], bad = parse_timestamp(frame.raw["event_timestamp"])
    problems.add(
        bad | frame.raw["event_timestamp"].isna().to_numpy(),
        "event_timestamp",
        "is not a timestamp like 2026-03-01T00:00:00Z",
    )
    out["label"], bad = parse_float(frame.raw["label"])
    problems.add(bad | frame.raw["label"].isna().to_numpy(), "label", "is not a number")
    labels = pd.DataFrame(out)
    kind = spec.task_kind
    refused = labels["label"].notna().to_numpy() & kind.bad_labels(labels["label"])
    problems.add(refused, "label", kind.label_rule)
    _check_known_entities(settings, path, spec, labels, problems)
    _check_inside_snapshots(settings, labels, problems)
    duplicated = labels.duplicated([*spec.entity_key, "event_timestamp"], keep="first").to_numpy() & ~problems.rejected
    problems.add(duplicated, None, f"repeats an earlier row's {', '.join(spec.entity_key)} and event_timestamp")
    if problems.count:
        listed = "; ".join(r.describe(frame.unit) for r in problems.rejects())
        more = problems.count - len(problems.rejects())
        raise ValidationError(
            f"{path}: {problems.count} problem(s), nothing trained: {listed}"
            + (f"; and {more} more" if more > 0 else "")
        )
    for key in spec.entity_key:
        labels[key] = labels[key].astype("int64")
    labels["event_timestamp"] = labels["event_timestamp"].astype("datetime64[ns, UTC]")
    if spec.kind == "binary":
        labels["label"] = labels["label"].astype("int64")
    return labels.sort_values(["event_timestamp", *spec.entity_key], ignore_index=True)


def _check_known_entities(
    settings: Settings, path: Path, spec: ModelSpec, labels: pd.DataFrame, problems: Problems
) -> None:
    engine = get_engine(settings)
    for key in spec.entity_key:
        table = ENTITY_TABLES.get(key)
        if table is None:
            continue
        require_tables(engine, table.name)
        try:
            with engine.connect() as conn:
                known = pd.Index(conn.execute(select(table.c[key])).scalars().all())
        except Exception as exc:  # noqa: BLE001 - reported as one line with its cause
            raise ValidationError(
                f"{path}: cannot read the known {key}s from {table.name}: {first_line(exc)}"
            ) from None
        ids = labels[key]
        unknown = ids.notna().to_numpy() & ~ids.isin(known).to_numpy()
        problems.add(unknown, key, f"is not in the {table.name} table")
        _check_pairs(engine, spec, table, key, labels, problems)


def _check_pairs(engine, spec: ModelSpec, table, key: str, labels: pd.DataFrame, problems: Problems) -> None:
    """Other keys that are columns of ``key``'s table must match its row (an article's own author)."""
    others = [k for k in spec.entity_key if k != key and k in table.c]
    if not others:
        return
    with engine.connect() as conn:
        rows = pd.DataFrame(
            conn.execute(select(table.c[key], *(table.c[k] for k in others))).all(), columns=[key, *others]
        )
    given = labels[[key, *others]]
    found = given.merge(rows.astype("Int64").assign(_found=True), on=[key, *others], how="left")["_found"]
    checkable = given.notna().all(axis=1).to_numpy() & ~problems.rejected
    for other in others:
        problems.add(
            checkable & found.isna().to_numpy(), other, f"is not the {other} of that {key} in the {table.name} table"
        )


def _check_inside_snapshots(settings: Settings, labels: pd.DataFrame, problems: Problems) -> None:
    """A label time outside the feature snapshots would train on features that do not exist there."""
    stamps = labels["event_timestamp"]
    cover = snapshot_cover(settings) if stamps.notna().any() else None
    if cover is None:
        return  # no snapshots at all: the training set reports that, with its fix
    first, end = cover
    outside = (stamps.notna() & ((stamps < first) | (stamps > end))).to_numpy()
    problems.add(
        outside,
        "event_timestamp",
        f"is outside the data: the feature snapshots cover "
        f"{first:%Y-%m-%d}..{end - pd.Timedelta(days=1):%Y-%m-%d}; use label times inside them",
    )


def labels_fingerprint(labels: pd.DataFrame) -> str:
    """SHA-256 of the label rows, order-independent, so a changed file is noticed."""
    rows = labels.sort_values(list(labels.columns), ignore_index=True)
    return hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()
