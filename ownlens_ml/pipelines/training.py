"""The training engine, one for every model spec.

labels and as-of times → point-in-time training set from the spec's feature service →
temporal train/validation/test split → fit → evaluate beside the baselines, the current
champion and the oracle → validators → register → promote if the gate passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sklearn.inspection import permutation_importance

from ownlens_ml import registry
from ownlens_ml.errors import EmptyWindowError, ModelValidationError, OwnLensError, UnknownModelVersionError
from ownlens_ml.evaluation import improvement, score_metrics
from ownlens_ml.evaluation.report import Evaluation, write_report
from ownlens_ml.features import store
from ownlens_ml.models import get_spec
from ownlens_ml.models.baselines import baselines, feature_matrix
from ownlens_ml.models.spec import LabelWindow, ModelSpec
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

SEED = 7
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.15
MAX_IMPORTANCE_SHARE = 0.9
"""A single feature carrying more than this share of the importance smells of leakage."""


@dataclass(frozen=True)
class Split:
    """Rows of one training set cut by time: every validation row is later than every
    training row, every test row later than every validation row."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def describe(self) -> dict[str, dict]:
        return {part: {"rows": len(rows), "from": rows["event_timestamp"].min().isoformat(),
                       "to": rows["event_timestamp"].max().isoformat()}
                for part, rows in (("train", self.train), ("validation", self.validation), ("test", self.test))}


def temporal_split(frame: pd.DataFrame, test_fraction: float = TEST_FRACTION,
                   validation_fraction: float = VALIDATION_FRACTION) -> Split:
    """Cut at ``event_timestamp`` boundaries (never one timestamp across two parts): the
    newest ~``test_fraction`` of rows test, the ~``validation_fraction`` before validation."""
    counts = frame.groupby("event_timestamp").size().sort_index()
    if len(counts) < 3:
        raise EmptyWindowError(f"a temporal split needs at least 3 distinct label times, got {len(counts)}; "
                               "train on a longer stretch of data")
    at_or_after = counts[::-1].cumsum()[::-1] / counts.sum()
    test_start = at_or_after.index[at_or_after >= test_fraction].max()
    validation_start = at_or_after.index[at_or_after >= test_fraction + validation_fraction].max()
    validation_start = min(validation_start, counts.index[counts.index < test_start].max())
    if validation_start == counts.index.min():
        validation_start = counts.index[1]
        test_start = max(test_start, counts.index[2])
    stamps = frame["event_timestamp"]
    return Split(frame[stamps < validation_start], frame[(stamps >= validation_start) & (stamps < test_start)],
                 frame[stamps >= test_start])


@dataclass
class Prepared:
    """A spec's labelled rows with their point-in-time features, split by time."""

    spec: ModelSpec
    window: LabelWindow
    training_set: store.TrainingSet
    split: Split

    def xy(self, part: str) -> tuple[pd.DataFrame, np.ndarray]:
        rows = getattr(self.split, part)
        return feature_matrix(rows, self.training_set.features), rows["label"].to_numpy()


@dataclass
class TrainResult:
    version: registry.ModelVersion
    evaluation: Evaluation
    report: Path
    promoted: bool
    refusals: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per step: labels, training_set, fit, evaluate, register."""


class _Steps:
    """Named steps with a spinner (when asked) and their wall times."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, key: str, label: str) -> Iterator[None]:
        task = self.progress.add_task(label, total=1) if self.progress else None
        started = time.perf_counter()
        yield
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
        if task is not None:
            self.progress.update(task, completed=1)


@contextmanager
def _steps(show: bool) -> Iterator[_Steps]:
    if not show:
        yield _Steps(None)
        return
    columns = (SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns) as progress:
        yield _Steps(progress)


def prepare(settings: Settings, spec: ModelSpec, window: LabelWindow, steps: _Steps | None = None) -> Prepared:
    """Labels → point-in-time training set → temporal split."""
    steps = steps or _Steps(None)
    with steps("labels", f"{spec.name}: labels"):
        labels = spec.build_labels(settings, window)
    with steps("training_set", f"{spec.name}: point-in-time features from {spec.feature_service}"):
        training_set = store.training_set(settings, spec.feature_service, labels)
    return Prepared(spec, window, training_set, temporal_split(training_set.frame))


def fit_estimator(estimator, x_train: pd.DataFrame, y_train: np.ndarray, x_val: pd.DataFrame, y_val: np.ndarray):
    """Fit a pipeline; a final step set up for early stopping watches the validation rows."""
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    if getattr(final, "early_stopping_rounds", None) and hasattr(estimator, "steps"):
        prep = estimator[:-1].fit(x_train, y_train)
        final.fit(prep.transform(x_train), y_train, eval_set=[(prep.transform(x_val), y_val)], verbose=False)
        return estimator
    return estimator.fit(x_train, y_train)


def predict(task: str, estimator, x: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class for binary tasks, the prediction otherwise."""
    return estimator.predict_proba(x)[:, 1] if task == "binary" else estimator.predict(x)


def validate(spec: ModelSpec, estimator, features: list[str], x: pd.DataFrame, y: np.ndarray) -> pd.Series:
    """Checks before registration; returns each feature's share of permutation importance.

    Raises:
        ModelValidationError: naming the failed check: non-finite or out-of-range
            predictions, an input signature that differs from the feature service's, or one
            feature carrying nearly all the importance (a leakage smell).
    """
    signature = list(getattr(estimator, "feature_names_in_", []))
    if signature != features:
        missing, extra = sorted(set(features) - set(signature)), sorted(set(signature) - set(features))
        raise ModelValidationError(f"{spec.name}: input signature differs from {spec.feature_service}: "
                                   f"missing {missing or 'none'}, unexpected {extra or 'none'}")
    scores = predict(spec.task, estimator, x)
    if not np.isfinite(scores).all():
        raise ModelValidationError(f"{spec.name}: {int((~np.isfinite(scores)).sum())} predictions are not finite")
    if spec.task == "binary" and ((scores < 0) | (scores > 1)).any():
        raise ModelValidationError(f"{spec.name}: probabilities outside [0, 1] (min {scores.min()}, max {scores.max()})")
    sample = np.random.default_rng(SEED).permutation(len(x))[:4000]
    result = permutation_importance(estimator, x.iloc[sample], y[sample], n_repeats=3, random_state=SEED,
                                    scoring="roc_auc" if spec.task == "binary" else "r2")
    drops = pd.Series(np.clip(result.importances_mean, 0, None), index=features)
    share = drops / drops.sum() if drops.sum() > 1e-9 else drops
    if share.max() > MAX_IMPORTANCE_SHARE:
        raise ModelValidationError(f"{spec.name}: feature {share.idxmax()!r} carries {share.max():.0%} of the "
                                   f"importance (limit {MAX_IMPORTANCE_SHARE:.0%}): check it for label leakage")
    return share.sort_values(ascending=False)


def _oracle(settings: Settings, prepared: Prepared, rows: pd.DataFrame) -> np.ndarray | None:
    spec = prepared.spec
    if spec.oracle is None:
        return None
    try:
        return np.asarray(spec.oracle(settings, rows, prepared.window), dtype=float)
    except OwnLensError as err:  # imported data has no latent truth
        log.info("no oracle for %s: %s", spec.name, err)
        return None


def _champion_scores(settings: Settings, prepared: Prepared, exclude: int | None) -> tuple[int, np.ndarray] | None:
    spec = prepared.spec
    try:
        champion, model = registry.load_model(settings, spec.name, "champion")
    except UnknownModelVersionError:
        return None
    if champion.version == exclude:
        return None
    test = prepared.split.test
    if champion.feature_service != spec.feature_service:
        labels = test[[spec.entity_key, "event_timestamp", "label"]]
        test = store.training_set(settings, champion.feature_service, labels).frame
    features = list(model.feature_names_in_)
    return champion.version, predict(spec.task, model, feature_matrix(test, features))


def evaluate_holdout(settings: Settings, prepared: Prepared, model, version: int | None,
                     importance: pd.Series, steps: _Steps | None = None) -> Evaluation:
    """Score the model, freshly fitted baselines, the champion and the oracle on the test rows."""
    steps = steps or _Steps(None)
    spec = prepared.spec
    x_train, y_train = prepared.xy("train")
    x_test, y_test = prepared.xy("test")
    scores = {"model": predict(spec.task, model, x_test)}
    with steps("baselines", f"{spec.name}: baselines on the same split"):
        for name, baseline in baselines(spec.task, SEED).items():
            scores[name] = predict(spec.task, baseline.fit(x_train, y_train), x_test)
    champion = _champion_scores(settings, prepared, exclude=version)
    if champion is not None:
        scores[f"champion_v{champion[0]}"] = champion[1]
    notes = []
    oracle = _oracle(settings, prepared, prepared.split.test)
    if oracle is not None:
        scores["oracle"] = oracle
    else:
        notes.append("no generator truth for these rows: the oracle is omitted")
    test = prepared.split.test["event_timestamp"]
    holdout = (f"{len(test):,} rows with label times {test.min():%Y-%m-%d}..{test.max():%Y-%m-%d} "
               f"(training rows before {prepared.split.validation['event_timestamp'].min():%Y-%m-%d})")
    return Evaluation(spec.name, version, spec.task, spec.feature_service, y_test, scores,
                      {who: score_metrics(spec.task, y_test, p) for who, p in scores.items()},
                      importance, holdout, notes)


def gate_refusals(spec: ModelSpec, metrics: dict[str, dict[str, float]]) -> list[str]:
    """Why the model may not become champion: it must beat the champion and every baseline."""
    metric, mine = spec.gate.metric, metrics["model"][spec.gate.metric]
    refusals = []
    for who, values in metrics.items():
        if who in ("model", "oracle"):
            continue
        need = spec.gate.min_gain if who.startswith("champion") else 0.0
        gain = improvement(metric, mine, values[metric])
        if gain <= need:
            refusals.append(f"{metric} {mine:.4f} does not beat {who} ({values[metric]:.4f}): "
                            f"short by {need - gain:.4f}")
    return refusals


def _lineage_params(prepared: Prepared, estimator) -> dict:
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    stamps = sorted(prepared.training_set.frame["event_timestamp"].unique())
    window = prepared.window
    return {
        "seed": SEED,
        "estimator": type(final).__name__,
        "hyperparameters": {k: v for k, v in final.get_params().items()
                            if isinstance(v, (bool, int, str)) or (isinstance(v, float) and np.isfinite(v))},
        "as_of": pd.Timestamp(window.as_of).isoformat() if window.as_of is not None else None,
        "window_days": window.window_days,
        "step_days": window.step_days,
        "label_times": [pd.Timestamp(s).isoformat() for s in stamps] if len(stamps) <= 500 else len(stamps),
        "split": prepared.split.describe(),
    }


def report_folder(settings: Settings, name: str, version: int) -> Path:
    return settings.reports_dir / name / f"v{version}"


def train(settings: Settings, name: str, as_of: datetime | None = None, *, promote: bool = True,
          progress: bool = False) -> TrainResult:
    """Train, evaluate, validate and register a new version of model ``name``.

    The new version becomes ``champion`` if ``promote`` and the gate passes, else
    ``challenger``. A failure anywhere records the run as failed and registers nothing.
    """
    spec = get_spec(name)
    window = replace(spec.window, as_of=as_of)
    run_id = registry.start_run(settings, spec.name, {"as_of": as_of.isoformat() if as_of else None})
    try:
        with _steps(progress) as steps:
            prepared = prepare(settings, spec, window, steps)
            x_train, y_train = prepared.xy("train")
            x_val, y_val = prepared.xy("validation")
            with steps("fit", f"{spec.name}: fit {len(x_train):,} rows"):
                model = fit_estimator(spec.estimator(SEED), x_train, y_train, x_val, y_val)
            with steps("validate", f"{spec.name}: validators"):
                importance = validate(spec, model, prepared.training_set.features, x_val, y_val)
            evaluation = evaluate_holdout(settings, prepared, model, None, importance, steps)
            refusals = gate_refusals(spec, evaluation.metrics)
            stamps = prepared.training_set.frame["event_timestamp"]
            with steps("register", f"{spec.name}: register"):
                version = registry.register(
                    settings, run_id, model_name=spec.name, task=spec.task, estimator=model,
                    feature_service=spec.feature_service,
                    feature_service_hash=prepared.training_set.definition_hash,
                    training_set_fingerprint=prepared.training_set.fingerprint,
                    window_start=stamps.min().to_pydatetime(),
                    window_end=(stamps.max() + pd.Timedelta(days=window.window_days)).to_pydatetime(),
                    params=_lineage_params(prepared, model),
                    metrics={"holdout": evaluation.metrics, "importance": importance.round(6).to_dict()})
    except BaseException as err:
        registry.fail_run(settings, run_id, f"{type(err).__name__}: {err}")
        raise
    promoted = promote and not refusals
    if promoted:
        registry.promote(settings, spec.name, version.version)
    else:
        registry.set_alias(settings, spec.name, "challenger", version.version)
    evaluation.version = version.version
    path = write_report(evaluation, report_folder(settings, spec.name, version.version), spec.metrics)
    return TrainResult(registry.get_version(settings, spec.name, version.version), evaluation, path,
                       promoted, refusals, steps.seconds)


def _rebuild(settings: Settings, spec: ModelSpec, version: registry.ModelVersion) -> tuple[Prepared, list[str]]:
    """The version's own split, rebuilt from its lineage; notes if the data changed since."""
    params = version.params
    as_of = pd.Timestamp(params["as_of"]).to_pydatetime() if params.get("as_of") else None
    window = LabelWindow(as_of=as_of, window_days=params["window_days"], step_days=params["step_days"])
    prepared = prepare(settings, spec, window)
    notes = []
    if prepared.training_set.fingerprint != version.training_set_fingerprint:
        notes.append("the training set rebuilt from this version's lineage differs from the one it was trained on "
                     "(data or feature definitions changed since)")
    return prepared, notes


def evaluate(settings: Settings, name: str, version: int | str | None = None,
             progress: bool = False) -> tuple[Evaluation, Path]:
    """Re-score a registered version (default: champion, else newest) on its own holdout."""
    spec = get_spec(name)
    if version is None:
        try:
            registry.get_version(settings, spec.name, "champion")
            version = "champion"
        except UnknownModelVersionError:
            version = None
    entry, model = registry.load_model(settings, spec.name, version)
    with _steps(progress) as steps:
        prepared, notes = _rebuild(settings, spec, entry)
        importance = pd.Series(entry.metrics.get("importance", {}), dtype=float)
        evaluation = evaluate_holdout(settings, prepared, model, entry.version, importance, steps)
    evaluation.notes += notes
    path = write_report(evaluation, report_folder(settings, spec.name, entry.version), spec.metrics)
    return evaluation, path


def promote(settings: Settings, name: str, version: int, force: bool = False) -> list[str]:
    """Make ``version`` champion if it beats the champion and every baseline on its own holdout.

    Returns the refusals (empty when promoted). ``force`` skips the gate.
    """
    spec = get_spec(name)
    entry, model = registry.load_model(settings, spec.name, version)
    refusals: list[str] = []
    if not force:
        prepared, _ = _rebuild(settings, spec, entry)
        importance = pd.Series(entry.metrics.get("importance", {}), dtype=float)
        refusals = gate_refusals(spec, evaluate_holdout(settings, prepared, model, entry.version, importance).metrics)
    if not refusals:
        registry.promote(settings, spec.name, entry.version)
    return refusals
