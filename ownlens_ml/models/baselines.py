"""Shared preprocessing and the baselines every supervised model is compared against."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted


def preprocessing(*, impute: bool, scale: bool) -> ColumnTransformer:
    """Numbers imputed/scaled as the estimator needs; strings one-hot encoded (unknown → zeros)."""
    steps = ([SimpleImputer(strategy="median", add_indicator=True)] if impute else []) + (
        [StandardScaler()] if scale else []
    )
    numeric = make_pipeline(*steps) if steps else "passthrough"
    categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False)
    return ColumnTransformer(
        [
            ("num", numeric, make_column_selector(dtype_include="number")),
            ("cat", categorical, make_column_selector(dtype_include="object")),
        ],
        verbose_feature_names_out=False,
    )


def boosted(model) -> Pipeline:
    """A gradient-boosted model behind the shared preprocessing: strings one-hot encoded,
    numbers passed through (XGBoost handles missing values itself, so no imputation)."""
    return Pipeline([("prep", preprocessing(impute=False, scale=False)), ("model", model)])


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The estimator input: numeric-like columns as float64 (nulls → NaN), others as object.

    Training and serving both go through here, so a feature has one dtype everywhere.
    """
    out = {}
    for name in features:
        column = frame[name]
        numeric = pd.to_numeric(column, errors="coerce")
        if column.notna().sum() == numeric.notna().sum():
            out[name] = numeric.astype("float64")
        else:
            out[name] = column.astype(object).where(column.notna(), np.nan)
    return pd.DataFrame(out, index=frame.index)


def baselines(seed: int, *, classifier: bool) -> dict[str, Pipeline]:
    """Logistic/ridge regression, random forest and a small neural network, unfitted.

    Baselines are the libraries' standard configurations, deliberately untuned: they show
    what a model's own choices (estimator, tuning, early stopping) add. The network trains
    without early stopping: scikit-learn's stops on validation *accuracy*, which is flat when
    positives are rare, and left it below chance on conversion; an L2 penalty (``alpha``)
    keeps the full 300 iterations from overfitting instead.
    """
    forest = RandomForestClassifier if classifier else RandomForestRegressor
    network = MLPClassifier if classifier else MLPRegressor
    return {
        "logistic_regression" if classifier else "ridge_regression": Pipeline(
            [
                ("prep", preprocessing(impute=True, scale=True)),
                ("model", LogisticRegression(max_iter=2000) if classifier else Ridge()),
            ]
        ),
        "random_forest": Pipeline(
            [
                ("prep", preprocessing(impute=True, scale=False)),
                ("model", forest(n_estimators=200, n_jobs=2, random_state=seed)),
            ]
        ),
        "neural_network": Pipeline(
            [
                ("prep", preprocessing(impute=True, scale=True)),
                ("model", network(hidden_layer_sizes=(32, 16), alpha=1e-2, max_iter=300, random_state=seed)),
            ]
        ),
    }


class GroupMeanRegressor(RegressorMixin, BaseEstimator):
    """Predicts the mean training label of the row's group (e.g. its author); unseen groups
    get the overall mean. Fitted on earlier rows, it is the group's track record."""

    def __init__(self, column: str = "author_id") -> None:
        self.column = column

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> GroupMeanRegressor:
        y = np.asarray(y, dtype=float)
        self.overall_ = float(y.mean())
        self.means_ = pd.Series(y, index=x[self.column].to_numpy()).groupby(level=0).mean()
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "means_")
        return x[self.column].map(self.means_).fillna(self.overall_).to_numpy(dtype=float)
