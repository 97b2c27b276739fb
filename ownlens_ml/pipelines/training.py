"""The training engine, one for every model spec.

For every kind: start a run → the kind's trainer fits and evaluates → register (artifact in
the kind's format) → gate against the champion and every baseline → champion or challenger →
report. Supervised kinds share the tabular trainer here: labels and as-of times →
point-in-time training set from the spec's feature service → temporal
train/validation/test split → fit → validators → evaluation beside the baselines, the
current champion and the oracle. Other kinds bring their own trainer (``spec.trainer``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import permutation_importance

from ownlens_ml import registry
from ownlens_ml.errors import (
    EmptyWindowError,
    ModelValidationError,
    OwnLensError,
    RegistryError,
    TooFewLabelsError,
    UnknownModelVersionError,
)
from ownlens_ml.evaluation.oracle import oracle
from ownlens_ml.evaluation.report import Evaluation, report_folder, write_report
from ownlens_ml.models import SPECS, get_spec
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.models.spec import LabelWindow, ModelSpec, TrainContext, Trained, Trainer
from ownlens_ml.monitoring.profiles import OUTPUT, build_profile, write_profile
from ownlens_ml.pipelines import distributed
from ownlens_ml.pipelines.labels import labels_fingerprint, read_labels
from ownlens_ml.progress import Steps
from ownlens_ml.progress import steps as show_steps
from ownlens_ml.settings import Settings

if TYPE_CHECKING:
    from ownlens_ml.features import store

log = logging.getLogger(__name__)

SEED = 7
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.15
MAX_IMPORTANCE_SHARE = 0.9
MIN_TEST_POSITIVES = 30
"""A classifier's test rows need this many of each class, else the comparison would mean nothing."""
MIN_BOOSTING_ROUNDS = 50
"""Early stopping may not stop a booster before this many rounds: on a handful of validation
positives the first round's loss can look best, which leaves a constant model."""
LEAF_POSITIVE_SHARE = 10
"""A binary booster's ``min_child_weight`` is capped at the hessian of 1/this of its training
positives: with rare positives each row's hessian is about p(1 - p), so a fixed minimum of 20
can exceed what any split's child holds, and the booster stays constant."""
"""A single feature carrying more than this share of the importance smells of leakage."""


@dataclass(frozen=True)
class Split:
    """Rows of one training set cut by time: every validation row is later than every
    training row, every test row later than every validation row."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def describe(self) -> dict[str, dict]:
        return {
            part: {
                "rows": len(rows),
                "from": rows["event_timestamp"].min().isoformat(),
                "to": rows["event_timestamp"].max().isoformat(),
            }
            for part, rows in (("train", self.train), ("validation", self.validation), ("test", self.test))
        }


def temporal_split(
    frame: pd.DataFrame,
    test_fraction: float = TEST_FRACTION,
    validation_fraction: float = VALIDATION_FRACTION,
    classes: tuple = (),
) -> Split:
    """Cut at ``event_timestamp`` boundaries (never one timestamp across two parts): the
    newest ~``test_fraction`` of rows test, the ~``validation_fraction`` before validation.

    ``classes`` (a classifier's labels): where the test or validation part holds none of a rare
    class, that part reaches back one label time at a time until it does, so a small platform's
    handful of positives is not all left to training (a split that has them is unchanged)."""
    counts = frame.groupby("event_timestamp").size().sort_index()
    if len(counts) < 3:
        raise EmptyWindowError(
            f"a temporal split needs at least 3 distinct label times, got {len(counts)}; "
            "train on a longer stretch of data"
        )
    at_or_after = counts[::-1].cumsum()[::-1] / counts.sum()
    test_start = at_or_after.index[at_or_after >= test_fraction].max()
    validation_start = at_or_after.index[at_or_after >= test_fraction + validation_fraction].max()
    validation_start = min(validation_start, counts.index[counts.index < test_start].max())
    if validation_start == counts.index.min():
        validation_start = counts.index[1]
        test_start = max(test_start, counts.index[2])
    if classes:
        test_start, validation_start = _reach_back_for_classes(
            frame, counts.index, test_start, validation_start, classes
        )
    stamps = frame["event_timestamp"]
    return Split(
        frame[stamps < validation_start],
        frame[(stamps >= validation_start) & (stamps < test_start)],
        frame[stamps >= test_start],
    )


def _reach_back_for_classes(frame: pd.DataFrame, times: pd.Index, test_start, validation_start, classes: tuple):
    """Move the test, then the validation start earlier until each part holds every class (or the
    part before it would be left with a single label time)."""
    held = {
        c: frame.loc[frame["label"] == c, "event_timestamp"].value_counts().reindex(times, fill_value=0)
        for c in classes
    }

    def lacks(start, end) -> bool:
        return any(h[(times >= start) & (times < end)].sum() == 0 for h in held.values())

    end_of_time = times.max() + pd.Timedelta(days=1)
    while lacks(test_start, end_of_time) and (times < test_start).sum() > 2:
        test_start = times[times < test_start].max()
    validation_start = min(validation_start, times[times < test_start].max())
    while lacks(validation_start, test_start) and (times < validation_start).sum() > 1:
        validation_start = times[times < validation_start].max()
    return test_start, validation_start


@dataclass
class Prepared:
    """A spec's labelled rows with their point-in-time features, split by time."""

    spec: ModelSpec
    window: LabelWindow
    training_set: store.TrainingSet
    split: Split
    labels_from: str | None = None
    """The file the labels came from (``train --labels``), None for the spec's label builder."""
    labels_fingerprint: str | None = None

    def xy(self, part: str) -> tuple[pd.DataFrame, np.ndarray]:
        rows = getattr(self.split, part)
        return feature_matrix(rows, self.training_set.features), rows["label"].to_numpy()

    def with_columns(self, part: str, x: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        """``x`` (the part's feature matrix) beside entity columns some baselines read."""
        rows = getattr(self.split, part)
        return x.assign(**{column: rows[column].to_numpy() for column in columns})


@dataclass
class TrainResult:
    version: registry.ModelVersion
    evaluation: Evaluation
    report: Path
    promoted: bool
    refusals: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per step: labels, training_set, fit, evaluate, register."""


def prepare(
    settings: Settings,
    spec: ModelSpec,
    window: LabelWindow,
    steps: Steps | None = None,
    labels: pd.DataFrame | None = None,
    labels_from: str | None = None,
) -> Prepared:
    """Labels (the spec's, or the user's) → point-in-time training set → temporal split."""
    from ownlens_ml.features import store  # Feast loads here, so commands that fail earlier fail fast

    steps = steps or Steps()
    if labels is None:
        with steps("labels", f"{spec.name}: labels"):
            labels = spec.build_labels(settings, window)
    with steps("training_set", f"{spec.name}: point-in-time features from {spec.feature_service}"):
        training_set = store.training_set(settings, spec.feature_service, labels)
    return Prepared(
        spec,
        window,
        training_set,
        temporal_split(training_set.frame, classes=spec.task_kind.classes),
        labels_from,
        labels_fingerprint(labels) if labels_from else None,
    )


def fit_estimator(
    estimator,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_val: pd.DataFrame,
    y_val: np.ndarray,
    settings: Settings | None = None,
):
    """Fit a pipeline; a final step set up for early stopping watches the validation rows.

    With ``settings.train_backend == "dask"`` an XGBoost final step trains through
    ``xgboost.dask`` (``pipelines/distributed.py``) on the same rows and stays the same kind of
    step; any other estimator trains here, as it would on one machine.
    """
    stepped = hasattr(estimator, "steps")
    final = estimator[-1] if stepped else estimator
    dask = settings is not None and settings.train_backend == "dask" and distributed.is_xgboost(final)
    if settings is not None and settings.train_backend == "dask" and not dask:
        log.info("%s trains on one machine: only XGBoost steps train through xgboost.dask", type(final).__name__)
    _cap_min_child_weight(final, y_train)
    if dask or (getattr(final, "early_stopping_rounds", None) and stepped):
        prep = estimator[:-1].fit(x_train, y_train) if stepped else None
        x_fit, x_watch = (prep.transform(x_train), prep.transform(x_val)) if stepped else (x_train, x_val)
        if dask:
            with distributed.dask_client(settings) as client:
                distributed.fit_xgboost_dask(client, final, x_fit, y_train, x_watch, y_val)
        else:
            final.fit(x_fit, y_train, eval_set=[(x_watch, y_val)], verbose=False)
            rounds = getattr(final, "best_iteration", None)
            if rounds is not None and rounds + 1 < MIN_BOOSTING_ROUNDS <= (final.n_estimators or 0):
                log.info("early stopping chose %d rounds; refitting with %d", rounds + 1, MIN_BOOSTING_ROUNDS)
                final.set_params(n_estimators=MIN_BOOSTING_ROUNDS, early_stopping_rounds=None)
                final.fit(x_fit, y_train, verbose=False)
        return estimator
    return estimator.fit(x_train, y_train)


def _cap_min_child_weight(final, y: np.ndarray) -> None:
    """Hessian-aware ``min_child_weight`` for a binary booster on rare positives (see LEAF_POSITIVE_SHARE)."""
    declared = getattr(final, "min_child_weight", None)
    if declared is None or not distributed.is_xgboost(final) or not hasattr(final, "predict_proba"):
        return
    y = np.asarray(y, dtype=float)
    p = float(y.mean()) if len(y) else 0.0
    cap = y.sum() * (1 - p) / LEAF_POSITIVE_SHARE
    if 0 < cap < declared:
        log.info("min_child_weight %g capped at %.3g: %d training positives", declared, cap, int(y.sum()))
        final.set_params(min_child_weight=cap)


def validate(spec: ModelSpec, estimator, features: list[str], x: pd.DataFrame, y: np.ndarray) -> pd.Series:
    """Checks before registration; returns each feature's share of permutation importance.

    Raises:
        ModelValidationError: naming the failed check: an input signature that differs from
            the feature service's, outputs the kind refuses (e.g. non-finite, or
            probabilities outside [0, 1]), outputs (nearly) constant or no better than chance
            on the validation rows (``kind.check_signal``), or one feature carrying nearly all the
            importance (a leakage smell).
    """
    kind = spec.task_kind
    signature = list(getattr(estimator, "feature_names_in_", []))
    if signature != features:
        missing, extra = sorted(set(features) - set(signature)), sorted(set(signature) - set(features))
        raise ModelValidationError(
            f"{spec.name}: input signature differs from {spec.feature_service}: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    outputs = np.asarray(kind.predict(estimator, x), dtype=float)
    problem = kind.check_outputs(outputs) or kind.check_signal(y, outputs)
    if problem:
        raise ModelValidationError(f"{spec.name}: {problem}")
    sample = np.random.default_rng(SEED).permutation(len(x))[:4000]
    result = permutation_importance(
        estimator, x.iloc[sample], y[sample], n_repeats=3, random_state=SEED, scoring=kind.importance_scoring
    )
    drops = pd.Series(np.clip(result.importances_mean, 0, None), index=features)
    share = drops / drops.sum() if drops.sum() > 1e-9 else drops
    if share.max() > MAX_IMPORTANCE_SHARE:
        raise ModelValidationError(
            f"{spec.name}: feature {share.idxmax()!r} carries {share.max():.0%} of the "
            f"importance (limit {MAX_IMPORTANCE_SHARE:.0%}): check it for label leakage"
        )
    return share.sort_values(ascending=False)


def oracle_scores(settings: Settings, prepared: Prepared) -> tuple[np.ndarray | None, str | None]:
    """The oracle's scores on the test rows, or None and the reason it is omitted."""
    spec = prepared.spec
    if spec.oracle is None:
        return None, f"{spec.name} declares no oracle"
    if prepared.labels_from is not None:
        return None, (
            f"labels come from {prepared.labels_from}, not from the generator's process, so the "
            "generator's truth does not describe them: the oracle is omitted"
        )
    try:
        scores = oracle(
            settings,
            spec.oracle,
            prepared.split.test,
            window_days=prepared.window.window_days,
            train=prepared.split.train,
        )
    except OwnLensError as err:  # imported data has no latent truth; ids outside it
        log.info("no oracle for %s: %s", spec.name, err)
        return None, f"oracle omitted: {err}"
    return np.asarray(scores, dtype=float), None


def _champion_scores(
    settings: Settings, prepared: Prepared, champion: tuple[registry.ModelVersion, Any] | None, exclude: int | None
) -> tuple[int, np.ndarray] | None:
    if champion is None or champion[0].version == exclude:
        return None
    entry, model = champion
    spec = prepared.spec
    test = prepared.split.test
    if entry.feature_service != spec.feature_service:
        from ownlens_ml.features import store

        labels = test[[*spec.entity_key, "event_timestamp", "label"]]
        test = store.training_set(settings, entry.feature_service, labels).frame
    features = list(model.feature_names_in_)
    return entry.version, spec.task_kind.predict(model, feature_matrix(test, features))


def evaluate_holdout(
    settings: Settings,
    prepared: Prepared,
    model,
    version: int | None,
    importance: pd.Series,
    champion: tuple[registry.ModelVersion, Any] | None,
    steps: Steps | None = None,
) -> Evaluation:
    """Score the model, freshly fitted baselines, the champion and the oracle on the test rows."""
    steps = steps or Steps()
    spec, kind = prepared.spec, prepared.spec.task_kind
    x_train, y_train = prepared.xy("train")
    x_test, y_test = prepared.xy("test")
    scores = {"model": kind.predict(model, x_test)}
    with steps("baselines", f"{spec.name}: baselines on the same split"), warnings.catch_warnings():
        # the baselines are untuned on purpose: a network that stops at its iteration cap is one of them
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, baseline in kind.baselines(SEED).items():
            scores[name] = kind.predict(baseline.fit(x_train, y_train), x_test)
        if spec.extra_baselines is not None:
            xe_train = prepared.with_columns("train", x_train, spec.baseline_columns)
            xe_test = prepared.with_columns("test", x_test, spec.baseline_columns)
            for name, baseline in spec.extra_baselines(SEED).items():
                scores[name] = kind.predict(baseline.fit(xe_train, y_train), xe_test)
    scored = _champion_scores(settings, prepared, champion, exclude=version)
    if scored is not None:
        scores[f"champion_v{scored[0]}"] = scored[1]
    notes = []
    truth, why_not = oracle_scores(settings, prepared)
    if truth is not None:
        scores["oracle"] = truth
    else:
        notes.append(why_not)
    test = prepared.split.test["event_timestamp"]
    holdout = (
        f"{len(test):,} rows with label times {test.min():%Y-%m-%d}..{test.max():%Y-%m-%d} "
        f"(training rows before {prepared.split.validation['event_timestamp'].min():%Y-%m-%d})"
    )
    return Evaluation(
        spec.name,
        version,
        spec.kind,
        spec.feature_service,
        {who: kind.score(y_test, p) for who, p in scores.items()},
        holdout,
        y=y_test,
        scores=scores,
        importance=importance,
        notes=notes,
        positives=positives(spec, prepared.split),
    )


def _lineage_params(prepared: Prepared, estimator) -> dict:
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    stamps = sorted(prepared.training_set.frame["event_timestamp"].unique())
    window = prepared.window
    params = {
        "seed": SEED,
        "estimator": type(final).__name__,
        "hyperparameters": {
            k: v
            for k, v in final.get_params().items()
            if isinstance(v, (bool, int, str)) or (isinstance(v, float) and np.isfinite(v))
        },
        "as_of": pd.Timestamp(window.as_of).isoformat() if window.as_of is not None else None,
        "window_days": window.window_days,
        "step_days": window.step_days,
        "label_times": [pd.Timestamp(s).isoformat() for s in stamps] if len(stamps) <= 500 else len(stamps),
        "split": prepared.split.describe(),
    }
    if prepared.labels_from is not None:
        params["labels_file"] = prepared.labels_from
        params["labels_fingerprint"] = prepared.labels_fingerprint
    return params


def positives(spec: ModelSpec, split: Split) -> dict[str, tuple[int, int]]:
    """A classifier's (positives, rows) per part of the split; empty for other kinds."""
    if not spec.task_kind.classes:
        return {}
    one = spec.task_kind.classes[-1]
    return {
        part: (int((getattr(split, part)["label"] == one).sum()), len(getattr(split, part)))
        for part in ("train", "validation", "test")
    }


def _check_classes(spec: ModelSpec, split: Split) -> None:
    """A classifier needs every class in its training, validation and test rows, and at least
    ``MIN_TEST_POSITIVES`` of each in its test rows to be judged at all."""
    for part in ("train", "validation", "test"):
        labels = getattr(split, part)["label"]
        missing = [c for c in spec.task_kind.classes if not (labels == c).any()]
        if missing:
            raise TooFewLabelsError(
                f"{spec.name}: the {len(labels):,} {part} rows hold no label {missing[0]}; train on more "
                "entities or a longer stretch of data"
            )
    test = split.test["label"]
    for c in spec.task_kind.classes:
        held = int((test == c).sum())
        if held < MIN_TEST_POSITIVES:
            raise TooFewLabelsError(
                f"{spec.name}: too few to judge: the {len(test):,} test rows hold {held} of label {c} "
                f"(at least {MIN_TEST_POSITIVES} needed); nothing registered: train on more readers or a longer "
                "stretch of data"
            )


class TabularTrainer:
    """The shared trainer of supervised kinds: labels → point-in-time features → split → fit →
    validators → holdout evaluation beside baselines, champion and oracle."""

    def train(self, ctx: TrainContext) -> Trained:
        spec = ctx.spec
        prepared = prepare(ctx.settings, spec, ctx.window, ctx.steps, ctx.labels, ctx.labels_from)
        _check_classes(spec, prepared.split)
        x_train, y_train = prepared.xy("train")
        x_val, y_val = prepared.xy("validation")
        with ctx.steps("fit", f"{spec.name}: fit {len(x_train):,} rows"):
            model = fit_estimator(spec.estimator(ctx.seed), x_train, y_train, x_val, y_val, ctx.settings)
        with ctx.steps("validate", f"{spec.name}: validators"):
            importance = validate(spec, model, prepared.training_set.features, x_val, y_val)
        evaluation = evaluate_holdout(ctx.settings, prepared, model, None, importance, ctx.champion(), ctx.steps)
        stamps = prepared.training_set.frame["event_timestamp"]
        reference = prepared.split.test[prepared.training_set.features].assign(**{OUTPUT: evaluation.scores["model"]})
        params = _lineage_params(prepared, model) | {"train_backend": ctx.settings.train_backend}
        return Trained(
            model,
            evaluation,
            params,
            prepared.training_set.fingerprint,
            prepared.training_set.definition_hash,
            stamps.min().to_pydatetime(),
            (stamps.max() + pd.Timedelta(days=ctx.window.window_days)).to_pydatetime(),
            reference,
        )

    def evaluate(self, ctx: TrainContext, version: registry.ModelVersion, model: Any) -> Evaluation:
        """Re-score ``version`` on its own split, rebuilt from its lineage; notes if the data changed since."""
        params = version.params
        as_of = pd.Timestamp(params["as_of"]).to_pydatetime() if params.get("as_of") else None
        window = LabelWindow(as_of=as_of, window_days=params["window_days"], step_days=params["step_days"])
        labels = None
        if params.get("labels_file"):
            labels = read_labels(ctx.settings, Path(params["labels_file"]), ctx.spec)
            if labels_fingerprint(labels) != params["labels_fingerprint"]:
                raise ModelValidationError(
                    f"{version.label} was trained on labels from {params['labels_file']}, which changed since; "
                    "restore the file or train a new version on it"
                )
        prepared = prepare(ctx.settings, ctx.spec, window, ctx.steps, labels, params.get("labels_file"))
        importance = pd.Series(version.metrics.get("importance", {}), dtype=float)
        evaluation = evaluate_holdout(
            ctx.settings, prepared, model, version.version, importance, ctx.rival(version.version), ctx.steps
        )
        return ctx.note_rebuilt(evaluation, version, prepared.training_set.fingerprint, "training rows")


TABULAR = TabularTrainer()


def trainer_for(spec: ModelSpec) -> Trainer:
    """The shared tabular trainer for supervised kinds, else the spec's own."""
    return TABULAR if spec.task_kind.supervised else spec.trainer


def gate_refusals(spec: ModelSpec, metrics: dict[str, dict[str, float]]) -> list[str]:
    """Why the model may not become champion: it must beat the champion and every baseline."""
    kind, metric = spec.task_kind, spec.gate_metric
    mine = metrics["model"][metric]
    refusals = []
    for who, values in metrics.items():
        if who in ("model", "oracle") or values.get(metric) is None:
            continue
        need = spec.gate.min_gain if who.startswith("champion") else 0.0
        gain = kind.improvement(metric, mine, values[metric])
        if gain <= need:
            refusals.append(
                f"{metric} {mine:.4f} does not beat {who} ({values[metric]:.4f}): short by {need - gain:.4f}"
            )
    return refusals


def _reference_profile(trained: Trained) -> dict:
    """What monitoring compares windows with; kinds without feature rows get an empty profile."""
    rows = trained.reference
    if rows is None:
        return {"rows": 0, "features": {}, "note": "this kind reads no feature rows to profile"}
    outputs = rows[OUTPUT].to_numpy() if OUTPUT in rows.columns else None
    return build_profile(rows, [c for c in rows.columns if c != OUTPUT], outputs)


def _context(
    settings: Settings,
    spec: ModelSpec,
    window: LabelWindow,
    steps: Steps,
    notes: list[str],
    labels: pd.DataFrame | None = None,
    labels_from: str | None = None,
) -> TrainContext:
    def champion() -> tuple[registry.ModelVersion, Any] | None:
        try:
            return registry.load_model(settings, spec.name, "champion")
        except UnknownModelVersionError:
            return None
        except RegistryError as err:  # corrupt or untrusted artifact: compare without it, say so
            log.warning("%s", err)
            note = f"the champion could not be loaded, so it was left out of the comparison: {err}"
            if note not in notes:
                notes.append(note)
            return None

    return TrainContext(settings, spec, window, SEED, steps, champion, labels, labels_from)


def train(
    settings: Settings,
    name: str,
    as_of: datetime | None = None,
    *,
    promote: bool = True,
    progress: bool = False,
    labels_file: Path | None = None,
) -> TrainResult:
    """Train, evaluate, validate and register a new version of model ``name``.

    The new version becomes ``champion`` if ``promote`` and the gate passes, else
    ``challenger``. A failure anywhere records the run as failed and registers nothing.

    Args:
        labels_file: train on the user's labels (CSV or Parquet: the spec's entity key(s),
            ``event_timestamp``, ``label``) instead of the spec's label builder.
    """
    spec = get_spec(name)
    kind = spec.task_kind
    window = replace(spec.window, as_of=as_of)
    labels = None
    if labels_file is not None:
        if not kind.supervised:
            raise ModelValidationError(
                f"{spec.name} is a {kind.name} model: it learns without labels, "
                "so --labels does not apply; train it without --labels"
            )
        labels = read_labels(settings, labels_file, spec)
    run_id = registry.start_run(
        settings,
        spec.name,
        {"as_of": as_of.isoformat() if as_of else None, "labels_file": str(labels_file) if labels_file else None},
    )
    notes: list[str] = []
    try:
        with show_steps(progress) as steps:
            ctx = _context(settings, spec, window, steps, notes, labels, str(labels_file) if labels_file else None)
            trained = trainer_for(spec).train(ctx)
            evaluation = trained.evaluation
            evaluation.notes += notes
            refusals = gate_refusals(spec, evaluation.metrics)
            with steps("register", f"{spec.name}: register"):
                version = registry.register(
                    settings,
                    run_id,
                    model_name=spec.name,
                    task=spec.kind,
                    estimator=trained.model,
                    artifact_format=kind.artifact_format,
                    feature_service=spec.feature_service or "",
                    feature_service_hash=trained.definition_hash or "",
                    training_set_fingerprint=trained.fingerprint,
                    window_start=trained.window_start,
                    window_end=trained.window_end,
                    params=trained.params,
                    metrics={"holdout": evaluation.metrics, "importance": evaluation.importance.round(6).to_dict()},
                )
                write_profile(settings, spec.name, version.version, _reference_profile(trained), "training")
    except BaseException as err:
        registry.fail_run(settings, run_id, f"{type(err).__name__}: {err}")
        raise
    promoted = promote and not refusals
    if promoted:
        registry.promote(settings, spec.name, version.version)
    else:
        registry.set_alias(settings, spec.name, "challenger", version.version)
    evaluation.version = version.version
    path = write_report(evaluation, report_folder(settings, spec.name, version.version), spec.metrics, kind.plots)
    return TrainResult(
        registry.get_version(settings, spec.name, version.version), evaluation, path, promoted, refusals, steps.seconds
    )


def train_all(
    settings: Settings, as_of: datetime | None = None, *, promote: bool = True, progress: bool = False, on_result=None
) -> dict[str, TrainResult | OwnLensError]:
    """Train every declared model in turn; one model's failure does not stop the others.

    Returns each model's result, or the error that stopped it. ``on_result(name, outcome)``
    is called as each finishes.
    """
    outcomes: dict[str, TrainResult | OwnLensError] = {}
    for name in SPECS:
        try:
            outcomes[name] = train(settings, name, as_of, promote=promote, progress=progress)
        except OwnLensError as err:
            outcomes[name] = err
        if on_result is not None:
            on_result(name, outcomes[name])
    return outcomes


def _rescore(
    settings: Settings, spec: ModelSpec, version: int | str | None, steps: Steps
) -> tuple[registry.ModelVersion, Evaluation]:
    entry, model = registry.load_model(settings, spec.name, version)
    notes: list[str] = []
    ctx = _context(settings, spec, spec.window, steps, notes)
    evaluation = trainer_for(spec).evaluate(ctx, entry, model)
    evaluation.notes += notes
    return entry, evaluation


def evaluate(
    settings: Settings, name: str, version: int | str | None = None, progress: bool = False
) -> tuple[Evaluation, Path]:
    """Re-score a registered version (default: champion, else newest) on its own holdout."""
    spec = get_spec(name)
    if version is None:
        try:
            registry.get_version(settings, spec.name, "champion")
            version = "champion"
        except UnknownModelVersionError:
            version = None
    with show_steps(progress) as steps:
        entry, evaluation = _rescore(settings, spec, version, steps)
    path = write_report(
        evaluation, report_folder(settings, spec.name, entry.version), spec.metrics, spec.task_kind.plots
    )
    return evaluation, path


def promote(settings: Settings, name: str, version: int, force: bool = False) -> list[str]:
    """Make ``version`` champion if it beats the champion and every baseline on its own holdout.

    Returns the refusals (empty when promoted). ``force`` skips the gate.
    """
    spec = get_spec(name)
    refusals: list[str] = []
    if force:
        entry, _ = registry.load_model(settings, spec.name, version)  # never promote an unloadable artifact
    else:
        entry, evaluation = _rescore(settings, spec, version, Steps())
        refusals = gate_refusals(spec, evaluation.metrics)
    if not refusals:
        registry.promote(settings, spec.name, entry.version)
    return refusals
