"""Measurements: what every check produces, written to ``ml_model_monitoring`` and read back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select

from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import ml_model_monitoring
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

OK, ALERT, NOTICE, TOO_FEW, PENDING = "ok", "alert", "notice", "too_few_rows", "pending"


@dataclass
class Measurement:
    """One measured value and its verdict.

    Attributes:
        kind: ``drift``, ``output_drift``, ``performance``, ``skew``, ``freshness`` or ``quality``.
        metric: e.g. ``psi``, ``ks``, ``roc_auc``, ``mismatch_rate``, ``online_age_seconds``.
        feature: the feature (or view, or snapshot table) measured; None for the model as a whole.
        threshold: what ``value`` is judged against; None where nothing is judged.
        status: ``ok``, ``alert``, ``notice`` (significant, below the effect floor), ``too_few_rows``, ``pending``.
    """

    kind: str
    metric: str
    feature: str | None
    value: float
    threshold: float | None = None
    status: str = OK
    details: dict = field(default_factory=dict)
    window: tuple[datetime, datetime] | None = None
    """The measurement's own window where it differs from the run's (a day of live metrics)."""


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    return value


def write(
    conn,
    model: str,
    version: int,
    window: tuple[datetime, datetime],
    computed_at: datetime,
    measurements: list[Measurement],
) -> None:
    """Insert every measurement of one run (on the caller's transaction); one without a finite value (e.g.
    Spearman of constant predictions) is logged and left out."""
    undefined = [m for m in measurements if not np.isfinite(m.value)]
    for m in undefined:
        log.warning(
            "%s %s %s of %s is undefined on this window; not recorded", m.kind, m.metric, m.feature or "", model
        )
    measurements = [m for m in measurements if np.isfinite(m.value)]
    if not measurements:
        return
    conn.execute(
        insert(ml_model_monitoring),
        [
            {
                "model_name": model,
                "version": version,
                "kind": m.kind,
                "metric": m.metric,
                "feature": m.feature,
                "value": float(m.value),
                "window_start": (m.window or window)[0],
                "window_end": (m.window or window)[1],
                "computed_at": computed_at,
                "details": _plain(m.details),
                "threshold": m.threshold,
                "status": m.status,
            }
            for m in measurements
        ],
    )


def latest(settings: Settings, model: str | None = None) -> pd.DataFrame:
    """Each measurement's newest value (per model, check, metric and feature; every window of that run):
    what the gauges and pages show, whichever checks the newest runs did."""
    engine = get_engine(settings)
    require_tables(engine, ml_model_monitoring.name)
    t = ml_model_monitoring.c
    keys = (t.model_name, t.kind, t.metric, func.coalesce(t.feature, ""))
    newest = select(*keys, func.max(t.computed_at).label("at")).group_by(*keys)
    if model is not None:
        newest = newest.where(t.model_name == model)
    newest = newest.subquery()
    c = newest.c
    query = select(
        t.model_name,
        t.version,
        t.kind,
        t.metric,
        t.feature,
        t.value,
        t.threshold,
        t.status,
        t.window_start,
        t.window_end,
        t.computed_at,
    ).join(
        newest,
        (t.model_name == c.model_name)
        & (t.kind == c.kind)
        & (t.metric == c.metric)
        & (func.coalesce(t.feature, "") == list(c)[3])
        & (t.computed_at == c.at),
    )
    with engine.connect() as conn:
        return pd.DataFrame(
            conn.execute(query).mappings().all(),
            columns=[
                "model_name",
                "version",
                "kind",
                "metric",
                "feature",
                "value",
                "threshold",
                "status",
                "window_start",
                "window_end",
                "computed_at",
            ],
        )
