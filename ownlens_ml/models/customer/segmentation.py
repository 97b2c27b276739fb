"""Segmentation: readers clustered by their reading habits into named, stable segments.

``ReaderSegmentation`` is a scikit-learn estimator: it standardises engagement features
(per-session habits shrunk towards the population for readers with few sessions, counts on a
log scale), picks the number of segments by silhouette over a range of k (near-ties go to
the finer segmentation), clusters with KMeans, and names each segment from its centroid by
fixed rules; readers with too few sessions to show a habit are "occasional". A retrain inherits the
previous version's names by matching centroids (Hungarian assignment), so a reader keeps
their segment name across retrains when their habits do not change. ``SegmentationTrainer``
is the clustering kind's trainer the shared engine calls; ``assign`` serves one or many readers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ownlens_ml.errors import EmptyWindowError, OwnLensError, ValidationError
from ownlens_ml.evaluation.oracle import oracle
from ownlens_ml.evaluation.report import Evaluation
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.models.customer.labels import HISTORY_DAYS, visit_days
from ownlens_ml.models.spec import ModelSpec, TrainContext, Trained, as_utc
from ownlens_ml.settings import Settings

if TYPE_CHECKING:
    from ownlens_ml.registry import ModelVersion

log = logging.getLogger(__name__)

SESSIONS = "sessions_30d"
"""How much evidence a reader's habits rest on: per-session values are shrunk by it."""
SEGMENT_FEATURES = (
    SESSIONS,
    "minutes_per_session_30d",
    "avg_scroll_depth_30d",
    "mobile_share_30d",
    "weekend_share_30d",
    "morning_share_30d",
    "newsletter_subscriber",
    "category_diversity_30d",
)
"""The habits segments are drawn from: how often, how deep, on what, when, by which channel, how broad."""
PER_SESSION = (
    "minutes_per_session_30d",
    "avg_scroll_depth_30d",
    "mobile_share_30d",
    "weekend_share_30d",
    "morning_share_30d",
    "category_diversity_30d",
)
LOG_SCALE = (SESSIONS, "minutes_per_session_30d")
OCCASIONAL = "occasional"
"""The name of readers with too few sessions to show a habit; never a cluster's name."""

FREQUENCY = ((0.75, "daily"), (-0.75, "light"))
"""A segment's visit-frequency word from its standardised sessions: above 0.75 "daily", below -0.75 "light"."""
HABITS = (
    ("newsletter_subscriber", 1, "newsletter loyal"),
    ("weekend_share_30d", 1, "weekend reader"),
    ("morning_share_30d", 1, "morning reader"),
    ("minutes_per_session_30d", 1, "deep reader"),
    ("minutes_per_session_30d", -1, "skimmer"),
    ("avg_scroll_depth_30d", 1, "thorough reader"),
    ("mobile_share_30d", 1, "mobile reader"),
    ("category_diversity_30d", 1, "all-rounder"),
)
"""(feature, direction, noun): a segment is called after the habit its centroid shows most strongly."""


class ReaderSegmentation(ClusterMixin, BaseEstimator):
    """KMeans over standardised reading habits, k by silhouette, segments named from centroids.

    Args:
        k_min, k_max: the range of segment counts tried.
        silhouette_tolerance: k values whose mean silhouette is within this of the best count
            as ties, and the largest of them is taken: when the silhouette cannot tell two
            segmentations apart, the finer one describes readers better.
        min_sessions: readers with fewer sessions in 30 days are ``OCCASIONAL``, not clustered.
        prior_sessions: per-session habits are shrunk towards the population mean as if the
            reader had this many extra sessions of average behaviour (few sessions, noisy shares).
        max_match_distance: a new centroid inherits a previous segment's name only within this
            Euclidean distance (standardised units); farther ones are named afresh.
        n_init: KMeans restarts per k.
        silhouette_sample: readers the silhouette is computed on (all, if fewer).
        random_state: seed of KMeans and of the silhouette sample.
    """

    def __init__(
        self,
        k_min: int = 3,
        k_max: int = 8,
        silhouette_tolerance: float = 0.01,
        min_sessions: int = 2,
        prior_sessions: float = 2.0,
        max_match_distance: float = 2.0,
        n_init: int = 10,
        silhouette_sample: int = 5000,
        random_state: int | None = 0,
    ):
        self.k_min = k_min
        self.k_max = k_max
        self.silhouette_tolerance = silhouette_tolerance
        self.min_sessions = min_sessions
        self.prior_sessions = prior_sessions
        self.max_match_distance = max_match_distance
        self.n_init = n_init
        self.silhouette_sample = silhouette_sample
        self.random_state = random_state

    # --- fitting ---------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y=None, previous: ReaderSegmentation | None = None) -> ReaderSegmentation:
        """Fit on one row per reader (the feature service's columns, at least ``SEGMENT_FEATURES``).

        Args:
            X: feature frame.
            y: ignored.
            previous: the version this one replaces; its names pass to the matching segments.

        Raises:
            ValidationError: a feature is missing, or too few readers to try ``k_max`` segments.
        """
        self._check_frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        eligible = self._eligible(X)
        if eligible.sum() < 10 * self.k_max:
            raise ValidationError(
                f"segmentation needs at least {10 * self.k_max} readers with {self.min_sessions}+ sessions in "
                f"30 days to try up to {self.k_max} segments; got {int(eligible.sum())} (train on more readers)"
            )
        rows = X.loc[eligible, list(SEGMENT_FEATURES)].astype(float)
        self.prior_ = {c: float(np.nanmean(rows[c])) if rows[c].notna().any() else 0.0 for c in PER_SESSION}
        habits = self._habits(rows, fill=False)
        self.fill_ = {c: float(np.nanmedian(habits[c])) if habits[c].notna().any() else 0.0 for c in SEGMENT_FEATURES}
        self.scaler_ = StandardScaler().fit(habits.fillna(self.fill_))
        z = self.scaler_.transform(habits.fillna(self.fill_))
        self.k_curve_, models = {}, {}
        sample = min(len(z), self.silhouette_sample)
        for k in range(self.k_min, self.k_max + 1):
            models[k] = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state).fit(z)
            self.k_curve_[k] = float(
                silhouette_score(z, models[k].labels_, sample_size=sample, random_state=self.random_state)
            )
        best = max(self.k_curve_.values())
        self.n_segments_ = max(k for k, s in self.k_curve_.items() if s >= best - self.silhouette_tolerance)
        self.kmeans_ = models[self.n_segments_]
        # centroids in habit units (before scaling), so another version can compare them in its own scale
        self.centroids_ = self.scaler_.inverse_transform(self.kmeans_.cluster_centers_)
        self.segment_shares_ = (np.bincount(self.kmeans_.labels_, minlength=self.n_segments_) / len(z)).tolist()
        self.segment_names_, self.inherited_ = self._names(previous)
        log.info(
            "segmentation: %d segments (silhouette %.3f) over %d readers: %s",
            self.n_segments_,
            self.k_curve_[self.n_segments_],
            len(z),
            ", ".join(self.segment_names_),
        )
        return self

    def _check_frame(self, X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise ValidationError(f"segmentation needs a DataFrame of features, got {type(X).__name__}")
        missing = [c for c in SEGMENT_FEATURES if c not in X.columns]
        if missing:
            raise ValidationError(f"segmentation features missing from the frame: {missing}")

    def _eligible(self, X: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(X[SESSIONS], errors="coerce").fillna(0).to_numpy() >= self.min_sessions

    def _habits(self, rows: pd.DataFrame, fill: bool = True) -> pd.DataFrame:
        """Per-session values shrunk towards the population by the reader's sessions; counts logged."""
        out = rows.astype(float).copy()
        n = out[SESSIONS].fillna(0).clip(lower=0).to_numpy()
        m = self.prior_sessions
        for c in PER_SESSION:
            prior = self.prior_[c]
            out[c] = (out[c].fillna(prior).to_numpy() * n + prior * m) / (n + m)
        for c in LOG_SCALE:
            out[c] = np.log1p(out[c].clip(lower=0))
        return out.fillna(self.fill_) if fill else out

    def standardise(self, X: pd.DataFrame) -> np.ndarray:
        """Standardised habits of every row (the space segments are drawn in); one row per input row."""
        check_is_fitted(self)
        self._check_frame(X)
        return self.scaler_.transform(self._habits(X[list(SEGMENT_FEATURES)]))

    # --- naming ----------------------------------------------------------------------------

    def _names(self, previous: ReaderSegmentation | None) -> tuple[list[str], list[bool]]:
        """Names inherited from ``previous`` by centroid matching, the rest from the centroid rules."""
        names: list[str | None] = [None] * self.n_segments_
        if previous is not None:
            check_is_fitted(previous)
            mine = self.kmeans_.cluster_centers_
            theirs = self.scaler_.transform(pd.DataFrame(previous.centroids_, columns=list(SEGMENT_FEATURES)))
            distance = np.sqrt(((mine[:, None, :] - theirs[None, :, :]) ** 2).sum(axis=2))
            for new, old in zip(*linear_sum_assignment(distance)):
                if distance[new, old] <= self.max_match_distance:
                    names[new] = previous.segment_names_[old]
        inherited = [n is not None for n in names]
        taken = {n for n in names if n is not None} | {OCCASIONAL}
        z = self.kmeans_.cluster_centers_
        # the most distinctive centroids choose first, so a clear "weekend reader" keeps the plain name
        strength = [max(z[i, SEGMENT_FEATURES.index(f)] * d for f, d, _ in HABITS) for i in range(len(z))]
        for i in sorted(range(len(z)), key=lambda i: -strength[i]):
            if names[i] is None:
                names[i] = _rule_name(z[i], taken)
                taken.add(names[i])
        return [str(n) for n in names], inherited

    def profile(self) -> pd.DataFrame:
        """One row per segment: its share of readers, its standardised centroid and habits in their units."""
        check_is_fitted(self)
        z = pd.DataFrame(self.kmeans_.cluster_centers_, columns=[f"z_{c}" for c in SEGMENT_FEATURES])
        raw = pd.DataFrame(self.centroids_, columns=list(SEGMENT_FEATURES))
        for c in LOG_SCALE:
            raw[c] = np.expm1(raw[c])
        frame = pd.concat(
            [pd.DataFrame({"segment": self.segment_names_, "share": self.segment_shares_}), z, raw], axis=1
        )
        return frame.set_index("segment")

    # --- assignment ------------------------------------------------------------------------

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The segment name of each row (``OCCASIONAL`` below ``min_sessions`` sessions)."""
        check_is_fitted(self)
        self._check_frame(X)
        out = np.full(len(X), OCCASIONAL, dtype=object)
        eligible = self._eligible(X)
        if eligible.any():
            z = self.standardise(X.loc[eligible])
            out[eligible] = np.asarray(self.segment_names_, dtype=object)[self.kmeans_.predict(z)]
        return out

    def fit_predict(self, X: pd.DataFrame, y=None, previous: ReaderSegmentation | None = None) -> np.ndarray:
        return self.fit(X, previous=previous).predict(X)


def _rule_name(z: np.ndarray, taken: set[str]) -> str:
    """A name from a standardised centroid: a frequency word and its strongest habit, unique in ``taken``."""
    sessions = z[SEGMENT_FEATURES.index(SESSIONS)]
    frequency = next((word for cut, word in FREQUENCY if (sessions >= cut if cut > 0 else sessions <= cut)), "")
    ranked = sorted(HABITS, key=lambda h: -z[SEGMENT_FEATURES.index(h[0])] * h[1])
    for _, _, noun in ranked:
        name = f"{frequency} {noun}".strip()
        if name not in taken:
            return name
    base, n = f"{frequency} {ranked[0][2]}".strip(), 2
    while f"{base} {n}" in taken:
        n += 1
    return f"{base} {n}"


def segment_time(visits: pd.DataFrame, as_of) -> pd.Timestamp:
    """The snapshot time segments are drawn at: midnight of ``as_of`` (default: the end of the data)."""
    if visits.empty:
        raise EmptyWindowError("segmentation: no sessions; run `ownlens-ml data generate` or `data import` first")
    data_end = visits["day"].max() + pd.Timedelta(days=1)
    if as_of is None:
        return data_end
    return min(as_utc(as_of).floor("D"), data_end)


def segment_readers(settings: Settings, as_of=None, active_days: int | None = HISTORY_DAYS) -> pd.DataFrame:
    """The entity frame of a segmentation: ``user_id`` and ``event_timestamp`` (the snapshot time T).

    Args:
        settings: profile and locations.
        as_of: draw segments as of this moment (default: the end of the data).
        active_days: only readers with a session in this many days before T; None: every
            reader who visited before T.
    """
    visits = visit_days(settings)
    t = segment_time(visits, as_of)
    seen = visits["day"] < t
    if active_days is not None:
        seen &= visits["day"] >= t - pd.Timedelta(days=active_days)
    users = np.sort(visits.loc[seen, "user_id"].unique())
    if len(users) == 0:
        raise EmptyWindowError(
            f"segmentation: no reader visited in the {active_days} days before {t.date()}; choose a later --as-of"
        )
    # one timestamp unit whatever ``as_of`` was parsed from, so a rebuilt frame fingerprints the same
    stamps = pd.Series(t, index=range(len(users))).astype("datetime64[ns, UTC]")
    return pd.DataFrame({"user_id": users.astype("int64"), "event_timestamp": stamps})


def segmentation_estimator(seed: int) -> ReaderSegmentation:
    """The unfitted segmentation estimator of one training run."""
    return ReaderSegmentation(random_state=seed)


def assign(model: ReaderSegmentation, features: pd.DataFrame) -> np.ndarray:
    """Segment names for feature rows (offline or online vectors of the model's feature service).

    Args:
        model: a fitted ``ReaderSegmentation`` (e.g. ``registry.load_model(settings, "segmentation")[1]``).
        features: one row per reader with the service's features (None/NaN where missing).

    Returns:
        One name per row, in order.
    """
    numeric = features[list(SEGMENT_FEATURES)].apply(pd.to_numeric, errors="coerce").astype(float)
    return model.predict(numeric)


# --- training and evaluation (the clustering kind's trainer) -----------------------------


def _silhouette(z: np.ndarray, labels: np.ndarray, sample: int) -> float | None:
    if len(set(labels)) < 2:
        return None
    return float(silhouette_score(z, labels, sample_size=min(len(z), sample), random_state=0))


def segmentation_metrics(
    model: ReaderSegmentation,
    x: pd.DataFrame,
    champion: tuple[ModelVersion, ReaderSegmentation] | None,
    truth: np.ndarray | None,
) -> tuple[dict[str, dict[str, float]], dict]:
    """Silhouette, adjusted Rand index vs the latent segments, and name stability.

    Name stability is the share of readers whose segment name a retrain keeps: against the
    champion when there is one, else against a refit with another seed.

    Every scorer (the model, the champion, the latent truth as "oracle") is measured on the
    same readers, those the model clusters (``min_sessions``+ sessions), in the model's own
    standardised space, so their silhouettes compare.

    Returns:
        Metrics per scorer, and the report's extras (k curve, profile, transitions).
    """
    names = model.predict(x)
    rows = names != OCCASIONAL
    z = model.standardise(x.loc[rows])
    labels = {"model": names[rows]}
    extras: dict = {
        "k_curve": {int(k): v for k, v in model.k_curve_.items()},
        "k": int(model.n_segments_),
        "k_tolerance": model.silhouette_tolerance,
        "profile": model.profile(),
    }
    if champion is not None:
        entry, previous = champion
        labels[f"champion_v{entry.version}"] = previous.predict(x)[rows]
        extras["previous"] = entry.label
        extras["transitions"] = pd.crosstab(
            pd.Series(labels[f"champion_v{entry.version}"], name="previous"), pd.Series(labels["model"], name="segment")
        )
    if truth is not None:
        labels["oracle"] = np.asarray(truth, dtype=object)[rows]
    metrics: dict[str, dict[str, float]] = {}
    for who, lab in labels.items():
        values = {
            "silhouette": _silhouette(z, lab, model.silhouette_sample),
            "rows": int(rows.sum()),
            "segments": len(set(lab)),
        }
        if truth is not None:
            values["adjusted_rand"] = float(adjusted_rand_score(labels["oracle"], lab))
        metrics[who] = {k: v for k, v in values.items() if v is not None}
    if champion is not None:
        reference = labels[f"champion_v{champion[0].version}"]
    else:  # no earlier version: a refit with another seed at the same k, naming from this one
        refit = (
            clone(model)
            .set_params(random_state=(model.random_state or 0) + 1, k_min=model.n_segments_, k_max=model.n_segments_)
            .fit(x, previous=model)
        )
        reference = refit.predict(x)[rows]
    metrics["model"]["name_stability"] = float(np.mean(reference == labels["model"]))
    return metrics, extras


class SegmentationTrainer:
    """The clustering kind's trainer: readers at T -> point-in-time habits -> fit (names from
    the champion) -> metrics beside the champion and the latent segments."""

    def train(self, ctx: TrainContext) -> Trained:
        spec = ctx.spec
        with ctx.steps("labels", f"{spec.name}: readers active in the {HISTORY_DAYS} days before T"):
            readers = segment_readers(ctx.settings, ctx.window.as_of)
        frame, x, training_set = self._features(ctx, readers)
        champion = ctx.rival(None, ReaderSegmentation)
        with ctx.steps("fit", f"{spec.name}: fit {len(x):,} readers, k = 3..8"):
            model = spec.estimator(ctx.seed).fit(x, previous=champion[1] if champion else None)
        evaluation = self._evaluate(ctx, model, None, frame, x, champion)
        t = readers["event_timestamp"].iloc[0]
        final = {k: v for k, v in model.get_params().items() if isinstance(v, (bool, int, float, str))}
        params = {
            "seed": ctx.seed,
            "estimator": type(model).__name__,
            "hyperparameters": final,
            "as_of": t.isoformat(),
            "readers": len(frame),
            "segments": model.segment_names_,
            "k_curve": {str(k): v for k, v in model.k_curve_.items()},
            "names_inherited_from": champion[0].version if champion else None,
        }
        return Trained(
            model,
            evaluation,
            params,
            training_set.fingerprint,
            training_set.definition_hash,
            (t - pd.Timedelta(days=HISTORY_DAYS)).to_pydatetime(),
            t.to_pydatetime(),
            x.assign(__output__=model.predict(x)),
        )

    def evaluate(self, ctx: TrainContext, version: ModelVersion, model: ReaderSegmentation) -> Evaluation:
        """Re-score ``version`` on the readers it was fitted on (rebuilt at its T); notes if the data changed."""
        readers = segment_readers(ctx.settings, ctx.lineage_as_of(version))
        frame, x, training_set = self._features(ctx, readers)
        evaluation = self._evaluate(
            ctx, model, version.version, frame, x, ctx.rival(version.version, ReaderSegmentation)
        )
        return ctx.note_rebuilt(evaluation, version, training_set.fingerprint, "readers and features")

    @staticmethod
    def _features(ctx: TrainContext, readers: pd.DataFrame):
        from ownlens_ml.features import store  # Feast: imported when features are read, not with the specs

        spec = ctx.spec
        with ctx.steps("training_set", f"{spec.name}: point-in-time features from {spec.feature_service}"):
            training_set = store.training_set(ctx.settings, spec.feature_service, readers)
        return training_set.frame, feature_matrix(training_set.frame, training_set.features), training_set

    @staticmethod
    def _evaluate(
        ctx: TrainContext,
        model: ReaderSegmentation,
        version: int | None,
        frame: pd.DataFrame,
        x: pd.DataFrame,
        champion,
    ) -> Evaluation:
        spec, notes = ctx.spec, []
        truth = None
        try:
            truth = oracle(ctx.settings, spec.oracle, frame[["user_id"]])
        except OwnLensError as err:  # imported data: no latent segments to compare with
            notes.append(f"no generator truth, so no adjusted Rand index against latent segments: {err}")
        with ctx.steps("evaluate", f"{spec.name}: silhouette, agreement with the truth and the champion"):
            metrics, extras = segmentation_metrics(model, x, champion, truth)
        t = frame["event_timestamp"].iloc[0]
        clustered = metrics["model"]["rows"]
        holdout = (
            f"{clustered:,} readers with {model.min_sessions}+ sessions in the {HISTORY_DAYS} days before "
            f"{t:%Y-%m-%d} ({len(frame) - clustered:,} more active readers are {OCCASIONAL!r}); "
            f"{model.n_segments_} segments"
        )
        if champion is None:
            notes.append(
                "no other champion to compare with: name stability is measured against a refit with "
                "another seed (names passed on by centroid matching)"
            )
        return Evaluation(
            spec.name, version, spec.kind, spec.feature_service, metrics, holdout, notes=notes, extras=extras
        )


SPEC = ModelSpec(
    name="segmentation",
    kind="clustering",
    feature_service="segmentation_v1",
    entity_key=("user_id",),
    metrics=("silhouette", "adjusted_rand", "name_stability"),
    estimator=segmentation_estimator,
    trainer=SegmentationTrainer(),
    route="/v1/segments/{user_id}",
    oracle="segments",
    description="Which reading habits does a reader share with others? Named segments, stable across retrains",
    label_description=f"no label: readers with 2+ sessions in the {HISTORY_DAYS} days before T clustered by habits",
)
