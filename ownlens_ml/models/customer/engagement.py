"""Engagement: how many minutes will a reader active at T spend reading in the next 7 days?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from xgboost import XGBRegressor

from ownlens_ml.models.baselines import boosted
from ownlens_ml.models.customer.labels import active_readers, engagement_labels
from ownlens_ml.models.spec import LabelWindow, ModelSpec

WINDOW_DAYS = 7


def engagement_estimator(seed: int) -> Pipeline:
    """Gradient-boosted trees on the reader's engagement, habits and recency features."""
    return boosted(
        XGBRegressor(
            n_estimators=2000,
            max_depth=4,
            learning_rate=0.03,
            subsample=0.8,
            colsample_bytree=0.8,
            min_child_weight=10,
            reg_lambda=5.0,
            tree_method="hist",
            early_stopping_rounds=60,
            eval_metric="rmse",
            n_jobs=2,
            random_state=seed,
        )
    )


class SameAsLastWeek(RegressorMixin, BaseEstimator):
    """Predicts a reader's engaged minutes of the last 7 days again: the analyst's rule of thumb."""

    def __init__(self, column: str = "engaged_minutes_7d") -> None:
        self.column = column

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> SameAsLastWeek:
        self.fitted_ = True
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "fitted_")
        return pd.to_numeric(x[self.column], errors="coerce").fillna(0.0).to_numpy(dtype=float)


def last_week(seed: int) -> dict[str, SameAsLastWeek]:
    return {"same_as_last_7_days": SameAsLastWeek()}


SPEC = ModelSpec(
    name="engagement",
    kind="regression",
    feature_service="engagement_v1",
    entity_key=("user_id",),
    build_labels=engagement_labels,
    estimator=engagement_estimator,
    extra_baselines=last_week,
    metrics=("rmse", "mae", "r2", "spearman"),
    population=active_readers,
    window=LabelWindow(as_of=None, window_days=WINDOW_DAYS, step_days=7),
    description="How many engaged minutes will a reader active in the last 30 days read in the next 7?",
    label_description=f"engaged minutes in sessions starting within {WINDOW_DAYS} days of T, for readers "
    "active in the 30 days before T",
)
