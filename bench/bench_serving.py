"""Benchmark churn serving and batch scoring against Feast's own paths and the floors, in one run.

Set-up: synthetic ``customer_user_features`` snapshots (``bench_features.generate``) ending
today, loaded into a scratch PostgreSQL database, ``feature_repo/`` applied under a scratch
Feast project, the last day materialized into Redis, and the churn estimator (its own
hyperparameters, ``--trees`` rounds, no early stopping) fitted on synthetic labels,
registered and made champion. Then, single entity of churn_v1, calls interleaved:

(a) in process: ``Predictor.predict`` (features + model) vs the Feast SDK's
    ``get_online_features(features=service).to_dict()`` alone vs the floor (one raw HMGET of
    the same fields + ``Booster.inplace_predict`` on a ready numpy row);
(b) over HTTP (one keep-alive client): ``ownlens-ml serve`` vs ``feast serve`` (fetch alone,
    body ``feature_service``, ``--no-access-log --max-requests 0``) vs a bare FastAPI/uvicorn
    endpoint returning a constant;
(c) sustained load: 8 concurrent keep-alive clients (``--clients``) for ``--load-seconds``
    against ``ownlens-ml serve``, from a lean asyncio client in a child process;
(d) batch scoring of every reader (``pipelines.inference.score``) in rows/s.

    .venv/bin/python bench/bench_serving.py              # 100k readers, 60 s of load
    .venv/bin/python bench/bench_serving.py --quick      # 20k readers, 10 s of load
    .venv/bin/python bench/bench_serving.py --workers 2  # the service with two worker processes

Everything it creates (database, Redis keys, files, processes) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_features import flush, generate, interleave, latency, load  # noqa: E402

from ownlens_ml.settings import Settings  # noqa: E402

SERVICE = "churn_v1"
CONSTANT_APP = """
from fastapi import FastAPI
app = FastAPI()

@app.post("/constant")
def constant() -> dict:
    return {"score": 0.5}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def setup(prod: Settings, users: int, days: int, trees: int) -> pd.Timestamp:
    """Snapshots ending today, applied, last day materialized, churn trained and champion."""
    from ownlens_ml import registry
    from ownlens_ml.features import store
    from ownlens_ml.models.baselines import feature_matrix
    from ownlens_ml.models.customer.churn import churn_estimator

    table = generate(users, days)
    stamps = table.column("event_timestamp").to_pandas()
    shift = pd.Timestamp.now(tz="UTC").normalize() - stamps.max()
    table = table.set_column(
        table.schema.get_field_index("event_timestamp"),
        "event_timestamp",
        pa.array((stamps + shift).astype("datetime64[us, UTC]")),
    )
    load(prod, prod.with_profile("local"), table)
    store.apply_repo(prod)
    last = stamps.max() + shift
    store.materialize(prod, (last - timedelta(days=1)).to_pydatetime(), last.to_pydatetime())

    rng = np.random.default_rng(3)
    entities = pd.DataFrame(
        {"user_id": rng.choice(np.arange(1, users + 1), min(users, 20_000), replace=False), "event_timestamp": last}
    )
    training = store.training_set(prod, SERVICE, entities)
    x = feature_matrix(training.frame, training.features)
    signal_ = -0.15 * x["sessions_30d"].fillna(0) + 0.2 * x["days_since_last_visit"].fillna(5) - 0.5
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-signal_))).astype(int)
    model = churn_estimator(7).set_params(model__early_stopping_rounds=None, model__n_estimators=trees)
    model.fit(x, y)
    run = registry.start_run(prod, "churn", {"bench": True})
    version = registry.register(
        prod,
        run,
        model_name="churn",
        task="binary",
        estimator=model,
        feature_service=SERVICE,
        feature_service_hash=training.definition_hash,
        training_set_fingerprint=training.fingerprint,
        window_start=None,
        window_end=None,
        params={"bench": True, "trees": trees},
        metrics={},
    )
    registry.promote(prod, "churn", version.version)
    return last


def bench_in_process(prod: Settings, users: int, calls: int, warmup: int) -> dict:
    from ownlens_ml import registry
    from ownlens_ml.features import online, store
    from ownlens_ml.features import redis_layout as layout
    from ownlens_ml.serving.predictor import Predictor, freeze_heap

    predictor = Predictor(prod, "churn", watch_every=None)
    fs = store.feature_store(prod)
    service = fs.get_feature_service(SERVICE)
    group = online.build_plan(prod, service).groups[0]
    client = layout.redis_client(prod, timeout=0.5)
    _, model = registry.load_model(prod, "churn", "champion")
    final = model[-1]
    best = getattr(final, "best_iteration", None)  # only set by early stopping
    booster, iterations = final.get_booster().copy(), (0, best + 1 if best is not None else 0)
    booster.set_param({"nthread": 1})  # as the predictor does for a few rows
    row = np.random.default_rng(1).random((1, len(model.feature_names_in_)))
    freeze_heap()  # as a service does once its models are loaded (the HTTP service does it itself)

    def whole(u):
        return predictor.predict([u])

    def sdk(u):
        return fs.get_online_features(features=service, entity_rows=[{"user_id": u}]).to_dict()

    def floor(u):
        client.execute_command("HMGET", group.codec.key(u), *group.fields)
        return booster.inplace_predict(row, iteration_range=iterations, missing=np.nan, validate_features=False)

    samples = interleave(
        {"predictor_whole_prediction": whole, "feast_sdk_fetch_alone": sdk, "floor_hmget_plus_inplace_predict": floor},
        users,
        calls,
        warmup,
        random.Random(11),
    )
    stats = {m: latency(s) for m, s in samples.items()}
    whole_s, sdk_s, floor_s = (stats[m] for m in samples)
    return {
        "latency": stats,
        "booster_shortcut": predictor._loaded.scorer.booster is not None,
        "ratio_p99_predictor_over_sdk": round(whole_s["p99_ms"] / sdk_s["p99_ms"], 2),
        "ratio_p50_predictor_over_floor": round(whole_s["p50_ms"] / floor_s["p50_ms"], 2),
    }


def start_servers(prod: Settings, scratch: Path, workers: int = 1) -> dict:
    env = (
        os.environ
        | prod.feast_env()
        | {
            "OWNLENS_PROFILE": "production",
            "OWNLENS_HOME": str(prod.home),
            "OWNLENS_DATABASE_URL": prod.database_url,
            "OWNLENS_REDIS_URL": prod.redis_url,
            "OWNLENS_FEAST_PROJECT": prod.project,
            "PYTHONPATH": str(ROOT),
        }
    )
    bin_dir = Path(sys.executable).parent
    (scratch / "constant_app.py").write_text(CONSTANT_APP)
    ports = {name: free_port() for name in ("ownlens", "feast", "constant")}
    commands = {
        "ownlens": [str(bin_dir / "ownlens-ml"), "serve", "--port", str(ports["ownlens"]), "--workers", str(workers)],
        "feast": [
            str(bin_dir / "feast"),
            "-f",
            str(prod.feature_store_yaml),
            "serve",
            "-p",
            str(ports["feast"]),
            "--no-access-log",
            "--max-requests",
            "0",
        ],
        "constant": [
            sys.executable,
            "-m",
            "uvicorn",
            "constant_app:app",
            "--port",
            str(ports["constant"]),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    }
    processes = {
        name: subprocess.Popen(
            cmd,
            env=env,
            cwd=scratch if name == "constant" else prod.feature_repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for name, cmd in commands.items()
    }
    wait_http(f"http://127.0.0.1:{ports['ownlens']}/readyz")
    wait_http(f"http://127.0.0.1:{ports['feast']}/health")
    wait_http(f"http://127.0.0.1:{ports['constant']}/docs")
    return {"ports": ports, "processes": processes}


def bench_http(servers: dict, users: int, calls: int, warmup: int) -> dict:
    import httpx

    ports = servers["ports"]
    clients = {name: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for name, port in ports.items()}
    errors = {name: 0 for name in ports}

    def call(name, path, body):
        response = clients[name].post(path, json=body)
        errors[name] += response.status_code != 200

    samples = interleave(
        {
            "ownlens_serve_prediction": lambda u: call("ownlens", "/v1/predict/churn", {"ids": [u]}),
            "feast_serve_fetch_alone": lambda u: call(
                "feast", "/get-online-features", {"feature_service": SERVICE, "entities": {"user_id": [u]}}
            ),
            "bare_fastapi_constant": lambda u: call("constant", "/constant", {}),
        },
        users,
        calls,
        warmup,
        random.Random(12),
    )
    stats = {m: latency(s) for m, s in samples.items()}
    metrics = clients["ownlens"].get("/metrics").text
    served = {
        k: float(line.split()[-1])
        for line in metrics.splitlines()
        for k in ("_sum", "_count")
        if line.startswith(f'ownlens_http_request_seconds{k}{{endpoint="predict"}}')
    }
    return {
        "latency": stats,
        "errors": errors,
        "ownlens_server_side_mean_ms": round(served["_sum"] / served["_count"] * 1000, 3),
        "ratio_p99_ownlens_over_feast_serve": round(
            stats["ownlens_serve_prediction"]["p99_ms"] / stats["feast_serve_fetch_alone"]["p99_ms"], 2
        ),
        "ratio_p50_ownlens_over_constant": round(
            stats["ownlens_serve_prediction"]["p50_ms"] / stats["bare_fastapi_constant"]["p50_ms"], 2
        ),
    }


def bench_load(port: int, users: int, seconds: float, concurrency: int = 8) -> dict:
    """(c) in a child process of its own (``--phase load``), so the client's work and garbage
    collections are not this process's (whose heap holds the set-up)."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            "load",
            "--port",
            str(port),
            "--users",
            str(users),
            "--load-seconds",
            str(seconds),
            "--clients",
            str(concurrency),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def load_client(port: int, users: int, seconds: float, concurrency: int) -> dict:
    """``concurrency`` keep-alive connections, each posting the next request when its answer is in.

    A plain asyncio HTTP/1.1 client on uvloop (a few microseconds a request, where httpx takes
    most of a millisecond) so that the load generator leaves the cores to the server it loads;
    every answer's status and length are checked.
    """
    import gc

    import uvloop

    async def connection(rng, out, errors, until):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def call(user):
            body = b'{"ids": [%d]}' % user
            writer.write(
                b"POST /v1/predict/churn HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            answer = await reader.readexactly(length)
            return head.startswith(b"HTTP/1.1 200") and answer.startswith(b'{"model":"churn"')

        for _ in range(20):
            await call(rng.randint(1, users))
        await barrier.wait()
        while time.perf_counter() < until[0]:
            started = time.perf_counter()
            try:
                errors[0] += not await call(rng.randint(1, users))
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors[0] += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            out.append(time.perf_counter() - started)
        writer.close()

    async def run():
        nonlocal barrier
        barrier = asyncio.Barrier(concurrency + 1)
        out, errors, until = [], [0], [float("inf")]
        tasks = [asyncio.create_task(connection(random.Random(i), out, errors, until)) for i in range(concurrency)]
        await barrier.wait()
        gc.freeze()
        started = time.perf_counter()
        until[0] = started + seconds
        await asyncio.gather(*tasks)
        return out, errors[0], time.perf_counter() - started

    barrier = None
    out, errors, elapsed = uvloop.run(run())
    stats = latency(out)
    return {
        "clients": concurrency,
        "seconds": round(elapsed, 1),
        "requests": len(out),
        "requests_per_second": round(len(out) / elapsed),
        "errors": errors,
        "over_100ms": sum(1 for s in out if s > 0.1),
        "max_ms": round(max(out) * 1000, 2),
        **stats,
    }


def bench_batch(prod: Settings, users: int, as_of: pd.Timestamp) -> dict:
    from ownlens_ml.pipelines.inference import score

    result = score(prod, "churn", as_of.to_pydatetime(), entities=pd.DataFrame({"user_id": np.arange(1, users + 1)}))
    return {
        "rows": result.rows,
        "seconds": round(result.seconds, 2),
        "rows_per_second": round(result.rows / result.seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--users", type=int)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--trees", type=int, default=600)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--load-seconds", type=float)
    parser.add_argument("--workers", type=int, default=1, help="worker processes of ownlens-ml serve")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the sustained load")
    parser.add_argument("--phase", choices=["load"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--pg", default=os.environ.get("OWNLENS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis", default=os.environ.get("OWNLENS_BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    users = args.users or (20_000 if args.quick else 100_000)
    load_seconds = args.load_seconds or (10 if args.quick else 60)
    calls = 1000 if args.quick else args.calls
    if args.phase == "load":
        print(json.dumps(load_client(args.port, users, load_seconds, args.clients)))
        return 0

    import logging
    import warnings

    import psycopg2
    import redis

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    name = f"ownlens_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.pg)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    from urllib.parse import urlsplit

    prod = Settings(
        profile="production",
        home=scratch / "home",
        project=f"bench{uuid.uuid4().hex[:8]}",
        database_url=urlsplit(args.pg)._replace(path=f"/{name}").geturl(),
        redis_url=args.redis,
    )
    servers = None
    results = {
        "users": users,
        "trees": args.trees,
        "calls": calls,
        "workers": args.workers,
        "load_average_at_start": os.getloadavg()[0],
    }
    try:
        started = time.perf_counter()
        last = setup(prod, users, args.days, args.trees)
        results["setup_seconds"] = round(time.perf_counter() - started, 1)
        import gc

        gc.collect()
        gc.freeze()  # the set-up's heap out of the collections of this process's clients in (b)
        results["a_in_process"] = bench_in_process(prod, users, calls, warmup=200)
        print(json.dumps({"a_in_process": results["a_in_process"]}, indent=2), flush=True)
        servers = start_servers(prod, scratch, args.workers)
        results["b_http"] = bench_http(servers, users, calls, warmup=200)
        print(json.dumps({"b_http": results["b_http"]}, indent=2), flush=True)
        results["c_load"] = bench_load(servers["ports"]["ownlens"], users, load_seconds, args.clients)
        print(json.dumps({"c_load": results["c_load"]}, indent=2), flush=True)
        results["d_batch"] = bench_batch(prod, users, last)
        results["load_average_at_end"] = os.getloadavg()[0]
    finally:
        for process in (servers or {}).get("processes", {}).values():
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        flush(redis.Redis.from_url(args.redis), prod.project)
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
