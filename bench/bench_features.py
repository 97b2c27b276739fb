"""Benchmark the fast feature paths against Feast's own and against the floors, in one run.

Generates synthetic ``customer_user_features`` snapshots directly (users x daily snapshots at
00:00 UTC, ~3 % of snapshots missing so TTL nulls occur), loads them into a scratch
PostgreSQL database and a parquet file, applies ``feature_repo/`` to both profiles under a
scratch Feast project, and prints:

(a) materialization into Redis (all five reader views; churn_v1's four among them):
    Feast's ``materialize`` vs ``store.materialize`` (fast) vs pipelined HSET of the same hashes;
(b) point-in-time training sets of churn_v1 for each ``--entities`` size: DuckDB ASOF JOIN
    over the parquet to pandas (floor: the 27 stored features only; and the same query with
    the on-demand view's 4 ratios as SQL expressions, i.e. the same 31 columns) vs Feast's DuckDB store vs the fast ASOF path (local profile), and
    Feast's PostgreSQL store vs the fast COPY + LATERAL path (production profile), checking
    identical frames;
(c) single-entity online reads of churn_v1: Feast SDK ``get_online_features(...).to_dict()`` vs
    the fast reader vs one raw HMGET round trip (and PING), calls interleaved.

    .venv/bin/python bench/bench_features.py                # 100k users x 30 days; 100k and 1M rows
    .venv/bin/python bench/bench_features.py --quick        # a minute, small sizes

Everything it creates (database, Redis keys, files) is removed at the end.
"""

from __future__ import annotations

import argparse
import io
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
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ownlens_ml.db.schema import customer_user_features
from ownlens_ml.settings import Settings

SERVICE = "churn_v1"
T0 = pd.Timestamp("2026-01-01", tz="UTC")
TTL = pd.Timedelta(days=2)
COUNTRIES = np.array(["DE", "FR", "GB", "US", "ES", "IT", "NL", "PL"])
DEVICES = np.array(["desktop", "mobile", "tablet"])


def generate(users: int, days: int, seed: int = 7) -> pa.Table:
    """Snapshots of ``customer_user_features``: one row per user and day, ~3 % missing."""
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(1, users + 1, dtype=np.int64), days)
    day = np.tile(np.arange(days), users)
    keep = rng.random(len(user)) > 0.03
    user, day = user[keep], day[keep]
    n = len(user)
    stamps = (T0 + pd.to_timedelta(day, unit="D")).astype("datetime64[us, UTC]")
    columns = {"user_id": pa.array(user), "event_timestamp": pa.array(stamps)}
    for column in customer_user_features.columns:
        name = column.name
        if name in columns:
            continue
        kind = type(column.type).__name__
        if name == "country_code":
            columns[name] = pa.array(COUNTRIES[rng.integers(0, len(COUNTRIES), n)])
        elif name == "primary_device":
            columns[name] = pa.array(DEVICES[rng.integers(0, len(DEVICES), n)])
        elif kind == "BigInteger":
            values = rng.poisson(5 if "30d" in name else 1.5, n).astype(np.int64)
            columns[name] = pa.array(values, mask=rng.random(n) < 0.01)
        else:
            values = np.round(rng.gamma(2.0, 3.0, n), 3)
            values[rng.random(n) < 0.05] = np.nan
            columns[name] = pa.array(values, from_pandas=True)
    return pa.table(columns)


def load(settings: Settings, local: Settings, table: pa.Table) -> None:
    """The snapshots into the scratch PostgreSQL database (COPY) and the local parquet file."""
    import psycopg2

    from ownlens_ml.db import init_db

    init_db(settings)
    local.offline_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, local.offline_dir / "customer_user_features.parquet")
    empty = {"editorial_article_features", "editorial_author_features"}
    from ownlens_ml.db import schema

    for name in empty:  # empty, schema-typed files so the local sources exist
        t = getattr(schema, name)
        frame = pd.DataFrame({c.name: pd.Series(dtype="float64") for c in t.columns})
        frame["event_timestamp"] = pd.Series(dtype="datetime64[us, UTC]")
        frame.to_parquet(local.offline_dir / f"{name}.parquet")
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            for batch in table.to_batches(max_chunksize=500_000):
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, pacsv.WriteOptions(include_header=False))
                buf.seek(0)
                cur.copy_expert(
                    f"COPY customer_user_features ({', '.join(table.column_names)}) FROM STDIN WITH (FORMAT csv)", buf
                )
            conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE customer_user_features")
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def latency(samples: list[float]) -> dict:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "calls": len(ms),
    }


def interleave(methods: dict, users: int, calls: int, warmup: int, rng: random.Random) -> dict[str, list[float]]:
    """Seconds per call of each method; every round calls them all, in a shuffled order, on one random user."""
    names = list(methods)
    samples = {m: [] for m in methods}
    for i in range(warmup + calls):
        u = rng.randint(1, users)
        rng.shuffle(names)
        for m in names:
            started = time.perf_counter()
            methods[m](u)
            if i >= warmup:
                samples[m].append(time.perf_counter() - started)
    return samples


def project_keys(client, project: str) -> list[bytes]:
    return list(client.scan_iter(match=b"*" + project.encode(), count=10_000))


def flush(client, project: str) -> None:
    keys = project_keys(client, project)
    for lo in range(0, len(keys), 10_000):
        client.delete(*keys[lo : lo + 10_000])


def bench_materialize(prod: Settings, rounds: int, start, end) -> dict:
    """(a): Feast vs fast vs pipelined HSET of the same hashes, interleaved per round."""
    from ownlens_ml.features import store
    from ownlens_ml.features.redis_layout import redis_client

    client = redis_client(prod)
    times: dict[str, list[float]] = {"feast": [], "fast": [], "floor_hset": []}
    rows = 0
    hashes = None
    for r in range(rounds):
        order = ["feast", "fast", "floor_hset"] if r % 2 == 0 else ["fast", "feast", "floor_hset"]
        for method in order:
            flush(client, prod.project)
            if method == "floor_hset":
                if hashes is None:
                    continue
                started = time.perf_counter()
                pipe = client.pipeline(transaction=False)
                for i, (key, mapping) in enumerate(hashes):
                    pipe.hset(key, mapping=mapping)
                    if i % 2000 == 1999:
                        pipe.execute()
                pipe.execute()
                times[method].append(time.perf_counter() - started)
                continue
            started = time.perf_counter()
            with open(os.devnull, "w") as quiet, _redirect(quiet):
                store.materialize(prod, start, end, engine=method)
            times[method].append(time.perf_counter() - started)
            if method == "feast" and hashes is None:
                keys = project_keys(client, prod.project)
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.hgetall(key)
                hashes = list(zip(keys, pipe.execute()))
                rows = sum(sum(1 for f in m if f.startswith(b"_ts:")) for _, m in hashes)
            print(f"  (a) round {r + 1} {method}: {times[method][-1]:.2f}s", flush=True)
    best = {m: statistics.median(t) for m, t in times.items() if t}
    values = sum(len(m) - sum(1 for f in m if f.startswith(b"_ts:")) for _, m in hashes)
    return {
        "entity_view_rows": rows,
        "feature_values": values,
        "hashes": len(hashes),
        "seconds": {m: [round(x, 2) for x in t] for m, t in times.items()},
        "rows_per_s": {m: round(rows / s) for m, s in best.items()},
        "ratio_feast_over_fast": round(best["feast"] / best["fast"], 2),
        "ratio_fast_over_floor": round(best["fast"] / best["floor_hset"], 2),
    }


class _redirect:
    """Feast prints materialization progress to stdout; keep the report readable."""

    def __init__(self, target):
        self.target = target

    def __enter__(self):
        self.saved = sys.stdout
        sys.stdout = self.target

    def __exit__(self, *exc):
        sys.stdout = self.saved


def entity_frame(n: int, users: int, days: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lo = T0 - pd.Timedelta(hours=12)
    span = int(((T0 + pd.Timedelta(days=days - 1, hours=36)) - lo).total_seconds())
    return pd.DataFrame(
        {
            "user_id": rng.integers(1, int(users * 1.02) + 1, n),  # ~2 % unknown users
            "event_timestamp": (lo + pd.to_timedelta(rng.integers(0, span, n), unit="s")).astype("datetime64[ns, UTC]"),
            "label": rng.integers(0, 2, n),
        }
    )


RATIOS = {  # churn_v1's on-demand view (feature_repo/on_demand_features.py), restated in SQL for the floor
    "pageviews_per_session_30d": ("pageviews_30d", "sessions_30d"),
    "minutes_per_session_30d": ("engaged_minutes_30d", "sessions_30d"),
    "paywall_hits_per_pageview_30d": ("paywall_hits_30d", "pageviews_30d"),
    "sessions_7d_share_of_30d": ("sessions_7d", "sessions_30d"),
}


def duckdb_asof(local: Settings, entities: pd.DataFrame, features: list[str], ratios: bool = False) -> pd.DataFrame:
    """The floor: one DuckDB ASOF JOIN over the parquet file, TTL applied, input order kept, to pandas.

    With ``ratios``, the same query also computes the on-demand view's four ratios as SQL
    expressions (null when the numerator is null or the denominator null or 0, as the UDF):
    the same columns the training set has, so the comparison is like for like.
    """
    import duckdb

    path = local.offline_dir / "customer_user_features.parquet"
    cols = ", ".join(
        f"CASE WHEN f.event_timestamp >= e.event_timestamp - INTERVAL '{int(TTL.total_seconds())} seconds' "
        f"THEN f.{c} END AS {c}"
        for c in features
    )
    query = (
        f"SELECT e._row, e.user_id, e.event_timestamp, e.label, {cols} FROM e ASOF LEFT JOIN "
        f"read_parquet('{path}') f ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp"
    )
    if ratios:
        extra = ", ".join(
            f"CASE WHEN {n} IS NULL OR {d} IS NULL OR {d} = 0 THEN NULL ELSE CAST({n} AS DOUBLE) / {d} END AS {name}"
            for name, (n, d) in RATIOS.items()
        )
        query = f"SELECT * EXCLUDE (_row), {extra} FROM ({query}) ORDER BY _row"
    else:
        query = f"SELECT * EXCLUDE (_row) FROM ({query}) ORDER BY _row"
    with duckdb.connect() as con:
        con.register("e", entities.assign(_row=np.arange(len(entities))))
        return con.sql(query).df()


def _mismatches(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> int:
    """Cells that differ, nulls counting as equal to nulls."""
    bad = 0
    for c in columns:
        x, y = a[c].astype(float).to_numpy(), b[c].astype(float).to_numpy()
        bad += int((~((x == y) | (np.isnan(x) & np.isnan(y)))).sum())
    return bad


def bench_historical(prod: Settings, local: Settings, sizes: list[int], users: int, days: int) -> list[dict]:
    """(b): per size, floor / Feast DuckDB / fast PG / Feast PG, one run each, in that order."""
    from ownlens_ml.features import store

    service = store.feature_service(prod, SERVICE)
    stored = [
        f
        for p in service.feature_view_projections
        for f in ([x.name for x in p.features] if p.name != "user_engagement_ratios" else [])
    ]
    out = []
    for n in sizes:
        entities = entity_frame(n, users, days, seed=n)
        result = {"entity_rows": n}
        started = time.perf_counter()
        floor = duckdb_asof(local, entities, stored)
        result["duckdb_asof_s"] = round(time.perf_counter() - started, 2)
        print(f"  (b) {n}: duckdb ASOF {result['duckdb_asof_s']}s", flush=True)
        del floor
        started = time.perf_counter()
        floor = duckdb_asof(local, entities, stored, ratios=True)
        result["duckdb_asof_with_ratios_s"] = round(time.perf_counter() - started, 2)
        print(f"  (b) {n}: duckdb ASOF + ratios in SQL {result['duckdb_asof_with_ratios_s']}s", flush=True)
        started = time.perf_counter()
        feast_local = store.training_set(local, SERVICE, entities, engine="feast").frame
        result["feast_duckdb_s"] = round(time.perf_counter() - started, 2)
        print(f"  (b) {n}: Feast duckdb {result['feast_duckdb_s']}s", flush=True)
        result["feast_duckdb_vs_floor_mismatches"] = _mismatches(floor, feast_local, stored + list(RATIOS))
        result["null_rows_engagement"] = int(feast_local["sessions_7d"].isna().sum())
        started = time.perf_counter()
        fast_local = store.training_set(local, SERVICE, entities, engine="fast").frame
        result["fast_duckdb_s"] = round(time.perf_counter() - started, 2)
        print(f"  (b) {n}: fast duckdb {result['fast_duckdb_s']}s", flush=True)
        result["fast_duckdb_equals_feast_duckdb"] = bool(fast_local.equals(feast_local))
        del feast_local, fast_local
        started = time.perf_counter()
        fast = store.training_set(prod, SERVICE, entities, engine="fast").frame
        result["fast_postgres_s"] = round(time.perf_counter() - started, 2)
        print(f"  (b) {n}: fast postgres {result['fast_postgres_s']}s", flush=True)
        started = time.perf_counter()
        feast_pg = store.training_set(prod, SERVICE, entities, engine="feast").frame
        result["feast_postgres_s"] = round(time.perf_counter() - started, 2)
        print(f"  (b) {n}: Feast postgres {result['feast_postgres_s']}s", flush=True)
        try:
            pd.testing.assert_frame_equal(fast, feast_pg)
            result["fast_equals_feast_postgres"] = True
        except AssertionError as exc:
            result["fast_equals_feast_postgres"] = f"DIFFERENT: {str(exc)[:200]}"
        del fast, feast_pg, floor
        result["ratio_feast_duckdb_over_floor"] = round(result["feast_duckdb_s"] / result["duckdb_asof_s"], 2)
        result["ratio_fast_duckdb_over_floor"] = round(result["fast_duckdb_s"] / result["duckdb_asof_s"], 2)
        result["ratio_fast_duckdb_over_floor_with_ratios"] = round(
            result["fast_duckdb_s"] / result["duckdb_asof_with_ratios_s"], 2
        )
        result["ratio_feast_postgres_over_fast"] = round(result["feast_postgres_s"] / result["fast_postgres_s"], 2)
        result["ratio_fast_postgres_over_floor"] = round(result["fast_postgres_s"] / result["duckdb_asof_s"], 2)
        out.append(result)
    return out


def bench_online(prod: Settings, users: int, calls: int, warmup: int) -> dict:
    """(c): one entity of churn_v1: SDK vs fast reader vs raw HMGET / PING, interleaved per call."""
    from ownlens_ml.features import online, store
    from ownlens_ml.features.redis_layout import decode_value

    fs = store.feature_store(prod)
    service = fs.get_feature_service(SERVICE)
    plan = online.plan_for(prod, SERVICE)
    client = online.client_for(prod)
    group = plan.groups[0]
    rng = random.Random(11)

    def sdk(u):
        return fs.get_online_features(features=service, entity_rows=[{"user_id": u}]).to_dict()

    def fast(u):
        return online.read(prod, plan, {"user_id": [u]}).values

    def raw_hmget(u):
        return client.execute_command("HMGET", group.codec.key(u), *group.fields)

    def raw_hmget_decode(u):
        return [decode_value(v) for v in client.execute_command("HMGET", group.codec.key(u), *group.fields)]

    def ping(u):
        return client.ping()

    def api_feast(u):
        return store.online_features(prod, SERVICE, {"user_id": [u]}, engine="feast")

    def api_fast(u):
        return store.online_features(prod, SERVICE, {"user_id": [u]}, engine="fast")

    # Same values: the reader against the SDK, for 300 random users (some unknown).
    mismatches = 0
    for _ in range(300):
        u = rng.randint(1, int(users * 1.02))
        a, b = sdk(u), fast(u)
        mismatches += sum(1 for k in b if a.get(k) != b[k] and not (a.get(k) != a.get(k) and b[k] != b[k]))
    methods = {
        "sdk_get_online_features_to_dict": sdk,
        "fast_reader": fast,
        "floor_raw_hmget": raw_hmget,
        "floor_raw_hmget_decode": raw_hmget_decode,
        "redis_ping": ping,
        "store_online_features_feast": api_feast,
        "store_online_features_fast": api_fast,
    }
    samples = interleave(methods, users, calls, warmup, rng)
    stats = {m: latency(s) for m, s in samples.items()}
    sdk_stats, fast_stats = stats["sdk_get_online_features_to_dict"], stats["fast_reader"]
    return {
        "latency": stats,
        "value_mismatches_vs_sdk": mismatches,
        "fields_per_call": len(group.fields),
        "ratio_fast_over_sdk_p50": round(fast_stats["p50_ms"] / sdk_stats["p50_ms"], 2),
        "ratio_fast_over_sdk_p99": round(fast_stats["p99_ms"] / sdk_stats["p99_ms"], 2),
        "ratio_fast_over_floor_p50": round(fast_stats["p50_ms"] / stats["floor_raw_hmget"]["p50_ms"], 2),
        "ratio_api_fast_over_api_feast_p50": round(
            stats["store_online_features_fast"]["p50_ms"] / stats["store_online_features_feast"]["p50_ms"], 2
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--entities", default="100000,1000000", help="entity-row sizes for (b), comma-separated")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of (a)")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per method in (c)")
    parser.add_argument("--quick", action="store_true", help="5k users x 10 days, 20k entity rows, 300 calls")
    parser.add_argument("--only", default="a,b,c", help="parts to run, e.g. a,c")
    parser.add_argument(
        "--pg-url", default=os.environ.get("OWNLENS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.environ.get("OWNLENS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.days, args.entities, args.calls, args.rounds = 5000, 10, "20000", 300, 1
    sizes = [int(s) for s in args.entities.split(",") if s]
    parts = set(args.only.split(","))
    logging.basicConfig(level=logging.WARNING)

    import psycopg2

    scratch = f"ownlens_bench_{uuid.uuid4().hex[:8]}"
    project = f"bench{uuid.uuid4().hex[:8]}"
    home = Path(tempfile.mkdtemp(prefix="ownlens_bench_"))
    admin = psycopg2.connect(args.pg_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{scratch}"')
    db_url = urlsplit(args.pg_url)._replace(path=f"/{scratch}").geturl()
    prod = Settings(
        profile="production", home=home / "prod", database_url=db_url, redis_url=args.redis_url, project=project
    )
    local = Settings(profile="local", home=home / "local", project=project)
    report: dict = {"users": args.users, "days": args.days, "cpu_count": os.cpu_count()}
    try:
        from ownlens_ml.features import store

        started = time.perf_counter()
        table = generate(args.users, args.days)
        load(prod, local, table)
        report["snapshot_rows"] = table.num_rows
        del table
        print(
            f"data: {report['snapshot_rows']:,} snapshot rows ({args.users:,} users x {args.days} days) "
            f"loaded in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        store.apply_repo(prod)
        store.apply_repo(local)
        start, end = T0.to_pydatetime(), (T0 + pd.Timedelta(days=args.days)).to_pydatetime()
        if "a" in parts or "c" in parts:
            report["materialize"] = (
                bench_materialize(prod, args.rounds if "a" in parts else 0, start, end) if "a" in parts else None
            )
            if "a" not in parts:
                store.materialize(prod, start, end)
        if "b" in parts:
            report["historical"] = bench_historical(prod, local, sizes, args.users, args.days)
        if "c" in parts:
            if "a" in parts:
                store.materialize(prod, start, end)  # (a) ended with a flush
            report["online"] = bench_online(prod, args.users, args.calls, warmup=200 if not args.quick else 50)
    finally:
        try:
            import redis

            flush(redis.Redis.from_url(args.redis_url), project)
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            admin.close()
            shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
