"""The cluster profile against real engines: Feast's Spark offline store, ``spark.engine``
materialization into a local 3-master Redis Cluster, the in-process reader on that cluster, and
churn trained through ``xgboost.dask`` on two local workers.

One small seeded platform and one Spark session (Feast keeps the first) serve the whole module.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import redis
import yaml
from redis_cluster import redis_cluster
from serving_platform import new_database
from sklearn.metrics import roc_auc_score

from ownlens_ml import clock, registry
from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine, init_db, schema
from ownlens_ml.errors import ConfigError, RedisUnavailableError
from ownlens_ml.features import redis_layout as layout
from ownlens_ml.features import store
from ownlens_ml.features.feast_store import feast_yaml_text
from ownlens_ml.features.quality import utc_midnight
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.models import get_spec
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.pipelines.training import fit_estimator, prepare, train
from ownlens_ml.serving.predictor import Predictor
from ownlens_ml.settings import Settings

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
CLI = str(Path(sys.executable).with_name("ownlens-ml"))

USERS, DAYS, SEED = 1500, 75, 3
SNAPSHOTS = (schema.customer_user_features, schema.editorial_article_features, schema.editorial_author_features)
REALTIME = "user_realtime_activity"
"""The one view over page events rather than snapshots: the standalone twin below has no events."""
SERVICES = ["churn_v1", "conversion_v1", "conversion_v2", "segmentation_v1", "article_performance_v1"]


@pytest.fixture(scope="module")
def nodes():
    with redis_cluster() as startup_nodes:
        yield startup_nodes


@pytest.fixture(scope="module")
def platform(tmp_path_factory, nodes):
    """The local profile's platform, and the cluster profile over the same tables and snapshots."""
    home = tmp_path_factory.mktemp("cluster") / "home"
    local = Settings(profile="local", home=home, project=f"t{uuid.uuid4().hex[:10]}")
    init_db(local)
    start = (pd.Timestamp(clock.today(), tz="UTC") - pd.Timedelta(days=DAYS)).date()  # ends today: served fresh
    generate(local, GeneratorConfig(users=USERS, days=DAYS, seed=SEED, start=start))
    built = build_snapshots(local)
    store.apply_repo(local)
    cluster = dataclasses.replace(
        local, profile="cluster", project=f"t{uuid.uuid4().hex[:10]}", redis_cluster_nodes=nodes
    )
    store.apply_repo(cluster)
    return local, cluster, utc_midnight(built.end)


@pytest.fixture(scope="module")
def standalone(platform, pg_server, redis_server, tmp_path_factory):
    """The production profile (standalone Redis) over the very snapshot rows the cluster reads."""
    local, _, _ = platform
    url, drop = new_database(pg_server)
    prod = Settings(
        profile="production",
        home=tmp_path_factory.mktemp("prod") / "home",
        database_url=url,
        redis_url=redis_server,
        project=f"t{uuid.uuid4().hex[:10]}",
    )
    init_db(prod)
    with get_engine(prod).begin() as conn:
        for table in SNAPSHOTS:
            copy_frame(conn, table, pd.read_parquet(local.offline_dir / f"{table.name}.parquet"))
    store.apply_repo(prod)
    yield prod
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(match=b"*" + prod.project.encode(), count=1000))
    if keys:
        client.delete(*keys)
    get_engine(prod).dispose()
    drop()


@pytest.fixture(scope="module")
def materialized(platform, standalone):
    """Both online stores loaded with the platform's last 30 days: the cluster's by Feast with
    ``spark.engine``, the standalone one by the production path."""
    _, cluster, end = platform
    start = end - pd.Timedelta(days=30)
    store.materialize(cluster, start, end)
    store.materialize(standalone, start, end)
    return end


def _entity_rows(settings: Settings, service: str) -> dict[str, list[int]]:
    keys = store.join_keys(settings, store.feature_service(settings, service))
    if keys == ["user_id"]:
        return {"user_id": [*range(1, USERS + 1), 10**12]}
    articles = (
        pd.read_parquet(
            settings.offline_dir / "editorial_article_features.parquet", columns=["article_id", "author_id"]
        )
        .drop_duplicates()
        .head(500)
    )
    return {"article_id": articles["article_id"].tolist(), "author_id": articles["author_id"].tolist()}


def _hashes(client, project: str, drop_fields: set[bytes]) -> dict[bytes, dict[bytes, bytes]]:
    suffix = project.encode()
    return {
        key[: -len(suffix)]: {f: v for f, v in client.hgetall(key).items() if f not in drop_fields}
        for key in client.scan_iter(match=b"*" + suffix, count=1000)
    }


def test_the_cluster_bindings_are_configuration_only(platform, nodes):
    _, cluster, _ = platform
    config = store.feature_store(cluster).config
    assert config.offline_store.type == "spark" and config.batch_engine.type == "spark.engine"
    assert config.online_store.redis_type == "redis_cluster" and config.online_store.connection_string == nodes
    assert config.offline_store.spark_conf["spark.master"] == "local[2]"
    text = feast_yaml_text(cluster)
    assert "redis_cluster" in text and "cluster-registry.db" in text and "${" not in text
    env = cluster.feast_env()
    assert env["OWNLENS_PROFILE"] == "cluster" and env["OWNLENS_REDIS_CLUSTER_NODES"] == nodes
    # the same views and services, bound to SparkSource
    view = store.feature_store(cluster).get_feature_view("user_daily_engagement")
    assert type(view.batch_source).__name__ == "SparkSource"
    assert sorted(fs.name for fs in store.feature_store(cluster).list_feature_services()) == sorted(
        fs.name for fs in store.feature_store(platform[0]).list_feature_services()
    )


def test_spark_training_set_equals_duckdb_value_for_value(platform):
    local, cluster, _ = platform
    spec = get_spec("churn")
    labels = spec.build_labels(local, spec.window)
    duckdb_rows = store.training_set(local, "churn_v1", labels, engine="feast")
    spark_rows = store.training_set(cluster, "churn_v1", labels)
    assert len(spark_rows.frame) == len(labels) > 1000
    assert spark_rows.frame.isna().any().any()  # the nulls (no snapshot within the TTL) come back too
    pd.testing.assert_frame_equal(spark_rows.frame, duckdb_rows.frame, check_exact=True)


def test_spark_engine_materialization_equals_the_standalone_redis_path(platform, standalone, materialized):
    _, cluster, _ = platform
    view = store.feature_store(cluster).get_feature_view(REALTIME)
    realtime = {layout.ts_field(REALTIME)} | {layout.feature_field(REALTIME, f.name) for f in view.features}
    nodes = [redis.Redis(host=h, port=p) for h, p in cluster.cluster_nodes]
    on_cluster: dict[bytes, dict[bytes, bytes]] = {}
    per_node = []
    for client in nodes:
        found = _hashes(client, cluster.project, realtime)
        per_node.append(len(found))
        on_cluster |= found
    on_server = _hashes(redis.Redis.from_url(standalone.redis_url), standalone.project, realtime)
    assert len(on_cluster) > USERS // 2 and all(per_node)  # spread over all three masters
    assert on_cluster == on_server  # byte for byte: keys, fields, ValueProto and _ts bytes
    for service in SERVICES:
        rows = _entity_rows(cluster, service)
        a = store.online_features(cluster, service, rows, request_time=materialized)
        b = store.online_features(standalone, service, rows, request_time=materialized)
        pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True, obj=service)


def test_the_in_process_reader_reads_redis_cluster_as_feast_does(platform, materialized):
    _, cluster, _ = platform
    for service in [*SERVICES, "recommendation_v1"]:
        rows = _entity_rows(cluster, service)
        fast = store.online_features(cluster, service, rows, request_time=materialized)
        sdk = store.online_features(cluster, service, rows, request_time=materialized, engine="feast")
        assert fast.frame.iloc[:, len(rows) :].notna().any().any(), service
        pd.testing.assert_frame_equal(fast.frame, sdk.frame, check_exact=True, obj=service)
        pd.testing.assert_frame_equal(fast.staleness_seconds, sdk.staleness_seconds, check_exact=True)
    # one entity (a single HMGET) reads what a batch (a pipeline split per node) reads for it
    alone = store.online_features(cluster, "churn_v1", {"user_id": [1]}, request_time=materialized).frame
    batch = store.online_features(cluster, "churn_v1", {"user_id": [2, 1, 3]}, request_time=materialized).frame
    pd.testing.assert_frame_equal(alone, batch.iloc[[1]].reset_index(drop=True), check_exact=True)


def test_an_unreachable_cluster_is_one_clear_error(platform):
    _, cluster, _ = platform
    gone = dataclasses.replace(cluster, redis_cluster_nodes="127.0.0.1:1")
    with pytest.raises(
        RedisUnavailableError, match="Redis Cluster at 127.0.0.1:1 is unreachable.*OWNLENS_REDIS_CLUSTER_NODES"
    ):
        layout.redis_client(gone)
    with pytest.raises(ConfigError, match="OWNLENS_REDIS_CLUSTER_NODES"):
        dataclasses.replace(cluster, redis_cluster_nodes="127.0.0.1").validate()
    with pytest.raises(ConfigError, match="training backend 'spark'"):
        dataclasses.replace(cluster, train_backend="spark").validate()


def test_churn_trained_through_xgboost_dask_matches_one_machine(platform):
    local, _, _ = platform
    spec = get_spec("churn")
    prepared = prepare(local, spec, spec.window)
    x_train, y_train = prepared.xy("train")
    x_val, y_val = prepared.xy("validation")
    x_test, y_test = prepared.xy("test")
    single = fit_estimator(spec.estimator(7), x_train, y_train, x_val, y_val, local)
    dask = fit_estimator(
        spec.estimator(7), x_train, y_train, x_val, y_val, dataclasses.replace(local, train_backend="dask")
    )
    assert type(dask) is type(single) and type(dask[-1]) is type(single[-1])
    assert dask[-1].best_iteration > 10  # it learned, and early stopping watched the validation rows
    auc_single = roc_auc_score(y_test, single.predict_proba(x_test)[:, 1])
    auc_dask = roc_auc_score(y_test, dask.predict_proba(x_test)[:, 1])
    assert auc_single > 0.7
    assert abs(auc_dask - auc_single) <= 0.005, (auc_dask, auc_single)


def test_a_dask_trained_version_registers_as_a_plain_xgboost_pipeline_and_serves_from_the_cluster(
    platform, materialized
):
    local, cluster, _ = platform
    settings = dataclasses.replace(local, train_backend="dask")
    result = train(settings, "churn", promote=False)
    entry, model = registry.load_model(local, "churn", result.version.version)
    single = get_spec("churn").estimator(7)
    assert type(model) is type(single) and type(model[-1]) is type(single[-1])  # what serving loads
    assert entry.params["train_backend"] == "dask"
    assert result.evaluation.metrics["model"]["roc_auc"] > 0.7
    # the cluster profile shares the local tables, hence the registry: serve the version from Redis Cluster
    registry.promote(local, "churn", entry.version)
    ids = [1, 2, 3, 10**12]
    predictor = Predictor(cluster, "churn", watch_every=None)
    try:
        prediction = predictor.predict(ids)
    finally:
        predictor.close()
    served = pd.DataFrame([r.features for r in prediction.results])
    sdk = store.online_features(cluster, "churn_v1", {"user_id": ids}, engine="feast").frame
    pd.testing.assert_frame_equal(served.astype(float), sdk[served.columns].astype(float))
    expected = get_spec("churn").task_kind.predict(model, feature_matrix(served, list(model.feature_names_in_)))
    assert [r.score for r in prediction.results] == pytest.approx(list(expected), abs=1e-6)
    assert prediction.version == entry.version and prediction.results[-1].cold_start
    assert not any(r.stale_views for r in prediction.results[:-1])


def test_features_env_and_train_backend_on_the_command_line(tmp_path):
    env = {**os.environ, "OWNLENS_HOME": str(tmp_path / "home"), "OWNLENS_REDIS_CLUSTER_NODES": "10.0.0.1:7000"}
    out = subprocess.run([CLI, "--profile", "cluster", "features", "env"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    assert exports["OWNLENS_PROFILE"] == "cluster" and exports["OWNLENS_REDIS_CLUSTER_NODES"] == "10.0.0.1:7000"
    assert exports["OWNLENS_SPARK_MASTER"] == "'local[2]'" and exports["PYSPARK_PYTHON"]
    generated = yaml.safe_load(Path(exports["FEAST_FS_YAML_FILE_PATH"]).read_text())
    assert generated["offline_store"]["type"] == "spark" and generated["batch_engine"]["type"] == "spark.engine"
    assert generated["online_store"] == {
        "type": "redis",
        "redis_type": "redis_cluster",
        "connection_string": "10.0.0.1:7000",
    }
    bad = subprocess.run([CLI, "train", "churn", "--backend", "spark"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "'spark' is not one of: single, dask" in bad.stderr
