"""Shared preprocessing and the baselines every supervised model is compared against."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ownlens_ml.models.spec import Task


def preprocessing(*, impute: bool, scale: bool) -> ColumnTransformer:
    """Numbers imputed/scaled as the estimator needs; strings one-hot encoded (unknown → zeros)."""
    steps = ([SimpleImputer(strategy="median", add_indicator=True)] if impute else []) + ([StandardScaler()] if scale else [])
    numeric = make_pipeline(*steps) if steps else "passthrough"
    categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False)
    return ColumnTransformer(
        [("num", numeric, make_column_selector(dtype_include="number")),
         ("cat", categorical, make_column_selector(dtype_include="object"))],
        verbose_feature_names_out=False,
    )


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


def baselines(task: Task, seed: int) -> dict[str, Pipeline]:
    """Logistic/ridge regression, random forest and a small neural network, unfitted.

    Baselines are the libraries' standard configurations, deliberately untuned: they show
    what a model's own choices (estimator, tuning, early stopping) add.
    """
    binary = task == "binary"
    forest = RandomForestClassifier if binary else RandomForestRegressor
    network = MLPClassifier if binary else MLPRegressor
    return {
        "logistic_regression" if binary else "ridge_regression": Pipeline([
            ("prep", preprocessing(impute=True, scale=True)),
            ("model", LogisticRegression(max_iter=2000) if binary else Ridge())]),
        "random_forest": Pipeline([
            ("prep", preprocessing(impute=True, scale=False)),
            ("model", forest(n_estimators=200, n_jobs=2, random_state=seed))]),
        "neural_network": Pipeline([
            ("prep", preprocessing(impute=True, scale=True)),
            ("model", network(hidden_layer_sizes=(32, 16), early_stopping=True, max_iter=300, random_state=seed))]),
    }
