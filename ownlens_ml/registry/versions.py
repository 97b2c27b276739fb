"""Model versions: registered once with their run, never changed; read by number, alias or newest."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ownlens_ml.db.schema import ml_model_aliases, ml_model_registry, ml_model_training_runs
from ownlens_ml.errors import (
    ArtifactIntegrityError,
    RegistryError,
    UnknownModelVersionError,
)
from ownlens_ml.registry.artifacts import ARTIFACT_FORMAT, REQUIRED_METHODS, dump_estimator, load_estimator
from ownlens_ml.registry.common import _as_utc, _check_lengths, _code_version, _engine, _jsonable, _now, _utc
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)


ALIASES = ("champion", "challenger")
_REGISTER_ATTEMPTS = 5
_PG_LOCK_CLASS = 0x4F4C  # first key of pg_advisory_xact_lock(int, int): "OL", registry locks


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
    _check_lengths(
        ml_model_registry,
        model_name=model_name,
        task=task,
        training_set_fingerprint=training_set_fingerprint,
        code_version=code_version,
    )
    # a model that reads no feature service (a rule over raw activity) records none
    _check_lengths(
        ml_model_registry, optional=True, feature_service=feature_service, feature_service_hash=feature_service_hash
    )
    params = _jsonable(params, "params")
    metrics = _jsonable(metrics, "metrics")
    artifact_format, artifact = dump_estimator(estimator, artifact_format)
    row = dict(
        model_name=model_name,
        task=task,
        feature_service=feature_service,
        feature_service_hash=feature_service_hash,
        training_set_fingerprint=training_set_fingerprint,
        window_start=_utc(window_start, "window_start"),
        window_end=_utc(window_end, "window_end"),
        params=params,
        metrics=metrics,
        code_version=code_version,
        artifact_format=artifact_format,
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
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
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:cls, hashtext(:name))"), {"cls": _PG_LOCK_CLASS, "name": model_name}
        )
    run = conn.execute(
        select(runs_t.c.model_name, runs_t.c.status).where(runs_t.c.run_id == run_id).with_for_update()
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
        update(runs_t)
        .where(runs_t.c.run_id == run_id, runs_t.c.status == "running")
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
            f"for a {info.task} model; promote or train another version"
        )
    return info, estimator


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
            raise UnknownModelVersionError(
                f"{_known_versions(conn, model_name)}; no version {version} (versions are numbers from 1 to 2^63 - 1)"
            )
        exists = conn.execute(
            select(reg.c.version).where(reg.c.model_name == model_name, reg.c.version == int(version))
        ).scalar()
        if exists is None:
            raise UnknownModelVersionError(f"{_known_versions(conn, model_name)}; no version {version}")
        return int(version)
    if isinstance(version, str):
        number = conn.execute(
            select(ali.c.version).where(ali.c.model_name == model_name, ali.c.alias == version)
        ).scalar()
        if number is None:
            raise UnknownModelVersionError(f"{_known_versions(conn, model_name)}; no alias {version!r}")
        return number
    raise RegistryError(f"version must be a number, an alias ({', '.join(ALIASES)}) or None; got {version!r}")


def _known_versions(conn: Connection, model_name: str) -> str:
    """``model 'churn' has versions 1, 2 and aliases champion -> v2``; raises if no versions."""
    reg = ml_model_registry
    versions = (
        conn.execute(select(reg.c.version).where(reg.c.model_name == model_name).order_by(reg.c.version))
        .scalars()
        .all()
    )
    if not versions:
        models = conn.execute(select(reg.c.model_name).distinct().order_by(reg.c.model_name)).scalars().all()
        known = f"registered models: {', '.join(models)}" if models else "the registry is empty"
        raise UnknownModelVersionError(
            f"no model {model_name!r} in the registry; {known}; register one with `ownlens-ml train {model_name}`"
        )
    aliases = _aliases_by_version(conn, model_name)
    pointers = (
        ", ".join(f"{alias} -> v{number}" for (_, number), names in sorted(aliases.items()) for alias in names)
        or "none"
    )
    return f"model {model_name!r} has versions {', '.join(map(str, versions))} and aliases {pointers}"


def _version_columns():
    reg = ml_model_registry
    return [column for column in reg.c if column.name != "artifact"]


def _read_version(conn: Connection, model_name: str, version: int) -> ModelVersion:
    reg = ml_model_registry
    row = conn.execute(
        select(*_version_columns()).where(reg.c.model_name == model_name, reg.c.version == version)
    ).one()
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
