"""Churn: will a reader active at T make no visit in the next 30 days?"""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from ownlens_ml.models.baselines import boosted
from ownlens_ml.models.customer.labels import active_readers, lapsed_labels
from ownlens_ml.models.spec import ModelSpec


def churn_estimator(seed: int) -> Pipeline:
    """Gradient-boosted trees; XGBoost handles missing values itself, so no imputation."""
    return boosted(
        XGBClassifier(
            n_estimators=1500,
            max_depth=4,
            learning_rate=0.02,
            subsample=0.8,
            colsample_bytree=0.8,
            min_child_weight=50,
            reg_lambda=10.0,
            tree_method="hist",
            early_stopping_rounds=50,
            eval_metric="logloss",
            n_jobs=2,
            random_state=seed,
        )
    )


SPEC = ModelSpec(
    name="churn",
    kind="binary",
    feature_service="churn_v1",
    entity_key=("user_id",),
    build_labels=lapsed_labels,
    estimator=churn_estimator,
    metrics=("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error", "top_decile_lift"),
    oracle="churn",
    population=active_readers,
    description="Will a reader active in the last 30 days stay away for the next 30?",
    label_description="1 if a reader who visited in the 30 days before T makes no visit in the 30 days from T",
)
