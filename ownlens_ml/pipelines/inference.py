"""The batch inference engine, one for every model spec: batch scoring into ``ml_model_predictions``.

Versions are prepared for scoring by the shared scorer (``models/scoring.py``), which the
online service uses too; the names it defines are re-exported here for callers of this module.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import delete, func, select

from ownlens_ml import clock
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine, job_lock
from ownlens_ml.db.schema import ml_model_predictions
from ownlens_ml.errors import ConfigError, EmptyWindowError
from ownlens_ml.features import store
from ownlens_ml.models import get_spec
from ownlens_ml.models.scoring import Scorer, entity_key_text, feature_types, load_scorer, prepare
from ownlens_ml.models.spec import as_utc
from ownlens_ml.settings import Settings

__all__ = [
    "CHUNK_ROWS",
    "BatchResult",
    "Scorer",
    "batch_key",
    "default_as_of",
    "entity_key_text",
    "feature_types",
    "load_scorer",
    "prepare",
    "score",
]

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000

# --- rows of ml_model_predictions ---------------------------------------------------------


def batch_key(name: str, version: int, as_of: datetime) -> str:
    """``churn:v3:2026-03-01T00:00:00Z``: what makes a batch idempotent."""
    return f"{name}:v{version}:{pd.Timestamp(as_of).tz_convert('UTC'):%Y-%m-%dT%H:%M:%SZ}"


# --- batch scoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    model: str
    version: int
    as_of: datetime
    batch_id: str
    rows: int
    seconds: float


def default_as_of(settings: Settings) -> datetime:
    """The newest snapshot day, 00:00 UTC: what the offline store knows up to."""
    from ownlens_ml.features.quality import newest_snapshot, utc_midnight

    return utc_midnight(newest_snapshot(settings))


def score(
    settings: Settings,
    name: str,
    as_of: datetime | None = None,
    *,
    version: int | str = "champion",
    entities: pd.DataFrame | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = False,
) -> BatchResult:
    """Score every entity of the model's population at ``as_of`` into ``ml_model_predictions``.

    Features are point-in-time at ``as_of`` from the offline store (``store.training_set``),
    fetched and scored in chunks. All chunks are written in one transaction that first
    deletes the batch's earlier rows: the same model, version and as-of never duplicate (a
    unique key on batch id and entity backs this), and an interrupted run leaves nothing
    visible; running it again completes it.

    Args:
        as_of: default: the newest snapshot day (``default_as_of``).
        version: a version number or alias; default the champion.
        entities: the join keys to score; default: the spec's population at ``as_of``.

    Raises:
        ConfigError: the model declares no population to score.
        EmptyWindowError: ``as_of`` is outside the feature snapshots, or the population there is empty.
        ConcurrentJobError: the same model is being scored by another process.
    """
    spec = get_spec(name)
    if entities is None and spec.population is None:
        raise ConfigError(
            f"model {name!r} declares no population (ModelSpec.population); batch scoring "
            "needs to know which entities to score"
        )
    started = time.perf_counter()
    as_of = as_utc(as_of or default_as_of(settings)).to_pydatetime()
    _require_inside_snapshots(settings, name, as_of)
    scorer = load_scorer(settings, name, version)
    entry = scorer.version
    population = (spec.population(settings, as_of) if entities is None else entities).reset_index(drop=True)
    if population.empty:
        raise EmptyWindowError(
            f"score {name}: no entities of its population at {as_of:%Y-%m-%d}; "
            "choose an --as-of with activity before it"
        )
    keys = list(population.columns)
    batch_id = batch_key(name, entry.version, as_of)
    table = ml_model_predictions
    engine = get_engine(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        job_lock(settings, engine, f"score {name}"),
        Progress(*columns, disable=not progress) as bar,
        engine.begin() as conn,
    ):
        task = bar.add_task(f"scoring {entry.label} as of {as_of:%Y-%m-%d}", total=len(population))
        conn.execute(delete(table).where(table.c.batch_id == batch_id))
        for start in range(0, len(population), chunk_rows):
            chunk = population.iloc[start : start + chunk_rows]
            rows = store.training_set(settings, entry.feature_service, chunk.assign(event_timestamp=as_of)).frame
            scores = scorer.score_frame(rows)
            copy_frame(
                conn,
                table,
                pd.DataFrame(
                    {
                        "model_name": name,
                        "version": entry.version,
                        "entity_key": _entity_key_texts(rows, keys),
                        "entity_id": rows[keys[0]].astype("int64") if len(keys) == 1 else None,
                        "as_of": as_of,
                        "predicted_at": clock.now(),
                        "score": scores,
                        "source": "batch",
                        "batch_id": batch_id,
                    }
                ),
            )
            bar.advance(task, len(chunk))
        written = conn.execute(select(func.count()).select_from(table).where(table.c.batch_id == batch_id)).scalar()
    seconds = time.perf_counter() - started
    log.info("scored %s: %d rows as of %s in %.1fs", entry.label, written, as_of.date(), seconds)
    return BatchResult(name, entry.version, as_of, batch_id, written, seconds)


def _require_inside_snapshots(settings: Settings, name: str, as_of: datetime) -> None:
    """Scoring outside the feature snapshots would score nobody, or everybody on missing features."""
    from ownlens_ml.features.quality import snapshot_cover

    cover = snapshot_cover(settings)
    if cover is None or not cover[0] <= as_of <= cover[1]:
        known = (
            f"the feature snapshots cover {cover[0]:%Y-%m-%d}..{cover[1] - pd.Timedelta(days=1):%Y-%m-%d}"
            if cover
            else "there are no feature snapshots"
        )
        raise EmptyWindowError(
            f"score {name}: --as-of {as_of:%Y-%m-%d} is outside the data ({known}); "
            "choose a day inside it, or run `ownlens-ml features build`"
        )


def _entity_key_texts(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """``entity_key_text`` for every row, vectorized (keys sorted, as ``entity_key_text`` sorts them)."""
    text = None
    for i, key in enumerate(sorted(keys)):
        part = f'{"{" if i == 0 else ","}"{key}":' + frame[key].astype("int64").astype(str)
        text = part if text is None else text + part
    return text + "}"
