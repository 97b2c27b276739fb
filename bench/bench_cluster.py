"""The cluster profile against the single-machine paths, in one run, on one generated platform.

Generates a seeded platform (local tables and parquet snapshots), binds the cluster profile to
the same snapshots (Spark ``local[2]``, a throwaway 3-master Redis Cluster started from the
``redis-server`` binary) and the production profile to a scratch PostgreSQL database holding
the same snapshot rows, then prints:

(a) churn_v1's training set: Feast's Spark store vs Feast's DuckDB store vs the fast DuckDB ASOF
    path (the floor), frames checked equal; the first Spark call (session start) apart;
(b) materializing the last 30 days: Feast with ``spark.engine`` into the Redis Cluster vs the
    fast writer into a standalone Redis (``store.materialize`` on production);
(c) online memory per reader and per article: ``MEMORY USAGE key SAMPLES 0`` over the
    materialized hashes on the cluster's masters (Feast's layout: one hash per entity);
(d) churn's XGBoost fit on one machine vs through ``xgboost.dask`` on two local workers, with
    the holdout ROC-AUC of each;
(e) one reader's churn_v1 vector by the in-process reader: Redis Cluster vs standalone Redis,
    calls interleaved (``--calls`` timed after 200 warm-up each), p50/p99.

    .venv/bin/python bench/bench_cluster.py --users 2000      # about three minutes here

Everything it creates (database, Redis keys, servers, files) is removed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import redis
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the Redis Cluster helper

from redis_cluster import redis_cluster
from serving_platform import new_database

from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine, init_db, schema
from ownlens_ml.features import store
from ownlens_ml.features.quality import utc_midnight
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.models import get_spec
from ownlens_ml.pipelines.training import fit_estimator, prepare
from ownlens_ml.settings import Settings

SNAPSHOTS = (schema.customer_user_features, schema.editorial_article_features, schema.editorial_author_features)


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - started, 2)


def memory_per_entity(cluster: Settings, prefix_of: dict[str, bytes], sample: int) -> dict[str, dict]:
    """Mean/median ``MEMORY USAGE`` of the cluster's hashes, by entity kind (its key prefix)."""
    suffix = cluster.project.encode()
    sizes: dict[str, list[int]] = {kind: [] for kind in prefix_of}
    fields: dict[str, list[int]] = {kind: [] for kind in prefix_of}
    for host, port in cluster.cluster_nodes:
        node = redis.Redis(host=host, port=port)
        for key in node.scan_iter(match=b"*" + suffix, count=1000):
            for kind, prefix in prefix_of.items():
                if key.startswith(prefix) and len(sizes[kind]) < sample:
                    sizes[kind].append(node.memory_usage(key, samples=0))
                    fields[kind].append(node.hlen(key))
    return {
        kind: {
            "keys_sampled": len(v),
            "mean_bytes": round(statistics.fmean(v)) if v else None,
            "median_bytes": statistics.median(v) if v else None,
            "fields_per_key": statistics.median(fields[kind]) if v else None,
        }
        for kind, v in sizes.items()
    }


def read_latency(cluster: Settings, prod: Settings, users: int, calls: int) -> dict[str, dict]:
    """p50/p99 milliseconds of ``online.read`` of one random reader, per store, calls interleaved."""
    from ownlens_ml.features import online

    plans = {
        "cluster": (cluster, online.plan_for(cluster, "churn_v1")),
        "standalone": (prod, online.plan_for(prod, "churn_v1")),
    }
    rng = random.Random(7)
    times: dict[str, list[float]] = {name: [] for name in plans}
    for i in range(200 + calls):
        for name, (settings, plan) in plans.items():
            rows = {"user_id": [rng.randint(1, users)]}
            started = time.perf_counter()
            online.read(settings, plan, rows)
            if i >= 200:
                times[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {"p50": round(statistics.median(t), 3), "p99": round(statistics.quantiles(t, n=100)[98], 3)}
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=75)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--sample", type=int, default=2000, help="hashes per entity kind for (c)")
    parser.add_argument("--calls", type=int, default=1000, help="timed reads per store for (e)")
    parser.add_argument(
        "--pg-url", default=os.environ.get("OWNLENS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.environ.get("OWNLENS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OWNLENS_NOW", "2026-12-04T12:00:00Z")
    scratch = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    url, drop = new_database(args.pg_url)
    figures: dict = {"users": args.users, "days": args.days, "seed": args.seed}
    prod = None
    try:
        with redis_cluster() as nodes:
            local = Settings(profile="local", home=scratch / "home", project=f"b{uuid.uuid4().hex[:8]}")
            init_db(local)
            _, figures["generate_s"] = timed(
                generate, local, GeneratorConfig(users=args.users, days=args.days, seed=args.seed)
            )
            built = build_snapshots(local)
            store.apply_repo(local)
            end = utc_midnight(built.end)
            cluster = dataclasses.replace(
                local, profile="cluster", project=f"b{uuid.uuid4().hex[:8]}", redis_cluster_nodes=nodes
            )
            store.apply_repo(cluster)
            prod = Settings(
                profile="production",
                home=scratch / "prod",
                database_url=url,
                redis_url=args.redis_url,
                project=f"b{uuid.uuid4().hex[:8]}",
            )
            init_db(prod)
            with get_engine(prod).begin() as conn:
                for table in SNAPSHOTS:
                    copy_frame(conn, table, pd.read_parquet(local.offline_dir / f"{table.name}.parquet"))
            store.apply_repo(prod)

            # (a) training sets
            spec = get_spec("churn")
            labels = spec.build_labels(local, spec.window)
            figures["entity_rows"] = len(labels)
            fast, figures["train_set_duckdb_fast_s"] = timed(store.training_set, local, "churn_v1", labels)
            feast_duck, figures["train_set_feast_duckdb_s"] = timed(
                store.training_set, local, "churn_v1", labels, engine="feast"
            )
            _, figures["train_set_spark_first_s"] = timed(store.training_set, cluster, "churn_v1", labels)
            spark, figures["train_set_spark_s"] = timed(store.training_set, cluster, "churn_v1", labels)
            pd.testing.assert_frame_equal(spark.frame, feast_duck.frame, check_exact=True)
            pd.testing.assert_frame_equal(fast.frame, feast_duck.frame, check_exact=True)
            figures["train_set_spark_vs_floor"] = round(
                figures["train_set_spark_s"] / figures["train_set_duckdb_fast_s"], 1
            )

            # (b) materialization, last 30 days, every online view
            start = end - pd.Timedelta(days=30)
            _, figures["materialize_spark_engine_cluster_s"] = timed(store.materialize, cluster, start, end)
            _, figures["materialize_fast_standalone_s"] = timed(store.materialize, prod, start, end)
            figures["materialize_spark_vs_fast"] = round(
                figures["materialize_spark_engine_cluster_s"] / figures["materialize_fast_standalone_s"], 1
            )

            # (c) memory per entity hash, on the cluster's masters
            fs = store.feature_store(cluster)
            version = fs.config.entity_key_serialization_version
            from ownlens_ml.features.redis_layout import KeyCodec

            prefixes = {
                kind: KeyCodec(kind, cluster.project, version).prefix for kind in ("user_id", "article_id", "author_id")
            }
            figures["memory"] = memory_per_entity(cluster, prefixes, args.sample)
            figures["cluster_used_memory_bytes"] = sum(
                redis.Redis(host=h, port=p).info("memory")["used_memory"] for h, p in cluster.cluster_nodes
            )

            # (e) single-entity reads, interleaved
            figures["online_read_ms"] = read_latency(cluster, prod, args.users, args.calls)

            # (d) xgboost on one machine vs xgboost.dask on two local workers
            prepared = prepare(local, spec, spec.window)
            x_train, y_train = prepared.xy("train")
            x_val, y_val = prepared.xy("validation")
            x_test, y_test = prepared.xy("test")
            figures["train_rows"] = len(x_train)
            single, figures["fit_single_s"] = timed(
                fit_estimator, spec.estimator(7), x_train, y_train, x_val, y_val, local
            )
            dask, figures["fit_dask_s"] = timed(
                fit_estimator,
                spec.estimator(7),
                x_train,
                y_train,
                x_val,
                y_val,
                dataclasses.replace(local, train_backend="dask"),
            )
            figures["auc_single"] = round(roc_auc_score(y_test, single.predict_proba(x_test)[:, 1]), 4)
            figures["auc_dask"] = round(roc_auc_score(y_test, dask.predict_proba(x_test)[:, 1]), 4)
            figures["best_iteration_single"] = int(single[-1].best_iteration)
            figures["best_iteration_dask"] = int(dask[-1].best_iteration)
    finally:
        if prod is not None:
            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(match=b"*" + prod.project.encode(), count=1000))
            if keys:
                client.delete(*keys)
            get_engine(prod).dispose()
        drop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
