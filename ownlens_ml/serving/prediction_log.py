"""The prediction log: every online answer into ``ml_model_predictions``, off the request path.

``record`` only puts the answer on a bounded queue (never blocks); one writer thread turns
answers into rows and writes them in batches (COPY on PostgreSQL: the request path shares the
interpreter with this thread, so the rows are built with orjson and written without
SQLAlchemy's per-row work). A full queue or a database error drops the
rows and counts them (``ownlens_prediction_log_dropped_rows_total``); neither ever fails or
slows a prediction. ``close`` writes what is queued before it returns.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pandas as pd
from prometheus_client import Counter

from ownlens_ml import clock
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine
from ownlens_ml.db.schema import ml_model_predictions
from ownlens_ml.models.scoring import entity_key_text
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

WRITTEN = Counter("ownlens_prediction_log_written_rows", "Prediction log rows written")
DROPPED = Counter("ownlens_prediction_log_dropped_rows", "Prediction log rows dropped", ["reason"])
_STOP = object()
COLUMNS = ["model_name", "version", "entity_key", "entity_id", "as_of", "predicted_at", "score", "output", "features"]


@dataclass(frozen=True)
class Answer:
    """An answer that is not a score per entity (a top-k list, a segment, the trending list)."""

    model: str
    version: int
    entity: dict[str, int]
    output: dict
    served_at: datetime


def rows_of(answer: Any) -> list[tuple]:
    """Table rows (``COLUMNS``) of one answer: a ``Prediction`` (one row per entity) or an ``Answer``;
    ``output`` and ``features`` as JSON text."""
    now = clock.now()

    def row(entity: dict[str, int], score: float | None, output: dict, features: dict | None) -> tuple:
        return (
            answer.model,
            answer.version,
            entity_key_text(entity),
            next(iter(entity.values())) if len(entity) == 1 else None,
            answer.served_at,
            now,
            score,
            _json(output),
            None if features is None else _json(features),
        )

    if hasattr(answer, "results"):
        return [
            row(
                r.entity,
                r.score,
                {
                    "score": r.score,
                    "cold_start": r.cold_start,
                    "stale_views": r.stale_views,
                    "feature_age_seconds": r.feature_age_seconds,
                },
                r.features,
            )
            for r in answer.results
        ]
    return [row(answer.entity, None, answer.output, None)]


def _json(value: dict) -> str:
    """JSON text, NaN as null (orjson: a fifteenth of ``json.dumps``'s time on a feature row)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _size(answer: Any) -> int:
    return len(answer.results) if hasattr(answer, "results") else 1


class PredictionLog:
    """A bounded queue and one writer thread.

    Args:
        max_queue: answers held at most; beyond, new ones are dropped and counted.
        batch_rows: rows per insert at most.
        flush_seconds: how long the writer waits after an answer before writing what queued.
    """

    def __init__(
        self, settings: Settings, *, max_queue: int = 10_000, batch_rows: int = 500, flush_seconds: float = 0.5
    ):
        self.settings = settings
        self.batch_rows, self.flush_seconds = batch_rows, flush_seconds
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._failing = False
        self._closing = threading.Event()
        self._writer = threading.Thread(target=self._run, daemon=True, name="prediction-log")
        self._writer.start()

    def record(self, answer: Any) -> None:
        """Queue an answer for the log; never blocks, never raises."""
        try:
            self._queue.put_nowait(answer)
        except queue.Full:
            DROPPED.labels("queue_full").inc(_size(answer))

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the writer."""
        self._closing.set()
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("prediction log: the writer did not drain the queue in %.0fs; unwritten rows are lost", timeout)
            return
        self._writer.join(timeout)

    def _run(self) -> None:
        # Wake once per flush interval, not once per answer: every wake-up takes the GIL from
        # the request path.
        while True:
            batch = [self._queue.get()]
            if batch[0] is not _STOP:
                self._closing.wait(self.flush_seconds)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            answers = [answer for answer in batch if answer is not _STOP]
            start = rows = 0
            for i, answer in enumerate(answers):
                rows += _size(answer)
                if rows >= self.batch_rows or i == len(answers) - 1:
                    self._write(answers[start : i + 1])
                    start, rows = i + 1, 0
            if len(answers) < len(batch):
                return

    def _write(self, answers: list) -> None:
        rows = [row for answer in answers for row in rows_of(answer)]
        try:
            frame = pd.DataFrame(rows, columns=COLUMNS).astype({"entity_id": "Int64", "score": "float64"})
            with get_engine(self.settings).begin() as conn:
                copy_frame(conn, ml_model_predictions, frame.assign(source="online"))
        except Exception as exc:  # noqa: BLE001 - the database is down or refuses: drop, count, say so once per outage
            DROPPED.labels("database").inc(len(rows))
            if not self._failing:
                log.warning(
                    "prediction log: dropped %d rows, the database refused them (%s: %s); "
                    "dropping and counting until it accepts again",
                    len(rows),
                    type(exc).__name__,
                    str(exc).splitlines()[0],
                )
            self._failing = True
            return
        if self._failing:
            log.warning("prediction log: the database accepts rows again")
        self._failing = False
        WRITTEN.inc(len(rows))
