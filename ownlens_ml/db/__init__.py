"""Database access: engines for both profiles, schema creation and migration."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError

from ownlens_ml.errors import (
    ConcurrentJobError,
    DamagedStateError,
    DatabaseUnavailableError,
    MissingTableError,
    StateFolderError,
)
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
DAMAGED_SQLITE = ("file is not a database", "database disk image is malformed")
"""SQLite's words for a file it cannot read as a database (a garbage header or garbage pages)."""


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "handle_error")
        def _damaged(context) -> None:  # context: an ExceptionContext
            reason = str(context.original_exception)
            if isinstance(context.original_exception, sqlite3.DatabaseError) and reason in DAMAGED_SQLITE:
                raise DamagedStateError(
                    f"the local database {engine.url.database} is damaged ({reason}); move it aside, run "
                    "`ownlens-ml db init` for a new one, then `data generate` or `data import` again"
                ) from None

        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def state_folder(settings: Settings) -> Path:
    """The state folder (``OWNLENS_HOME``), created if needed.

    Raises:
        StateFolderError: it cannot be created or is read-only.
    """
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateFolderError(
            f"cannot create the state folder {settings.home}: {exc.strerror}; "
            "set OWNLENS_HOME to a folder you can write"
        ) from None
    if not os.access(settings.home, os.W_OK):
        raise StateFolderError(
            f"the state folder {settings.home} is read-only; make it writable "
            "or set OWNLENS_HOME to a folder you can write"
        )
    return settings.home


def get_engine(settings: Settings, create: bool = False) -> Engine:
    """The OwnLens database engine; raises a one-line error if it cannot be reached.

    Args:
        create: allow the local database file not to exist yet (``init_db`` creates it); any
            other command before ``db init`` is refused and leaves no empty file behind.

    Raises:
        DatabaseUnavailableError: the database cannot be reached or opened.
        MissingTableError: the local database file does not exist (and not ``create``).
        DamagedStateError: the local database file is not a readable SQLite database.
        StateFolderError: the local profile's state folder cannot be written.
    """
    if not settings.is_production:
        database = settings.home / "ownlens.db"
        if not create and not database.exists():
            raise MissingTableError(f"the local database {database} does not exist; run `ownlens-ml db init` first")
        state_folder(settings)
    engine = _engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise DatabaseUnavailableError(_describe_unreachable(engine, exc)) from None
    return engine


def _describe_unreachable(engine: Engine, exc: OperationalError) -> str:
    url = engine.url
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if url.get_backend_name() == "sqlite":
        return (
            f"cannot open the local database {url.database}: {reason}; "
            "check that OWNLENS_HOME is a folder you can write"
        )
    return (
        f"cannot connect to PostgreSQL at {url.host or 'localhost'}:{url.port or 5432} "
        f"(database {url.database!r}): {reason}; check OWNLENS_DATABASE_URL"
    )


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def lock_key(job: str) -> int:
    """The 64-bit PostgreSQL advisory lock key of a job, e.g. ``features build``."""
    return int.from_bytes(hashlib.sha256(f"ownlens_ml:{job}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def job_lock(settings: Settings, engine: Engine, job: str) -> Iterator[None]:
    """Hold ``job``'s lock while the block runs; a second run of the same job fails at once.

    PostgreSQL: a session advisory lock on a connection of its own (per database; released when
    the block ends or the process dies). Local: ``flock`` on a file in the state folder.

    Raises:
        ConcurrentJobError: another process holds the lock.
    """
    busy = ConcurrentJobError(
        f"another {job} is running on this {settings.profile} "
        f"{'database' if settings.is_production else 'state folder'}; "
        "wait for it to finish, then run again if you still need to"
    )
    if engine.dialect.name != "postgresql":
        import fcntl

        path = settings.home / f".lock-{job.replace(' ', '-')}"
        try:
            handle = open(path, "a")  # noqa: SIM115 - held open for the lock's lifetime
        except OSError as exc:
            raise StateFolderError(
                f"cannot create the lock file {path}: {exc.strerror}; make the state "
                "folder writable or set OWNLENS_HOME"
            ) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
            yield
        return
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(job)}).scalar():
            raise busy
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(job)})
            conn.commit()


def init_db(settings: Settings) -> str:
    """Create or migrate the schema to the newest revision; safe to run again.

    Returns:
        The schema revision now in force.

    Raises:
        ConcurrentJobError: another ``db init`` is migrating the same database.
    """
    engine = get_engine(settings, create=True)
    with job_lock(settings, engine, "db init"):
        command.upgrade(alembic_config(engine), "head")
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def require_tables(engine: Engine, *names: str) -> None:
    """Raise ``MissingTableError`` naming the first table that does not exist."""
    try:
        existing = set(inspect(engine).get_table_names())
    except OperationalError as exc:
        raise DatabaseUnavailableError(_describe_unreachable(engine, exc)) from None
    for name in names:
        if name not in existing:
            raise MissingTableError(f"table {name!r} does not exist; run `ownlens-ml db init` first")
