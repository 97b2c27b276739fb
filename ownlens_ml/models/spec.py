"""What a model declares: one frozen spec per model; the engines do the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ownlens_ml.settings import Settings

Task = Literal["binary", "regression"]


@dataclass(frozen=True)
class LabelWindow:
    """When labels are drawn: as-of dates up to ``as_of`` whose outcome window has closed."""

    as_of: datetime | None
    """Train as if it were this moment: every label's outcome must be known by then (default: end of data)."""
    window_days: int = 30
    step_days: int = 7
    """Days between consecutive as-of dates of one training set."""


@dataclass(frozen=True)
class Gate:
    """Promotion rule: the challenger must beat the champion and every baseline on ``metric``."""

    metric: str = "roc_auc"
    min_gain: float = 0.0
    """How much better than the champion the challenger must be (absolute)."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything specific to one model; shared engines train, evaluate, register and serve it.

    Attributes:
        name: registry name, e.g. ``churn``.
        task: ``binary`` or ``regression``; the engines branch only on this.
        feature_service: the Feast feature service the model reads, e.g. ``churn_v1``.
        entity_key: join key of the rows, e.g. ``user_id``.
        build_labels: ``(settings, window) -> frame`` of entity key, ``event_timestamp``
            (tz-aware UTC, the as-of time) and ``label``.
        estimator: ``seed -> unfitted estimator`` (preprocessing inside the pipeline).
        metrics: metric names reported for this model (see ``ownlens_ml.evaluation``).
        gate: the promotion rule.
        oracle: ``(settings, labels frame, window) -> scores`` from the generator's latent
            truth, or None where no truth exists.
        description: one line for listings and reports.
    """

    name: str
    task: Task
    feature_service: str
    entity_key: str
    build_labels: Callable[[Settings, LabelWindow], pd.DataFrame]
    estimator: Callable[[int], BaseEstimator]
    metrics: tuple[str, ...]
    gate: Gate = field(default_factory=Gate)
    oracle: Callable[[Settings, pd.DataFrame, LabelWindow], np.ndarray] | None = None
    description: str = ""
    window: LabelWindow = field(default_factory=lambda: LabelWindow(as_of=None))
    """Default label window; ``train --as-of`` moves its end."""
    population: Callable[[Settings, datetime], pd.DataFrame] | None = None
    """``(settings, as_of) -> frame`` of the entity keys that batch scoring scores at ``as_of``."""
