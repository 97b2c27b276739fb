"""Every model spec trains end to end through the one engine; churn against baselines and the oracle."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted

from ownlens_ml import registry
from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.db import init_db
from ownlens_ml.errors import ModelValidationError, SpecError
from ownlens_ml.features import store
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.models import SPECS
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.models.kinds import KINDS, methods_of
from ownlens_ml.models.spec import ModelSpec
from ownlens_ml.monitoring.profiles import read_profile
from ownlens_ml.pipelines import training
from ownlens_ml.pipelines.training import train, validate
from ownlens_ml.settings import Settings

CLI = str(Path(sys.executable).with_name("ownlens-ml"))


def platform(settings, users: int, days: int, seed: int = 7):
    init_db(settings)
    generate(settings, GeneratorConfig(users=users, days=days, seed=seed))
    build_snapshots(settings)
    store.apply_repo(settings)


@pytest.fixture(scope="module")
def demo_platform(tmp_path_factory) -> Settings:
    """One demo-sized generated platform (6,000 readers, 120 days, seed 7) for the quality tests."""
    settings = Settings(profile="local", home=tmp_path_factory.mktemp("quality") / "home", project="quality")
    platform(settings, users=6_000, days=120)
    return settings


@pytest.fixture(scope="module")
def contract_platform(module_settings: Settings) -> Settings:
    """The small platform every contract case trains on, built once per profile."""
    platform(module_settings, users=600, days=100)
    return module_settings


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_model_contract(spec: ModelSpec, contract_platform: Settings, monkeypatch):
    """Declared parts are well-formed; training registers a loadable version with full lineage,
    and the report draws the kind's own figures (no ROC curve for a regression)."""
    # the contract platform is small: conversion's handful of test positives would be refused
    # (tests/test_small_data.py checks that refusal); here the engine's path is what is tested
    monkeypatch.setattr(training, "MIN_TEST_POSITIVES", 1)
    assert dataclasses.is_dataclass(spec) and spec.kind in KINDS
    kind = spec.task_kind
    if kind.supervised:
        estimator = spec.estimator(7)
        with pytest.raises(NotFittedError):  # the factory stores hyperparameters only
            check_is_fitted(estimator)
        assert clone(estimator).get_params().keys() == estimator.get_params().keys()

    if kind.supervised:
        labels = spec.build_labels(contract_platform, spec.window)
        assert {*spec.entity_key, "event_timestamp", "label"} <= set(labels.columns)
        assert str(labels["event_timestamp"].dt.tz) == "UTC"
        assert not labels.duplicated([*spec.entity_key, "event_timestamp"]).any()
        assert not kind.bad_labels(labels["label"]).any()

    result = train(contract_platform, spec.name)
    version = result.version
    profile = read_profile(contract_platform, spec.name, version.version)
    assert profile is not None, "every kind's version gets a reference profile when it is registered"
    assert version.task == spec.kind and version.artifact_format == kind.artifact_format
    if spec.feature_service:
        service = store.feature_service(contract_platform, spec.feature_service)
        assert version.feature_service == spec.feature_service
        assert version.feature_service_hash == store.service_definition_hash(contract_platform, service)
    assert version.window_start <= version.window_end
    holdout = version.metrics["holdout"]
    assert set(spec.metrics) <= set(holdout["model"])
    assert set(kind.baselines(7)) <= set(holdout)
    assert result.report.exists()
    drawn = {p.name for p in result.report.parent.glob("*.png")}
    assert ("roc_pr.png" in drawn) == ("roc_pr" in kind.plots)
    assert len(drawn) >= 2

    loaded, model = registry.load_model(contract_platform, spec.name, version.version)
    assert loaded.artifact_sha256 == version.artifact_sha256
    if kind.predict is not None and spec.feature_service:
        # supervised kinds score labelled rows; others the first entities at the end of the version's window
        entities = (
            labels.tail(50)
            if kind.supervised
            else pd.DataFrame({spec.entity_key[0]: np.arange(1, 51), "event_timestamp": version.window_end})
        )
        rows = store.training_set(contract_platform, spec.feature_service, entities).frame
        x = feature_matrix(rows, list(model.feature_names_in_))
        outputs = np.asarray(kind.predict(model, x))
        assert len(outputs) == len(rows) and kind.check_outputs(outputs) is None
        assert list(model.feature_names_in_) == store.feature_names(service)
        assert list(profile["features"]) == list(model.feature_names_in_) and "output" in profile
    _answered_over_http(contract_platform, spec, version.version)


def _answered_over_http(settings: Settings, spec: ModelSpec, version: int) -> None:
    """Every path of ``spec.routes`` answers 200 from ``version`` made champion, in the kind's answer schema."""
    from fastapi.testclient import TestClient

    from ownlens_ml.serving.app import create_app

    registry.promote(settings, spec.name, version)
    with TestClient(create_app(settings)) as client:
        for path in spec.routes:
            if spec.task_kind.supervised:
                entity = {key: 1 for key in spec.entity_key}
                answer = client.post(path, json={"entities": [entity]})
            else:
                answer = client.get(path.replace("{user_id}", "1"))
            assert answer.status_code == 200, (path, answer.text)
            body = answer.json()
            assert body["model"] == spec.name and body["version"] == version, (path, body)
            assert {
                "predict": "predictions",
                "segments": "segment",
                "recommendations": "articles",
                "trending": "topics",
            }[path.split("/")[2]] in body, (path, body)


THROWAWAY = {
    "binary": "churn",
    "regression": "article_performance",
    "clustering": "segmentation",
    "ranking": "recommendation",
    "rule": "trending",
}
"""For each kind, the spec whose parts a throwaway spec of that kind borrows (feature service, labels, trainer)."""


@pytest.mark.parametrize("kind", list(THROWAWAY))
def test_a_new_spec_of_any_kind_is_trained_registered_and_answered(kind, contract_platform, monkeypatch):
    """A spec added at runtime, touching no other file (its kind's codec, checks, trainer and serving adapter
    do the rest), is trained, registered with its kind's artifact format and answered at its kind's path."""
    if contract_platform.profile != "local":
        pytest.skip("the throwaway specs run on the local profile (the contract cases cover both)")
    borrowed = SPECS[THROWAWAY[kind]]
    spec = dataclasses.replace(borrowed, name=f"throwaway_{kind}", route=None, description=f"a throwaway {kind}")
    monkeypatch.setitem(SPECS, spec.name, spec)
    assert spec.kind == kind and spec.routes == (spec.task_kind.route.replace("{model}", spec.name),)
    version = train(contract_platform, spec.name, promote=False).version
    assert version.task == kind and version.artifact_format == spec.task_kind.artifact_format
    loaded, model = registry.load_model(contract_platform, spec.name, version.version)
    assert all(callable(getattr(model, method, None)) for method in methods_of(spec.task_kind.artifact))
    _answered_over_http(contract_platform, spec, version.version)


def _spec(**changes) -> ModelSpec:
    fields = {f.name: getattr(SPECS["churn"], f.name) for f in dataclasses.fields(ModelSpec)}
    return ModelSpec(**(fields | changes))


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"kind": "binray"}, "field 'kind': unknown kind 'binray'"),
        ({"metrics": ("roc_auc", "rmse")}, "field 'metrics': 'rmse' is not a binary metric"),
        ({"gate": dataclasses.replace(SPECS["churn"].gate, metric="r2")}, "field 'gate': gate metric 'r2'"),
        ({"build_labels": None}, "field 'build_labels': a binary model needs a callable build_labels"),
        ({"estimator": None}, "field 'estimator'"),
        ({"entity_key": ()}, "field 'entity_key'"),
        ({"kind": "regression"}, "field 'metrics': 'roc_auc' is not a regression metric"),
    ],
)
def test_a_spec_is_checked_when_it_is_defined(changes, words):
    with pytest.raises(SpecError, match=f"model spec 'churn', {words}"):
        _spec(**changes)


@pytest.mark.slow
@pytest.mark.parametrize("name, oracle_range", [("churn", (0.75, 0.92)), ("conversion", (0.75, 0.95))])
def test_classifier_beats_baselines_and_nears_the_oracle(demo_platform, name, oracle_range):
    """With the default generator settings the oracle is realistic (churn: no visit in 30 days;
    conversion: subscribing within 14), and the model beats every baseline and comes within
    0.03 ROC-AUC of the oracle on the same test rows."""
    metrics = train(demo_platform, name).evaluation.metrics
    auc = {who: values["roc_auc"] for who, values in metrics.items()}
    assert oracle_range[0] <= auc["oracle"] <= oracle_range[1], auc
    for baseline in ("logistic_regression", "random_forest", "neural_network"):
        assert auc["model"] > auc[baseline], auc
    assert auc["oracle"] - auc["model"] <= 0.03, auc


@pytest.mark.slow
def test_article_performance_beats_the_author_mean_by_a_fifth(demo_platform):
    """First-week page views: at least 20% lower RMSE than the author's track record, beside
    the shared regression baselines and the oracle."""
    result = train(demo_platform, "article_performance")
    rmse = {who: values["rmse"] for who, values in result.evaluation.metrics.items()}
    assert rmse["model"] <= 0.8 * rmse["author_mean"], rmse
    assert {"ridge_regression", "random_forest", "neural_network", "oracle"} <= set(rmse)
    assert "oracle" in result.report.read_text()


class NanClassifier(ClassifierMixin, BaseEstimator):
    """Fits, then predicts NaN: a model that must never reach the registry."""

    def fit(self, x, y):
        self.feature_names_in_ = np.asarray(x.columns, dtype=object)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x):
        return np.full((len(x), 2), np.nan)


def test_failed_run_is_recorded_and_registers_nothing(local_settings, monkeypatch):
    platform(local_settings, users=300, days=100)
    broken = dataclasses.replace(SPECS["churn"], name="churn_broken", estimator=lambda seed: NanClassifier())
    monkeypatch.setitem(SPECS, broken.name, broken)
    with pytest.raises(ModelValidationError, match="predictions are not finite"):
        train(local_settings, broken.name)
    runs = registry.runs(local_settings, broken.name)
    assert list(runs["status"]) == ["failed"] and "not finite" in runs["error"].iloc[0]
    assert registry.list_versions(local_settings, broken.name) == []


def test_validator_names_a_leaking_feature():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2_000)
    x = pd.DataFrame({"noise": rng.normal(size=2_000), "leak": y + rng.normal(scale=0.01, size=2_000)})
    model = make_pipeline(LogisticRegression()).fit(x, y)
    with pytest.raises(ModelValidationError, match="feature 'leak' carries"):
        validate(SPECS["churn"], model, ["noise", "leak"], x, y)
    with pytest.raises(ModelValidationError, match="input signature differs.*missing \\['extra'\\]"):
        validate(SPECS["churn"], model, ["noise", "leak", "extra"], x, y)


def cli(settings, *args: str, ok: bool = True) -> str:
    env = os.environ | {
        "OWNLENS_PROFILE": settings.profile,
        "OWNLENS_HOME": str(settings.home),
        "OWNLENS_FEAST_PROJECT": settings.project,
        "COLUMNS": "200",
    }
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600)
    assert (done.returncode == 0) == ok, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_gate_promote_rollback_and_evaluate_from_the_cli(local_settings):
    platform(local_settings, users=600, days=100)
    first = cli(local_settings, "train", "churn", "--no-promote")
    assert "registered churn v1 as challenger" in first
    cli(local_settings, "registry", "promote", "churn", "1", "--force")
    # the same data again gives the same model: it does not *beat* the champion, so it is refused
    second = cli(local_settings, "train", "churn")
    assert "registered churn v2 as challenger" in second and "does not beat champion_v1" in second
    refused = cli(local_settings, "registry", "promote", "churn", "2", ok=False)
    assert "refused: roc_auc" in refused and "short by" in refused
    cli(local_settings, "registry", "promote", "churn", "2", "--force")
    assert registry.get_version(local_settings, "churn", "champion").version == 2
    assert "champion is v1 again" in cli(local_settings, "registry", "rollback", "churn")
    listed = cli(local_settings, "registry", "list")
    assert "champion" in listed and "challenger" in listed
    evaluated = cli(local_settings, "evaluate", "churn")
    assert "oracle" in evaluated and (local_settings.reports_dir / "churn" / "v1" / "report.md").exists()
    unknown = cli(local_settings, "train", "chrun", ok=False)
    assert "no model 'chrun'; known:" in unknown and "churn" in unknown and "Traceback" not in unknown


def test_a_corrupt_champion_is_reported_and_training_carries_on(local_settings):
    """A champion whose artifact no longer matches its checksum must not block every later
    run: the new version is compared without it, the report says why, and it can take over."""
    from test_registry import _tamper

    platform(local_settings, users=600, days=100)
    train(local_settings, "churn")
    registry.promote(local_settings, "churn", 1)
    _tamper(local_settings, artifact=b"not a model any more")
    result = train(local_settings, "churn")
    notes = " ".join(result.evaluation.notes)
    assert "the champion could not be loaded" in notes and "checksum mismatch" in notes
    assert not any(who.startswith("champion") for who in result.evaluation.metrics)
    assert result.version.version == 2 and not any("champion" in refusal for refusal in result.refusals)
    assert "the champion could not be loaded" in result.report.read_text()
