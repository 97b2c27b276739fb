"""Model registry: immutable, checksummed model versions, movable aliases, training runs.

A version is written once, in one transaction with the training run that produced it, and
never changed. Artifacts are skops archives (no pickle): every type they name must pass a
fixed allowlist before anything is constructed, and the SHA-256 recorded at registration is
checked on every load. ``champion`` and ``challenger`` are aliases (MLflow's model after
stages): a row per (model, alias) whose primary key makes "one champion per model" a
database fact, moved by one atomic upsert that remembers the version it replaced.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, String, func, insert, select, text, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError, OperationalError

from ownlens_ml import __version__
from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import ml_model_aliases, ml_model_registry, ml_model_training_runs
from ownlens_ml.errors import (
    ArtifactIntegrityError,
    RegistryError,
    UnknownModelVersionError,
    UntrustedArtifactError,
)
from ownlens_ml.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
ARTIFACT_FORMAT = "skops"

# Packages whose classes an artifact may name beyond skops' own defaults. Each package also
# has a rule on the class itself (see ``_CLASS_RULES``): a module prefix alone would admit,
# e.g., ``numpy.memmap`` (whose constructor opens files) or ``xgboost.DMatrix``.
TRUSTED_NAMESPACES = ("sklearn", "xgboost", "numpy", "scipy.sparse")
# OwnLens' own estimator classes, each named exactly (never a package prefix); each must be a
# scikit-learn estimator whose state is plain data and sklearn/numpy objects.
TRUSTED_CLASSES = frozenset({"ownlens_ml.models.customer.segmentation.ReaderSegmentation"})

_REGISTER_ATTEMPTS = 5
_PG_LOCK_CLASS = 0x4F4C  # first key of pg_advisory_xact_lock(int, int): "OL", registry locks
_RUN_COLUMNS = ["run_id", "model_name", "status", "started_at", "finished_at", "version",
                "params", "metrics", "error"]


@dataclass(frozen=True)
class ModelVersion:
    """One registered, immutable model version (without its artifact bytes).

    Attributes:
        aliases: the aliases (``champion``, ``challenger``) pointing at this version when read.
    """

    model_name: str
    version: int
    created_at: datetime
    task: str
    feature_service: str
    feature_service_hash: str
    training_set_fingerprint: str
    window_start: datetime | None
    window_end: datetime | None
    params: dict
    metrics: dict
    code_version: str
    artifact_format: str
    artifact_sha256: str
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``churn v3``: how messages name this version."""
        return f"{self.model_name} v{self.version}"


# --- artifacts -------------------------------------------------------------------------


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


# --- artifacts of the models that are not estimators -------------------------------------
# Each is a plain data format read without unpickling: numbers in a .npz (np.load with
# allow_pickle=False refuses object arrays) beside JSON, or JSON alone.


def dump_als_npz(model: Any) -> bytes:
    """A fitted ``Recommender`` as one .npz: its numeric arrays and a JSON ``meta`` member (as bytes)."""
    import io
    import json

    arrays, meta = model.to_arrays()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8))
    return buffer.getvalue()


def load_als_npz(data: bytes) -> Any:
    """The ``Recommender`` in ``dump_als_npz`` bytes; numeric arrays only, never a pickle.

    Raises:
        RegistryError: not an .npz of the recommender's arrays.
    """
    import io
    import json
    import zipfile

    from ownlens_ml.errors import ValidationError
    from ownlens_ml.models.customer.recommendation import Recommender

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise RegistryError(f"cannot read the als-npz artifact: {exc}") from None
    unknown = sorted(set(arrays) - set(Recommender.ARRAYS) - {"meta"})
    odd = sorted(name for name, a in arrays.items() if a.dtype.kind not in "iuf")
    if unknown or odd or "meta" not in arrays:
        raise RegistryError(f"als-npz artifact has unexpected members {unknown or odd or ['no meta']}")
    try:
        return Recommender.from_arrays(arrays, json.loads(arrays.pop("meta").tobytes()))
    except (ValidationError, ValueError) as exc:
        raise RegistryError(f"als-npz artifact does not hold a recommender: {exc}") from None


def dump_rule_json(rule: Any) -> bytes:
    """A scoring rule's parameters as JSON."""
    return rule.to_json()


def load_rule_json(data: bytes) -> Any:
    """The ``TrendingRule`` in ``dump_rule_json`` bytes.

    Raises:
        RegistryError: not a rule document.
    """
    from ownlens_ml.errors import ValidationError
    from ownlens_ml.models.editorial.trending import TrendingRule

    try:
        return TrendingRule.from_json(data)
    except ValidationError as exc:
        raise RegistryError(f"rule-json artifact: {exc}") from None


ARTIFACT_FORMATS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    ARTIFACT_FORMAT: (_dump_skops, _load_skops),
    "als-npz": (dump_als_npz, load_als_npz),
    "rule-json": (dump_rule_json, load_rule_json),
}
"""Artifact format -> (dump, load). Every loader refuses what it cannot vouch for; none unpickles."""


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
        raise RegistryError(f"unknown artifact format {artifact_format!r}; this registry reads "
                            f"{', '.join(ARTIFACT_FORMATS)}")
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


# --- training runs ---------------------------------------------------------------------


def start_run(settings: Settings, model_name: str, params: dict) -> str:
    """Record a training run in state ``running``.

    Returns:
        The new run id (a UUID4 string), to pass to ``register`` or ``fail_run``.
    """
    _check_lengths(ml_model_training_runs, model_name=model_name)
    params = _jsonable(params, "params")
    run_id = str(uuid.uuid4())
    with _engine(settings).begin() as conn:
        conn.execute(insert(ml_model_training_runs).values(
            run_id=run_id, model_name=model_name, status="running", started_at=_now(),
            params=params,
        ))
    log.info("training run %s started for %s", run_id, model_name)
    return run_id


def fail_run(settings: Settings, run_id: str, error: str) -> None:
    """Mark a running training run ``failed`` with its error text.

    A run that already finished keeps its state (a ``succeeded`` run owns a version); that
    case is logged, not raised, because callers reach here from an error handler.

    Raises:
        RegistryError: no run has this id.
    """
    runs_t = ml_model_training_runs
    with _engine(settings).begin() as conn:
        done = conn.execute(
            update(runs_t)
            .where(runs_t.c.run_id == run_id, runs_t.c.status == "running")
            .values(status="failed", finished_at=_now(), error=str(error))
        ).rowcount
        if not done:
            status = conn.execute(select(runs_t.c.status).where(runs_t.c.run_id == run_id)).scalar()
            if status is None:
                raise RegistryError(f"no training run {run_id!r}; start one with start_run()")
            log.warning("training run %s is already %s; not marking it failed (%s)", run_id, status, error)
            return
    log.info("training run %s failed: %s", run_id, error)


def runs(settings: Settings, model_name: str | None = None) -> pd.DataFrame:
    """Training runs, newest first (one row per run; ``params``/``metrics`` as dicts)."""
    runs_t = ml_model_training_runs
    query = select(*(runs_t.c[name] for name in _RUN_COLUMNS)).order_by(
        runs_t.c.started_at.desc(), runs_t.c.run_id)
    if model_name is not None:
        query = query.where(runs_t.c.model_name == model_name)
    with _engine(settings).connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=_RUN_COLUMNS)
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["version"] = frame["version"].astype("Int64")
    return frame


# --- versions --------------------------------------------------------------------------


def register(
    settings: Settings,
    run_id: str,
    *,
    model_name: str,
    task: str,
    estimator: Any,
    feature_service: str,
    artifact_format: str = ARTIFACT_FORMAT,
    feature_service_hash: str,
    training_set_fingerprint: str,
    window_start: datetime | None,
    window_end: datetime | None,
    params: dict,
    metrics: dict,
    code_version: str | None = None,
) -> ModelVersion:
    """Store a fitted estimator as the model's next version and close its training run.

    One transaction: allocate ``max(version) + 1`` (serialized per model by an advisory lock
    on PostgreSQL; a unique-key race is retried), insert the version with its artifact and
    SHA-256, mark the run ``succeeded``. On any error nothing is written; the caller then
    calls ``fail_run``.

    Args:
        run_id: a ``running`` run of ``model_name`` from ``start_run``.
        code_version: defaults to the checkout's ``git rev-parse HEAD`` (``+dirty`` when
            tracked files differ from it), else the package version.

    Raises:
        RegistryError: the run is unknown, finished or of another model; a value is not
            JSON-encodable or too long; the estimator cannot be serialized.
        UntrustedArtifactError: the estimator contains a type outside the allowlist.
    """
    code_version = code_version or _code_version()
    _check_lengths(ml_model_registry, model_name=model_name, task=task,
                   training_set_fingerprint=training_set_fingerprint, code_version=code_version)
    # a model that reads no feature service (a rule over raw activity) records none
    _check_lengths(ml_model_registry, optional=True, feature_service=feature_service,
                   feature_service_hash=feature_service_hash)
    params = _jsonable(params, "params")
    metrics = _jsonable(metrics, "metrics")
    artifact_format, artifact = dump_estimator(estimator, artifact_format)
    row = dict(
        model_name=model_name, task=task, feature_service=feature_service,
        feature_service_hash=feature_service_hash, training_set_fingerprint=training_set_fingerprint,
        window_start=_utc(window_start, "window_start"), window_end=_utc(window_end, "window_end"),
        params=params, metrics=metrics, code_version=code_version, artifact_format=artifact_format,
        artifact=artifact, artifact_sha256=hashlib.sha256(artifact).hexdigest(),
    )
    engine = _engine(settings)
    for attempt in range(1, _REGISTER_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                version = _register_once(conn, run_id, row)
                registered = _read_version(conn, model_name, version)
            break
        except (IntegrityError, OperationalError) as exc:
            # Another writer took the same version number (or held SQLite's write lock
            # past its timeout); the transaction rolled back, so try the next number.
            if attempt == _REGISTER_ATTEMPTS or not _is_race(exc):
                raise
            log.info("version race for %s (attempt %d): %s; retrying", model_name, attempt, exc.orig)
    log.info("registered %s (run %s, sha256 %s)", registered.label, run_id, registered.artifact_sha256[:12])
    return registered


def _register_once(conn: Connection, run_id: str, row: dict) -> int:
    runs_t, reg = ml_model_training_runs, ml_model_registry
    model_name = row["model_name"]
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:name))"),
                     {"cls": _PG_LOCK_CLASS, "name": model_name})
    run = conn.execute(
        select(runs_t.c.model_name, runs_t.c.status).where(runs_t.c.run_id == run_id)
        .with_for_update()
    ).first()
    if run is None:
        raise RegistryError(f"no training run {run_id!r}; start one with start_run() before register()")
    if run.model_name != model_name:
        raise RegistryError(f"training run {run_id} belongs to model {run.model_name!r}, not {model_name!r}")
    if run.status != "running":
        raise RegistryError(f"training run {run_id} is already {run.status}; start a new run to register")
    latest = conn.execute(select(func.max(reg.c.version)).where(reg.c.model_name == model_name)).scalar()
    version = (latest or 0) + 1
    now = _now()
    conn.execute(insert(reg).values(version=version, created_at=now, **row))
    done = conn.execute(
        update(runs_t).where(runs_t.c.run_id == run_id, runs_t.c.status == "running")
        .values(status="succeeded", finished_at=now, version=version, metrics=row["metrics"])
    ).rowcount
    if done != 1:  # pragma: no cover - the row lock above makes this unreachable on PostgreSQL
        raise RegistryError(f"training run {run_id} changed while registering; start a new run")
    return version


def _is_race(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return "ml_model_registry" in str(exc.orig) or "pk_ml_model_registry" in str(exc.orig)
    return "database is locked" in str(exc.orig)


def get_version(settings: Settings, model_name: str, version: int | str | None = None) -> ModelVersion:
    """One model version, without its artifact.

    Args:
        version: a version number (``3`` or ``"3"``), an alias (``"champion"``), or ``None``
            / ``"latest"`` for the newest version.

    Raises:
        UnknownModelVersionError: naming the registered models, or the model's versions and
            aliases.
    """
    with _engine(settings).connect() as conn:
        return _read_version(conn, model_name, _resolve(conn, model_name, version))


def load_model(settings: Settings, model_name: str, version: int | str | None = None) -> tuple[ModelVersion, Any]:
    """A model version and its estimator, checksum and type allowlist verified.

    Raises:
        UnknownModelVersionError, ArtifactIntegrityError, UntrustedArtifactError.
    """
    reg = ml_model_registry
    with _engine(settings).connect() as conn:
        number = _resolve(conn, model_name, version)
        info = _read_version(conn, model_name, number)
        artifact = conn.execute(
            select(reg.c.artifact).where(reg.c.model_name == model_name, reg.c.version == number)
        ).scalar_one()
    try:
        estimator = load_estimator(info.artifact_format, bytes(artifact), info.artifact_sha256)
    except RegistryError as exc:
        remedy = "" if ";" in str(exc) else "; promote or train another version"
        raise type(exc)(f"{info.label}: {exc}{remedy}") from None
    needed = [m for m in REQUIRED_METHODS.get(info.task, ()) if not callable(getattr(estimator, m, None))]
    if needed:
        raise ArtifactIntegrityError(
            f"{info.label}: the artifact holds a {type(estimator).__name__}, which has no {', '.join(needed)} "
            f"for a {info.task} model; promote or train another version")
    return info, estimator


REQUIRED_METHODS = {"binary": ("predict_proba",), "regression": ("predict",), "clustering": ("predict",),
                    "ranking": ("recommend",)}
"""What a loaded model must offer per task kind; checked on load, because a checksum proves
the bytes are the registered ones, not that they are the right kind of model."""


def list_versions(settings: Settings, model_name: str | None = None) -> list[ModelVersion]:
    """Registered versions ordered by model name and version (all models when ``None``)."""
    reg = ml_model_registry
    query = select(*_version_columns()).order_by(reg.c.model_name, reg.c.version)
    if model_name is not None:
        query = query.where(reg.c.model_name == model_name)
    with _engine(settings).connect() as conn:
        rows = conn.execute(query).all()
        aliases = _aliases_by_version(conn, model_name)
    return [_to_version(row, aliases) for row in rows]


# --- aliases ---------------------------------------------------------------------------


def set_alias(settings: Settings, model_name: str, alias: str, version: int | str) -> None:
    """Point ``alias`` at a version, atomically; the version it pointed at becomes previous.

    Pointing an alias at the version it already names changes nothing (so a repeated
    promotion does not erase the rollback target).

    Raises:
        RegistryError: ``alias`` is not one of ``ALIASES``.
        UnknownModelVersionError: the version does not exist.
    """
    with _engine(settings).begin() as conn:
        _set_alias(conn, model_name, alias, version)


def promote(settings: Settings, model_name: str, version: int | str) -> ModelVersion:
    """Make a version the champion (no gate here: the training engine gates promotion).

    Returns:
        The promoted version, its ``aliases`` as of the promotion.
    """
    with _engine(settings).begin() as conn:
        number = _set_alias(conn, model_name, "champion", version)
        promoted = _read_version(conn, model_name, number)
    log.info("%s is now champion", promoted.label)
    return promoted


def rollback(settings: Settings, model_name: str) -> ModelVersion:
    """Make the previous champion champion again; the replaced one becomes previous.

    Raises:
        UnknownModelVersionError: the model is not registered.
        RegistryError: the model has no champion, or its champion has no previous version.
    """
    ali = ml_model_aliases
    where = (ali.c.model_name == model_name, ali.c.alias == "champion")
    with _engine(settings).begin() as conn:
        current = conn.execute(select(ali.c.version, ali.c.previous_version).where(*where)
                               .with_for_update()).first()
        if current is None:
            _known_versions(conn, model_name)  # raises for an unknown model
            raise RegistryError(f"cannot roll back {model_name!r}: it has no champion; promote a version first")
        if current.previous_version is None:
            raise RegistryError(
                f"cannot roll back {model_name!r}: champion v{current.version} has no previous champion "
                f"to return to; promote a version with `ownlens-ml registry promote {model_name} VERSION` instead"
            )
        # Compare-and-set: on SQLite the read above takes no lock.
        moved = conn.execute(
            update(ali).where(*where, ali.c.version == current.version,
                              ali.c.previous_version == current.previous_version)
            .values(version=current.previous_version, previous_version=current.version, updated_at=_now())
        ).rowcount
        if moved != 1:
            raise RegistryError(f"the champion of {model_name!r} changed during rollback; try again")
        restored = _read_version(conn, model_name, current.previous_version)
    log.info("rolled back %s: v%d -> v%d", model_name, current.version, restored.version)
    return restored


def _set_alias(conn: Connection, model_name: str, alias: str, version: int | str) -> int:
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r}; aliases are {', '.join(ALIASES)}")
    number = _resolve(conn, model_name, version)
    ali = ml_model_aliases
    dialect = {"postgresql": pg_dialect, "sqlite": sqlite_dialect}.get(conn.dialect.name)
    if dialect is None:  # pragma: no cover
        raise RegistryError(f"aliases need PostgreSQL or SQLite, not {conn.dialect.name}")
    stmt = dialect.insert(ali).values(model_name=model_name, alias=alias, version=number,
                                      previous_version=None, updated_at=_now())
    # One statement, so concurrent promotions serialize on the (model_name, alias) key.
    stmt = stmt.on_conflict_do_update(
        index_elements=[ali.c.model_name, ali.c.alias],
        set_={"version": stmt.excluded.version, "previous_version": ali.c.version,
              "updated_at": stmt.excluded.updated_at},
        where=ali.c.version != stmt.excluded.version,
    )
    conn.execute(stmt)
    return number


# --- reading helpers -------------------------------------------------------------------


def _resolve(conn: Connection, model_name: str, version: int | str | None) -> int:
    """The version number ``version`` names, or ``UnknownModelVersionError``."""
    reg, ali = ml_model_registry, ml_model_aliases
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version)
    if version is None or version == "latest":
        number = conn.execute(select(func.max(reg.c.version)).where(reg.c.model_name == model_name)).scalar()
        if number is None:
            _known_versions(conn, model_name)
        return number
    if isinstance(version, (int, np.integer)) and not isinstance(version, bool):
        if not 1 <= version < 2**63:  # a 64-bit column: a larger number would overflow the driver
            raise UnknownModelVersionError(f"{_known_versions(conn, model_name)}; no version {version} "
                                           "(versions are numbers from 1 to 2^63 - 1)")
        exists = conn.execute(select(reg.c.version).where(
            reg.c.model_name == model_name, reg.c.version == int(version))).scalar()
        if exists is None:
            raise UnknownModelVersionError(f"{_known_versions(conn, model_name)}; no version {version}")
        return int(version)
    if isinstance(version, str):
        number = conn.execute(select(ali.c.version).where(
            ali.c.model_name == model_name, ali.c.alias == version)).scalar()
        if number is None:
            raise UnknownModelVersionError(f"{_known_versions(conn, model_name)}; no alias {version!r}")
        return number
    raise RegistryError(f"version must be a number, an alias ({', '.join(ALIASES)}) or None; got {version!r}")


def _known_versions(conn: Connection, model_name: str) -> str:
    """``model 'churn' has versions 1, 2 and aliases champion -> v2``; raises if no versions."""
    reg = ml_model_registry
    versions = conn.execute(select(reg.c.version).where(reg.c.model_name == model_name)
                            .order_by(reg.c.version)).scalars().all()
    if not versions:
        models = conn.execute(select(reg.c.model_name).distinct().order_by(reg.c.model_name)).scalars().all()
        known = f"registered models: {', '.join(models)}" if models else "the registry is empty"
        raise UnknownModelVersionError(f"no model {model_name!r} in the registry; {known}; "
                                       f"register one with `ownlens-ml train {model_name}`")
    aliases = _aliases_by_version(conn, model_name)
    pointers = ", ".join(f"{alias} -> v{number}" for (_, number), names in sorted(aliases.items())
                         for alias in names) or "none"
    return f"model {model_name!r} has versions {', '.join(map(str, versions))} and aliases {pointers}"


def _version_columns():
    reg = ml_model_registry
    return [column for column in reg.c if column.name != "artifact"]


def _read_version(conn: Connection, model_name: str, version: int) -> ModelVersion:
    reg = ml_model_registry
    row = conn.execute(select(*_version_columns()).where(
        reg.c.model_name == model_name, reg.c.version == version)).one()
    return _to_version(row, _aliases_by_version(conn, model_name))


def _aliases_by_version(conn: Connection, model_name: str | None) -> dict[tuple[str, int], tuple[str, ...]]:
    ali = ml_model_aliases
    query = select(ali.c.model_name, ali.c.version, ali.c.alias).order_by(ali.c.alias)
    if model_name is not None:
        query = query.where(ali.c.model_name == model_name)
    found: dict[tuple[str, int], tuple[str, ...]] = {}
    for name, number, alias in conn.execute(query):
        found[(name, number)] = found.get((name, number), ()) + (alias,)
    return found


def _to_version(row, aliases: dict[tuple[str, int], tuple[str, ...]]) -> ModelVersion:
    values = row._asdict()
    for column in ("created_at", "window_start", "window_end"):
        values[column] = _as_utc(values[column])
    return ModelVersion(**values, aliases=aliases.get((values["model_name"], values["version"]), ()))


# --- small helpers ---------------------------------------------------------------------


REGISTRY_TABLES = ("ml_model_registry", "ml_model_aliases", "ml_model_training_runs")


def _engine(settings: Settings) -> Engine:
    engine = get_engine(settings)
    require_tables(engine, *REGISTRY_TABLES)
    return engine


def _now() -> datetime:
    """When a registry row is written: the real time even under a pinned ``clock`` (it orders runs and
    audits changes; it is no data time)."""
    return datetime.now(timezone.utc)


def _as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetimes from both backends (SQLite hands back naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _utc(value: Any, name: str) -> datetime | None:
    """A datetime/date/Timestamp as aware UTC; naive values are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if not isinstance(value, datetime):
        raise RegistryError(f"{name} must be a datetime or None; got {value!r}")
    return _as_utc(value)


def _check_lengths(table, optional: bool = False, **values: str) -> None:
    for name, value in values.items():
        limit = table.c[name].type.length if isinstance(table.c[name].type, String) else None
        if not isinstance(value, str) or not (value or optional):
            raise RegistryError(f"{name} must be a non-empty string; got {value!r}")
        if limit and len(value) > limit:
            raise RegistryError(f"{name} {value[:80]!r} is {len(value)} characters; the limit is {limit}")


def _jsonable(value: Any, path: str) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays unwrapped), or RegistryError.

    Non-finite floats are refused: PostgreSQL's JSON rejects them, and a NaN metric would
    quietly lose every comparison a promotion gate makes with it.
    """
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RegistryError(f"{path} is {value}; registry values must be finite numbers")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RegistryError(f"{path} has a non-string key {key!r}; use strings")
            out[key] = _jsonable(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise RegistryError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__} ({value!r:.80}), which is "
        "not JSON-encodable; pass numbers, strings, booleans, lists or dicts"
    )


def _code_version() -> str:
    """``git rev-parse HEAD`` of the package checkout (``+dirty`` if tracked files differ)."""
    if (PROJECT_ROOT / ".git").exists():
        try:
            head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], check=True,
                                  capture_output=True, text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "diff", "--quiet", "HEAD", "--"],
                                   capture_output=True, timeout=30).returncode == 1
            if head:
                return head + ("+dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("no git code version: %s", exc)
    return __version__

