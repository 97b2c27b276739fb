"""Trending quality on demo-sized platforms: recall by lift, precision, false alarms, time to detection.

    PYTHONPATH=. python bench/bench_trending.py --seeds 7 11
    PYTHONPATH=. python bench/bench_trending.py --seeds 7 11 --sweep   # the tuning grid

Attempted reads (page views and paywall hits per hour, brand and category) and the articles
come from the generator in memory, as ``ownlens_ml.models.reads.hourly_reads`` and
``articles`` return them from SQL; the bursts are the generator's truth. Scored with
``trending.score_bursts`` exactly as ``train trending`` scores them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import pandas as pd

from ownlens_ml.data.generator import GeneratorConfig, hourly_reads
from ownlens_ml.models.editorial.trending import (
    TrendingRule,
    detect,
    recall_by_lift,
    score_bursts,
    series_from_hourly,
)

SHOWN = ("recall_2x", "precision", "false_alarms_per_series_day", "median_hours_to_detect", "episodes", "bursts_2x")


def score(data, rule: TrendingRule) -> tuple[dict, pd.DataFrame]:
    hourly, arts, bursts = data
    return score_bursts(detect(series_from_hourly(hourly, None, arts, rule), rule), bursts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11])
    parser.add_argument("--sweep", action="store_true", help="score a grid of rule settings on every seed")
    parser.add_argument("--rule", default="", help="TrendingRule overrides, e.g. 'start_score=16,min_z=3.5'")
    args = parser.parse_args()
    data = {seed: hourly_reads(GeneratorConfig(users=args.users, days=args.days, seed=seed)) for seed in args.seeds}
    overrides = {
        k: type(getattr(TrendingRule(), k))(v) for k, v in (kv.split("=") for kv in args.rule.split(",") if kv)
    }
    if not args.sweep:
        rule = dataclasses.replace(TrendingRule(), **overrides)
        print(rule)
        for seed, d in data.items():
            metrics, per_burst = score(d, rule)
            print(
                f"seed {seed}:",
                {k: round(metrics[k], 4) if isinstance(metrics[k], float) else metrics[k] for k in SHOWN},
            )
            print(recall_by_lift(per_burst).round(2).to_string())
        return
    grid = {
        "start_score": (8.0, 10.0, 12.0, 16.0),
        "min_z": (3.0, 3.5, 4.0),
        "prior_reads": (200.0, 800.0),
        "supply_tau_hours": (24.0, 36.0, 48.0),
    }
    rows = []
    for values in itertools.product(*grid.values()):
        rule = dataclasses.replace(TrendingRule(), **overrides, **dict(zip(grid, values)))
        row = dict(zip(grid, values))
        for seed, d in data.items():
            metrics, _ = score(d, rule)
            row |= {f"{k}_{seed}": metrics[k] for k in ("recall_2x", "precision", "median_hours_to_detect")}
        rows.append(row)
        print(row, flush=True)
    frame = pd.DataFrame(rows)
    seeds = args.seeds
    frame["min_recall"] = frame[[f"recall_2x_{s}" for s in seeds]].min(axis=1)
    frame["min_precision"] = frame[[f"precision_{s}" for s in seeds]].min(axis=1)
    print(frame.sort_values(["min_precision", "min_recall"], ascending=False).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
