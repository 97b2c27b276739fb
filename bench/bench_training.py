"""Bench (not a test): churn training time and peak memory at scale, retrieval apart from fitting.

Usage: .venv/bin/python bench/bench_training.py [--users 100000] [--days 90] [--profile local|production]

Generates the platform into a scratch home (and, for production, a scratch PostgreSQL
database and Feast project), builds the snapshots, applies the repository, then trains
churn once through the real engine and prints the wall time of each step (labels,
point-in-time training set, fit, validators, baselines, register) and the peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2

from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.db import init_db
from ownlens_ml.features import store
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.pipelines.training import train
from ownlens_ml.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(settings: Settings, args, queue) -> None:
    seconds = {}
    for step, run in (("generate", lambda: generate(settings, GeneratorConfig(users=args.users, days=args.days))),
                      ("build snapshots", lambda: build_snapshots(settings)),
                      ("feast apply", lambda: store.apply_repo(settings))):
        started = time.perf_counter()
        if step == "generate":
            init_db(settings)
        run()
        seconds[step] = time.perf_counter() - started
    queue.put(seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--profile", choices=["local", "production"], default="local")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_training_"))
    db = f"bench_train_{uuid.uuid4().hex[:8]}"
    settings = Settings(profile=args.profile, home=home, project=f"b{uuid.uuid4().hex[:8]}",
                        database_url=PG.rsplit("/", 1)[0] + "/" + db)
    if args.profile == "production":
        admin = psycopg2.connect(PG)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{db}"')
    try:
        # set-up runs in a child process so that this process's peak RSS is training's own
        queue = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(target=_setup, args=(settings, args, queue))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit("set-up failed")
        setup = queue.get()
        before = _peak_mb()
        started = time.perf_counter()
        result = train(settings, "churn")
        total = time.perf_counter() - started
        rows = result.evaluation.metrics["model"]["rows"]
        print(f"churn at {args.users:,} users x {args.days} days, {args.profile} profile "
              f"({result.version.params['split']['train']['rows']:,} training rows, {rows:,} test rows)")
        for step, seconds in setup.items():
            print(f"  setup {step:<28} {seconds:8.1f} s")
        for step, seconds in result.seconds.items():
            print(f"  train {step:<28} {seconds:8.1f} s")
        print(f"  train total                        {total:8.1f} s")
        print(f"  peak RSS of the training process {_peak_mb():,.0f} MB (before training {before:,.0f} MB)")
        auc = {who: round(m["roc_auc"], 4) for who, m in result.evaluation.metrics.items()}
        print(f"  holdout ROC-AUC {auc}")
    finally:
        if args.profile == "production":
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
