"""Training runs: started, failed, or closed by the version they registered."""

from __future__ import annotations

import logging
import uuid

import pandas as pd
from sqlalchemy import insert, select, update

from ownlens_ml.db.schema import ml_model_training_runs
from ownlens_ml.errors import RegistryError
from ownlens_ml.registry.common import _check_lengths, _engine, _jsonable, _now
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)


_RUN_COLUMNS = ["run_id", "model_name", "status", "started_at", "finished_at", "version", "params", "metrics", "error"]


def start_run(settings: Settings, model_name: str, params: dict) -> str:
    """Record a training run in state ``running``.

    Returns:
        The new run id (a UUID4 string), to pass to ``register`` or ``fail_run``.
    """
    _check_lengths(ml_model_training_runs, model_name=model_name)
    params = _jsonable(params, "params")
    run_id = str(uuid.uuid4())
    with _engine(settings).begin() as conn:
        conn.execute(
            insert(ml_model_training_runs).values(
                run_id=run_id,
                model_name=model_name,
                status="running",
                started_at=_now(),
                params=params,
            )
        )
    log.info("training run %s started for %s", run_id, model_name)
    return run_id


def fail_run(settings: Settings, run_id: str, error: str) -> None:
    """Mark a running training run ``failed`` with its error text.

    A run that already finished keeps its state (a ``succeeded`` run owns a version); that
    case is logged, not raised, because callers reach here from an error handler.

    Raises:
        RegistryError: no run has this id.
    """
    runs_t = ml_model_training_runs
    with _engine(settings).begin() as conn:
        done = conn.execute(
            update(runs_t)
            .where(runs_t.c.run_id == run_id, runs_t.c.status == "running")
            .values(status="failed", finished_at=_now(), error=str(error))
        ).rowcount
        if not done:
            status = conn.execute(select(runs_t.c.status).where(runs_t.c.run_id == run_id)).scalar()
            if status is None:
                raise RegistryError(f"no training run {run_id!r}; start one with start_run()")
            log.warning("training run %s is already %s; not marking it failed (%s)", run_id, status, error)
            return
    log.info("training run %s failed: %s", run_id, error)


def runs(settings: Settings, model_name: str | None = None) -> pd.DataFrame:
    """Training runs, newest first (one row per run; ``params``/``metrics`` as dicts)."""
    runs_t = ml_model_training_runs
    query = select(*(runs_t.c[name] for name in _RUN_COLUMNS)).order_by(runs_t.c.started_at.desc(), runs_t.c.run_id)
    if model_name is not None:
        query = query.where(runs_t.c.model_name == model_name)
    with _engine(settings).connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=_RUN_COLUMNS)
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["version"] = frame["version"].astype("Int64")
    return frame
