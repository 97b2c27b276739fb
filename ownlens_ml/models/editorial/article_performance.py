"""Article performance: an article's first-week page views (log scale) from its first day."""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from xgboost import XGBRegressor

from ownlens_ml.models.baselines import GroupMeanRegressor, boosted
from ownlens_ml.models.editorial.labels import articles_at_label_time, first_week_labels
from ownlens_ml.models.spec import LabelWindow, ModelSpec


def article_performance_estimator(seed: int) -> Pipeline:
    """Gradient-boosted trees on content, author track record and the first hours' performance."""
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


def author_mean(seed: int) -> dict[str, GroupMeanRegressor]:
    """The editor's rule of thumb: an article does as well as its author's earlier articles."""
    return {"author_mean": GroupMeanRegressor(column="author_id")}


SPEC = ModelSpec(
    name="article_performance",
    kind="regression",
    feature_service="article_performance_v1",
    entity_key=("article_id", "author_id"),
    build_labels=first_week_labels,
    estimator=article_performance_estimator,
    extra_baselines=author_mean,
    baseline_columns=("author_id",),
    metrics=("rmse", "mae", "r2", "spearman"),
    oracle="article_performance",
    window=LabelWindow(as_of=None, window_days=7, step_days=1),
    population=articles_at_label_time,
    description="How many page views will an article have in its first week, judged 24 hours after publish?",
    label_description="log(1 + page views in an article's first 7 days), predicted 24 hours after it was published",
)
