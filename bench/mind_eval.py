"""The recommender on real impressions: MIND-small subset, scored the way MIND is scored.

    PYTHONPATH=. python bench/mind_eval.py [--data PATH]

The data set is for internal testing only and never copied into the project: it is read in
place from ``shared/datasets/mind_small_subset`` in the first parent folder of the repository
that has it (``../shared`` beside the checkout), or from ``--data``.

Protocol. Impressions are split by time (``--split``, default 2019-11-13 00:00, the last two
of six days for testing). The recommender is fitted on every reader's click history (the
clicks MIND lists as made before each impression) and the clicks of the training
impressions; MIND has no dwell time, so every click gets the same confidence. For each test
impression the shown articles are ranked for the reader by folding the history in
(``Recommender.score_items`` with the history: implicit's ``recalculate_user``), blended, as
the recommender does, with the popularity prior: log(taste) + w * log1p(clicks), where clicks
counts the article's clicks in every earlier impression of the subset (time-aware, no look
ahead); articles without factors take the reader's median taste over the shown ones.
Popularity alone (the same clicks), the taste alone (articles without factors last) and
random are scored on the same impressions. Metrics per
impression, averaged as MIND does: AUC, MRR, nDCG@5, nDCG@10 (impressions whose shown
articles are all clicked or none are skipped for every scorer).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ownlens_ml.models.customer.recommendation import Recommender, RecommenderParams

SUBSET = Path("shared") / "datasets" / "mind_small_subset"


def find_data() -> Path:
    """``shared/datasets/mind_small_subset`` in the nearest parent folder of the repository that has it."""
    for parent in Path(__file__).resolve().parents:
        if (parent / SUBSET / "behaviors.tsv").exists():
            return parent / SUBSET
    raise SystemExit(f"no {SUBSET} beside the repository or above it; pass --data")


def _nid(token: str) -> int:
    return int(token[1:])


def load(data: Path) -> pd.DataFrame:
    """One row per impression: user (int), time, history (article ids), shown (ids), clicked (0/1)."""
    raw = pd.read_csv(
        data / "behaviors.tsv", sep="\t", header=None, names=["impression_id", "user", "time", "history", "impressions"]
    )
    rows = []
    for imp, user, time, history, shown in raw.itertuples(index=False):
        pairs = [item.rsplit("-", 1) for item in shown.split()]
        rows.append(
            (
                imp,
                _nid(user),
                pd.Timestamp(pd.to_datetime(time, format="%m/%d/%Y %I:%M:%S %p")),
                np.array([_nid(h) for h in history.split()] if isinstance(history, str) else [], np.int64),
                np.array([_nid(n) for n, _ in pairs], np.int64),
                np.array([int(y) for _, y in pairs]),
            )
        )
    return pd.DataFrame(rows, columns=["impression_id", "user_id", "time", "history", "shown", "clicked"])


def mrr(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s, kind="stable")
    ranked = y[order]
    return float((ranked / np.arange(1, len(y) + 1)).sum() / ranked.sum())


def ndcg(y: np.ndarray, s: np.ndarray, k: int) -> float:
    def dcg(rel):
        rel = rel[:k]
        return float(((2**rel - 1) / np.log2(np.arange(2, len(rel) + 2))).sum())

    return dcg(y[np.argsort(-s, kind="stable")]) / dcg(np.sort(y)[::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--split", default="2019-11-13 00:00")
    parser.add_argument("--factors", type=int, default=RecommenderParams.factors)
    parser.add_argument("--weight", type=float, default=RecommenderParams.popularity_weight)
    args = parser.parse_args()
    data = args.data or find_data()
    imps = load(data)
    split = pd.Timestamp(args.split)
    train, test = imps[imps["time"] < split], imps[imps["time"] >= split]

    # training interactions: every history (made before its impression) and the training impressions' clicks
    hist = pd.DataFrame(
        {
            "user_id": np.repeat(imps["user_id"].to_numpy(), imps["history"].map(len)),
            "article_id": np.concatenate(imps["history"].to_list()),
        }
    )
    clicks = pd.DataFrame(
        {
            "user_id": np.repeat(train["user_id"].to_numpy(), train["shown"].map(len)),
            "article_id": np.concatenate(train["shown"].to_list()),
            "y": np.concatenate(train["clicked"].to_list()),
        }
    )
    clicks = clicks[clicks["y"] == 1].drop(columns="y")
    reads = pd.concat([hist, clicks]).drop_duplicates(ignore_index=True)
    params = RecommenderParams(factors=args.factors, max_age_hours=1e9, threads=1)
    reads = reads.assign(reads=1, seconds=int(params.seconds_scale), last_at=0)
    catalogue = pd.DataFrame({"article_id": np.unique(np.concatenate([reads["article_id"], *imps["shown"]]))})
    catalogue = catalogue.assign(brand_id=1, published_at=0)
    rec = Recommender(params).fit(reads, catalogue, split.tz_localize("UTC"))
    # popularity at an impression: clicks on the article in every earlier impression (time-aware, no leakage)
    events = pd.DataFrame(
        {
            "time": np.repeat(imps["time"].to_numpy(), imps["shown"].map(len)),
            "article_id": np.concatenate(imps["shown"].to_list()),
            "y": np.concatenate(imps["clicked"].to_list()),
        }
    )
    events = events[events["y"] == 1].sort_values("time")
    click_times = {a: g["time"].to_numpy() for a, g in events.groupby("article_id")}
    own_clicks = clicks.groupby("user_id")["article_id"].apply(np.asarray).to_dict()

    rng = np.random.default_rng(7)
    scores = {"recommender": [], "taste_only": [], "popularity": [], "random": []}
    folded = 0
    for user, time, history, shown, y in test[["user_id", "time", "history", "shown", "clicked"]].itertuples(
        index=False
    ):
        if y.min() == y.max():
            continue
        seen = np.unique(np.concatenate([history, own_clicks.get(user, np.zeros(0, np.int64))]))
        before = np.array(
            [np.searchsorted(click_times.get(a, np.array([], "datetime64[ns]")), np.datetime64(time)) for a in shown],
            float,
        )
        pop = np.log1p(before)
        taste = rec.score_items(user, shown, history=seen if seen.size else None)
        folded += bool(seen.size)
        if np.isfinite(taste).any():
            fill = np.nanmedian(taste)
            blend = np.log(np.maximum(np.where(np.isfinite(taste), taste, fill), 1e-4)) + args.weight * pop
        else:
            blend = pop
        # ties broken at random for every scorer alike
        jitter = rng.random(len(shown)) * 1e-9
        alone = (
            np.where(np.isfinite(taste), taste, np.nanmin(taste) - 1)
            if np.isfinite(taste).any()
            else np.zeros(len(shown))
        )
        for name, s in (
            ("recommender", blend),
            ("taste_only", alone),
            ("popularity", pop),
            ("random", np.zeros(len(shown))),
        ):
            s = s + jitter
            scores[name].append((roc_auc_score(y, s), mrr(y, s), ndcg(y, s, 5), ndcg(y, s, 10)))
    print(
        f"MIND-small subset at {data}: {len(train):,} training and {len(test):,} test impressions "
        f"(split {split}); fitted on {len(reads):,} clicks of {reads['user_id'].nunique():,} readers over "
        f"{reads['article_id'].nunique():,} articles; {len(scores['random']):,} scored impressions, "
        f"{folded:,} with a history folded in"
    )
    table = pd.DataFrame(
        {name: np.mean(v, axis=0) for name, v in scores.items()}, index=["AUC", "MRR", "nDCG@5", "nDCG@10"]
    ).T
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
