"""What a model declares: one frozen spec per model, checked when it is defined; the engines do the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from ownlens_ml.errors import EmptyWindowError, SpecError
from ownlens_ml.evaluation.report import Evaluation
from ownlens_ml.models.kinds import KINDS, Monitoring, TaskKind
from ownlens_ml.progress import Steps
from ownlens_ml.settings import Settings

if TYPE_CHECKING:
    from ownlens_ml.registry import ModelVersion


def as_utc(moment) -> pd.Timestamp:
    """``moment`` (datetime, timestamp or string) as a UTC timestamp; a naive one is taken as UTC."""
    t = pd.Timestamp(moment)
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")


@dataclass(frozen=True)
class LabelWindow:
    """When labels are drawn: as-of dates up to ``as_of`` whose outcome window has closed."""

    as_of: datetime | None
    """Train as if it were this moment: every label's outcome must be known by then (default: end of data)."""
    window_days: int = 30
    step_days: int = 7
    """Days between consecutive as-of dates of one training set."""

    def cutoff(self, first: pd.Timestamp, data_end: pd.Timestamp, what: str) -> pd.Timestamp:
        """The moment every outcome must be known by: ``as_of`` (whole UTC days), else the end of data.

        Raises:
            EmptyWindowError: ``as_of`` lies after the data ends or before it begins; training
                "as if" then would silently mean "as of the last day".
        """
        if self.as_of is None:
            return data_end
        as_of = as_utc(self.as_of).floor("D")
        if as_of > data_end or as_of <= first:
            raise EmptyWindowError(
                f"{what}: --as-of {as_of.date()} is outside the data, which covers "
                f"{first.date()}..{(data_end - pd.Timedelta(days=1)).date()}; choose a day "
                "inside it"
            )
        return as_of


@dataclass(frozen=True)
class Gate:
    """Promotion rule: the challenger must beat the champion and every baseline on ``metric``."""

    metric: str | None = None
    """None: the kind's gate metric."""
    min_gain: float = 0.0
    """How much better than the champion the challenger must be (in the metric's own units)."""


@dataclass
class TrainContext:
    """What a trainer gets: where the data is, which window, the seed, progress, the champion."""

    settings: Settings
    spec: ModelSpec
    window: LabelWindow
    seed: int
    steps: Steps
    champion: Callable[[], tuple[ModelVersion, Any] | None]
    """The current champion and its model, or None (none yet, or its artifact is unloadable)."""
    labels: pd.DataFrame | None = None
    """Labels the user brought (``train --labels``) instead of the spec's label builder."""
    labels_from: str | None = None
    """The file those labels came from."""

    def rival(self, exclude: int | None, artifact: type | None = None) -> tuple[ModelVersion, Any] | None:
        """The champion to compare with, left out when it is the version being scored (``exclude``) or,
        given ``artifact``, holds another kind of model. Every trainer compares through this."""
        champion = self.champion()
        if champion is None or champion[0].version == exclude:
            return None
        if artifact is not None and not isinstance(champion[1], artifact):
            return None
        return champion

    @staticmethod
    def lineage_as_of(version: ModelVersion) -> pd.Timestamp | None:
        """The as-of moment a version was trained at, from its lineage (None: the end of data then)."""
        as_of = version.params.get("as_of")
        return pd.Timestamp(as_of) if as_of else None

    @staticmethod
    def note_rebuilt(evaluation: Evaluation, version: ModelVersion, fingerprint: str, what: str) -> Evaluation:
        """``evaluation`` with a note when ``what`` rebuilt from ``version``'s lineage does not fingerprint
        as the one it was trained on (data or feature definitions changed since)."""
        if fingerprint != version.training_set_fingerprint:
            evaluation.notes.append(
                f"the {what} rebuilt from this version's lineage differ from those it was "
                "trained on (data or feature definitions changed since)"
            )
        return evaluation


@dataclass
class Trained:
    """A fitted, evaluated model, ready to register."""

    model: Any
    evaluation: Evaluation
    params: dict
    fingerprint: str
    definition_hash: str | None
    window_start: datetime
    window_end: datetime
    reference: pd.DataFrame | None = None
    """Rows the version's reference profile describes (its holdout): the features, and the model's
    output in column ``__output__``; None for kinds that read no feature rows."""


class Trainer(Protocol):
    """Fit-and-evaluate code of a kind the shared tabular engine does not train."""

    def train(self, ctx: TrainContext) -> Trained: ...

    def evaluate(self, ctx: TrainContext, version: ModelVersion, model: Any) -> Evaluation: ...


@dataclass(frozen=True)
class ModelSpec:
    """Everything specific to one model; shared engines train, evaluate, register and serve it.

    Attributes:
        name: registry name, e.g. ``churn``.
        kind: a key of ``ownlens_ml.models.kinds.KINDS``; engines look its behaviour up there.
        feature_service: the Feast feature service the model reads, e.g. ``churn_v1``.
        entity_key: join key(s) of the rows, e.g. ``("user_id",)``; a string is one key.
        metrics: metrics reported, all of the kind; the first is the headline.
        build_labels: ``(settings, window) -> frame`` of the entity key(s), ``event_timestamp``
            (tz-aware UTC, the as-of time) and ``label``; required by supervised kinds.
        estimator: ``seed -> unfitted estimator`` (preprocessing inside the pipeline).
        trainer: fit-and-evaluate code for kinds the tabular engine does not train.
        extra_baselines: ``seed -> unfitted baselines`` of this model only; they see the
            feature matrix plus ``baseline_columns``.
        baseline_columns: entity columns the extra baselines read (e.g. ``author_id``).
        gate: the promotion rule.
        oracle: name of the generator-truth oracle (``ownlens_ml.evaluation.oracle``).
        description: one line for listings.
        label_description: what the label means, one line.
        window: default label window; ``train --as-of`` moves its end.
        population: ``(settings, as_of) -> frame`` of the entity keys batch scoring scores
            at ``as_of``; None: the model is not batch-scored.
        monitoring: how the deployed model is watched; None: its kind's defaults.
        request_features: the feature service a non-tabular model's online answer reads at request
            time (e.g. a reader's latest read); None: a clustering model reads its ``feature_service``,
            the others read none. Tabular kinds read their version's feature service.
        route: a path the online answer is also at, beside its kind's (``TaskKind.route``), e.g.
            ``/v1/trending``; None: the kind's path only.
        fallback: ranking kinds: ``settings -> model`` ranking readers before any version is
            registered (e.g. the popularity of recent reads); None: no answer until one is.
        current: rule kinds: ``(settings, model) -> frame`` of what the rule finds now, the
            online answer (recomputed off the request path).
    """

    name: str
    kind: str
    feature_service: str | None
    entity_key: tuple[str, ...]
    metrics: tuple[str, ...]
    build_labels: Callable[[Settings, LabelWindow], pd.DataFrame] | None = None
    estimator: Callable[[int], Any] | None = None
    trainer: Trainer | None = None
    extra_baselines: Callable[[int], dict[str, Any]] | None = None
    baseline_columns: tuple[str, ...] = ()
    gate: Gate = field(default_factory=Gate)
    oracle: str | None = None
    description: str = ""
    label_description: str = ""
    window: LabelWindow = field(default_factory=lambda: LabelWindow(as_of=None))
    population: Callable[[Settings, datetime], pd.DataFrame] | None = None
    monitoring: Monitoring | None = None
    request_features: str | None = None
    route: str | None = None
    fallback: Callable[[Settings], Any] | None = None
    current: Callable[[Settings, Any], pd.DataFrame] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.entity_key, str):
            object.__setattr__(self, "entity_key", (self.entity_key,))
        if self.request_features is None and self.kind == "clustering":
            object.__setattr__(self, "request_features", self.feature_service)

        def refuse(field_name: str, problem: str) -> None:
            raise SpecError(f"model spec {self.name!r}, field {field_name!r}: {problem}")

        if self.kind not in KINDS:
            refuse("kind", f"unknown kind {self.kind!r}; declared: {', '.join(KINDS)}")
        kind = KINDS[self.kind]
        if not self.entity_key:
            refuse("entity_key", "needs at least one join key")
        if not self.metrics:
            refuse("metrics", "needs at least one metric")
        for metric in self.metrics:
            if metric not in kind.metrics:
                refuse("metrics", f"{metric!r} is not a {kind.name} metric; choose from {', '.join(kind.metrics)}")
        if self.gate.metric is not None and self.gate.metric not in kind.metrics:
            refuse(
                "gate",
                f"gate metric {self.gate.metric!r} is not a {kind.name} metric; choose from {', '.join(kind.metrics)}",
            )
        if kind.supervised:
            for name in ("build_labels", "estimator"):
                if not callable(getattr(self, name)):
                    refuse(name, f"a {kind.name} model needs a callable {name}")
            if self.feature_service is None:
                refuse("feature_service", f"a {kind.name} model reads a feature service")
        elif self.trainer is None or not callable(getattr(self.trainer, "train", None)):
            refuse("trainer", f"a {kind.name} model needs a trainer with train() and evaluate()")
        if self.kind == "rule" and not callable(self.current):
            refuse("current", "a rule model needs a callable current(settings, rule) to be answered online")
        if self.route is not None and not self.route.startswith("/"):
            refuse("route", f"{self.route!r} is not a path; start it with /")
        if self.extra_baselines is not None and not callable(self.extra_baselines):
            refuse("extra_baselines", "must be a callable seed -> baselines")

    @property
    def task_kind(self) -> TaskKind:
        return KINDS[self.kind]

    @property
    def routes(self) -> tuple[str, ...]:
        """The paths the model answers at online: its kind's, then ``route`` if declared."""
        return (self.task_kind.route.replace("{model}", self.name), *((self.route,) if self.route else ()))

    @property
    def watch(self) -> Monitoring:
        """The monitoring settings in force: the spec's, else its kind's."""
        return self.monitoring or self.task_kind.monitoring

    @property
    def gate_metric(self) -> str:
        return self.gate.metric or self.task_kind.gate_metric
