"""Models on small data: constant or chance-level models are refused; too few positives to judge is one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from test_models import platform

from ownlens_ml import registry
from ownlens_ml.errors import ModelValidationError, TooFewLabelsError
from ownlens_ml.models import SPECS
from ownlens_ml.models.baselines import boosted
from ownlens_ml.pipelines import training
from ownlens_ml.pipelines.training import train, validate


def _rare(seed: int = 5, rows: int = 3_000, rate: float = 0.01) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < rate).astype(int)
    x = pd.DataFrame({"signal": y * 1.5 + rng.normal(size=rows), "noise": rng.normal(size=rows)})
    return x, y


def test_a_constant_model_is_refused_naming_why():
    x, y = _rare()
    constant = boosted(DummyClassifier(strategy="prior")).fit(x, y)
    with pytest.raises(ModelValidationError, match="conversion: its outputs are constant"):
        validate(SPECS["conversion"], constant, ["signal", "noise"], x, y)


def test_a_model_no_better_than_chance_is_refused():
    x, y = _rare()
    model = make_pipeline(LogisticRegression()).fit(x, y)
    with pytest.raises(ModelValidationError, match="no better than chance"):
        validate(SPECS["conversion"], model, ["signal", "noise"], x, 1 - y)  # judged on the inverted labels


def test_a_regression_no_better_than_the_mean_is_refused():
    rng = np.random.default_rng(2)
    x = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    y = x["a"].to_numpy() + rng.normal(scale=0.1, size=500)
    model = make_pipeline(Ridge()).fit(x, -y)  # learned the wrong sign
    with pytest.raises(ModelValidationError, match="no better than predicting the mean"):
        validate(SPECS["engagement"], model, ["a", "b"], x, y)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from ownlens_ml.settings import Settings

    settings = Settings(profile="local", home=tmp_path_factory.mktemp("small") / "home", project="small")
    platform(settings, users=300, days=100, seed=7)
    return settings


def test_too_few_positives_to_judge_is_refused_and_nothing_registered(small):
    with pytest.raises(
        TooFewLabelsError,
        match=r"conversion: too few to judge: the [\d,]+ test rows hold \d+ of "
        r"label 1 \(at least 30 needed\); nothing registered",
    ):
        train(small, "conversion")
    assert registry.list_versions(small, "conversion") == []
    assert list(registry.runs(small, "conversion")["status"]) == ["failed"]


def test_a_constant_model_on_a_small_platform_never_reaches_the_registry(small, monkeypatch):
    monkeypatch.setattr(training, "MIN_TEST_POSITIVES", 1)
    constant = dataclasses.replace(
        SPECS["conversion"],
        name="conversion_constant",
        estimator=lambda seed: boosted(DummyClassifier(strategy="prior")),
    )
    monkeypatch.setitem(SPECS, constant.name, constant)
    with pytest.raises(ModelValidationError, match="its outputs are constant"):
        train(small, constant.name)
    assert registry.list_versions(small, constant.name) == []
