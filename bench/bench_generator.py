"""Bench (not a test): generator throughput and peak memory, PostgreSQL load vs the psql \\copy floor.

Usage: .venv/bin/python bench/bench_generator.py [--users 100000] [--days 90] [--repeat 1]
Needs PostgreSQL at OWNLENS_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres)
and `psql` on PATH; works in scratch databases it creates and drops.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    config = GeneratorConfig(users=args.users, days=args.days, seed=7)
    results = []

    gen_times, rows = [], 0
    for _ in range(args.repeat):
        t0, rows = time.perf_counter(), 0
        for name, item in iter_platform(config):
            if not name.startswith("truth:"):
                rows += len(item)
        gen_times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    g = statistics.median(gen_times)
    results.append(("generate rows in memory (iter_platform)", rows, g, f"peak RSS {peak_mb:,.0f} MB"))

    name = f"bench_gen_{uuid.uuid4().hex[:8]}"
    url = _db(name)
    home = Path(tempfile.mkdtemp())
    settings = Settings(profile="production", home=home, database_url=url)
    init_db(settings)
    load_times, summary = [], None
    for _ in range(args.repeat):
        summary = generate(settings, config)
        load_times.append(summary.seconds)
    total = sum(summary.rows.values())
    l = statistics.median(load_times)
    results.append(("generate() into PostgreSQL (COPY, truth parquet)", total, l, ""))

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
    ours = summary.rows["sessions"] + summary.rows["events"]
    results.append(("psql \\copy sessions+events (floor, no FK/index)", floor_rows, floor_time, ""))
    _db(name, drop=True)

    print(f"\n{args.users:,} users x {args.days} days, seed 7, median of {args.repeat}")
    print(f"{'command':<52} {'rows':>12} {'seconds':>9} {'rows/s':>12}  note")
    for cmd, n, sec, note in results:
        print(f"{cmd:<52} {n:>12,} {sec:>9.1f} {n / sec:>12,.0f}  {note}")
    print(f"(generate() moved {ours:,} session+event rows among {total:,} rows in total)")


if __name__ == "__main__":
    main()
