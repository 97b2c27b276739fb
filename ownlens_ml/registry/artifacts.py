"""Artifact formats: the codecs a row names (skops is the registry's; kinds register theirs), checksums, allowlist."""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from ownlens_ml.errors import (
    ArtifactIntegrityError,
    RegistryError,
    UntrustedArtifactError,
)

log = logging.getLogger(__name__)


ARTIFACT_FORMAT = "skops"
# Packages whose classes an artifact may name beyond skops' own defaults. Each package also
# has a rule on the class itself (see ``_CLASS_RULES``): a module prefix alone would admit,
# e.g., ``numpy.memmap`` (whose constructor opens files) or ``xgboost.DMatrix``.
TRUSTED_NAMESPACES = ("sklearn", "xgboost", "numpy", "scipy.sparse")
# OwnLens' own estimator classes, each named exactly (never a package prefix) by ``trust_class``; each
# must be a scikit-learn estimator whose state is plain data and sklearn/numpy objects.
TRUSTED_CLASSES: set[str] = set()


def _dump_skops(estimator: Any) -> bytes:
    import skops.io as sio

    try:
        data = sio.dumps(estimator)
    except Exception as exc:  # skops raises TypeError, UnsupportedTypeException, pickling errors...
        raise RegistryError(
            f"cannot serialize {type(estimator).__module__}.{type(estimator).__qualname__} "
            f"as a skops artifact: {type(exc).__name__}: {exc}"
        ) from exc
    _refuse_untrusted(data, f"{type(estimator).__qualname__} artifact")
    return data


def _load_skops(data: bytes) -> Any:
    import skops.io as sio

    untrusted = _refuse_untrusted(data, "artifact")
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise RegistryError(f"cannot read the skops artifact: {type(exc).__name__}: {exc}") from exc


ARTIFACT_FORMATS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    ARTIFACT_FORMAT: (_dump_skops, _load_skops),
}
"""Artifact format (the codec name a version's row stores) -> (dump, load). skops is the registry's own;
the other formats are registered by the task kinds that write them (``register_codec``). Every loader
refuses what it cannot vouch for; none unpickles."""


def register_codec(name: str, dump: Callable[[Any], bytes], load: Callable[[bytes], Any]) -> None:
    """Let versions be stored as ``name``: ``dump(model) -> bytes`` and ``load(bytes) -> model``.

    A task kind calls this when its module is imported (``ownlens_ml.models`` imports them all);
    registering the same name again replaces the codec (a reloaded module).
    """
    ARTIFACT_FORMATS[name] = (dump, load)


def trust_class(cls: type) -> None:
    """Admit one estimator class of the package into skops artifacts, by its exact dotted name.

    It must be a scikit-learn estimator whose state is plain data and sklearn/numpy objects
    (checked again on every load, see ``_trusted_type``).
    """
    TRUSTED_CLASSES.add(f"{cls.__module__}.{cls.__qualname__}")
    _trusted_type.cache_clear()


REQUIRED_METHODS: dict[str, tuple[str, ...]] = {}
"""What a loaded model must offer per task kind (``require_methods``; each kind declares it); checked on
load, because a checksum proves the bytes are the registered ones, not that they are the right kind of model."""


def require_methods(task: str, methods: tuple[str, ...]) -> None:
    """What a loaded model of task kind ``task`` must offer; ``load_model`` checks it (the kinds declare it)."""
    REQUIRED_METHODS[task] = tuple(methods)


def dump_estimator(estimator: Any, artifact_format: str = ARTIFACT_FORMAT) -> tuple[str, bytes]:
    """Serialize a fitted model in ``artifact_format`` (default: a skops archive).

    A skops archive is checked against the same allowlist ``load_estimator`` applies, so a
    model that could never be loaded is refused at registration, not at serving time.

    Returns:
        ``(artifact_format, artifact_bytes)``.

    Raises:
        RegistryError: unknown format, or the object cannot be serialized in it.
        UntrustedArtifactError: the object contains a type outside the allowlist.
    """
    if artifact_format not in ARTIFACT_FORMATS:
        raise RegistryError(f"unknown artifact format {artifact_format!r}; known: {', '.join(ARTIFACT_FORMATS)}")
    return artifact_format, ARTIFACT_FORMATS[artifact_format][0](estimator)


def load_estimator(artifact_format: str, data: bytes, sha256: str) -> Any:
    """Verify an artifact's checksum, then load it by its format (types checked for skops).

    Raises:
        ArtifactIntegrityError: the bytes do not hash to ``sha256`` (checked first).
        UntrustedArtifactError: the archive names a type outside the allowlist.
        RegistryError: unknown artifact format or unreadable archive.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactIntegrityError(
            f"artifact checksum mismatch: expected sha256 {sha256}, got {actual}; the stored "
            "artifact was altered or corrupted, refusing to load it (retrain or restore the row)"
        )
    if artifact_format not in ARTIFACT_FORMATS:
        raise RegistryError(
            f"unknown artifact format {artifact_format!r}; this registry reads "
            f"{', '.join(ARTIFACT_FORMATS)} (a task kind registers its format when "
            "ownlens_ml.models is imported)"
        )
    return ARTIFACT_FORMATS[artifact_format][1](data)


def _refuse_untrusted(data: bytes, what: str) -> list[str]:
    """The archive's non-default types, all allowlisted; else ``UntrustedArtifactError``."""
    import skops.io as sio

    try:
        names = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise RegistryError(f"cannot read the skops {what}: {type(exc).__name__}: {exc}") from exc
    refused = sorted(name for name in names if not _trusted_type(name))
    if refused:
        raise UntrustedArtifactError(
            f"{what} contains types outside the registry allowlist: {', '.join(refused)}; "
            f"allowed beyond skops' defaults: estimator classes from {', '.join(TRUSTED_NAMESPACES)} "
            "(sklearn estimators and trees, xgboost models and Booster, numpy dtypes and scalars, "
            "scipy.sparse matrices) and the classes " + ", ".join(sorted(TRUSTED_CLASSES))
        )
    return list(names)


def _namespace_of(dotted: str) -> str | None:
    return next((ns for ns in TRUSTED_NAMESPACES if dotted == ns or dotted.startswith(ns + ".")), None)


@lru_cache(maxsize=512)
def _trusted_type(name: str) -> bool:
    """Whether the dotted class name ``name`` may be constructed from an artifact.

    Only modules inside ``TRUSTED_NAMESPACES`` are ever imported here; the name must resolve
    to a class (not a function: skops can call those) defined in that same namespace (no
    re-exports of foreign classes), and pass the namespace's rule.
    """
    module_name, _, attr = name.rpartition(".")
    if name in TRUSTED_CLASSES:
        from sklearn.base import BaseEstimator

        obj = getattr(importlib.import_module(module_name), attr, None)
        return isinstance(obj, type) and obj.__module__ == module_name and issubclass(obj, BaseEstimator)
    namespace = _namespace_of(module_name)
    if namespace is None:
        return False
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return False
    if not isinstance(obj, type) or _namespace_of(obj.__module__) != namespace:
        return False
    return _CLASS_RULES[namespace](obj)


def _sklearn_class_ok(cls: type) -> bool:
    from sklearn.base import BaseEstimator
    from sklearn.compose import make_column_selector
    from sklearn.neural_network._stochastic_optimizers import BaseOptimizer
    from sklearn.tree._tree import Tree

    # make_column_selector only holds a regex and dtype names: ColumnTransformers pick columns by dtype with it
    allowed: tuple[type, ...] = (BaseEstimator, BaseOptimizer, Tree, make_column_selector)
    try:  # HistGradientBoosting* keep a loss object; private module, so optional
        from sklearn._loss.loss import BaseLoss

        allowed += (BaseLoss,)
    except ImportError:  # pragma: no cover
        pass
    return issubclass(cls, allowed)


def _xgboost_class_ok(cls: type) -> bool:
    from xgboost import Booster
    from xgboost.sklearn import XGBModel

    return cls is Booster or issubclass(cls, XGBModel)


def _numpy_class_ok(cls: type) -> bool:
    return issubclass(cls, (np.dtype, np.generic))


def _scipy_sparse_class_ok(cls: type) -> bool:
    import scipy.sparse as sp

    return issubclass(cls, (sp.spmatrix, sp.sparray))


_CLASS_RULES = {
    "sklearn": _sklearn_class_ok,
    "xgboost": _xgboost_class_ok,
    "numpy": _numpy_class_ok,
    "scipy.sparse": _scipy_sparse_class_ok,
}
