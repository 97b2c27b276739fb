"""Aliases (``champion``, ``challenger``): a row per (model, alias), moved atomically, remembering the last."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ownlens_ml.db.schema import ml_model_aliases
from ownlens_ml.errors import RegistryError
from ownlens_ml.registry.common import _engine, _now
from ownlens_ml.registry.versions import ALIASES, ModelVersion, _known_versions, _read_version, _resolve
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)


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
        current = conn.execute(select(ali.c.version, ali.c.previous_version).where(*where).with_for_update()).first()
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
            update(ali)
            .where(*where, ali.c.version == current.version, ali.c.previous_version == current.previous_version)
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
    stmt = dialect.insert(ali).values(
        model_name=model_name, alias=alias, version=number, previous_version=None, updated_at=_now()
    )
    # One statement, so concurrent promotions serialize on the (model_name, alias) key.
    stmt = stmt.on_conflict_do_update(
        index_elements=[ali.c.model_name, ali.c.alias],
        set_={
            "version": stmt.excluded.version,
            "previous_version": ali.c.version,
            "updated_at": stmt.excluded.updated_at,
        },
        where=ali.c.version != stmt.excluded.version,
    )
    conn.execute(stmt)
    return number
