"""Model registry: safe artifacts, checksums, versions, aliases and runs on real databases."""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from xgboost import XGBClassifier

import ownlens_ml.models  # noqa: F401 - the kinds register their codecs and trusted classes
from ownlens_ml import registry
from ownlens_ml.db import get_engine, init_db
from ownlens_ml.db.schema import ml_model_aliases, ml_model_registry
from ownlens_ml.errors import (
    ArtifactIntegrityError,
    RegistryError,
    UnknownModelVersionError,
    UntrustedArtifactError,
)

WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


class Custom:
    """A class no allowlist knows: stands in for anything an attacker could name."""

    def __init__(self):
        self.payload = "hello"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    y = ((X["a"] + 0.5 * X["b"] + rng.normal(scale=0.5, size=len(X))) > 0).astype(int)
    return X, y


@pytest.fixture(scope="module")
def sklearn_model(data):
    X, y = data
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)


@pytest.fixture(scope="module")
def xgb_model(data):
    X, y = data
    return Pipeline(
        [("impute", SimpleImputer()), ("clf", XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, random_state=0))]
    ).fit(X, y)


@pytest.fixture
def settings(any_settings):
    init_db(any_settings)
    return any_settings


def _register(settings, estimator, model_name="churn", **overrides):
    run_id = registry.start_run(settings, model_name, {"C": 1.0})
    kwargs = dict(
        model_name=model_name,
        task="binary",
        estimator=estimator,
        feature_service="churn_v1",
        feature_service_hash="f" * 64,
        training_set_fingerprint="a" * 64,
        window_start=WINDOW[0],
        window_end=WINDOW[1],
        params={"C": 1.0},
        metrics={"roc_auc": 0.8},
    )
    kwargs.update(overrides)
    return registry.register(settings, run_id, **kwargs)


def _champion_rows(settings, model_name="churn"):
    ali = ml_model_aliases
    with get_engine(settings).connect() as conn:
        return conn.execute(
            select(ali.c.version, ali.c.previous_version).where(
                ali.c.model_name == model_name, ali.c.alias == "champion"
            )
        ).all()


def _tamper(settings, **values):
    """Rewrite version rows as someone with DDL rights could, past the immutability trigger."""
    with get_engine(settings).begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        conn.execute(
            text(
                "ALTER TABLE ml_model_registry DISABLE TRIGGER ml_model_registry_immutable"
                if postgres
                else "DROP TRIGGER ml_model_registry_immutable"
            )
        )
        conn.execute(update(ml_model_registry).values(**values))
        if postgres:
            conn.execute(text("ALTER TABLE ml_model_registry ENABLE TRIGGER ml_model_registry_immutable"))


def _version_count(settings, model_name="churn"):
    with get_engine(settings).connect() as conn:
        return conn.execute(
            select(func.count()).select_from(ml_model_registry).where(ml_model_registry.c.model_name == model_name)
        ).scalar_one()


# --- artifacts -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sklearn_model", "xgb_model"])
def test_dump_load_round_trip_predicts_identically(name, data, request):
    model = request.getfixturevalue(name)
    fmt, blob = registry.dump_estimator(model)
    assert fmt == "skops"
    loaded = registry.load_estimator(fmt, blob, hashlib.sha256(blob).hexdigest())
    X, _ = data
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_allowlist_admits_every_supported_estimator_kind(data):
    X, y = data
    frame = X.assign(kind=np.where(X["c"] > 0, "x", "y"))
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["a", "b", "c", "d"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["kind"]),
        ]
    )
    for est in (
        RandomForestClassifier(n_estimators=3, random_state=0),
        KMeans(2, n_init=1, random_state=0),
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tiny MLP does not converge; irrelevant here
            model = Pipeline([("pre", pre), ("est", est)]).fit(frame, y)
        fmt, blob = registry.dump_estimator(model)
        loaded = registry.load_estimator(fmt, blob, hashlib.sha256(blob).hexdigest())
        np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_disallowed_type_is_refused_naming_it():
    blob = sio.dumps(Custom())
    name = f"{Custom.__module__}.Custom"
    with pytest.raises(UntrustedArtifactError, match=re.escape(name)):
        registry.load_estimator("skops", blob, hashlib.sha256(blob).hexdigest())
    with pytest.raises(UntrustedArtifactError, match=re.escape(name)):
        registry.dump_estimator(Pipeline([("x", StandardScaler())]).set_params(x=Custom()))


@pytest.mark.parametrize(
    "name, trusted",
    [
        ("sklearn.linear_model._logistic.LogisticRegression", True),
        ("sklearn.tree._tree.Tree", True),
        ("xgboost.core.Booster", True),
        ("xgboost.sklearn.XGBClassifier", True),
        ("numpy.dtype", True),
        ("numpy.float64", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("numpy.memmap", False),  # a class in numpy whose constructor opens files
        ("numpy.load", False),  # a function: skops may call it
        ("xgboost.core.DMatrix", False),  # reads a path given as data
        ("sklearn.utils.parallel.Parallel", False),  # sklearn, but no estimator
        ("sklearn.datasets.fetch_openml", False),
        ("builtins.eval", False),
        ("os.system", False),
        ("sklearnx.evil.Thing", False),  # prefix look-alike
        ("ownlens_ml.models.customer.segmentation.ReaderSegmentation", True),  # named exactly
        ("ownlens_ml.models.customer.segmentation.KMeans", False),  # a re-export beside it
        ("ownlens_ml.models.customer.segmentation.assign", False),  # a function of the same module
        ("ownlens_ml.settings.Settings", False),  # the package is not a namespace
    ],
)
def test_type_allowlist_is_precise(name, trusted):
    assert registry.artifacts._trusted_type(name) is trusted


def test_tampered_artifact_refuses_to_load_naming_checksums(settings, sklearn_model):
    mv = _register(settings, sklearn_model)
    with get_engine(settings).connect() as conn:
        blob = bytearray(conn.execute(select(ml_model_registry.c.artifact)).scalar_one())
    blob[len(blob) // 2] ^= 0xFF
    _tamper(settings, artifact=bytes(blob))
    actual = hashlib.sha256(bytes(blob)).hexdigest()
    with pytest.raises(ArtifactIntegrityError) as err:
        registry.load_model(settings, "churn", 1)
    assert mv.artifact_sha256 in str(err.value) and actual in str(err.value)
    assert "churn v1" in str(err.value)


def test_untrusted_artifact_in_database_is_refused(settings, sklearn_model):
    _register(settings, sklearn_model)
    blob = sio.dumps(Custom())
    _tamper(settings, artifact=blob, artifact_sha256=hashlib.sha256(blob).hexdigest())
    with pytest.raises(UntrustedArtifactError, match=re.escape(f"{Custom.__module__}.Custom")):
        registry.load_model(settings, "churn")


# --- versions and runs -----------------------------------------------------------------


def test_register_and_load_round_trip(settings, xgb_model, data):
    mv = _register(settings, xgb_model, metrics={"roc_auc": np.float64(0.75), "n": np.int64(120)})
    assert (mv.model_name, mv.version, mv.aliases) == ("churn", 1, ())
    assert mv.metrics == {"roc_auc": 0.75, "n": 120}
    assert (mv.window_start, mv.window_end) == WINDOW
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|\d+\.\d+\.\d+", mv.code_version)
    info, model = registry.load_model(settings, "churn", "latest")
    assert info == mv
    np.testing.assert_array_equal(model.predict_proba(data[0]), xgb_model.predict_proba(data[0]))
    run = registry.runs(settings, "churn").iloc[0]
    assert (run.status, run.version, run.metrics) == ("succeeded", 1, {"roc_auc": 0.75, "n": 120})
    assert _register(settings, xgb_model, code_version="abc").version == 2
    assert [v.version for v in registry.list_versions(settings, "churn")] == [1, 2]


def test_failed_run_leaves_run_failed_and_no_version(settings, sklearn_model, monkeypatch):
    # 1. metrics that cannot be JSON-encoded; 2. an estimator skops cannot serialize;
    # 3. a failure inside the transaction, after the version row and run update are written.
    def boom(*_args, **_kwargs):
        raise RuntimeError("disk full")

    cases = [
        (dict(metrics={"roc_auc": object()}), RegistryError, r"metrics\['roc_auc'\]"),
        (dict(metrics={"roc_auc": float("nan")}), RegistryError, "finite"),
        (dict(estimator={"f": open(__file__)}), RegistryError, "cannot serialize"),
        (dict(), RuntimeError, "disk full"),
    ]
    for overrides, error, message in cases:
        run_id = registry.start_run(settings, "churn", {})
        kwargs = dict(
            model_name="churn",
            task="binary",
            estimator=sklearn_model,
            feature_service="churn_v1",
            feature_service_hash="f" * 64,
            training_set_fingerprint="a" * 64,
            window_start=None,
            window_end=None,
            params={},
            metrics={"roc_auc": 0.8},
        )
        kwargs.update(overrides)
        with monkeypatch.context() as patch:
            if error is RuntimeError:
                patch.setattr(registry.versions, "_read_version", boom)
            with pytest.raises(error, match=message) as err:
                registry.register(settings, run_id, **kwargs)
        registry.fail_run(settings, run_id, str(err.value))
        run = registry.runs(settings, "churn").set_index("run_id").loc[run_id]
        assert run.status == "failed" and run.error == str(err.value)
        assert pd.isna(run.version)
        assert _version_count(settings) == 0
    assert _register(settings, sklearn_model).version == 1


def test_register_refuses_unknown_finished_or_foreign_runs(settings, sklearn_model):
    mv = _register(settings, sklearn_model)
    run_id = registry.runs(settings).run_id.iloc[0]
    common = dict(
        task="binary",
        estimator=sklearn_model,
        feature_service="churn_v1",
        feature_service_hash="f" * 64,
        training_set_fingerprint="a" * 64,
        window_start=None,
        window_end=None,
        params={},
        metrics={},
    )
    with pytest.raises(RegistryError, match="already succeeded"):
        registry.register(settings, run_id, model_name="churn", **common)
    other = registry.start_run(settings, "conversion", {})
    with pytest.raises(RegistryError, match="belongs to model 'conversion'"):
        registry.register(settings, other, model_name="churn", **common)
    with pytest.raises(RegistryError, match="no training run 'nope'"):
        registry.register(settings, "nope", model_name="churn", **common)
    with pytest.raises(RegistryError, match="no training run"):
        registry.fail_run(settings, "nope", "x")
    registry.fail_run(settings, run_id, "late failure")  # a succeeded run keeps its state
    assert registry.runs(settings, "churn").status.tolist() == ["succeeded"]
    assert registry.list_versions(settings) == [mv]


def test_runs_newest_first(settings):
    first = registry.start_run(settings, "churn", {"a": 1})
    second = registry.start_run(settings, "conversion", {"a": 2})
    frame = registry.runs(settings)
    assert frame.run_id.tolist() == [second, first]
    assert frame.params.tolist() == [{"a": 2}, {"a": 1}]
    assert "UTC" in str(frame.started_at.dtype)
    assert registry.runs(settings, "churn").run_id.tolist() == [first]


def test_concurrent_registers_get_distinct_consecutive_versions(settings, sklearn_model):
    workers = 4
    barrier = threading.Barrier(workers)
    run_ids = [registry.start_run(settings, "churn", {}) for _ in range(workers)]
    results, errors = {}, []

    def work(run_id):
        try:
            barrier.wait()
            results[run_id] = _register_with(settings, run_id, sklearn_model).version
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results.values()) == [1, 2, 3, 4]
    frame = registry.runs(settings, "churn").set_index("run_id")
    assert {run_id: frame.loc[run_id, "version"] for run_id in run_ids} == results


def _register_with(settings, run_id, estimator):
    return registry.register(
        settings,
        run_id,
        model_name="churn",
        task="binary",
        estimator=estimator,
        feature_service="churn_v1",
        feature_service_hash="f" * 64,
        training_set_fingerprint="a" * 64,
        window_start=None,
        window_end=None,
        params={},
        metrics={"roc_auc": 0.8},
    )


# --- aliases ---------------------------------------------------------------------------


def test_concurrent_promotions_leave_exactly_one_champion(settings, sklearn_model):
    for _ in range(5):
        _register(settings, sklearn_model)
    registry.promote(settings, "churn", 1)
    for pair in [(2, 3), (4, 5)]:
        barrier = threading.Barrier(2)
        errors = []

        def work(version):
            try:
                barrier.wait()
                registry.promote(settings, "churn", version)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(v,)) for v in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        rows = _champion_rows(settings)
        assert len(rows) == 1
        ((champion, previous),) = rows
        assert champion in pair and previous == (set(pair) - {champion}).pop()


def test_promote_and_rollback_round_trip(settings, sklearn_model):
    for _ in range(2):
        _register(settings, sklearn_model)
    assert registry.promote(settings, "churn", 1).aliases == ("champion",)
    registry.set_alias(settings, "churn", "challenger", 2)
    assert [v.aliases for v in registry.list_versions(settings, "churn")] == [("champion",), ("challenger",)]
    promoted = registry.promote(settings, "churn", "challenger")
    assert (promoted.version, promoted.aliases) == (2, ("challenger", "champion"))
    registry.promote(settings, "churn", 2)  # repeating a promotion keeps the rollback target
    assert _champion_rows(settings) == [(2, 1)]
    restored = registry.rollback(settings, "churn")
    assert (restored.version, restored.aliases) == (1, ("champion",))
    assert _champion_rows(settings) == [(1, 2)]
    assert registry.get_version(settings, "churn", "champion").version == 1
    info, _model = registry.load_model(settings, "churn", "champion")
    assert info.version == 1


def test_rollback_without_previous_or_champion_is_a_clear_error(settings, sklearn_model):
    with pytest.raises(UnknownModelVersionError, match="no model 'churn'"):
        registry.rollback(settings, "churn")
    _register(settings, sklearn_model)
    with pytest.raises(RegistryError, match="has no champion"):
        registry.rollback(settings, "churn")
    registry.promote(settings, "churn", 1)
    with pytest.raises(RegistryError, match="champion v1 has no previous champion"):
        registry.rollback(settings, "churn")
    assert _champion_rows(settings) == [(1, None)]


def test_unknown_model_version_or_alias_lists_what_exists(settings, sklearn_model):
    with pytest.raises(UnknownModelVersionError, match="registry is empty"):
        registry.get_version(settings, "churn")
    _register(settings, sklearn_model)
    _register(settings, sklearn_model)
    _register(settings, sklearn_model, model_name="conversion")
    registry.promote(settings, "churn", 2)
    with pytest.raises(UnknownModelVersionError, match="no model 'chrun'.*registered models: churn, conversion"):
        registry.get_version(settings, "chrun")
    with pytest.raises(
        UnknownModelVersionError, match=r"'churn' has versions 1, 2 and aliases champion -> v2; no version 7"
    ):
        registry.load_model(settings, "churn", 7)
    with pytest.raises(UnknownModelVersionError, match="no alias 'challenger'"):
        registry.get_version(settings, "churn", "challenger")
    with pytest.raises(UnknownModelVersionError, match="no version 9"):
        registry.promote(settings, "churn", 9)
    with pytest.raises(RegistryError, match="unknown alias 'production'; aliases are champion, challenger"):
        registry.set_alias(settings, "churn", "production", 1)
    assert registry.get_version(settings, "churn", "2") == registry.get_version(settings, "churn", "champion")
    assert [(v.model_name, v.version) for v in registry.list_versions(settings)] == [
        ("churn", 1),
        ("churn", 2),
        ("conversion", 1),
    ]


def test_versions_are_immutable_rows(settings, sklearn_model):
    """Registering again adds a row; the database refuses to update an existing one."""
    first = _register(settings, sklearn_model)
    _register(settings, sklearn_model, metrics={"roc_auc": 0.9})
    assert registry.get_version(settings, "churn", 1) == first
    with pytest.raises(DBAPIError, match="model versions are immutable"), get_engine(settings).begin() as conn:
        conn.execute(
            update(ml_model_registry).where(ml_model_registry.c.version == 1).values(metrics={"roc_auc": 0.99})
        )
    assert registry.get_version(settings, "churn", 1) == first
