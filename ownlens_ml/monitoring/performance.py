"""Live performance from matured labels: logged predictions joined with the outcomes the model
was trained to predict, through the spec's own label builder, scored per as-of day with a
bootstrap interval beside the metric the version was registered with."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
from scipy import stats

from ownlens_ml import clock
from ownlens_ml.errors import OwnLensError
from ownlens_ml.models.spec import ModelSpec
from ownlens_ml.monitoring.results import ALERT, OK, PENDING, Measurement
from ownlens_ml.registry import ModelVersion
from ownlens_ml.settings import Settings

RESAMPLES = 200
MAX_BOOTSTRAP_ROWS = 20_000
"""Beyond this, the interval is bootstrapped on a seeded sample of the joined rows (the metric itself is not)."""
SEED = 7
ONE_DATE = 36_500
"""A label window step so large that the builder draws labels at exactly one as-of date."""


def matures(spec: ModelSpec, day: pd.Timestamp) -> pd.Timestamp:
    """When the outcomes of predictions made on ``day`` are all known."""
    return day + pd.Timedelta(days=spec.window.window_days)


def joined(settings: Settings, spec: ModelSpec, predictions: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """``day``'s predictions (entity id, score) with the label the spec's builder gives at ``day``."""
    window = replace(spec.window, as_of=matures(spec, day).to_pydatetime(), step_days=ONE_DATE)
    labels = spec.build_labels(settings, window)
    labels = labels[labels["event_timestamp"] == day]
    key = spec.entity_key[0]
    rows = predictions.assign(day=predictions["as_of"].dt.floor("D"))
    rows = rows[rows["day"] == day].drop_duplicates("entity_id", keep="last")
    return rows.merge(labels[[key, "label"]].rename(columns={key: "entity_id"}), on="entity_id", how="inner")


def _interval(metric: str, score, y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    if len(y) > MAX_BOOTSTRAP_ROWS:
        pick = np.random.default_rng(SEED).choice(len(y), MAX_BOOTSTRAP_ROWS, replace=False)
        y, p = y[pick], p[pick]

    def statistic(yy, pp):
        try:
            return score(yy, pp)[metric]
        except OwnLensError:  # a resample with one class only
            return np.nan

    result = stats.bootstrap((y, p), statistic, paired=True, vectorized=False, n_resamples=RESAMPLES,
                             method="percentile", random_state=SEED)
    low, high = result.confidence_interval
    return float(low), float(high)


def live_performance(settings: Settings, spec: ModelSpec, version: ModelVersion,
                     predictions: pd.DataFrame) -> tuple[list[Measurement], list[str]]:
    """Per as-of day whose labels have matured: the kind's live metrics with a 95 % interval.

    Returns the measurements and notes (days whose labels mature later, and when).
    """
    kind = spec.task_kind
    metrics = spec.watch.live_metrics
    if not metrics or kind.score is None or len(spec.entity_key) != 1:
        return [], [f"{spec.name}: live performance is not measured for {kind.name} models"]
    today = pd.Timestamp(clock.now())
    registered = version.metrics.get("holdout", {}).get("model", {})
    out, notes = [], []
    for day in sorted(predictions["as_of"].dt.floor("D").unique()):
        day = pd.Timestamp(day)
        ready = matures(spec, day)
        if ready > today:
            notes.append(f"labels of the {day:%Y-%m-%d} predictions mature on {ready:%Y-%m-%d} "
                         f"({spec.window.window_days}-day outcome window)")
            waiting = int((predictions["as_of"].dt.floor("D") == day).sum())
            out.append(Measurement("performance", "labels_pending", None, waiting, None, PENDING,
                                   {"matures": ready.isoformat()},
                                   (day.to_pydatetime(), (day + timedelta(days=1)).to_pydatetime())))
            continue
        rows = joined(settings, spec, predictions, day)
        y, p = rows["label"].to_numpy(), rows["score"].to_numpy(dtype=float)
        try:
            values = kind.score(y, p)
        except OwnLensError as err:
            notes.append(f"{day:%Y-%m-%d}: {err}")
            continue
        for metric in metrics:
            low, high = _interval(metric, kind.score, y, p)
            reference = registered.get(metric)
            worse = reference is not None and (high < reference if kind.metrics[metric] else low > reference)
            out.append(Measurement("performance", metric, None, values[metric], reference, ALERT if worse else OK,
                                   {"low": low, "high": high, "rows": len(rows), "predictions":
                                    int((predictions["as_of"].dt.floor("D") == day).sum()),
                                    "positive_rate": values.get("positive_rate")},
                                   (day.to_pydatetime(), (day + timedelta(days=1)).to_pydatetime())))
    return out, notes
