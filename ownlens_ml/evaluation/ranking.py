"""Ranking evaluation: metrics at k for top-k lists, and the time-split holdout a recommender is judged on.

``ranking_metrics`` takes catalogue positions (best first, -1 for none) and a 0/1 matrix of what each
reader went on to read; NDCG uses binary relevance and the log2 discount of
``sklearn.metrics.ndcg_score`` (tests cross-check the two). ``build_holdout`` splits reads at a time:
readers with reads before it, the fresh articles they may be shown, what they read after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ownlens_ml.errors import ValidationError

HOUR = 3600
KS = tuple(range(1, 21))
"""Cut-offs of the NDCG@k curve in reports."""


def positions(ids: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in the sorted array ``known``; -1 where absent."""
    ids = np.asarray(ids)
    if not len(known):
        return np.full(len(ids), -1)
    pos = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    return np.where(known[pos] == ids, pos, -1)


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    """Refuse a frame that lacks any of ``columns`` (``what`` names it in the error)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(f"{what} lack columns {missing}; they need {list(columns)}")


def ranking_metrics(top: np.ndarray, relevant: sp.csr_matrix, catalogue_size: int, k: int = 10) -> dict[str, float]:
    """precision, recall, NDCG and MAP at ``k`` (binary relevance) and catalogue coverage.

    Args:
        top: (readers, >= k) catalogue positions, best first, -1 for none.
        relevant: (readers, catalogue) 0/1 of what each reader went on to read.
        catalogue_size: candidates in the catalogue (the coverage denominator).
    """
    top = top[:, :k]
    n_rel = np.asarray(relevant.sum(axis=1)).ravel()
    hit = np.zeros(top.shape, bool)
    for j in range(top.shape[1]):
        col = top[:, j]
        ok = col >= 0
        if not ok.any():  # scipy refuses an empty fancy index: a column of padding has no hits
            continue
        hit[ok, j] = np.asarray(relevant[np.flatnonzero(ok), col[ok]]).ravel() > 0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hit * discount).sum(axis=1)
    ideal = np.array([discount[: min(int(m), k)].sum() for m in n_rel])
    precision_at = np.cumsum(hit, axis=1) / np.arange(1, k + 1)
    ap = (precision_at * hit).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    shown = np.unique(top[top >= 0])
    return {
        f"ndcg@{k}": float(np.mean(dcg / np.maximum(ideal, 1e-12))),
        f"precision@{k}": float(hit.sum(axis=1).mean() / k),
        f"recall@{k}": float(np.mean(hit.sum(axis=1) / np.maximum(n_rel, 1))),
        f"map@{k}": float(ap.mean()),
        "coverage": float(len(shown) / max(catalogue_size, 1)),
        "readers": int(len(top)),
    }


def ndcg_curve(top: np.ndarray, relevant: sp.csr_matrix, ks=KS) -> list[float]:
    """NDCG@k for each k in ``ks``."""
    return [ranking_metrics(top, relevant, 1, k)[f"ndcg@{k}"] for k in ks]


def top_from_scores(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` column positions of a dense (readers, candidates) score matrix where ``allowed``; -1 pads."""
    s = np.where(allowed, scores, -np.inf)
    kk = min(k, s.shape[1])
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    ok = np.isfinite(np.take_along_axis(s, top, axis=1))
    out = np.full((len(s), k), -1, np.int64)
    out[:, :kk] = np.where(ok, top, -1)
    return out


@dataclass
class Holdout:
    """The readers to rank after ``as_of``, what each may be shown, and what each went on to read.

    Every scorer ranks the same candidates for a reader: their brand's articles published in
    the ``max_age_hours`` before ``as_of``, minus what they had read. Relevant: the candidates
    they read in the evaluation window.
    """

    as_of: pd.Timestamp
    train: pd.DataFrame
    catalogue_ids: np.ndarray
    catalogue_brand: np.ndarray
    catalogue_published: np.ndarray
    candidates: np.ndarray
    readers: np.ndarray
    brands: np.ndarray
    histories: list
    """Each reader's reads before ``as_of`` as (article_id, seconds) rows: filtered out, and folded in
    by a model that has no factors for the reader."""
    relevant: sp.csr_matrix
    allowed: np.ndarray
    """(readers, catalogue) bool: what each reader may be shown."""

    def describe(self) -> str:
        return (
            f"{len(self.readers):,} readers who read after {self.as_of:%Y-%m-%d %H:%M} UTC, "
            f"{len(self.candidates):,} candidate articles"
        )


def build_holdout(
    train: pd.DataFrame, test: pd.DataFrame, catalogue: pd.DataFrame, as_of: pd.Timestamp, max_age_hours: float
) -> Holdout:
    """The holdout of readers with reads before ``as_of`` (``train``) and candidate reads in ``test``.

    Raises:
        ValidationError: no such reader (a too short or too late split).
    """
    require_columns(catalogue, ("article_id", "brand_id", "published_at"), "catalogue")
    cut = int(pd.Timestamp(as_of).timestamp())
    cat = catalogue[catalogue["published_at"].to_numpy() < cut].sort_values("article_id")
    ids, brand, published = (cat[c].to_numpy(np.int64) for c in ("article_id", "brand_id", "published_at"))
    cands = np.flatnonzero(published > cut - max_age_hours * HOUR)
    cpos = positions(test["article_id"].to_numpy(np.int64), ids)
    test = test[np.isin(cpos, cands)].assign(cpos=cpos[np.isin(cpos, cands)])
    before = pd.MultiIndex.from_frame(train[["user_id", "article_id"]])
    test = test[~pd.MultiIndex.from_frame(test[["user_id", "article_id"]]).isin(before)]
    readers = np.intersect1d(test["user_id"].to_numpy(np.int64), train["user_id"].to_numpy(np.int64))
    if not len(readers):
        raise ValidationError(
            f"no reader with reads before {as_of} read a candidate article after it; "
            "move the split earlier or lengthen the evaluation window"
        )
    test = test[test["user_id"].isin(readers)]
    row = np.searchsorted(readers, test["user_id"].to_numpy(np.int64))
    relevant = sp.csr_matrix((np.ones(len(row)), (row, test["cpos"].to_numpy())), shape=(len(readers), len(ids)))
    mine = train[train["user_id"].isin(readers)].sort_values(["user_id", "last_at"])
    r = np.searchsorted(readers, mine["user_id"].to_numpy(np.int64))
    c = positions(mine["article_id"].to_numpy(np.int64), ids)
    seen = np.zeros((len(readers), len(ids)), bool)
    seen[r[c >= 0], c[c >= 0]] = True
    # a reader's brand: that of their latest read (a reader reads one brand)
    last = mine.drop_duplicates("user_id", keep="last")
    brands = brand[np.maximum(positions(last["article_id"].to_numpy(np.int64), ids), 0)]
    allowed = (brand[None, :] == brands[:, None]) & np.isin(np.arange(len(ids)), cands)[None, :] & ~seen
    split = np.searchsorted(r, np.arange(1, len(readers)))
    rows = mine[["article_id", "seconds"]].to_numpy(np.int64)
    return Holdout(
        pd.Timestamp(as_of),
        train,
        ids,
        brand,
        published,
        cands,
        readers,
        brands,
        np.split(rows, split),
        relevant,
        allowed,
    )
