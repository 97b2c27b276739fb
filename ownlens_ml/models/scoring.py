"""The shared scorer: a registered version prepared once for scoring, by serving and batch scoring alike.

A ``Scorer`` is built once per loaded version: the feature order (the model's input
signature), each feature's dtype from its Feast type (numbers as float64, the rest as
object; never guessed from values) and, where the saved pipeline is a pass-through of
numbers into an XGBoost binary classifier or regressor, the booster itself, so that a score is
``Booster.inplace_predict`` on a ready float matrix (for a few rows, the C function behind it
called directly: ``_DensePredictor``). The shortcut is proved equal to the saved pipeline on
probe rows at load time and dropped if it is not; one that fails its probe falls back to
``inplace_predict``, then to the pipeline, with one warning. ``entity_key_text`` is the one
spelling of an entity that both paths write to ``ml_model_predictions``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
from feast import FeatureService
from feast.value_type import ValueType

from ownlens_ml import registry
from ownlens_ml.errors import ModelValidationError
from ownlens_ml.features import store
from ownlens_ml.models.kinds import get_kind
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

NUMERIC_TYPES = {
    ValueType.INT32,
    ValueType.INT64,
    ValueType.FLOAT,
    ValueType.DOUBLE,
    ValueType.BOOL,
    ValueType.UNIX_TIMESTAMP,
}
SINGLE_THREAD_ROWS = 256
_PROBES = 64


@dataclass(frozen=True)
class Scorer:
    """A registered version made ready to score feature values (see the module docstring).

    Attributes:
        features: the model's inputs in its signature's order.
        numeric: per feature, whether its Feast type is a number (float64) or not (object).
        booster: ``float matrix -> scores``, equal to the pipeline, or None (the pipeline runs).
        predict: the kind's ``(model, frame) -> outputs``, looked up once at load.
    """

    version: registry.ModelVersion
    model: Any
    features: list[str]
    numeric: list[bool]
    booster: Callable[[np.ndarray], np.ndarray] | None
    predict: Callable[[Any, pd.DataFrame], np.ndarray]

    def score_columns(self, values: dict[str, list], n: int) -> np.ndarray:
        """Scores for ``n`` entities from feature name -> list of values (None: missing)."""
        if self.booster is not None:
            nan = np.nan
            flat = np.fromiter(
                (nan if v is None else v for f in self.features for v in values[f]),
                dtype=np.float64,
                count=n * len(self.features),
            )
            return self.booster(flat.reshape(len(self.features), n).T)
        return self._pipeline(
            pd.DataFrame({f: _typed(values[f], numeric) for f, numeric in zip(self.features, self.numeric)})
        )

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores for the rows of a frame holding the features (e.g. a training set)."""
        columns = {
            f: (
                pd.to_numeric(frame[f], errors="coerce").to_numpy(np.float64)
                if numeric
                else frame[f].astype(object).where(frame[f].notna(), np.nan).to_numpy()
            )
            for f, numeric in zip(self.features, self.numeric)
        }
        if self.booster is not None:
            return self.booster(
                np.column_stack([columns[f] for f in self.features]) if self.features else np.empty((len(frame), 0))
            )
        return self._pipeline(pd.DataFrame(columns, index=frame.index))

    def _pipeline(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predict(self.model, x), dtype=np.float64)


def _typed(values: list, numeric: bool) -> np.ndarray:
    if numeric:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array([np.nan if v is None else v for v in values], dtype=object)


def feature_types(service: FeatureService) -> dict[str, ValueType]:
    """Each output feature of a service and its Feast value type."""
    return {f.name: f.dtype.to_value_type() for p in service.feature_view_projections for f in p.features}


def prepare(version: registry.ModelVersion, model: Any, service: FeatureService) -> Scorer:
    """A ``Scorer`` for a loaded version and its feature service, warmed up.

    Raises:
        ModelValidationError: the model's input signature differs from the service's features.
    """
    features = list(getattr(model, "feature_names_in_", []))
    types = feature_types(service)
    if set(features) != set(types):
        raise ModelValidationError(
            f"{version.label}: inputs {sorted(set(features) ^ set(types))} differ between the model and "
            f"feature service {service.name}; retrain it on the service"
        )
    numeric = [types[f] in NUMERIC_TYPES for f in features]
    predict = get_kind(version.task).predict
    scorer = Scorer(version, model, features, numeric, None, predict)
    probes = _probe_rows(len(features))
    expected = scorer._pipeline(pd.DataFrame(probes, columns=features))  # also warms the pipeline up
    for dense in (True, False):  # the direct C call, else inplace_predict, else the pipeline
        try:
            booster = _booster_shortcut(model, features, dense) if all(numeric) else None
            if booster is None:
                return scorer
            same = np.array_equal(booster(probes).astype(np.float64), expected)
        except Exception as exc:  # noqa: BLE001 - an XGBoost release that changed what the shortcut relies on
            log.warning(
                "%s: the %s shortcut failed its probe (%s: %s); %s",
                version.label,
                "direct C predict" if dense else "inplace_predict",
                type(exc).__name__,
                exc,
                "using inplace_predict" if dense else "using the pipeline",
            )
            continue
        if same:
            return Scorer(version, model, features, numeric, lambda x: booster(x).astype(np.float64), predict)  # noqa: B023 - returned in this pass
        log.warning(
            "%s: the booster shortcut differs from the pipeline on probe rows; using the pipeline", version.label
        )
        return scorer
    return scorer


def _probe_rows(width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = rng.lognormal(1.0, 1.5, (_PROBES, width)) * rng.choice([-1.0, 0.0, 1.0], (_PROBES, width), p=[0.1, 0.1, 0.8])
    rows[rng.random((_PROBES, width)) < 0.2] = np.nan
    rows[0] = np.nan
    return rows


def _booster_shortcut(model: Any, features: list[str], dense: bool = True) -> Callable[[np.ndarray], np.ndarray] | None:
    """``Booster.inplace_predict`` when the pipeline passes every feature through, in order,
    to an XGBoost binary classifier or squared-error regressor; the same iteration range and
    missing value it uses. ``dense``: a few rows go through ``_DensePredictor``."""
    from sklearn.compose import ColumnTransformer
    from xgboost import XGBClassifier, XGBRegressor

    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2:
        return None
    prep, final = steps[0][1], steps[1][1]
    binary = (
        isinstance(final, XGBClassifier)
        and final.objective == "binary:logistic"
        and getattr(final, "n_classes_", 2) == 2
    )
    regression = isinstance(final, XGBRegressor) and final.objective == "reg:squarederror"
    if not isinstance(prep, ColumnTransformer) or not (binary or regression):
        return None
    used = [(transformer, list(columns)) for _, transformer, columns in prep.transformers_ if len(columns)]
    if len(used) != 1 or used[0][1] != features or not _identity(used[0][0]):
        return None
    booster = final.get_booster()
    # A few rows on one thread: waking a second OpenMP thread costs more than it saves, and on a
    # busy machine it made p99 ten times worse (see bench/README.md).
    single = booster.copy()
    single.set_param({"nthread": 1})
    best = getattr(final, "best_iteration", None)
    iterations = (0, best + 1) if best is not None else (0, 0)
    missing = final.missing
    dense = _DensePredictor(single, iterations, missing) if dense else None

    def shortcut(x: np.ndarray) -> np.ndarray:
        if len(x) <= SINGLE_THREAD_ROWS and dense is not None:
            return dense(x)
        return (single if len(x) <= SINGLE_THREAD_ROWS else booster).inplace_predict(
            x, iteration_range=iterations, missing=missing, validate_features=False
        )

    return shortcut


class _DensePredictor:
    """``inplace_predict`` for a few float64 rows as one call into XGBoost's C library.

    ``Booster.inplace_predict`` spends about 80 of its 250 microseconds a row (600 trees) in
    Python: it re-encodes its arguments as JSON, probes the input's type and imports its data
    module on every call. Here the arguments are encoded once, and a call is the array
    interface of the rows and ``XGBoosterPredictFromDense``, the function ``inplace_predict``
    itself calls, through a function pointer of our own with its C signature declared (not
    XGBoost's, whose argument types stay as XGBoost set them). The object holds the booster,
    so the handle the pointer is called with lives as long as the pointer's holder. It uses
    XGBoost's internal names (``_LIB``, ``make_jcargs``), probed for XGBoost 3 (the pinned
    major version); ``prepare`` falls back to ``inplace_predict`` if building or probing it
    fails, and proves the result equal to the pipeline.
    """

    def __init__(self, booster: Any, iterations: tuple[int, int], missing: float):
        import ctypes

        from xgboost.core import _LIB, _check_call, c_bst_ulong, make_jcargs

        self.booster = booster  # keeps booster.handle alive while this object can call it
        self._args = make_jcargs(
            type=0,
            training=False,
            iteration_begin=int(iterations[0]),
            iteration_end=int(iterations[1]),
            missing=missing,
            strict_shape=False,
            cache_id=0,
        )
        call = ctypes.CDLL(_LIB._name).XGBoosterPredictFromDense  # a function object of our own
        call.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.POINTER(c_bst_ulong)),
            ctypes.POINTER(c_bst_ulong),
            ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
        ]
        call.restype = ctypes.c_int
        self._call, self._check, self._ulong, self._ctypes = call, _check_call, c_bst_ulong, ctypes

    def __call__(self, x: np.ndarray) -> np.ndarray:
        ctypes = self._ctypes
        x = np.ascontiguousarray(x, dtype=np.float64)
        interface = b'{"data": [%d, true], "shape": [%d, %d], "strides": null, "typestr": "<f8", "version": 3}' % (
            x.ctypes.data,
            x.shape[0],
            x.shape[1],
        )
        shape, dims, out = ctypes.POINTER(self._ulong)(), self._ulong(), ctypes.POINTER(ctypes.c_float)()
        self._check(
            self._call(
                self.booster.handle,
                interface,
                self._args,
                None,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(out),
            )
        )
        if dims.value != 1 or shape[0] != x.shape[0]:
            raise ModelValidationError(
                f"XGBoost answered shape {[shape[i] for i in range(dims.value)]} for {x.shape[0]} rows"
            )
        return np.ctypeslib.as_array(out, (x.shape[0],)).copy()  # XGBoost reuses its buffer


def _identity(transformer: Any) -> bool:
    """``passthrough``, which a fitted ColumnTransformer holds as an identity FunctionTransformer."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(transformer, str):
        return transformer == "passthrough"
    return isinstance(transformer, FunctionTransformer) and transformer.func is None and not transformer.validate


def load_scorer(settings: Settings, name: str, version: int | str = "champion") -> Scorer:
    """Load a registered version (default: the champion) and prepare it."""
    entry, model = registry.load_model(settings, name, version)
    return prepare(entry, model, store.feature_service(settings, entry.feature_service))


def entity_key_text(entity: dict[str, int]) -> str:
    """Canonical JSON of an entity's join keys (sorted, no spaces): one spelling per entity."""
    return orjson.dumps(entity, option=orjson.OPT_SORT_KEYS).decode()
