"""Bad inputs and faults against the real CLI, in subprocesses: each must exit non-zero with
one clear message (no traceback) naming the problem, and leave the data exactly as it was.

One small platform is built per profile for the whole module; a case that needs a broken
state (a deleted file, a copied folder, a bad row) gets its own copy or undoes its change.
A read-only state folder is a read-only bind mount in a private mount namespace when the
tests run as root (who may write anywhere), folders without write permission otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np
import psycopg2
import pytest
import redis
from sqlalchemy import inspect, text

from ownlens_ml import registry
from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.db import get_engine, init_db
from ownlens_ml.features import store
from ownlens_ml.features.feast_store import forget_store
from ownlens_ml.features.quality import newest_snapshot, utc_midnight
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.settings import Settings

CLI = str(Path(sys.executable).with_name("ownlens-ml"))
BOTH, LOCAL, PRODUCTION = ("local", "production"), ("local",), ("production",)


@dataclass(frozen=True)
class Case:
    """One bad input or fault: the command line, where it applies, what the message must say."""

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    profiles: tuple[str, ...] = BOTH
    env: dict[str, str] = field(default_factory=dict)
    state: str = "built"
    """built: the module's platform; fresh: an empty state folder / database; copy: a copy of
    the built local state folder, changed by ``prepare``."""
    prepare: Callable | None = None
    """(settings, tmp) -> settings | None, run before the data is fingerprinted."""
    cleanup: Callable | None = None
    read_only: bool = False


# --- states the cases prepare -----------------------------------------------------------


FIELDS: dict[str, str] = {}
"""Values a case's ``prepare`` puts into its arguments (``{port}``), besides ``{tmp}``."""
_LISTENERS: list[socket.socket] = []


def _port_in_use(settings: Settings, tmp: Path) -> Settings:
    listener = socket.create_server(("127.0.0.1", 0))
    _LISTENERS.append(listener)
    FIELDS["port"] = str(listener.getsockname()[1])
    return settings


def _free_the_port(settings: Settings) -> None:
    while _LISTENERS:
        _LISTENERS.pop().close()
    FIELDS.pop("port", None)


def _reapply(settings: Settings, tmp: Path) -> Settings:
    forget_store(settings)
    store.apply_repo(settings)
    return settings


def _delete(*names: str, reapply: bool = False):
    def prepare(settings: Settings, tmp: Path) -> Settings:
        if reapply:
            _reapply(settings, tmp)
        for name in names:
            for path in settings.home.glob(name):
                path.unlink()
        return settings
    return prepare


def _fresh_store(settings: Settings, tmp: Path) -> Settings:
    """Applied but never materialized: a new Feast project (production) or a new registry (local)."""
    if settings.is_production:
        settings = dataclasses.replace(settings, project=f"t{uuid.uuid4().hex[:10]}")
    else:
        for name in ("feast/registry.db", "feast/online.db"):
            (settings.home / name).unlink()
    return _reapply(settings, tmp)


def _existing_file(settings: Settings, tmp: Path) -> Settings:
    (tmp / "a_file").write_text("not a folder")
    return settings


def _nul_csv(settings: Settings, tmp: Path) -> Settings:
    (tmp / "brands.csv").write_bytes(b"brand_id,name,domain\n77,\"Week\x00ly\",weekly.example\n")
    return settings


def _bad_session(settings: Settings, tmp: Path) -> Settings:
    """A session with negative page views: the build's range check must refuse the build."""
    with get_engine(settings).begin() as conn:
        row = conn.execute(text("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")).mappings().one()
        conn.execute(text("INSERT INTO sessions (session_id, user_id, brand_id, started_at, ended_at, device_type_id, "
                          "referrer, page_views, engaged_seconds) VALUES (:id, :u, :b, :s, :e, :d, :r, -50, 60)"),
                     {"id": 10**9, "u": row["user_id"], "b": row["brand_id"], "s": row["started_at"],
                      "e": row["ended_at"], "d": row["device_type_id"], "r": row["referrer"]})
    return settings


def _drop_bad_session(settings: Settings) -> None:
    with get_engine(settings).begin() as conn:
        conn.execute(text("DELETE FROM sessions WHERE session_id = :id"), {"id": 10**9})


def _wrong_kind_artifact(settings: Settings, tmp: Path) -> Settings:
    """A regressor registered as the binary churn model: its checksum is right, its kind is not."""
    from sklearn.linear_model import LinearRegression

    x = np.arange(20, dtype=float).reshape(-1, 1)
    model = LinearRegression().fit(x, x.ravel())
    run = registry.start_run(settings, "churn", {})
    registry.register(settings, run, model_name="churn", task="binary", estimator=model,
                      feature_service="churn_v1", feature_service_hash="0" * 64,
                      training_set_fingerprint="0" * 64, window_start=None, window_end=None,
                      params={}, metrics={})
    return settings


# --- the table ----------------------------------------------------------------------------

CLOSED_PG = "postgresql://postgres@127.0.0.1:1/postgres"
NO_DATABASE = "postgresql://postgres@127.0.0.1:5432/ownlens_no_such_database"
NO_ROLE = "postgresql://ownlens_no_such_role@127.0.0.1:5432/postgres"
CLOSED_REDIS = "redis://127.0.0.1:1/0"

CASES = [
    # data generate: arguments
    Case("generate-negative-seed", ("data", "generate", "--seed", "-1"), ("--seed",), LOCAL),
    Case("generate-zero-users", ("data", "generate", "--users", "0"), ("--users",), LOCAL),
    Case("generate-start-not-a-date", ("data", "generate", "--start", "notadate"), ("--start",), LOCAL),
    Case("generate-start-bad-month", ("data", "generate", "--start", "2026-13-45"), ("--start",), LOCAL),
    Case("generate-start-past-timestamps", ("data", "generate", "--users", "10", "--days", "10", "--start",
                                            "9999-12-25"), ("timestamp range", "earlier --start")),
    Case("generate-read-only-home", ("data", "generate", "--users", "10", "--days", "5"), ("read-only",), LOCAL,
         read_only=True),
    # data import / profile
    Case("import-nul-byte", ("data", "import", "brands", "{tmp}/brands.csv"), ("line 2", "NUL"), prepare=_nul_csv),
    Case("import-missing-file", ("data", "import", "brands", "{tmp}/nothing.csv"), ("does not exist",), LOCAL),
    Case("import-unknown-table", ("data", "import", "readers", "{tmp}/brands.csv"), ("readers",), LOCAL,
         prepare=_nul_csv),
    Case("profile-out-is-a-file", ("data", "profile", "--out", "{tmp}/a_file"), ("is a file",), LOCAL,
         prepare=_existing_file),
    # db init: settings
    Case("home-is-a-file", ("db", "init"), ("is a file",), LOCAL, env={"OWNLENS_HOME": "{tmp}/a_file"},
         prepare=_existing_file),
    Case("home-empty", ("db", "init"), ("OWNLENS_HOME", "empty"), LOCAL, env={"OWNLENS_HOME": ""}),
    Case("redis-url-not-a-url", ("db", "init"), ("OWNLENS_REDIS_URL",), env={"OWNLENS_REDIS_URL": "notaurl"}),
    Case("database-url-mysql", ("db", "init"), ("OWNLENS_DATABASE_URL", "not supported"), PRODUCTION,
         env={"OWNLENS_DATABASE_URL": "mysql://user@127.0.0.1/ownlens"}),
    Case("profile-unknown-option", ("--profile", "prod", "db", "init"), ("'prod'", "local, production"), LOCAL),
    Case("profile-unknown-env", ("db", "init"), ("unknown profile", "staging"), LOCAL,
         env={"OWNLENS_PROFILE": "staging"}),
    Case("project-name-invalid", ("db", "init"), ("project name",), env={"OWNLENS_FEAST_PROJECT": "bad-name"}),
    Case("db-init-read-only-home", ("db", "init"), ("read-only",), LOCAL, read_only=True),
    Case("db-init-closed-port", ("db", "init"), ("OWNLENS_DATABASE_URL", "port 1"), PRODUCTION,
         env={"OWNLENS_DATABASE_URL": CLOSED_PG}),
    # features build
    Case("build-window-without-data", ("features", "build", "--start", "2030-01-01", "--end", "2030-01-05"),
         ("no events", "2030-01-01")),
    Case("build-end-before-start", ("features", "build", "--start", "2026-02-10", "--end", "2026-02-01"),
         ("before it starts",)),
    Case("build-start-not-a-date", ("features", "build", "--start", "2026-02-30"), ("--start",), LOCAL),
    Case("build-fails-its-checks", ("features", "build"), ("data quality", "nothing was written"),
         prepare=_bad_session, cleanup=_drop_bad_session, state="copy-or-built"),
    Case("build-read-only-home", ("features", "build"), ("read-only",), LOCAL, read_only=True),
    Case("build-before-db-init", ("features", "build"), ("db init",), state="fresh"),
    # features check
    Case("check-before-build", ("features", "check"), ("features build",), LOCAL, state="copy",
         prepare=_delete("offline/*.parquet")),
    Case("check-newest-not-a-date", ("features", "check", "--newest", "tomorrow"), ("--newest",), LOCAL),
    # features apply
    Case("apply-read-only-home", ("features", "apply"), ("read-only",), LOCAL, read_only=True),
    Case("apply-closed-port", ("features", "apply"), ("OWNLENS_DATABASE_URL",), PRODUCTION,
         env={"OWNLENS_DATABASE_URL": CLOSED_PG}),
    Case("apply-no-such-database", ("features", "apply"), ("OWNLENS_DATABASE_URL", "ownlens_no_such_database"),
         PRODUCTION, env={"OWNLENS_DATABASE_URL": NO_DATABASE}),
    Case("apply-unknown-role", ("features", "apply"), ("OWNLENS_DATABASE_URL", "ownlens_no_such_role"),
         PRODUCTION, env={"OWNLENS_DATABASE_URL": NO_ROLE}),
    # features materialize
    Case("materialize-start-after-end", ("features", "materialize", "--start", "2026-02-20", "--end", "2026-02-01"),
         ("starts", "after it ends")),
    Case("materialize-window-without-data", ("features", "materialize", "--start", "2030-01-01", "--end",
                                             "2030-02-01"), ("no feature snapshots", "2030-01-01")),
    Case("materialize-registry-deleted", ("features", "materialize"), ("features apply",), LOCAL, state="copy",
         prepare=_delete("feast/registry.db", reapply=True)),
    Case("materialize-online-store-deleted", ("features", "materialize"), ("online store", "features apply"),
         LOCAL, state="copy", prepare=_delete("feast/online.db", reapply=True)),
    Case("materialize-copied-home", ("features", "materialize"), ("copied", "features apply"), LOCAL, state="copy"),
    Case("materialize-read-only-home", ("features", "materialize"), ("read-only",), LOCAL, read_only=True),
    Case("materialize-redis-down", ("features", "materialize"), ("Redis", "127.0.0.1:1"), PRODUCTION,
         env={"OWNLENS_REDIS_URL": CLOSED_REDIS}),
    Case("materialize-before-build", ("features", "materialize"), ("features build",), LOCAL, state="copy",
         prepare=_delete("offline/*.parquet", reapply=True)),
    # features online
    Case("online-id-beyond-int64", ("features", "online", "churn_v1", "99999999999999999999999"),
         ("9223372036854775807",)),
    Case("online-id-not-a-number", ("features", "online", "churn_v1", "abc"), ("valid integer",), LOCAL),
    Case("online-unknown-service", ("features", "online", "chrun_v1", "1"), ("no feature service 'chrun_v1'",
                                                                             "churn_v1")),
    Case("online-unknown-id", ("features", "online", "churn_v1", "987654321"), ("no online values", "987654321")),
    Case("online-never-materialized", ("features", "online", "churn_v1", "1"), ("never materialized",
                                                                                "features materialize"),
         state="copy-or-built", prepare=_fresh_store),
    Case("online-store-deleted", ("features", "online", "churn_v1", "1"), ("online store", "features apply"), LOCAL,
         state="copy", prepare=_delete("feast/online.db", reapply=True)),
    Case("online-copied-home", ("features", "online", "churn_v1", "1"), ("copied",), LOCAL, state="copy"),
    Case("online-read-only-home", ("features", "online", "churn_v1", "1"), ("read-only",), LOCAL, read_only=True),
    Case("online-closed-port", ("features", "online", "churn_v1", "1"), ("OWNLENS_DATABASE_URL", "port 1"),
         PRODUCTION, env={"OWNLENS_DATABASE_URL": CLOSED_PG}),
    Case("online-no-such-database", ("features", "online", "churn_v1", "1"), ("ownlens_no_such_database",),
         PRODUCTION, env={"OWNLENS_DATABASE_URL": NO_DATABASE}),
    Case("online-unknown-role", ("features", "online", "churn_v1", "1"), ("ownlens_no_such_role",), PRODUCTION,
         env={"OWNLENS_DATABASE_URL": NO_ROLE}),
    Case("online-redis-down", ("features", "online", "churn_v1", "1"), ("Redis", "127.0.0.1:1"), PRODUCTION,
         env={"OWNLENS_REDIS_URL": CLOSED_REDIS}),
    # train / evaluate: missing steps (the lead owns the training-engine cases)
    Case("train-before-db-init", ("train", "churn"), ("db init",), state="fresh"),
    Case("train-home-empty", ("train", "churn"), ("OWNLENS_HOME", "empty"), LOCAL, env={"OWNLENS_HOME": ""}),
    Case("train-database-deleted", ("train", "churn"), ("db init",), LOCAL, state="copy",
         prepare=_delete("ownlens.db*")),
    Case("train-before-build", ("train", "churn"), ("features build",), LOCAL, state="copy",
         prepare=_delete("offline/*.parquet", reapply=True)),
    Case("train-copied-home", ("train", "churn"), ("copied",), LOCAL, state="copy"),
    Case("train-as-of-not-a-date", ("train", "churn", "--as-of", "soon"), ("--as-of",), LOCAL),
    Case("train-as-of-after-the-data", ("train", "churn", "--as-of", "2031-01-01"),
         ("--as-of 2031-01-01 is outside the data",)),
    Case("train-articles-as-of-after-the-data", ("train", "article_performance", "--as-of", "2031-01-01"),
         ("article_performance", "outside the data"), LOCAL),
    Case("train-unknown-model", ("train", "chrun"), ("no model 'chrun'", "churn"), LOCAL),
    Case("train-all-with-labels", ("train", "all", "--labels", "labels.csv"), ("--labels", "one model"), LOCAL),
    Case("train-labels-no-such-file", ("train", "churn", "--labels", "/nonexistent/labels.csv"),
         ("no such file",), LOCAL),
    Case("train-closed-port", ("train", "churn"), ("OWNLENS_DATABASE_URL",), PRODUCTION,
         env={"OWNLENS_DATABASE_URL": CLOSED_PG}),
    Case("evaluate-before-db-init", ("evaluate", "churn"), ("db init",), state="fresh"),
    Case("evaluate-database-deleted", ("evaluate", "churn"), ("db init",), LOCAL, state="copy",
         prepare=_delete("ownlens.db*")),
    Case("evaluate-nothing-registered", ("evaluate", "churn"), ("no model 'churn'",)),
    Case("evaluate-wrong-kind-artifact", ("evaluate", "churn", "--version", "1"),
         ("LinearRegression", "predict_proba"), LOCAL, state="copy", prepare=_wrong_kind_artifact),
    # registry
    Case("registry-list-before-db-init", ("registry", "list"), ("db init",), state="fresh"),
    Case("registry-list-home-empty", ("registry", "list"), ("OWNLENS_HOME", "empty"), LOCAL,
         env={"OWNLENS_HOME": ""}),
    Case("registry-list-database-deleted", ("registry", "list"), ("db init",), LOCAL, state="copy",
         prepare=_delete("ownlens.db*")),
    Case("registry-list-unknown-model", ("registry", "list", "nosuchmodel"), ("no model 'nosuchmodel'",)),
    Case("registry-list-closed-port", ("registry", "list"), ("OWNLENS_DATABASE_URL",), PRODUCTION,
         env={"OWNLENS_DATABASE_URL": CLOSED_PG}),
    Case("registry-show-before-db-init", ("registry", "show", "churn"), ("db init",), state="fresh"),
    Case("registry-show-unknown-version", ("registry", "show", "churn", "99"), ("no model 'churn'",)),
    Case("registry-promote-before-db-init", ("registry", "promote", "churn", "1"), ("db init",), state="fresh"),
    Case("registry-promote-version-zero", ("registry", "promote", "churn", "0"), ("version",), LOCAL),
    Case("registry-rollback-before-db-init", ("registry", "rollback", "churn"), ("db init",), state="fresh"),
    Case("registry-rollback-unknown-model", ("registry", "rollback", "churn"), ("churn",)),
    # serve: checked before any model is loaded
    Case("serve-port-in-use", ("serve", "--port", "{port}"), ("ConfigError", "Address already in use", "--port"),
         prepare=_port_in_use, cleanup=_free_the_port),
    Case("serve-host-not-an-address", ("serve", "--host", "not an address"), ("ConfigError", "--host",
                                                                             "not an address to listen on")),
    *(Case(f"serve-{name}-{value}", ("serve",), ("ConfigError", f"{variable}={value!r}", accepted),
           LOCAL, env={variable: value})
      for variable, name, accepted in (("OWNLENS_SERVE_CHECK_SECONDS", "check-seconds", "from 0.1 to 3600"),
                                       ("OWNLENS_SERVE_REDIS_TIMEOUT", "redis-timeout", "from 0.01 to 60"))
      for value in ("abc", "0", "-5")),
]
PARAMS = [pytest.param(case, profile, id=f"{case.id}[{profile}]") for case in CASES for profile in case.profiles]


# --- the platforms ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_pg(pg_server: str):
    """A factory of PostgreSQL databases that live as long as this module."""
    admin = psycopg2.connect(pg_server)
    admin.autocommit = True
    names = []

    def create() -> str:
        name = f"ownlens_bad_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return urlsplit(pg_server)._replace(path=f"/{name}").geturl()

    yield create
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def platforms(tmp_path_factory, module_pg, redis_server):
    """One small platform per profile: generated, built, applied and materialized."""
    built = {}
    for profile in BOTH:
        root = tmp_path_factory.mktemp(f"bad-{profile}")
        settings = Settings(profile=profile, home=root / "home", database_url=module_pg(), redis_url=redis_server,
                            project=f"t{uuid.uuid4().hex[:10]}")
        init_db(settings)
        generate(settings, GeneratorConfig(users=150, days=75, seed=3))
        build_snapshots(settings)
        store.apply_repo(settings)
        end = utc_midnight(newest_snapshot(settings))
        store.materialize(settings, end - timedelta(days=30), end)
        built[profile] = settings
    yield built
    client = redis.Redis.from_url(redis_server)
    for settings in built.values():
        keys = list(client.scan_iter(match=b"*" + settings.project.encode(), count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="module")
def empty_database(module_pg) -> str:
    """One database without a schema for every "fresh" case (they must not change it)."""
    return module_pg()


def _settings_for(case: Case, profile: str, platforms, empty_database: str, tmp: Path) -> Settings:
    base = platforms[profile]
    if case.state == "fresh":
        return dataclasses.replace(base, home=tmp / "fresh", database_url=empty_database,
                                   project=f"t{uuid.uuid4().hex[:10]}")
    if case.state == "copy" or (case.state == "copy-or-built" and profile == "local"):
        shutil.copytree(base.home, tmp / "home", ignore=shutil.ignore_patterns("reports"))
        return dataclasses.replace(base, home=tmp / "home")
    return base


def fingerprint(settings: Settings) -> dict:
    """What a failed command must not change: row counts of every table, the local state
    folder's data files, and the project's online keys."""
    out = {}
    try:
        engine = get_engine(settings)
        with engine.connect() as conn:
            for table in sorted(inspect(engine).get_table_names()):
                # a training run that failed is recorded as failed, by design; nothing else may change
                where = " WHERE status <> 'failed'" if table == "ml_model_training_runs" else ""
                out[table] = conn.execute(text(f'SELECT COUNT(*) FROM "{table}"{where}')).scalar()
    except Exception as exc:  # noqa: BLE001 - an unreachable or absent database has no rows to change
        out["database"] = type(exc).__name__
    if not settings.is_production and settings.home.is_dir():
        for path in sorted(settings.home.rglob("*")):
            if path.is_file() and path.suffix in (".parquet", ".db") and path.name != "ownlens.db":
                out[str(path.relative_to(settings.home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    if settings.is_production:
        client = redis.Redis.from_url(settings.redis_url)
        out["redis keys"] = sum(1 for _ in client.scan_iter(match=b"*" + settings.project.encode(), count=1000))
    return out


def run_cli(settings: Settings, case: Case, tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWNLENS_", "FEAST_")) or k == "OWNLENS_NOW"}
    env |= {"OWNLENS_PROFILE": settings.profile, "OWNLENS_HOME": str(settings.home),
            "OWNLENS_DATABASE_URL": settings.database_url, "OWNLENS_REDIS_URL": settings.redis_url,
            "OWNLENS_FEAST_PROJECT": settings.project, "COLUMNS": "250"}
    env |= {k: v.format(tmp=tmp) for k, v in case.env.items()}
    command = [CLI, *(a.format(tmp=tmp, **FIELDS) for a in case.args)]
    if case.read_only and os.geteuid() == 0:  # root writes anywhere: a read-only bind mount, private to this process
        command = ["unshare", "-m", "sh", "-c",
                   'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && shift && exec "$@"',
                   str(settings.home), "_", *command]
    elif case.read_only:  # anyone else: folders without write permission, restored afterwards
        folders = [settings.home, *(p for p in settings.home.rglob("*") if p.is_dir())]
        modes = {p: p.stat().st_mode for p in folders}
        for p in folders:
            p.chmod(0o555)
        try:
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp)


@pytest.mark.parametrize(("case", "profile"), PARAMS)
def test_bad_input_gets_one_clear_line_and_changes_nothing(case: Case, profile: str, platforms, empty_database,
                                                           tmp_path):
    settings = _settings_for(case, profile, platforms, empty_database, tmp_path)
    if case.prepare:
        settings = case.prepare(settings, tmp_path) or settings
    before = fingerprint(settings)
    try:
        done = run_cli(settings, case, tmp_path)
        after = fingerprint(settings)
    finally:
        if case.cleanup:
            case.cleanup(settings)
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"exit 0:\n{output}"
    assert "Traceback" not in output and "internal error" not in output, output
    for words in case.expect:
        assert words.format(tmp=tmp_path) in output, f"{words!r} not in:\n{output}"
    assert after == before, f"data changed:\n{output}"
