"""Ranking metrics at k (evaluation.ranking): NDCG as scikit-learn computes it, the others by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from ownlens_ml.evaluation.ranking import ranking_metrics, top_from_scores


def _ours(relevance: np.ndarray, scores: np.ndarray, k: int) -> float:
    top = top_from_scores(scores, np.ones(scores.shape, bool), k)
    return ranking_metrics(top, sp.csr_matrix(relevance), scores.shape[1], k)[f"ndcg@{k}"]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_ndcg_equals_sklearn_on_random_lists(seed, k):
    rng = np.random.default_rng(seed)
    relevance = (rng.random((50, 30)) < 0.15).astype(float)
    relevance[0] = 0  # a reader who read nothing scores 0 in both
    scores = rng.random((50, 30))
    assert _ours(relevance, scores, k) == pytest.approx(ndcg_score(relevance, scores, k=k), abs=1e-12)


@pytest.mark.parametrize("k", [2, 5, 12])
def test_ndcg_equals_sklearn_with_tied_scores(k):
    """Ties among equally relevant items: every order of a tie gives the same DCG, so ours (one order)
    equals sklearn's average over the tied orders."""
    rng = np.random.default_rng(1)
    relevance = (rng.random((40, 12)) < 0.3).astype(float)
    # coarse scores: many ties, but relevant items (odd scores) never tie with irrelevant ones (even)
    scores = np.round(rng.random((40, 12)) * 3) * 2 + relevance
    assert (np.diff(np.sort(scores, axis=1), axis=1) == 0).any()
    assert _ours(relevance, scores, k) == pytest.approx(ndcg_score(relevance, scores, k=k), abs=1e-12)


def test_precision_recall_map_and_coverage_by_hand():
    # reader 0 is shown 3, 1, 4 and read 1 and 5; reader 1 is shown 2 and nothing more, and read 2
    top = np.array([[3, 1, 4], [2, -1, -1]])
    relevant = sp.csr_matrix((np.ones(3), ([0, 0, 1], [1, 5, 2])), shape=(2, 8))
    m = ranking_metrics(top, relevant, catalogue_size=8, k=3)
    d2 = 1 / np.log2(3)
    assert m["ndcg@3"] == pytest.approx(np.mean([d2 / (1 + d2), 1.0]))
    assert m["precision@3"] == pytest.approx(np.mean([1 / 3, 1 / 3]))
    assert m["recall@3"] == pytest.approx(np.mean([1 / 2, 1.0]))
    assert m["map@3"] == pytest.approx(np.mean([(1 / 2) / 2, 1.0]))
    assert m["coverage"] == pytest.approx(4 / 8) and m["readers"] == 2


def test_top_from_scores_keeps_to_what_is_allowed_and_pads():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.3, 0.2, 0.1, 0.0]])
    allowed = np.array([[True, False, True, True], [False, True, False, False]])
    top = top_from_scores(scores, allowed, 3)
    assert top.tolist() == [[3, 2, 0], [1, -1, -1]]
