"""Conversion to paid: will a free reader active at T subscribe within 14 days?"""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from ownlens_ml.models.baselines import boosted
from ownlens_ml.models.customer.labels import conversion_labels, free_active_readers
from ownlens_ml.models.spec import LabelWindow, ModelSpec

WINDOW_DAYS = 14


def conversion_estimator(seed: int) -> Pipeline:
    """Gradient-boosted trees for a rare positive class: shallow, strongly regularised."""
    return boosted(
        XGBClassifier(
            n_estimators=1500,
            max_depth=3,
            learning_rate=0.02,
            subsample=0.8,
            colsample_bytree=0.8,
            min_child_weight=20,
            reg_lambda=10.0,
            tree_method="hist",
            early_stopping_rounds=60,
            eval_metric="logloss",
            n_jobs=2,
            random_state=seed,
        )
    )


SPEC = ModelSpec(
    name="conversion",
    kind="binary",
    feature_service="conversion_v2",
    entity_key=("user_id",),
    build_labels=conversion_labels,
    estimator=conversion_estimator,
    metrics=("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error", "top_decile_lift"),
    oracle="conversion",
    population=free_active_readers,
    window=LabelWindow(as_of=None, window_days=WINDOW_DAYS, step_days=7),
    description="Will a free reader active in the last 30 days subscribe in the next 14?",
    label_description=f"1 if a reader active in the 30 days before T, not paying at T, subscribes within "
    f"{WINDOW_DAYS} days of T",
)
