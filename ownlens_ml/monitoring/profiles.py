"""Reference profiles: a version's inputs and outputs, binned once at registration, compared ever after.

A numeric column keeps its decile edges (ties merged), the count of rows in each bin and its null
rate; a categorical one keeps category counts. ``bin_counts`` puts any later sample into the
same bins, so a drift test over a million rows is a ``searchsorted`` and a few sums per column.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import ml_reference_profiles
from ownlens_ml.errors import NoReferenceProfileError, OwnLensError
from ownlens_ml.models import get_spec
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.models.spec import LabelWindow
from ownlens_ml.registry import ModelVersion
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

OUTPUT = "__output__"
"""The column (and profile entry) holding the model's output."""
QUANTILES = np.linspace(0.1, 0.9, 9)
MAX_CATEGORIES = 50
OTHER = "__other__"


def is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def profile_column(values: pd.Series) -> dict:
    """One column's profile: ``numeric`` (bin edges, counts) or ``categorical`` (category counts); null rate."""
    values = pd.Series(values)
    n = len(values)
    if is_numeric(values):
        v = values.to_numpy(dtype=float, na_value=np.nan)
        present = v[np.isfinite(v)]
        edges = np.unique(np.quantile(present, QUANTILES)) if len(present) else np.array([])
        counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
        return {
            "type": "numeric",
            "edges": edges.tolist(),
            "counts": counts.tolist(),
            "nulls": int(n - len(present)),
            "rows": n,
            "min": float(present.min()) if len(present) else None,
            "max": float(present.max()) if len(present) else None,
        }
    present = values.dropna().astype(str)
    counts = present.value_counts()
    if len(counts) > MAX_CATEGORIES:
        rest = counts.iloc[MAX_CATEGORIES - 1 :].sum()
        counts = pd.concat([counts.iloc[: MAX_CATEGORIES - 1], pd.Series({OTHER: rest})])
    return {
        "type": "categorical",
        "counts": {str(k): int(c) for k, c in counts.items()},
        "nulls": int(n - len(present)),
        "rows": n,
    }


def bin_counts(column: dict, values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``values`` in the reference's bins: (reference counts, current counts, current nulls).

    Categories the reference never saw share one extra bin (zero in the reference).
    """
    if column["type"] == "numeric":
        v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
        present = v[np.isfinite(v)]
        edges = np.asarray(column["edges"], dtype=float)
        current = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
        return np.asarray(column["counts"], dtype=np.int64), current, int(len(v) - len(present))
    series = pd.Series(values)
    nulls = int(series.isna().sum())
    present = series.dropna().astype(str)
    known = list(column["counts"])
    codes = pd.Categorical(present, categories=known).codes
    if OTHER in column["counts"]:
        codes = np.where(codes < 0, known.index(OTHER), codes)
    current = np.bincount(np.where(codes < 0, len(known), codes), minlength=len(known) + 1)
    reference = np.append(np.asarray(list(column["counts"].values()), dtype=np.int64), 0)
    return reference, current, nulls


def build_profile(frame: pd.DataFrame, features: list[str], outputs: np.ndarray | None) -> dict:
    """The profile of a version's reference rows: every feature and the model's output."""
    x = feature_matrix(frame, features)
    profile = {"rows": int(len(frame)), "features": {f: profile_column(x[f]) for f in features}}
    if outputs is not None:
        profile["output"] = profile_column(pd.Series(outputs))
    return profile


def write_profile(settings: Settings, name: str, version: int, profile: dict, source: str) -> None:
    """Store a version's profile; a version already profiled keeps its own (profiles are immutable)."""
    engine = get_engine(settings)
    require_tables(engine, ml_reference_profiles.name)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(ml_reference_profiles).values(
                    model_name=name,
                    version=version,
                    created_at=datetime.now(UTC),
                    source=source,
                    rows=profile["rows"],
                    profile=profile,
                )
            )
    except IntegrityError:
        log.info("%s v%d already has a reference profile", name, version)


def read_profile(settings: Settings, name: str, version: int) -> dict | None:
    engine = get_engine(settings)
    require_tables(engine, ml_reference_profiles.name)
    t = ml_reference_profiles.c
    with engine.connect() as conn:
        return conn.execute(select(t.profile).where(t.model_name == name, t.version == version)).scalar()


def reference_profile(settings: Settings, version: ModelVersion, model) -> dict:
    """The version's profile; one registered before profiles existed gets one from its lineage now.

    Raises:
        NoReferenceProfileError: there is none and the version's lineage cannot rebuild one.
    """
    profile = read_profile(settings, version.model_name, version.version)
    if profile is not None:
        return profile
    log.info("%s has no reference profile; rebuilding it from its lineage", version.label)
    profile = lineage_profile(settings, version, model)
    write_profile(settings, version.model_name, version.version, profile, "lineage")
    return profile


def lineage_profile(settings: Settings, version: ModelVersion, model) -> dict:
    """A supervised version's holdout rows rebuilt from its lineage (label window, split), profiled."""
    from ownlens_ml.features import store

    spec = get_spec(version.model_name)
    params = version.params
    test_from = params.get("split", {}).get("test", {}).get("from")
    if not spec.task_kind.supervised or "window_days" not in params or test_from is None or params.get("labels_file"):
        raise NoReferenceProfileError(
            f"{version.label} has no reference profile and its lineage cannot rebuild one (registered without a "
            "label window and split); train a new version, which is profiled when it is registered"
        )
    as_of = pd.Timestamp(params["as_of"]).to_pydatetime() if params.get("as_of") else None
    window = LabelWindow(as_of=as_of, window_days=params["window_days"], step_days=params["step_days"])
    try:
        labels = spec.build_labels(settings, window)
        labels = labels[labels["event_timestamp"] >= pd.Timestamp(test_from)]
        training_set = store.training_set(settings, version.feature_service, labels)
    except OwnLensError as err:
        raise NoReferenceProfileError(
            f"{version.label} has no reference profile and its lineage cannot rebuild one: {err}"
        ) from None
    features = list(getattr(model, "feature_names_in_", training_set.features))
    outputs = spec.task_kind.predict(model, feature_matrix(training_set.frame, features))
    return build_profile(training_set.frame, features, outputs)
