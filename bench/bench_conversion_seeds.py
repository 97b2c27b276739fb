"""Conversion's holdout ROC-AUC beside logistic regression and the oracle on demo-sized platforms, per seed.

    PYTHONPATH=. python bench/bench_conversion_seeds.py --seeds 7 8 9 10 11 12
    PYTHONPATH=. python bench/bench_conversion_seeds.py --seeds 7 8 9 --service conversion_v1   # the older inputs

Each seed: generate 6,000 readers x 120 days (local profile, a temporary home), build the
snapshots, ``train(settings, "conversion")`` as ``tests/test_models.py`` does, then a paired
bootstrap over the test rows (positives and negatives resampled apart, 300 rounds) for the
standard error of oracle - model and model - logistic regression. About 30 s a seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.db import init_db
from ownlens_ml.features import store
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.models import SPECS
from ownlens_ml.pipelines.training import train
from ownlens_ml.settings import Settings


def paired_se(y: np.ndarray, a: np.ndarray, b: np.ndarray, rounds: int = 300) -> float:
    """Bootstrap standard error of AUC(a) - AUC(b) on the same rows."""
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    gaps = []
    for _ in range(rounds):
        i = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        gaps.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    return float(np.std(gaps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--service", help="train on this feature service instead of the spec's")
    args = parser.parse_args()
    if args.service:
        SPECS["conversion"] = dataclasses.replace(SPECS["conversion"], feature_service=args.service)
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(profile="local", home=Path(tmp) / "home", project=f"conv{seed}")
            init_db(settings)
            generate(settings, GeneratorConfig(users=args.users, days=args.days, seed=seed))
            build_snapshots(settings)
            store.apply_repo(settings)
            ev = train(settings, "conversion", promote=False).evaluation
        y = np.asarray(ev.y)
        s = {k: np.asarray(v, float) for k, v in ev.scores.items()}
        auc = {k: round(roc_auc_score(y, v), 4) for k, v in s.items()}
        print(
            json.dumps(
                {
                    "seed": seed,
                    "service": SPECS["conversion"].feature_service,
                    "test_rows": int(y.size),
                    "positives": int(y.sum()),
                    "auc": auc,
                    "oracle_minus_model": round(auc["oracle"] - auc["model"], 4),
                    "se": round(paired_se(y, s["oracle"], s["model"]), 4),
                    "model_minus_logistic": round(auc["model"] - auc["logistic_regression"], 4),
                    "se_logistic": round(paired_se(y, s["model"], s["logistic_regression"]), 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
