"""Bench (not a test): each model's training time and peak memory at scale, retrieval apart from fitting.

Usage: .venv/bin/python bench/bench_training.py [--users 100000] [--days 90] [--profile local|production]
       [--models churn,conversion,...]   (default: every model)

Generates the platform into a scratch home (and, for production, a scratch PostgreSQL
database and Feast project), builds the snapshots, applies the repository, then trains each
model once through the real engine, each in a fresh child process so that its peak RSS is
its own, and prints the wall time of each step (labels, point-in-time training set, fit,
validators, baselines, register), the peak RSS and the headline metric beside the oracle;
for segmentation also the write-back of every reader's segment (``AFTER_TRAINING``).
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
from ownlens_ml.models import SPECS
from ownlens_ml.pipelines.segments import write_segments
from ownlens_ml.pipelines.training import train
from ownlens_ml.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
AFTER_TRAINING = {
    "segmentation": (
        "write-back (assign, write, materialize)",
        lambda settings, result: write_segments(settings, result.version.version),
    ),
}
"""Steps timed after a model's training, in the same process: what its output feeds."""


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(settings: Settings, args, queue) -> None:
    seconds = {}
    for step, run in (
        ("generate", lambda: generate(settings, GeneratorConfig(users=args.users, days=args.days))),
        ("build snapshots", lambda: build_snapshots(settings)),
        ("feast apply", lambda: store.apply_repo(settings)),
    ):
        started = time.perf_counter()
        if step == "generate":
            init_db(settings)
        run()
        seconds[step] = time.perf_counter() - started
    queue.put(seconds)


def _train(settings: Settings, name: str, args, queue) -> None:
    before = _peak_mb()
    started = time.perf_counter()
    result = train(settings, name)
    total = time.perf_counter() - started
    spec, metrics = SPECS[name], result.evaluation.metrics
    split = result.version.params.get("split")
    rows = (
        f"{split['train']['rows']:,} training rows, {split['test']['rows']:,} test rows"
        if split
        else f"{metrics['model'].get('rows', 0):,} rows"
    )
    lines = [f"{name} at {args.users:,} users x {args.days} days, {args.profile} profile ({rows})"]
    lines += [f"  train {step:<28} {seconds:8.1f} s" for step, seconds in result.seconds.items()]
    lines.append(f"  train total                        {total:8.1f} s")
    lines.append(f"  peak RSS of the training process {_peak_mb():,.0f} MB (before training {before:,.0f} MB)")
    if name in AFTER_TRAINING:
        label, step = AFTER_TRAINING[name]
        started = time.perf_counter()
        step(settings, result)
        lines.append(f"  {label:<34} {time.perf_counter() - started:8.1f} s, peak RSS then {_peak_mb():,.0f} MB")
    headline = spec.metrics[0]
    lines.append(
        f"  holdout {headline} "
        + str({who: round(m[headline], 4) for who, m in metrics.items() if m.get(headline) is not None})
    )
    queue.put("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--profile", choices=["local", "production"], default="local")
    ap.add_argument("--models", default=",".join(SPECS), help="comma-separated model names (default: all)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_training_"))
    db = f"bench_train_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        profile=args.profile,
        home=home,
        project=f"b{uuid.uuid4().hex[:8]}",
        database_url=PG.rsplit("/", 1)[0] + "/" + db,
    )
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
        for step, seconds in setup.items():
            print(f"setup {step:<28} {seconds:8.1f} s")
        for name in args.models.split(","):
            child = multiprocessing.get_context("fork").Process(target=_train, args=(settings, name, args, queue))
            child.start()
            child.join()
            print(queue.get() if child.exitcode == 0 else f"{name}: training failed (exit {child.exitcode})")
    finally:
        if args.profile == "production":
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
