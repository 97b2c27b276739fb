"""Segments out of the model: write every reader's segment back as the ``user_segment`` feature view,
and look one reader's segment up from the online store.

The write-back goes where the other sources live (a parquet file of the local offline store,
the ``customer_user_segments`` table in production) and is then materialized, so later
models and product services read segments through Feast like any other feature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import delete

from ownlens_ml import registry
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import customer_user_segments
from ownlens_ml.features import store
from ownlens_ml.models.customer.segmentation import ReaderSegmentation, assign, segment_readers
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

MODEL = "segmentation"
VIEW = "user_segment"
FEATURE_SERVICE = "segmentation_v1"


@dataclass(frozen=True)
class SegmentsWritten:
    """What one write-back wrote."""

    version: int
    as_of: pd.Timestamp
    readers: int
    counts: dict[str, int]


def load_segmenter(
    settings: Settings, version: int | str | None = "champion"
) -> tuple[registry.ModelVersion, ReaderSegmentation]:
    """A registered segmentation version (default: the champion) and its model."""
    return registry.load_model(settings, MODEL, version)


def online_segments(settings: Settings, model: ReaderSegmentation, user_ids: list[int]) -> list[str]:
    """Segment names of readers from their online feature vectors (one Redis/SQLite read).

    Args:
        settings: profile and locations.
        model: from ``load_segmenter``.
        user_ids: reader ids.

    Returns:
        One name per id, in order; readers the online store does not know are ``occasional``.
    """
    vectors = store.online_features(settings, FEATURE_SERVICE, {"user_id": list(user_ids)})
    return [str(n) for n in assign(model, vectors.frame)]


def write_segments(settings: Settings, version: int | str | None = "champion", as_of=None) -> SegmentsWritten:
    """Assign every reader who visited before T a segment and write them as the ``user_segment`` view.

    Rows stamped T are replaced (a rerun is idempotent); the view is then materialized into
    the online store, which is checked first: an unreachable Redis writes nothing.

    Args:
        settings: profile and locations.
        version: segmentation version, default the champion.
        as_of: assign from the snapshot at this day's midnight (default: the end of the data).
    """
    entry, model = load_segmenter(settings, version)
    store.require_online_store(settings)  # the rows go offline, then online: both or neither
    readers = segment_readers(settings, as_of, active_days=None)
    t = readers["event_timestamp"].iloc[0]
    frame = store.training_set(settings, FEATURE_SERVICE, readers).frame
    rows = pd.DataFrame(
        {
            "user_id": frame["user_id"].astype("int64"),
            "event_timestamp": frame["event_timestamp"],
            "segment_name": assign(model, frame).astype(str),
            "segment_model_version": entry.version,
        }
    )
    _write(settings, rows, t)
    store.materialize(settings, (t - pd.Timedelta(days=1)).to_pydatetime(), t.to_pydatetime(), views=[VIEW])
    counts = rows["segment_name"].value_counts().to_dict()
    log.info("wrote %d reader segments from %s at %s: %s", len(rows), entry.label, t, counts)
    return SegmentsWritten(entry.version, t, len(rows), {str(k): int(v) for k, v in counts.items()})


def _write(settings: Settings, rows: pd.DataFrame, t: pd.Timestamp) -> None:
    if settings.is_production:
        engine = get_engine(settings)
        require_tables(engine, customer_user_segments.name)
        with engine.begin() as conn:
            conn.execute(
                delete(customer_user_segments).where(customer_user_segments.c.event_timestamp == t.to_pydatetime())
            )
            copy_frame(conn, customer_user_segments, rows)
        return
    path = settings.offline_dir / f"{customer_user_segments.name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pd.read_parquet(path)
        rows = pd.concat([old[old["event_timestamp"] != t], rows], ignore_index=True)
    tmp = path.with_suffix(".parquet.tmp")
    rows = rows.astype({"event_timestamp": "datetime64[us, UTC]"})  # Spark reads no TIMESTAMP(NANOS)
    rows.sort_values(["event_timestamp", "user_id"]).to_parquet(tmp, index=False)
    tmp.replace(path)  # atomic: Feast never reads a half-written file
