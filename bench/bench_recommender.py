"""Recommender speed: prep + fit against implicit's own fit, and one reader's top-10 against implicit's recommend.

    PYTHONPATH=. python bench/bench_recommender.py --users 100000 --days 60

Reads come from the generator in memory (page views aggregated per reader and article, as
``ownlens_ml.models.reads.engaged_reads`` returns them from SQL). Both fits use the same
hyperparameters and threads on the same matrix; both recommends the same factors.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ownlens_ml.data.generator import GeneratorConfig, iter_platform
from ownlens_ml.models.customer.recommendation import (
    Recommender,
    RecommenderParams,
)


def generated_reads(users: int, days: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    config = GeneratorConfig(users=users, days=days, seed=seed)
    parts, catalogue = [], None
    for name, item in iter_platform(config):
        if name == "articles":
            catalogue = pd.DataFrame(
                {
                    "article_id": item["article_id"],
                    "brand_id": item["brand_id"],
                    "published_at": item["published_at"].astype("int64") // 10**9,
                }
            )
        elif name == "events" and len(item):
            pv = item[item["event_type"] == "page_view"]
            frame = pd.DataFrame(
                {
                    "user_id": pv["user_id"].to_numpy(),
                    "article_id": pv["article_id"].to_numpy(np.int64),
                    "seconds": pv["engaged_seconds"].to_numpy(np.int64),
                    "t": pv["event_at"].astype("int64").to_numpy() // 10**9,
                }
            )
            parts.append(
                frame.groupby(["user_id", "article_id"])
                .agg(reads=("t", "size"), seconds=("seconds", "sum"), last_at=("t", "max"))
                .reset_index()
            )
    return pd.concat(parts, ignore_index=True), catalogue, config.start_ts + pd.Timedelta(days=days)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    from implicit.cpu.als import AlternatingLeastSquares

    t0 = time.perf_counter()
    reads, catalogue, end = generated_reads(args.users, args.days, args.seed)
    print(
        f"generated {len(reads):,} (reader, article) pairs of {reads['user_id'].nunique():,} readers "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    params = RecommenderParams(threads=args.threads)
    with threadpool_limits(1, "blas"):
        fits = []
        for _ in range(3):
            t = time.perf_counter()
            rec = Recommender(params).fit(reads, catalogue, end)
            ours = time.perf_counter() - t
            matrix = rec.user_items_.copy()
            als = AlternatingLeastSquares(
                factors=params.factors,
                regularization=params.regularization,
                alpha=1.0,
                iterations=params.iterations,
                random_state=params.seed,
                num_threads=args.threads,
            )
            t = time.perf_counter()
            als.fit(matrix, show_progress=False)
            fits.append((ours, time.perf_counter() - t))
        ours, theirs = np.median(np.array(fits), axis=0)
        print(
            f"fit: ours (prep + fit) {ours:.2f}s, implicit fit alone {theirs:.2f}s, ratio {ours / theirs:.2f} "
            f"({matrix.shape[0]:,} x {matrix.shape[1]:,}, {matrix.nnz:,} reads, median of 3)"
        )

        rng = np.random.default_rng(args.seed)
        users = rng.choice(rec.user_ids_, args.calls)
        rows = np.searchsorted(rec.user_ids_, users)
        for u in users[:50]:  # warm both paths
            rec.recommend(int(u), 10)
        lat_ours, lat_theirs = [], []
        for u, r in zip(users, rows):
            t = time.perf_counter()
            rec.recommend(int(u), 10)
            lat_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            als.recommend(int(r), matrix[int(r)], N=10, filter_already_liked_items=True)
            lat_theirs.append(time.perf_counter() - t)
        (p50, p99), (q50, q99) = percentiles(lat_ours), percentiles(lat_theirs)
        print(
            f"top-10 for one reader: ours p50 {p50:.3f} ms p99 {p99:.3f} ms (id maps, brand and age filters, "
            f"already-read filter, popularity blend); implicit recommend p50 {q50:.3f} ms p99 {q99:.3f} ms; "
            f"ratio p50 {p50 / q50:.2f} p99 {p99 / q99:.2f}"
        )


if __name__ == "__main__":
    main()
