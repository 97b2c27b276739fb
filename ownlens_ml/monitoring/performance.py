"""Live performance from matured labels: logged predictions joined with the outcomes the model
was trained to predict, through the spec's own label builder, scored per as-of day with a
bootstrap interval beside the metric the version was registered with. For the recommender: the
NDCG@10 of the lists actually served against the reader's reads in the 24 hours after each."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import scipy.sparse as sp
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
READ_WINDOW = pd.Timedelta(hours=24)
"""A served list is judged by the reads in this long after it (the recommender's label window)."""
RANKED = 10


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

    result = stats.bootstrap(
        (y, p), statistic, paired=True, vectorized=False, n_resamples=RESAMPLES, method="percentile", random_state=SEED
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def live_performance(
    settings: Settings, spec: ModelSpec, version: ModelVersion, predictions: pd.DataFrame
) -> tuple[list[Measurement], list[str]]:
    """Per as-of day whose labels have matured: the kind's live metrics with a 95 % interval.

    Returns the measurements and notes (days whose labels mature later, and when).
    """
    kind = spec.task_kind
    metrics = spec.watch.live_metrics
    if kind.name == "ranking" and len(spec.entity_key) == 1:
        return live_ranking(settings, version, predictions)
    if not metrics or kind.score is None or len(spec.entity_key) != 1:
        return [], [f"{spec.name}: live performance is not measured for {kind.name} models"]
    today = pd.Timestamp(clock.now())
    registered = version.metrics.get("holdout", {}).get("model", {})
    out, notes = [], []
    for day in sorted(predictions["as_of"].dt.floor("D").unique()):
        day = pd.Timestamp(day)
        ready = matures(spec, day)
        if ready > today:
            notes.append(
                f"labels of the {day:%Y-%m-%d} predictions mature on {ready:%Y-%m-%d} "
                f"({spec.window.window_days}-day outcome window)"
            )
            waiting = int((predictions["as_of"].dt.floor("D") == day).sum())
            out.append(
                Measurement(
                    "performance",
                    "labels_pending",
                    None,
                    waiting,
                    None,
                    PENDING,
                    {"matures": ready.isoformat()},
                    (day.to_pydatetime(), (day + timedelta(days=1)).to_pydatetime()),
                )
            )
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
            out.append(
                Measurement(
                    "performance",
                    metric,
                    None,
                    values[metric],
                    reference,
                    ALERT if worse else OK,
                    {
                        "low": low,
                        "high": high,
                        "rows": len(rows),
                        "predictions": int((predictions["as_of"].dt.floor("D") == day).sum()),
                        "positive_rate": values.get("positive_rate"),
                    },
                    (day.to_pydatetime(), (day + timedelta(days=1)).to_pydatetime()),
                )
            )
    return out, notes


def served_lists(settings: Settings, predictions: pd.DataFrame) -> tuple[np.ndarray, sp.csr_matrix, pd.DataFrame]:
    """The served lists whose 24 hours have passed, as ``ranking_metrics`` takes them.

    Returns ``(top, relevant, lists)``: (lists, 10) positions in a catalogue of every article served
    or read (-1 past a list's end); 0/1 of the articles each list's reader read in the 24 hours after
    it was served; and per list ``entity_id``, ``as_of`` and ``reads`` (articles read in that time).
    """
    lists = predictions[predictions["as_of"] + READ_WINDOW <= pd.Timestamp(clock.now())].reset_index(drop=True)
    if not len(lists):
        return np.zeros((0, RANKED), np.int64), sp.csr_matrix((0, 0)), lists.assign(reads=0)
    served = [[a["article_id"] for a in (o or {}).get("articles", [])][:RANKED] for o in lists["output"]]
    events = _reads_after(settings, lists)
    ids = np.unique(
        np.concatenate([np.asarray([a for x in served for a in x], np.int64), events["article_id"].to_numpy(np.int64)])
    )
    top = np.full((len(lists), RANKED), -1, np.int64)
    for i, articles in enumerate(served):
        top[i, : len(articles)] = np.searchsorted(ids, articles)
    rows, cols = events["list"].to_numpy(), np.searchsorted(ids, events["article_id"].to_numpy(np.int64))
    relevant = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(lists), len(ids)))
    relevant.data[:] = 1.0
    return top, relevant, lists.assign(reads=np.diff(relevant.indptr))


def _reads_after(settings: Settings, lists: pd.DataFrame) -> pd.DataFrame:
    """(list, article_id) of each page view by a list's reader in the 24 hours after it was served."""
    from sqlalchemy import text

    from ownlens_ml.db import get_engine

    lo, hi = lists["as_of"].min(), lists["as_of"].max() + READ_WINDOW
    with get_engine(settings).connect() as conn:
        views = pd.read_sql_query(
            text(
                "SELECT user_id, article_id, event_at FROM events WHERE event_type = 'page_view' "
                "AND article_id IS NOT NULL AND event_at > :lo AND event_at <= :hi"
            ),
            conn,
            params={"lo": lo.to_pydatetime(), "hi": hi.to_pydatetime()},
        )
    views["event_at"] = pd.to_datetime(views["event_at"], utc=True, format="ISO8601")
    joined = lists.reset_index(names="list")[["list", "entity_id", "as_of"]].merge(
        views, left_on="entity_id", right_on="user_id"
    )
    after = (joined["event_at"] > joined["as_of"]) & (joined["event_at"] <= joined["as_of"] + READ_WINDOW)
    return joined.loc[after, ["list", "article_id"]].drop_duplicates()


def live_ranking(
    settings: Settings, version: ModelVersion, predictions: pd.DataFrame
) -> tuple[list[Measurement], list[str]]:
    """NDCG@10 of the served lists followed by a read, with a 95 % bootstrap interval over the lists,
    beside the registered NDCG@10 (an alert only when the whole interval is below it)."""
    from ownlens_ml.evaluation.ranking import ranking_metrics

    now = pd.Timestamp(clock.now())
    waiting = predictions[predictions["as_of"] + READ_WINDOW > now]
    notes = []
    if len(waiting):
        ready = waiting["as_of"].max() + READ_WINDOW
        notes.append(
            f"{len(waiting):,} served lists are judged by the reads of their next 24 hours, "
            f"all known on {ready:%Y-%m-%d %H:%M}"
        )
    out = (
        []
        if not len(waiting)
        else [
            Measurement(
                "performance", "labels_pending", None, len(waiting), None, PENDING, {"matures": ready.isoformat()}
            )
        ]
    )
    top, relevant, lists = served_lists(settings, predictions)
    judged = np.flatnonzero(lists["reads"].to_numpy() > 0)
    if not len(judged):
        if len(lists):
            notes.append(f"none of the {len(lists):,} served lists was followed by a read within 24 hours")
        return out, notes
    top, relevant = top[judged], relevant[judged]
    size = relevant.shape[1]
    metric = f"ndcg@{RANKED}"
    value = ranking_metrics(top, relevant, size, RANKED)[metric]
    low = high = value
    if len(judged) > 1:
        result = stats.bootstrap(
            (np.arange(len(judged)),),
            lambda i: ranking_metrics(top[i], relevant[i], size, RANKED)[metric],
            vectorized=False,
            n_resamples=RESAMPLES,
            method="percentile",
            random_state=SEED,
        )
        low, high = (float(v) for v in result.confidence_interval)
    reference = version.metrics.get("holdout", {}).get("model", {}).get(metric)
    worse = reference is not None and high < reference
    out.append(
        Measurement(
            "performance",
            metric,
            None,
            value,
            reference,
            ALERT if worse else OK,
            {"low": low, "high": high, "rows": int(len(judged)), "predictions": int(len(lists))},
        )
    )
    return out, notes
