"""Bench (not a test): generator throughput and peak memory, PostgreSQL load vs the psql \\copy floor.

Usage: .venv/bin/python bench/bench_generator.py [--users 100000] [--days 90] [--repeat 1]
Needs PostgreSQL at OWNLENS_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres)
and `psql` on PATH; works in scratch databases it creates and drops. The in-memory run and
the PostgreSQL load each run in a child process, so each peak RSS is that phase's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2

from ownlens_ml.data.generator import GeneratorConfig, generate, iter_platform
from ownlens_ml.db import init_db
from ownlens_ml.settings import Settings

PG = os.environ.get("OWNLENS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _db(name: str, drop: bool = False) -> str:
    admin = psycopg2.connect(PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return PG.rsplit("/", 1)[0] + "/" + name


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase_memory(config: GeneratorConfig, repeat: int) -> dict:
    times, rows = [], 0
    for _ in range(repeat):
        t0, rows = time.perf_counter(), 0
        for name, item in iter_platform(config):
            if not name.startswith("truth:"):
                rows += len(item)
        times.append(time.perf_counter() - t0)
    return {"seconds": times, "rows": rows, "peak_mb": _peak_mb()}


def _phase_load(config: GeneratorConfig, repeat: int, url: str) -> dict:
    settings = Settings(profile="production", home=Path(tempfile.mkdtemp()), database_url=url)
    init_db(settings)
    times, summary = [], None
    for _ in range(repeat):
        summary = generate(settings, config)
        times.append(summary.seconds)
    return {"seconds": times, "rows": summary.rows, "peak_mb": _peak_mb()}


def _child(args: argparse.Namespace, phase: str, url: str = "") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--users",
        str(args.users),
        "--days",
        str(args.days),
        "--repeat",
        str(args.repeat),
        "--phase",
        phase,
        "--url",
        url,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--phase", choices=("memory", "load"), help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    config = GeneratorConfig(users=args.users, days=args.days, seed=7)
    if args.phase == "memory":
        print(json.dumps(_phase_memory(config, args.repeat)))
        return
    if args.phase == "load":
        print(json.dumps(_phase_load(config, args.repeat, args.url)))
        return

    results = []
    mem = _child(args, "memory")
    results.append(
        (
            "generate rows in memory (iter_platform)",
            mem["rows"],
            statistics.median(mem["seconds"]),
            f"peak RSS {mem['peak_mb']:,.0f} MB; runs {', '.join(f'{s:.1f}' for s in mem['seconds'])} s",
        )
    )

    name = f"bench_gen_{uuid.uuid4().hex[:8]}"
    url = _db(name)
    load = _child(args, "load", url)
    total = sum(load["rows"].values())
    results.append(
        (
            "generate() into PostgreSQL (COPY, truth parquet)",
            total,
            statistics.median(load["seconds"]),
            f"peak RSS {load['peak_mb']:,.0f} MB; runs {', '.join(f'{s:.1f}' for s in load['seconds'])} s",
        )
    )

    # floor: psql \copy of the same events + sessions rows into unconstrained copies
    floor_rows, floor_time = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for table in ("sessions", "events"):
            csv = Path(tmp) / f"{table}.csv"
            subprocess.run(["psql", url, "-qc", f"\\copy {table} to '{csv}' csv"], check=True)
            subprocess.run(["psql", url, "-qc", f"CREATE TABLE {table}_floor (LIKE {table})"], check=True)
            t0 = time.perf_counter()
            subprocess.run(["psql", url, "-qc", f"\\copy {table}_floor from '{csv}' csv"], check=True)
            floor_time += time.perf_counter() - t0
            floor_rows += sum(1 for _ in open(csv))
    ours = load["rows"]["sessions"] + load["rows"]["events"]
    results.append(("psql \\copy sessions+events (floor, no FK/index)", floor_rows, floor_time, ""))
    _db(name, drop=True)

    print(f"\n{args.users:,} users x {args.days} days, seed 7, median of {args.repeat}")
    print(f"{'command':<52} {'rows':>12} {'seconds':>9} {'rows/s':>12}  note")
    for cmd, n, sec, note in results:
        print(f"{cmd:<52} {n:>12,} {sec:>9.1f} {n / sec:>12,.0f}  {note}")
    print(f"(generate() moved {ours:,} session+event rows among {total:,} rows in total)")


if __name__ == "__main__":
    main()
