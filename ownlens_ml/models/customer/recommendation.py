"""Article recommendation: implicit ALS on engaged reads, with fold-in and a flagged popularity-recency fallback.

``Recommender`` takes reads (``user_id``, ``article_id``, ``seconds``), builds implicit's
readers x articles confidence CSR from them and answers ``(ids, scores)``; it owns what implicit
leaves to the caller: the external-id <-> index maps, the catalogue (brand and publish time of
every article, from the feature service), the filters (already read, older than
``max_age_hours``, brand) and the answer for readers the factors do not know. A reader with
trained factors is ranked by them; a reader without them but with a read history is folded in
(implicit's ``recalculate_user``: least squares against the fixed item factors); a reader with
neither gets the popularity-recency ranking, flagged ``fallback=True``, through which new
articles with no reads yet can appear too. Taste (user factors . item factors) is blended with
that popularity-recency prior, log(taste) + ``popularity_weight`` x prior: news readers pick
among what is fresh and read.

Confidence of a read is ``1 + alpha * log1p(engaged_seconds / seconds_scale)``: a skim
counts, a long read counts more, with diminishing returns.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ownlens_ml import clock
from ownlens_ml.errors import OwnLensError, ValidationError
from ownlens_ml.evaluation.oracle import oracle
from ownlens_ml.evaluation.ranking import (
    KS,
    Holdout,
    build_holdout,
    ndcg_curve,
    positions,
    ranking_metrics,
    require_columns,
    top_from_scores,
)
from ownlens_ml.evaluation.report import Evaluation
from ownlens_ml.models.reads import articles, engaged_reads
from ownlens_ml.models.spec import ModelSpec, TrainContext, Trained
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

HOUR = 3600


@dataclass(frozen=True)
class RecommenderParams:
    """Hyperparameters and serving rules (JSON in the artifact, lineage in the registry)."""

    factors: int = 24
    regularization: float = 0.05
    alpha: float = 4.0
    iterations: int = 15
    seconds_scale: float = 30.0
    max_age_hours: float = 72.0
    popularity_half_life_hours: float = 12.0
    popularity_weight: float = 2.0
    """Weight of the popularity-recency prior beside log(ALS score); 0 ranks by ALS alone."""
    seed: int = 7
    threads: int = 1


class Recommendation(NamedTuple):
    """One answer: article ids best first, their scores, and whether it is the fallback ranking."""

    article_ids: np.ndarray
    scores: np.ndarray
    fallback: bool


def confidence(seconds: np.ndarray, params: RecommenderParams) -> np.ndarray:
    """Confidence of reads from their engaged seconds (see the module docstring)."""
    return (
        1.0 + params.alpha * np.log1p(np.maximum(np.asarray(seconds, dtype=np.float64), 0) / params.seconds_scale)
    ).astype(np.float32)


class Recommender:
    """ALS recommender over a catalogue; see the module docstring.

    Fitted state (attributes ending in ``_``): ``user_ids_`` and ``item_ids_`` (sorted
    external ids; a reader's or article's index is its position), ``user_items_`` (the
    training CSR: what each reader has read), the implicit model ``als_``, the catalogue
    (``catalogue_ids_``, ``catalogue_brand_``, ``catalogue_published_``) with each article's
    ``popularity_`` at ``as_of_`` and each reader's ``user_brand_``.
    """

    ARRAYS = (
        "user_ids_",
        "item_ids_",
        "user_factors",
        "item_factors",
        "user_items_indptr",
        "user_items_indices",
        "user_items_data",
        "user_brand_",
        "catalogue_ids_",
        "catalogue_brand_",
        "catalogue_published_",
        "popularity_",
    )

    def __init__(self, params: RecommenderParams = RecommenderParams()):
        self.params = params

    # --- fit ------------------------------------------------------------------------------

    def fit(self, reads: pd.DataFrame, catalogue: pd.DataFrame, as_of: pd.Timestamp) -> Recommender:
        """Factorise the reads before ``as_of``.

        Args:
            reads: one row per (reader, article): ``user_id``, ``article_id``, ``seconds``
                (engaged), ``last_at`` (epoch seconds of the last read), all before ``as_of``.
            catalogue: ``article_id``, ``brand_id``, ``published_at`` (epoch seconds).
            as_of: the training cut-off (tz-aware UTC).

        Raises:
            ValidationError: a column is missing or no read is left.
        """
        require_columns(reads, ("user_id", "article_id", "seconds", "last_at"), "reads")
        require_columns(catalogue, ("article_id", "brand_id", "published_at"), "catalogue")
        p = self.params
        cut = int(pd.Timestamp(as_of).timestamp())
        reads = reads[reads["last_at"].to_numpy() < cut]
        if reads.empty:
            raise ValidationError(
                f"no reads before {as_of} to train the recommender on; choose a later --as-of, or import page views"
            )
        users, u = np.unique(reads["user_id"].to_numpy(np.int64), return_inverse=True)
        items, i = np.unique(reads["article_id"].to_numpy(np.int64), return_inverse=True)
        matrix = sp.csr_matrix(
            (confidence(reads["seconds"].to_numpy(), p), (u, i)), shape=(len(users), len(items)), dtype=np.float32
        )
        self.als_ = self._als()
        with threadpool_limits(1, "blas"):
            self.als_.fit(matrix, show_progress=False)
        self.user_ids_, self.item_ids_, self.user_items_ = users, items, matrix
        self._set_catalogue(reads, catalogue, as_of)
        # a reader's brand: the brand of the articles they read most (readers read one brand)
        brands, b = np.unique(
            self.catalogue_brand_[np.maximum(positions(items, self.catalogue_ids_), 0)][i], return_inverse=True
        )
        votes = np.bincount(u * len(brands) + b, minlength=len(users) * len(brands)).reshape(len(users), -1)
        self.user_brand_ = brands[votes.argmax(axis=1)].astype(np.int64)
        self._prepare()
        log.info(
            "ALS fitted on %d readers x %d articles (%d reads) before %s", len(users), len(items), matrix.nnz, as_of
        )
        return self

    @classmethod
    def prior(
        cls,
        reads: pd.DataFrame,
        catalogue: pd.DataFrame,
        as_of: pd.Timestamp,
        params: RecommenderParams = RecommenderParams(),
    ) -> Recommender:
        """A recommender without factors, for before any version is trained: every reader gets the
        popularity-recency fallback of ``reads`` at ``as_of`` (same arguments as ``fit``).

        Raises:
            ValidationError: a column is missing.
        """
        require_columns(reads, ("user_id", "article_id", "seconds", "last_at"), "reads")
        require_columns(catalogue, ("article_id", "brand_id", "published_at"), "catalogue")
        rec = cls(params)
        rec.als_ = rec._als()
        rec.als_.user_factors = rec.als_.item_factors = np.zeros((0, params.factors), np.float32)
        rec.user_ids_ = rec.item_ids_ = np.zeros(0, np.int64)
        rec.user_items_ = sp.csr_matrix((0, 0), dtype=np.float32)
        rec.user_brand_ = np.zeros(0, np.int64)
        rec._set_catalogue(reads[reads["last_at"].to_numpy() < int(pd.Timestamp(as_of).timestamp())], catalogue, as_of)
        rec._prepare()
        return rec

    def _set_catalogue(self, reads: pd.DataFrame, catalogue: pd.DataFrame, as_of: pd.Timestamp) -> None:
        """The articles published before ``as_of`` and their popularity-recency prior from ``reads``."""
        cut = int(pd.Timestamp(as_of).timestamp())
        self.as_of_ = pd.Timestamp(as_of)
        cat = catalogue[catalogue["published_at"].to_numpy() < cut].sort_values("article_id")
        self.catalogue_ids_ = cat["article_id"].to_numpy(np.int64)
        self.catalogue_brand_ = cat["brand_id"].to_numpy(np.int64)
        self.catalogue_published_ = cat["published_at"].to_numpy(np.int64)
        self.popularity_ = self._popularity(reads, cut)

    def _als(self):
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        # alpha is applied by ``confidence``; implicit's own alpha stays 1. implicit parallelises
        # itself and asks for a single-threaded BLAS (it warns otherwise)
        with threadpool_limits(1, "blas"):
            return AlternatingLeastSquares(
                factors=p.factors,
                regularization=p.regularization,
                alpha=1.0,
                iterations=p.iterations,
                random_state=p.seed,
                num_threads=p.threads,
            )

    def _popularity(self, reads: pd.DataFrame, cut: int) -> np.ndarray:
        """Decayed reads at the cut-off plus a recency bonus, so unread new articles can rank too."""
        p = self.params
        age_read = (cut - reads["last_at"].to_numpy()) / HOUR
        weight = reads["reads"].to_numpy() if "reads" in reads else np.ones(len(reads))
        pos = positions(reads["article_id"].to_numpy(np.int64), self.catalogue_ids_)
        ok = pos >= 0
        decayed = np.bincount(
            pos[ok], (weight * 0.5 ** (age_read / p.popularity_half_life_hours))[ok], minlength=len(self.catalogue_ids_)
        )
        age = (cut - self.catalogue_published_) / HOUR
        return np.log1p(decayed) + np.exp(-np.maximum(age, 0) / max(p.max_age_hours, 1.0))

    def extend_catalogue(self, catalogue: pd.DataFrame) -> Recommender:
        """Add articles published since training (``article_id``, ``brand_id``, ``published_at``);
        without reads or factors they reach readers through the fallback, by recency. Returns self."""
        require_columns(catalogue, ("article_id", "brand_id", "published_at"), "catalogue")
        new = catalogue[positions(catalogue["article_id"].to_numpy(np.int64), self.catalogue_ids_) < 0]
        new = new.drop_duplicates("article_id")
        if len(new):
            ids = np.concatenate([self.catalogue_ids_, new["article_id"].to_numpy(np.int64)])
            order = np.argsort(ids, kind="stable")
            self.catalogue_ids_ = ids[order]
            self.catalogue_brand_ = np.concatenate([self.catalogue_brand_, new["brand_id"].to_numpy(np.int64)])[order]
            self.catalogue_published_ = np.concatenate(
                [self.catalogue_published_, new["published_at"].to_numpy(np.int64)]
            )[order]
            # no reads yet: the recency bonus of an article just published (see _popularity)
            self.popularity_ = np.concatenate([self.popularity_, np.ones(len(new))])[order]
            self._prepare()
        return self

    def _prepare(self) -> None:
        """Lookups derived from the fitted state (after fit and after load): per brand (and -1 for
        all brands) the catalogue ordered by publish time, so that the age filter is a slice."""
        self.catalogue_item_ = positions(self.catalogue_ids_, self.item_ids_)
        self.by_brand_ = {}
        for brand in (-1, *np.unique(self.catalogue_brand_).tolist()):
            pos = np.flatnonzero(self.catalogue_brand_ == brand) if brand >= 0 else np.arange(len(self.catalogue_ids_))
            pos = pos[np.argsort(self.catalogue_published_[pos], kind="stable")]
            self.by_brand_[int(brand)] = (self.catalogue_published_[pos], pos)

    # --- answers ----------------------------------------------------------------------------

    def candidates(self, brand_id: int | None, now: pd.Timestamp | None = None) -> np.ndarray:
        """Catalogue positions of the articles a reader may be shown, newest last: published within
        ``max_age_hours`` before ``now`` (default: the training cut-off), of ``brand_id`` if given."""
        published, pos = self.by_brand_.get(-1 if brand_id is None else int(brand_id), (np.zeros(0, np.int64),) * 2)
        now_s = int(pd.Timestamp(now if now is not None else self.as_of_).timestamp())
        lo = np.searchsorted(published, now_s - self.params.max_age_hours * HOUR, side="right")
        return pos[lo : np.searchsorted(published, now_s, side="right")]

    def recommend(
        self,
        user_id: int,
        k: int = 10,
        brand_id: int | None = None,
        history=None,
        now: pd.Timestamp | None = None,
        personal: bool = True,
    ) -> Recommendation:
        """Top-``k`` articles for one reader.

        Args:
            user_id: external reader id (unknown ids are answered, by the fallback).
            k: how many.
            brand_id: only this brand's articles (default: the reader's own brand if known, else all).
            history: recent reads not in training, as article ids or ``(article_id, engaged_seconds)``
                rows: they are filtered out and, for a reader without factors, folded in.
            now: the time the answer is for (filters by age; default: the training cut-off).
            personal: False: the fallback ranking even for a reader with factors or a history
                (still without what they read), e.g. from a version that is not the champion.

        Returns:
            ``Recommendation(article_ids, scores, fallback)``: at most ``k`` of each.
        """
        got = self.recommend_many(
            np.array([user_id], np.int64),
            k,
            None if brand_id is None else [brand_id],
            [history],
            now,
            fold_in=personal,
            personal=personal,
        )
        keep = got.article_ids[0] >= 0
        return Recommendation(got.article_ids[0][keep], got.scores[0][keep], bool(got.fallback[0]))

    def recommend_many(
        self,
        user_ids,
        k: int = 10,
        brand_ids=None,
        histories: list | None = None,
        now: pd.Timestamp | None = None,
        fold_in: bool = True,
        personal: bool = True,
    ) -> Recommendation:
        """Top-``k`` for many readers: ``(readers, k)`` article ids (-1 pads), scores, and fallback flags.

        A reader's score for a candidate is implicit's, user factors . item factors (for a
        reader without factors, the factors ``recalculate_user`` solves from the history),
        blended with the popularity-recency prior when ``popularity_weight`` > 0.
        ``fold_in=False`` answers readers without factors by the fallback even when they
        have a history (still filtered out): the comparison the evaluation reports;
        ``personal=False`` answers every reader by it.
        """
        user_ids = np.asarray(user_ids, np.int64)
        n = len(user_ids)
        histories = list(histories) if histories is not None else [None] * n
        upos = positions(user_ids, self.user_ids_)
        brands = (
            np.asarray(brand_ids, np.int64)
            if brand_ids is not None
            else np.where(upos >= 0, self.user_brand_[np.maximum(upos, 0)], -1)
        )
        extra_ids, extra_seconds = zip(*(_history_rows(h, self.params) for h in histories)) if n else ((), ())
        has_history = np.array([len(e) > 0 for e in extra_ids], bool)
        route = np.where(upos >= 0, 0, np.where(has_history & fold_in, 1, 2))  # factors, fold-in, fallback
        if not personal:
            route[:] = 2
        vectors = np.zeros((n, self.params.factors), np.float32)
        vectors[route == 0] = np.asarray(self.als_.user_factors)[upos[route == 0]]
        if (route == 1).any():
            vectors[route == 1] = self._fold_in(
                [extra_ids[i] for i in np.flatnonzero(route == 1)],
                [extra_seconds[i] for i in np.flatnonzero(route == 1)],
            )
        out_ids = np.full((n, k), -1, np.int64)
        out_scores = np.full((n, k), np.nan, np.float32)
        factors = np.asarray(self.als_.item_factors)
        for brand in np.unique(brands):
            cands = self.candidates(None if brand < 0 else int(brand), now)
            if not cands.size:
                continue
            model_items = self.catalogue_item_[cands]
            for r in np.flatnonzero(brands == brand):
                read = np.concatenate([self._trained_reads(upos[r]), extra_ids[r]])
                if route[r] == 2:
                    ok = ~np.isin(self.catalogue_ids_[cands], read) if read.size else np.ones(cands.size, bool)
                    pos, score = cands[ok], self.popularity_[cands[ok]]
                else:  # only articles with factors can be ranked by them
                    ok = model_items >= 0
                    if read.size:
                        ok &= ~np.isin(self.catalogue_ids_[cands], read)
                    pos = cands[ok]
                    score = factors[model_items[ok]] @ vectors[r]
                    if self.params.popularity_weight:
                        # taste (ALS) times how read the piece is right now: log(taste) + w * popularity-recency
                        score = np.log(np.maximum(score, 1e-4)) + self.params.popularity_weight * self.popularity_[pos]
                top = _top(score, k)
                out_ids[r, : top.size] = self.catalogue_ids_[pos[top]]
                out_scores[r, : top.size] = score[top]
        return Recommendation(out_ids, out_scores, route == 2)

    def score_items(self, user_id: int, article_ids, history=None) -> np.ndarray:
        """Taste scores (user factors . item factors) of given articles for one reader, NaN where an
        article has no factors; for re-ranking a shown list (e.g. an impression).

        The reader's factors are the trained ones, or, when ``history`` is given or the reader
        has none, folded in from ``history``; with neither, every score is NaN.
        """
        article_ids = np.asarray(article_ids, np.int64)
        upos = positions(np.array([user_id], np.int64), self.user_ids_)[0]
        ids, seconds = _history_rows(history, self.params)
        if ids.size:
            vector = self._fold_in([ids], [seconds])[0]
        elif upos >= 0:
            vector = np.asarray(self.als_.user_factors)[upos]
        else:
            return np.full(len(article_ids), np.nan)
        pos = positions(article_ids, self.item_ids_)
        out = np.full(len(article_ids), np.nan)
        out[pos >= 0] = np.asarray(self.als_.item_factors)[pos[pos >= 0]] @ vector
        return out

    def _trained_reads(self, upos: int) -> np.ndarray:
        """Article ids a trained reader read before the cut-off (none for readers without factors)."""
        if upos < 0:
            return np.zeros(0, np.int64)
        m = self.user_items_
        return self.item_ids_[m.indices[m.indptr[upos] : m.indptr[upos + 1]]]

    def _fold_in(self, ids: list[np.ndarray], seconds: list[np.ndarray]) -> np.ndarray:
        """User factors for readers without them, from their histories (implicit's ``recalculate_user``)."""
        rows = np.concatenate([np.full(len(x), i) for i, x in enumerate(ids)])
        pos = positions(np.concatenate(ids), self.item_ids_)
        conf = confidence(np.concatenate(seconds), self.params)
        ok = pos >= 0
        matrix = sp.csr_matrix((conf[ok], (rows[ok], pos[ok])), shape=(len(ids), len(self.item_ids_)), dtype=np.float32)
        return np.asarray(self.als_.recalculate_user(np.arange(len(ids)), matrix))

    # --- artifact ---------------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """The fitted state as plain numeric arrays and a JSON-safe dict (the ``als-npz`` artifact)."""
        arrays = {
            "user_ids_": self.user_ids_,
            "item_ids_": self.item_ids_,
            "user_factors": np.asarray(self.als_.user_factors),
            "item_factors": np.asarray(self.als_.item_factors),
            "user_items_indptr": self.user_items_.indptr.astype(np.int64),
            "user_items_indices": self.user_items_.indices.astype(np.int64),
            "user_items_data": self.user_items_.data.astype(np.float32),
            "user_brand_": self.user_brand_,
            "catalogue_ids_": self.catalogue_ids_,
            "catalogue_brand_": self.catalogue_brand_,
            "catalogue_published_": self.catalogue_published_,
            "popularity_": self.popularity_,
        }
        return arrays, {"params": asdict(self.params), "as_of": self.as_of_.isoformat()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> Recommender:
        """Rebuild a fitted recommender from ``to_arrays`` output; ValidationError if it does not fit together."""
        missing = sorted(set(cls.ARRAYS) - set(arrays))
        if missing:
            raise ValidationError(f"recommender artifact lacks arrays {missing}")
        try:
            rec = cls(RecommenderParams(**meta["params"]))
            rec.as_of_ = pd.Timestamp(meta["as_of"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"recommender artifact metadata is malformed: {exc}") from None
        n_users, n_items = len(arrays["user_ids_"]), len(arrays["item_ids_"])
        uf, itf = arrays["user_factors"], arrays["item_factors"]
        if uf.shape != (n_users, rec.params.factors) or itf.shape != (n_items, rec.params.factors):
            raise ValidationError(
                f"recommender factors {uf.shape}, {itf.shape} do not match {n_users} readers, "
                f"{n_items} articles and {rec.params.factors} factors"
            )
        rec.user_ids_, rec.item_ids_ = arrays["user_ids_"].astype(np.int64), arrays["item_ids_"].astype(np.int64)
        rec.user_items_ = sp.csr_matrix(
            (arrays["user_items_data"], arrays["user_items_indices"], arrays["user_items_indptr"]),
            shape=(n_users, n_items),
        )
        rec.als_ = rec._als()
        rec.als_.user_factors, rec.als_.item_factors = uf.astype(np.float32), itf.astype(np.float32)
        for name in ("user_brand_", "catalogue_ids_", "catalogue_brand_", "catalogue_published_", "popularity_"):
            setattr(rec, name, arrays[name])
        rec._prepare()
        return rec


def recent_prior(settings: Settings, params: RecommenderParams = RecommenderParams()) -> Recommender:
    """``Recommender.prior`` of the reads in the ``max_age_hours`` before now: the ranking to
    answer with before any version is trained.

    Raises:
        EmptyWindowError: no page view in that window.
    """
    now = pd.Timestamp(clock.now())
    reads = engaged_reads(
        settings, start=(now - pd.Timedelta(hours=params.max_age_hours)).to_pydatetime(), end=now.to_pydatetime()
    )
    return Recommender.prior(reads, articles(settings), now, params)


def _history_rows(history, params: RecommenderParams) -> tuple[np.ndarray, np.ndarray]:
    """(article ids, engaged seconds) of a history given as ids or (id, seconds) rows."""
    if history is None or len(history) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    h = np.asarray(history)
    if h.ndim == 2:
        return h[:, 0].astype(np.int64), h[:, 1].astype(np.float64)
    return h.astype(np.int64), np.full(len(h), params.seconds_scale)


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first."""
    if score.size <= k:
        return np.argsort(-score, kind="stable")
    part = np.argpartition(-score, k - 1)[:k]
    return part[np.argsort(-score[part], kind="stable")]


# --- evaluation ---------------------------------------------------------------------------------


def score_holdout(
    h: Holdout, models: dict[str, Recommender], oracle=None, k: int = 10
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Metrics at ``k`` and NDCG@k curves of ``models`` (e.g. "model", a champion), popularity
    (readers in the 24 hours before ``as_of``), recency and, if given, the oracle
    (``(user_ids, article_ids) -> scores``) on one holdout."""
    tops = {}
    for name, model in models.items():
        ids = model.recommend_many(h.readers, max(KS), h.brands, h.histories, h.as_of).article_ids
        pos = np.where(ids >= 0, positions(ids.ravel(), h.catalogue_ids).reshape(ids.shape), -1)
        tops[name] = pos
    cut = int(h.as_of.timestamp())
    recent = h.train[h.train["last_at"].to_numpy() >= cut - 24 * HOUR]
    rpos = positions(recent["article_id"].to_numpy(np.int64), h.catalogue_ids)
    popularity = np.bincount(rpos[rpos >= 0], minlength=len(h.catalogue_ids)).astype(float)
    for name, score in (("popularity", popularity), ("recency", h.catalogue_published.astype(float))):
        tops[name] = top_from_scores(np.broadcast_to(score, h.allowed.shape), h.allowed, max(KS))
    if oracle is not None:
        r, c = np.nonzero(h.allowed)
        dense = np.full(h.allowed.shape, -np.inf)
        dense[r, c] = oracle(h.readers[r], h.catalogue_ids[c])
        tops["oracle"] = top_from_scores(dense, h.allowed, max(KS))
    metrics = {who: ranking_metrics(top, h.relevant, len(h.candidates), k) for who, top in tops.items()}
    return metrics, {who: ndcg_curve(top, h.relevant) for who, top in tops.items()}


def fold_in_check(
    h: Holdout, catalogue: pd.DataFrame, params: RecommenderParams, share: float = 0.25, k: int = 10
) -> dict[str, dict[str, float]]:
    """Readers left out of a second fit, answered by folding their history in and by the fallback.

    A seeded ``share`` of the holdout's readers (with at least two reads) is removed from
    the training reads; the rest are fitted as usual.

    Returns:
        ``{"fold_in": metrics, "fallback": metrics}`` on the left-out readers.
    """
    rng = np.random.default_rng(params.seed)
    counts = np.array([len(x) for x in h.histories])
    out = (rng.random(len(h.readers)) < share) & (counts >= 2)
    if not out.any():
        return {}
    model = Recommender(params).fit(h.train[~h.train["user_id"].isin(h.readers[out])], catalogue, h.as_of)
    sub = h.relevant[np.flatnonzero(out)]
    result = {}
    for name, fold in (("fold_in", True), ("fallback", False)):
        ids = model.recommend_many(
            h.readers[out], k, h.brands[out], [h.histories[i] for i in np.flatnonzero(out)], h.as_of, fold_in=fold
        ).article_ids
        pos = np.where(ids >= 0, positions(ids.ravel(), h.catalogue_ids).reshape(ids.shape), -1)
        result[name] = ranking_metrics(pos, sub, len(h.candidates), k)
    return result


# --- the trainer the engine calls (ranking kind) -------------------------------------------------

CATALOGUE_SERVICE = "recommendation_articles_v1"
HORIZON_HOURS = 24.0


def _fingerprint(frame: pd.DataFrame, *parts: str) -> str:
    import hashlib

    digest = hashlib.sha256(pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy().tobytes())
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()


@dataclass
class _Split:
    train: pd.DataFrame
    test: pd.DataFrame
    catalogue: pd.DataFrame
    holdout: Holdout
    fingerprint: str
    definition_hash: str


@dataclass(frozen=True)
class RecommendationTrainer:
    """Fit on engaged reads before T, score on the next ``horizon_hours`` (ranking kind's trainer).

    T is ``train --as-of`` or the start of the day of the newest page view (so the last day is
    the evaluation window). Article side features (brand, publish time) come from the
    ``recommendation_articles_v1`` feature service as of T.
    """

    params: RecommenderParams = RecommenderParams()
    horizon_hours: float = HORIZON_HOURS

    def _split(self, ctx: TrainContext, as_of: pd.Timestamp | None) -> _Split:
        from ownlens_ml.features import (
            store,  # Feast is imported only to train, not to serve
        )

        settings = ctx.settings
        if as_of is None:
            newest = engaged_reads(settings)["last_at"].max()
            as_of = pd.Timestamp(int(newest), unit="s", tz="UTC").floor("D")
        as_of = pd.Timestamp(as_of).tz_convert("UTC") if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of, tz="UTC")
        end = as_of + pd.Timedelta(hours=self.horizon_hours)
        with ctx.steps("reads", f"{ctx.spec.name}: engaged reads before and after {as_of:%Y-%m-%d %H:%M}"):
            train = engaged_reads(settings, end=as_of.to_pydatetime())
            test = engaged_reads(settings, start=as_of.to_pydatetime(), end=end.to_pydatetime())
        with ctx.steps("catalogue", f"{ctx.spec.name}: article side features from {ctx.spec.feature_service}"):
            known = articles(settings)
            known = known[known["published_at"] < int(as_of.timestamp())]
            rows = store.training_set(
                settings,
                ctx.spec.feature_service,
                pd.DataFrame({"article_id": known["article_id"].to_numpy(), "event_timestamp": as_of}),
            )
            frame = rows.frame.dropna(subset=["brand_id", "published_at_epoch"])
            catalogue = pd.DataFrame(
                {
                    "article_id": frame["article_id"].to_numpy(np.int64),
                    "brand_id": frame["brand_id"].to_numpy(np.int64),
                    "published_at": frame["published_at_epoch"].to_numpy(np.int64),
                }
            )
        holdout = build_holdout(train, test, catalogue, as_of, self.params.max_age_hours)
        return _Split(train, test, catalogue, holdout, _fingerprint(train, rows.fingerprint), rows.definition_hash)

    def _evaluation(self, ctx: TrainContext, split: _Split, model: Recommender, version: int | None) -> Evaluation:
        h, notes = split.holdout, []
        models = {"model": model}
        champion = ctx.rival(version)
        if champion is not None:
            models[f"champion_v{champion[0].version}"] = champion[1]

        def truth(users, items):
            return oracle(
                ctx.settings,
                ctx.spec.oracle,
                pd.DataFrame({"user_id": users, "article_id": items}),
                as_of=h.as_of,
                horizon_hours=self.horizon_hours,
            )

        judge = truth if ctx.spec.oracle else None
        with ctx.steps("evaluate", f"{ctx.spec.name}: rank for {len(h.readers):,} readers beside the baselines"):
            try:
                metrics, curves = score_holdout(h, models, judge)
            except OwnLensError as err:  # imported data: no truth to rank by
                notes.append(f"oracle omitted: {err}")
                metrics, curves = score_holdout(h, models, None)
            check = fold_in_check(h, split.catalogue, model.params)
        if check:
            metrics["model"].update(
                {
                    "fold_in_ndcg@10": check["fold_in"]["ndcg@10"],
                    "fallback_ndcg@10": check["fallback"]["ndcg@10"],
                    "fold_in_readers": check["fold_in"]["readers"],
                }
            )
            notes.append(
                f"readers without factors ({check['fold_in']['readers']:,} left out of a second fit): "
                f"NDCG@10 {check['fold_in']['ndcg@10']:.4f} with their history folded in, "
                f"{check['fallback']['ndcg@10']:.4f} from the popularity-recency fallback"
            )
        if "oracle" in metrics:
            gap = metrics["oracle"]["ndcg@10"] - metrics["model"]["ndcg@10"]
            notes.append(f"distance to the oracle (true affinity x quality x recency): NDCG@10 {gap:.4f} below it")
        notes.append(
            "relevant: the candidates a reader read in the "
            f"{self.horizon_hours:g} hours after the split; popularity = readers in the 24 hours before it"
        )
        return Evaluation(
            ctx.spec.name,
            version,
            ctx.spec.kind,
            ctx.spec.feature_service,
            metrics,
            h.describe(),
            notes=notes,
            extras={"ndcg_curves": curves, "ks": list(KS)},
        )

    def train(self, ctx: TrainContext) -> Trained:
        """Fit on the reads before T and evaluate on the readers who read after it."""
        params = replace(self.params, seed=ctx.seed)
        split = self._split(ctx, ctx.window.as_of)
        with ctx.steps("fit", f"{ctx.spec.name}: ALS on {len(split.train):,} (reader, article) reads"):
            model = Recommender(params).fit(split.train, split.catalogue, split.holdout.as_of)
        evaluation = self._evaluation(ctx, split, model, None)
        first = pd.Timestamp(int(split.train["last_at"].min()), unit="s", tz="UTC")
        lineage = {
            "recommender": asdict(params),
            "as_of": split.holdout.as_of.isoformat(),
            "horizon_hours": self.horizon_hours,
            "catalogue_service": ctx.spec.feature_service,
            "readers": int(len(model.user_ids_)),
            "articles": int(len(model.item_ids_)),
            "reads": int(len(split.train)),
        }
        return Trained(
            model,
            evaluation,
            lineage,
            split.fingerprint,
            split.definition_hash,
            first.to_pydatetime(),
            (split.holdout.as_of + pd.Timedelta(hours=self.horizon_hours)).to_pydatetime(),
        )

    def evaluate(self, ctx: TrainContext, version, model: Recommender) -> Evaluation:
        """Re-score a registered version on its own split (rebuilt from its lineage)."""
        trainer = RecommendationTrainer(self.params, version.params.get("horizon_hours", self.horizon_hours))
        split = trainer._split(ctx, ctx.lineage_as_of(version))
        return ctx.note_rebuilt(
            trainer._evaluation(ctx, split, model, version.version), version, split.fingerprint, "reads"
        )


SPEC = ModelSpec(
    name="recommendation",
    kind="ranking",
    feature_service=CATALOGUE_SERVICE,
    entity_key=("user_id",),
    metrics=("ndcg@10", "precision@10", "recall@10", "map@10", "coverage"),
    trainer=RecommendationTrainer(),
    request_features="recommendation_v1",  # the latest read (a history it may fold in) and the brand
    route="/v1/recommendations/{user_id}",
    fallback=recent_prior,
    oracle="recommendation",
    description="Which ten articles will a reader read next? Implicit ALS on engaged reads",
    label_description=(
        "relevant = the candidate articles (the reader's brand, published in the 72 hours "
        "before T, not read before) the reader read in the 24 hours after T"
    ),
)
