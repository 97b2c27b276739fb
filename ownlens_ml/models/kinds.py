"""Task kinds, declared once: how each kind predicts, what it reports, what its gate compares.

Engines look a spec's kind up here instead of branching on names. Supervised kinds (binary,
regression) are trained by the shared tabular engine from a label builder; the others
(clustering, ranking, rule) bring a ``Trainer`` of their own and share the rest: the
registry, the gate, the report and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ownlens_ml import registry
from ownlens_ml.errors import UnknownModelError
from ownlens_ml.evaluation import binary_metrics, regression_metrics
from ownlens_ml.models.baselines import baselines


@dataclass(frozen=True)
class Monitoring:
    """How a model is watched once deployed (``ownlens_ml.monitoring``); a spec may override its kind's.

    Attributes:
        skip: features left out of drift tests (e.g. ones that grow with time by design).
        level: family-wise false-alarm level of one drift run, across every feature and test (Bonferroni).
        min_rows: windows with fewer rows are "too few rows to judge", never an alarm.
        psi_floor, js_floor, ks_floor, null_floor: effect sizes below which a significant shift is
            reported as a notice, not alerted (PSI, Jensen-Shannon distance, KS statistic, null-rate change).
        live_metrics: the kind's metrics computed from matured labels.
        skew_rate: share of sampled online rows whose served value may differ unexplained from the
            offline one before the feature is reported as skewed.
        skew_sample: online rows recomputed per skew check.
        max_online_age_hours: older online values are stale (an alert).
    """

    skip: tuple[str, ...] = ()
    level: float = 0.05
    min_rows: int = 200
    psi_floor: float = 0.1
    js_floor: float = 0.05
    ks_floor: float = 0.1
    null_floor: float = 0.05
    live_metrics: tuple[str, ...] = ()
    skew_rate: float = 0.01
    skew_sample: int = 500
    max_online_age_hours: float = 36.0


class Classifier(Protocol):
    """What a loaded binary model offers."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray: ...


class Regressor(Protocol):
    """What a loaded regression or clustering model offers (a clusterer predicts segment names)."""

    def predict(self, x: pd.DataFrame) -> np.ndarray: ...


class Ranker(Protocol):
    """What a loaded ranking model offers: top-k items per entity."""

    def recommend(
        self, user_id: int, k: int = 10, brand_id: int | None = None, history=None, personal: bool = True
    ) -> Any: ...


class Rule(Protocol):
    """What a loaded scoring rule offers: its parameters as a document."""

    def to_json(self) -> bytes: ...


def methods_of(protocol: type) -> tuple[str, ...]:
    """The methods a Protocol declares, which a loaded artifact of the kind must have."""
    return tuple(name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_"))


@dataclass(frozen=True)
class TaskKind:
    """What every model of one kind has in common.

    Attributes:
        name: ``binary``, ``regression``, ``clustering``, ``ranking`` or ``rule``.
        metrics: every metric the kind can report, mapped to True where higher is better.
        gate_metric: the default gate metric, also the headline of listings.
        artifact_format: the codec the registry stores a version with (``registry.ARTIFACT_FORMATS``;
            skops is the registry's own, the others are registered by ``models/kinds_artifacts.py``).
        artifact: the Protocol a loaded artifact satisfies; ``registry.load_model`` checks its methods.
        plots: report figures, names in ``ownlens_ml.evaluation.report.PLOTS``.
        supervised: trained by the shared tabular engine from a label builder.
        predict: ``(model, feature matrix) -> outputs`` where the kind scores feature rows.
        score: ``(labels, outputs) -> metrics`` for supervised kinds.
        baselines: ``seed -> unfitted baselines`` fitted on the same rows as the model.
        check_outputs: ``outputs -> problem or None``, run before registration.
        check_signal: ``(validation labels, outputs) -> problem or None``: refuses outputs that are
            (nearly) constant or no better than chance on the validation rows.
        bad_labels: ``labels -> mask`` of the labels the kind refuses (label files a user brings).
        label_rule: what a label must be, for the message naming refused ones.
        importance_scoring: scikit-learn scorer for permutation importance.
        classes: the labels every part of a split must hold (classifiers), else empty.
        monitoring: how its models are watched unless their spec says otherwise.
        route: the path a model of the kind answers at (``{model}``: the spec's name), with its
            answer schema in ``ownlens_ml/serving/app.py``, the kind's serving adapter.
    """

    name: str
    metrics: Mapping[str, bool]
    gate_metric: str
    artifact_format: str
    artifact: type
    plots: tuple[str, ...]
    supervised: bool
    predict: Callable[[Any, pd.DataFrame], np.ndarray] | None = None
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None
    baselines: Callable[[int], dict[str, Any]] = field(default=lambda seed: {})
    check_outputs: Callable[[np.ndarray], str | None] = field(default=lambda outputs: None)
    check_signal: Callable[[np.ndarray, np.ndarray], str | None] = field(default=lambda labels, outputs: None)
    bad_labels: Callable[[pd.Series], np.ndarray] = field(default=lambda labels: np.zeros(len(labels), bool))
    label_rule: str = ""
    importance_scoring: str | None = None
    classes: tuple = ()
    monitoring: Monitoring = field(default_factory=Monitoring)
    route: str = "/v1/predict/{model}"

    def improvement(self, metric: str, challenger: float, incumbent: float) -> float:
        """How much better ``challenger`` is on ``metric``: positive is better, whatever the direction."""
        return challenger - incumbent if self.metrics[metric] else incumbent - challenger


def _probability_of_one(model, x: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(x)[:, 1]


def _prediction(model, x: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict(x), dtype=float)


def _not_finite(outputs: np.ndarray) -> str | None:
    bad = int((~np.isfinite(outputs)).sum())
    return f"{bad} predictions are not finite" if bad else None


def _not_probabilities(outputs: np.ndarray) -> str | None:
    problem = _not_finite(outputs)
    if problem is None and ((outputs < 0) | (outputs > 1)).any():
        problem = f"probabilities outside [0, 1] (min {outputs.min()}, max {outputs.max()})"
    return problem


def _spread_problem(outputs: np.ndarray) -> str | None:
    outputs = np.asarray(outputs, dtype=float)
    spread = float(outputs.max() - outputs.min()) if len(outputs) else 0.0
    if spread <= 1e-6 * max(1.0, float(np.abs(outputs).max(initial=0.0))):
        return (
            f"its outputs are constant ({outputs[0] if len(outputs) else float('nan'):.6g} on all "
            f"{len(outputs):,} validation rows): it learned nothing; train on more positives or more data"
        )
    return None


def _no_better_than_chance(labels: np.ndarray, outputs: np.ndarray) -> str | None:
    from sklearn.metrics import roc_auc_score

    problem = _spread_problem(outputs)
    labels = np.asarray(labels)
    if problem is None and len(np.unique(labels)) == 2:
        auc = float(roc_auc_score(labels, outputs))
        if auc <= 0.5:
            problem = (
                f"its validation ROC-AUC is {auc:.4f}, no better than chance (0.5) on "
                f"{int(labels.sum()):,} positives: it learned nothing usable"
            )
    return problem


def _no_better_than_the_mean(labels: np.ndarray, outputs: np.ndarray) -> str | None:
    problem = _spread_problem(outputs)
    labels = np.asarray(labels, dtype=float)
    if problem is None and len(labels) > 1 and labels.std() > 0:
        r2 = 1.0 - float(np.mean((labels - outputs) ** 2)) / float(labels.var())
        if r2 <= 0:
            problem = (
                f"its validation R² is {r2:.4f}: no better than predicting the mean label (chance for a regression)"
            )
    return problem


def _not_zero_one(labels: pd.Series) -> np.ndarray:
    return ~labels.isin([0, 1]).to_numpy()


MAX_REGRESSION_LABEL = 1e30
"""XGBoost holds labels as 32-bit floats (at most 3.4e38) and sums their squared errors: a
bound well inside that range keeps every estimator's arithmetic finite."""


def _not_finite_number(labels: pd.Series) -> np.ndarray:
    values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return ~(np.abs(values) < MAX_REGRESSION_LABEL)


BINARY = TaskKind(
    name="binary",
    metrics={
        "roc_auc": True,
        "pr_auc": True,
        "log_loss": False,
        "brier": False,
        "calibration_error": False,
        "top_decile_lift": True,
    },
    gate_metric="roc_auc",
    artifact_format="skops",
    artifact=Classifier,
    plots=("roc_pr", "calibration", "gains", "importance", "comparison"),
    supervised=True,
    predict=_probability_of_one,
    score=binary_metrics,
    baselines=partial(baselines, classifier=True),
    check_outputs=_not_probabilities,
    check_signal=_no_better_than_chance,
    bad_labels=_not_zero_one,
    label_rule="must be 0 or 1 for a binary model",
    importance_scoring="roc_auc",
    classes=(0, 1),
    monitoring=Monitoring(live_metrics=("roc_auc", "calibration_error")),
)

REGRESSION = TaskKind(
    name="regression",
    metrics={"rmse": False, "mae": False, "r2": True, "spearman": True},
    gate_metric="rmse",
    artifact_format="skops",
    artifact=Regressor,
    plots=("predicted_vs_actual", "importance", "comparison"),
    supervised=True,
    predict=_prediction,
    score=regression_metrics,
    baselines=partial(baselines, classifier=False),
    check_outputs=_not_finite,
    check_signal=_no_better_than_the_mean,
    bad_labels=_not_finite_number,
    label_rule=f"must be a finite number within ±{MAX_REGRESSION_LABEL:g} (XGBoost holds labels as 32-bit floats)",
    importance_scoring="r2",
    monitoring=Monitoring(live_metrics=("rmse", "spearman")),
)


def _segment_names(model, x: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict(x), dtype=object)


def _not_names(outputs: np.ndarray) -> str | None:
    bad = sum(1 for name in outputs if not isinstance(name, str) or not name)
    return f"{bad} rows have no segment name" if bad else None


CLUSTERING = TaskKind(
    name="clustering",
    # silhouette: separation in the model's own standardised space; adjusted_rand: agreement
    # with the generator's latent segments; name_stability: readers keeping the champion's name
    metrics={"silhouette": True, "adjusted_rand": True, "name_stability": True},
    gate_metric="silhouette",
    artifact_format="skops",
    artifact=Regressor,
    plots=("k_selection", "segment_profiles", "segment_transitions", "comparison"),
    supervised=False,
    route="/v1/segments/{model}/{user_id}",
    predict=_segment_names,
    check_outputs=_not_names,
)

RANKING = TaskKind(
    name="ranking",
    metrics={"ndcg@10": True, "precision@10": True, "recall@10": True, "map@10": True, "coverage": True},
    gate_metric="ndcg@10",
    artifact_format="als-npz",
    artifact=Ranker,
    plots=("ndcg_at_k", "comparison"),
    supervised=False,
    route="/v1/recommendations/{model}/{user_id}",
)
"""Top-k lists per reader, scored at k against what readers read next (baselines: popularity, recency)."""

RULE = TaskKind(
    name="rule",
    metrics={
        "f1_2x": True,
        "recall_2x": True,
        "precision": True,
        "recall_all": True,
        "false_alarms_per_series_day": False,
        "median_hours_to_detect": False,
    },
    gate_metric="f1_2x",
    artifact_format="rule-json",
    artifact=Rule,
    plots=("detection_curve", "activity_bursts", "comparison"),
    supervised=False,
    route="/v1/trending/{model}",
)
"""A scoring rule with parameters and no estimator, scored against known events (injected bursts)."""

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (BINARY, REGRESSION, CLUSTERING, RANKING, RULE)}
for _kind in KINDS.values():
    registry.require_methods(_kind.name, methods_of(_kind.artifact))


def get_kind(name: str) -> TaskKind:
    """The kind called ``name``; the error lists the declared ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownModelError(f"no task kind {name!r}; declared: {', '.join(KINDS)}") from None
