"""Bench (not a test): segmentation training time and peak memory at scale, and the write-back.

Usage: .venv/bin/python bench/bench_segmentation.py [--users 100000] [--days 90] [--profile local|production]

Same set-up as bench_training.py (generate, snapshots, feast apply in a child process, so
this process's peak RSS is training's own), then trains segmentation once through the real
engine (readers, point-in-time features, fit over k = 3..8, evaluation, register) and
writes every reader's segment back as the user_segment view (assign, write, materialize).
Prints the wall time of each step and the peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
from bench_training import PG, _peak_mb, _setup

from ownlens_ml.pipelines.segments import write_segments
from ownlens_ml.pipelines.training import train
from ownlens_ml.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--profile", choices=["local", "production"], default="local")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_segmentation_"))
    db = f"bench_seg_{uuid.uuid4().hex[:8]}"
    settings = Settings(profile=args.profile, home=home, project=f"b{uuid.uuid4().hex[:8]}",
                        database_url=PG.rsplit("/", 1)[0] + "/" + db)
    if args.profile == "production":
        admin = psycopg2.connect(PG)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{db}"')
    try:
        queue = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(target=_setup, args=(settings, args, queue))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit("set-up failed")
        setup = queue.get()
        before = _peak_mb()
        started = time.perf_counter()
        result = train(settings, "segmentation")
        total = time.perf_counter() - started
        trained_peak = _peak_mb()
        started = time.perf_counter()
        written = write_segments(settings, result.version.version)
        write_seconds = time.perf_counter() - started
        model = result.evaluation.metrics["model"]
        print(f"segmentation at {args.users:,} users x {args.days} days, {args.profile} profile "
              f"({model['rows']:,} readers clustered, {model['segments']} segments)")
        for step, seconds in setup.items():
            print(f"  setup {step:<28} {seconds:8.1f} s")
        for step, seconds in result.seconds.items():
            print(f"  train {step:<28} {seconds:8.1f} s")
        print(f"  train total                        {total:8.1f} s")
        print(f"  peak RSS of the training process {trained_peak:,.0f} MB (before training {before:,.0f} MB)")
        print(f"  write-back of {written.readers:,} readers (assign, write, materialize) {write_seconds:8.1f} s; "
              f"peak RSS after it {_peak_mb():,.0f} MB")
        print("  holdout " + ", ".join(f"{who}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()
                                                               if k not in ("rows", "segments"))
                                       for who, m in result.evaluation.metrics.items()))
    finally:
        if args.profile == "production":
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
