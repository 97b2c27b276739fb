"""Retention of the prediction log: old days summarised into ``ml_model_monitoring``, then deleted.

``ml_model_predictions`` grows by every served answer (over 100 million rows a day at the
measured request rate), so rows whose ``as_of`` falls before the cut (00:00 UTC, the
retention's whole days before today) are removed, one model-day at a time:

1. what monitoring needs of the day is written first, per (model, version, day, source):
   ``daily_predictions`` (rows), and over the rows with a score ``daily_scored``,
   ``daily_score_mean``, ``daily_score_std`` and the quantiles ``daily_score_p05`` ..
   ``daily_score_p95`` (kind ``prediction_log``; ``details`` holds the source and the range
   of prediction ids summarised);
2. the day's rows are deleted in bounded batches by primary-key ranges, each batch its own
   transaction (all or nothing per batch; batched deletes were measured against daily
   partitions in ``bench/bench_retention.py``).

A run that stops between batches leaves the rest of the day for the next run, which finds the
day's summary (by the ids it covered) and only deletes; rows that arrive later for a
summarised day (a batch rescored at an old as-of) get a summary of their own. A rerun with
nothing older than the cut writes and deletes nothing. Ids are told apart by value, so a batch
at an old as-of still being written while that day is pruned could lose rows uncounted: keep
such backfills and ``predictions prune`` apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Connection, and_, delete, func, insert, select, text

from ownlens_ml import clock
from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import ml_model_monitoring, ml_model_predictions
from ownlens_ml.errors import ValidationError
from ownlens_ml.features.quality import utc_midnight
from ownlens_ml.models.spec import as_utc
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

KIND = "prediction_log"
"""``ml_model_monitoring.kind`` of the daily summaries."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BATCH_ROWS = 50_000
"""Primary-key span of one delete (so at most this many rows per transaction)."""


@dataclass(frozen=True)
class DaySummary:
    """One (model, version, day, source) summarised before its rows go."""

    model: str
    version: int
    day: datetime
    source: str
    rows: int
    first_id: int
    last_id: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or, with ``dry_run``, would remove)."""

    cut: datetime
    """Rows with ``as_of`` before this moment (00:00 UTC) are removed."""
    summaries: list[DaySummary]
    """Summaries written by this run (with ``dry_run``, those it would write)."""
    deleted: int
    batches: int
    dry_run: bool

    @property
    def days(self) -> int:
        """Model-days summarised."""
        return len({(s.model, s.day) for s in self.summaries})


def cut_for(settings: Settings, older_than: int | None = None) -> datetime:
    """00:00 UTC ``older_than`` days before today (default: the settings' retention)."""
    days = settings.prediction_retention_days if older_than is None else older_than
    if days < 1:
        raise ValidationError(f"--older-than {days} would remove today's predictions; give 1 day or more")
    return utc_midnight(clock.today() - timedelta(days=days))


def prune(
    settings: Settings,
    older_than: int | None = None,
    *,
    dry_run: bool = False,
    batch_rows: int = BATCH_ROWS,
    progress: bool = False,
) -> PruneResult:
    """Summarise, then delete, the prediction log's rows older than the retention.

    Args:
        older_than: days to keep (the cut is 00:00 UTC that many days before today); default
            ``settings.prediction_retention_days`` (``OWNLENS_PREDICTION_RETENTION_DAYS``).
        dry_run: count and summarise what would go; write and delete nothing.
        batch_rows: the primary-key span of one delete transaction.
        progress: show a bar over the model-days, with the rows removed so far.

    Raises:
        ValidationError: ``older_than`` below 1.
        MissingTableError: the schema is not there (``ownlens-ml db init``).
    """
    cut = cut_for(settings, older_than)
    engine = get_engine(settings)
    require_tables(engine, ml_model_predictions.name, ml_model_monitoring.name)
    with engine.connect() as conn:
        plan = [(model, day) for model in _models(conn) for day in _old_days(conn, model, cut)]
    summaries, deleted, batches = [], 0, 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("model-days"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(f"predictions before {cut:%Y-%m-%d}", total=len(plan))
        for model, day in plan:
            bar.update(task, description=f"{model} {day:%Y-%m-%d}: summarising")
            with engine.begin() as conn:  # the summary is written whole before any of the day's rows go
                found = _summarise(conn, model, day)
                if found and not dry_run:
                    conn.execute(insert(ml_model_monitoring), [row for s in found for row in _monitoring_rows(s)])
            summaries += found
            if dry_run:
                deleted += _rows(engine, model, day)
            else:
                bar.update(task, description=f"{model} {day:%Y-%m-%d}: deleting ({deleted:,} rows so far)")
                for removed in _delete_day(engine, model, day, batch_rows):
                    deleted += removed
                    batches += 1
            bar.advance(task)
        bar.update(task, description=f"{'counted' if dry_run else 'pruned'} predictions before {cut:%Y-%m-%d}")
    if not dry_run:
        log.info(
            "pruned %d prediction rows before %s in %d batches (%d summaries)",
            deleted,
            cut.date(),
            batches,
            len(summaries),
        )
    return PruneResult(cut, summaries, deleted, batches, dry_run)


# --- which days ---------------------------------------------------------------------------


def _models(conn: Connection) -> list[str]:
    """Distinct model names by a loose index scan (one index probe per model, not a table scan)."""
    rows = conn.execute(
        text(
            "WITH RECURSIVE m(name) AS ("
            " SELECT min(model_name) FROM ml_model_predictions"
            " UNION ALL"
            " SELECT (SELECT min(model_name) FROM ml_model_predictions WHERE model_name > m.name)"
            " FROM m WHERE m.name IS NOT NULL)"
            " SELECT name FROM m WHERE name IS NOT NULL"
        )
    ).scalars()
    return list(rows)


def _old_days(conn: Connection, model: str, cut: datetime) -> list[datetime]:
    """The days before ``cut`` holding a row of ``model``, oldest first (one index probe per day)."""
    t = ml_model_predictions
    days, start = [], None
    while True:
        where = [t.c.model_name == model, t.c.as_of < cut] + ([t.c.as_of >= start] if start is not None else [])
        first = conn.execute(select(func.min(t.c.as_of)).where(*where)).scalar()
        if first is None:
            return days
        day = utc_midnight(as_utc(first).date())
        days.append(day)
        start = day + timedelta(days=1)


def _day(model: str, day: datetime):
    t = ml_model_predictions
    return and_(t.c.model_name == model, t.c.as_of >= day, t.c.as_of < day + timedelta(days=1))


def _rows(engine, model: str, day: datetime) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ml_model_predictions).where(_day(model, day))).scalar()


# --- summaries ----------------------------------------------------------------------------


def _summarised_through(conn: Connection, model: str, day: datetime) -> int:
    """The highest prediction id the day's summaries cover (0: none yet)."""
    m = ml_model_monitoring
    query = select(m.c.details).where(
        m.c.kind == KIND, m.c.model_name == model, m.c.metric == "daily_predictions", m.c.window_start == day
    )
    found = conn.execute(query).scalars()
    return max((int(d["last_id"]) for d in found if d and "last_id" in d), default=0)


def _summarise(conn: Connection, model: str, day: datetime) -> list[DaySummary]:
    """The day's rows not yet summarised, per version and source (quantiles interpolated linearly)."""
    t = ml_model_predictions
    where = and_(_day(model, day), t.c.prediction_id > _summarised_through(conn, model, day))
    keys = [t.c.version, t.c.source]
    spans = conn.execute(
        select(*keys, func.count(), func.min(t.c.prediction_id), func.max(t.c.prediction_id))
        .where(where)
        .group_by(*keys)
    ).all()
    if not spans:
        return []
    if conn.dialect.name == "postgresql":
        stats = _score_stats_postgres(conn, where, keys)
    else:
        stats = _score_stats_pandas(conn, where)
    return [
        DaySummary(model, int(version), day, source, int(n), int(lo), int(hi), stats.get((version, source), {}))
        for version, source, n, lo, hi in spans
    ]


def _score_stats_postgres(conn: Connection, where, keys) -> dict[tuple, dict[str, float]]:
    t = ml_model_predictions
    quantiles = func.percentile_cont(text(f"ARRAY[{','.join(map(str, QUANTILES))}]")).within_group(t.c.score)
    rows = conn.execute(
        select(*keys, func.count(t.c.score), func.avg(t.c.score), func.stddev_samp(t.c.score), quantiles)
        .where(where, t.c.score.is_not(None))
        .group_by(*keys)
    ).all()
    return {(version, source): _metrics(n, mean, std, values) for version, source, n, mean, std, values in rows}


def _score_stats_pandas(conn: Connection, where) -> dict[tuple, dict[str, float]]:
    t = ml_model_predictions
    frame = pd.read_sql(select(t.c.version, t.c.source, t.c.score).where(where, t.c.score.is_not(None)), conn)
    found = {}
    for (version, source), scores in frame.groupby(["version", "source"])["score"]:
        found[(version, source)] = _metrics(len(scores), scores.mean(), scores.std(), scores.quantile(QUANTILES))
    return found


def _metrics(n: int, mean: float, std: float | None, quantiles) -> dict[str, float]:
    values = {"daily_scored": float(n), "daily_score_mean": float(mean)}
    if std is not None and pd.notna(std):
        values["daily_score_std"] = float(std)
    for q, value in zip(QUANTILES, list(quantiles)):
        values[f"daily_score_p{round(q * 100):02d}"] = float(value)
    return values


def _monitoring_rows(summary: DaySummary) -> list[dict]:
    details = {"source": summary.source, "rows": summary.rows, "first_id": summary.first_id, "last_id": summary.last_id}
    now = clock.now()
    base = {
        "model_name": summary.model,
        "version": summary.version,
        "kind": KIND,
        "feature": None,
        "window_start": summary.day,
        "window_end": summary.day + timedelta(days=1),
        "computed_at": now,
        "details": details,
    }
    metrics = {"daily_predictions": float(summary.rows)} | summary.metrics
    return [base | {"metric": metric, "value": value} for metric, value in metrics.items()]


# --- deletes ------------------------------------------------------------------------------


def _delete_day(engine, model: str, day: datetime, batch_rows: int):
    """Delete the day's summarised rows, ``batch_rows`` ids per transaction; yields rows deleted per batch."""
    t = ml_model_predictions
    with engine.connect() as conn:
        through = _summarised_through(conn, model, day)
        lo, hi = conn.execute(
            select(func.min(t.c.prediction_id), func.max(t.c.prediction_id)).where(
                _day(model, day), t.c.prediction_id <= through
            )
        ).one()
    if lo is None:
        return
    for start in range(lo, hi + 1, batch_rows):
        end = min(start + batch_rows - 1, hi)
        with engine.begin() as conn:
            removed = conn.execute(delete(t).where(_day(model, day), t.c.prediction_id.between(start, end))).rowcount
        if removed:
            yield removed
