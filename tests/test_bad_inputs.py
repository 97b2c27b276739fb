"""Bad inputs and faults against the real CLI, in subprocesses: each must exit non-zero with
one clear message (no traceback) naming the problem, and leave the data exactly as it was.

One small platform is built per profile for the whole module; a case that needs a broken
state (a deleted file, a copied folder, a bad row) gets its own copy or undoes its change.
A read-only state folder is a read-only bind mount in a private mount namespace when the
tests run as root (who may write anywhere), folders without write permission otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import psycopg2
import pytest
import redis
from sqlalchemy import inspect, text

from ownlens_ml import registry
from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.db import get_engine, init_db
from ownlens_ml.features import store
from ownlens_ml.features.feast_store import discard_damaged, forget_store
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
    exit_code: int | None = None
    """The exit code the case must end with (2: a bad argument); None: any failure."""


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
    (tmp / "brands.csv").write_bytes(b'brand_id,name,domain\n77,"Week\x00ly",weekly.example\n')
    return settings


def _not_regular_files(settings: Settings, tmp: Path) -> Settings:
    os.mkfifo(tmp / "fifo.csv")
    (tmp / "zero.csv").symlink_to("/dev/zero")
    return settings


def _bad_session(settings: Settings, tmp: Path) -> Settings:
    """A session with negative page views: the build's range check must refuse the build."""
    with get_engine(settings).begin() as conn:
        row = conn.execute(text("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")).mappings().one()
        conn.execute(
            text(
                "INSERT INTO sessions (session_id, user_id, brand_id, started_at, ended_at, device_type_id, "
                "referrer, page_views, engaged_seconds) VALUES (:id, :u, :b, :s, :e, :d, :r, -50, 60)"
            ),
            {
                "id": 10**9,
                "u": row["user_id"],
                "b": row["brand_id"],
                "s": row["started_at"],
                "e": row["ended_at"],
                "d": row["device_type_id"],
                "r": row["referrer"],
            },
        )
    return settings


def _garbage(name: str):
    def prepare(settings: Settings, tmp: Path) -> Settings:
        _reapply(settings, tmp)
        (settings.home / name).write_bytes(b"this is not a database " * 100)
        return settings

    return prepare


def _drop_feature_services(settings: Settings, tmp: Path) -> Settings:
    with get_engine(settings).begin() as conn:
        conn.execute(text("DROP TABLE feature_services"))
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
    registry.register(
        settings,
        run,
        model_name="churn",
        task="binary",
        estimator=model,
        feature_service="churn_v1",
        feature_service_hash="0" * 64,
        training_set_fingerprint="0" * 64,
        window_start=None,
        window_end=None,
        params={},
        metrics={},
    )
    return settings


def _segmentation_champion(settings: Settings, tmp: Path) -> Settings:
    """A champion segmentation (3 segments: the module's 150 readers are too few to try 8)."""
    if registry.list_versions(settings, "segmentation"):
        return settings
    from ownlens_ml.models.baselines import feature_matrix
    from ownlens_ml.models.customer.segmentation import ReaderSegmentation, segment_readers

    rows = store.training_set(settings, "segmentation_v1", segment_readers(settings))
    model = ReaderSegmentation(k_max=3).fit(feature_matrix(rows.frame, rows.features))
    _register_champion(settings, "segmentation", "clustering", "segmentation_v1", model)


GARBAGE = np.random.default_rng(0).bytes(8192)
"""Bytes no reader accepts (fixed, so every run damages a file the same way)."""


def _damage(name: str, how: str):
    """A copied state folder, re-applied, with one file damaged: ``garbage``, ``truncated``, ``empty``,
    ``header`` (the first 100 bytes), ``pages`` (all but the first and last 4 KiB) or ``other``
    (a snapshot replaced by another table's parquet)."""

    def prepare(settings: Settings, tmp: Path) -> Settings:
        _reapply(settings, tmp)
        path = settings.home / name
        if path.with_name(path.name + "-wal").exists():  # SQLite reads pages from the log first: empty it
            with contextlib.closing(sqlite3.connect(path)) as con:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = path.read_bytes()
        damaged = {
            "garbage": GARBAGE,
            "truncated": data[: len(data) // 2],
            "empty": b"",
            "header": GARBAGE[:100] + data[100:],
            "pages": data[:4096] + (GARBAGE * (len(data) // len(GARBAGE) + 1))[: len(data) - 8192] + data[-4096:],
            "other": (settings.offline_dir / "editorial_author_features.parquet").read_bytes(),
        }[how]
        path.write_bytes(damaged)
        return settings

    return prepare


def _garbage_registry_rows(settings: Settings, tmp: Path) -> Settings:
    """Production: a project of its own (the module's stays intact) whose views' rows are garbage; Feast
    reads every project of its SQL registry, so the case removes them afterwards (``discard_damaged``)."""
    settings = _fresh_store(settings, tmp)
    with get_engine(settings).begin() as conn:
        conn.execute(
            text("UPDATE feature_views SET feature_view_proto = :g WHERE project_id = :p"),
            {"g": GARBAGE[:64], "p": settings.project},
        )
    forget_store(settings)
    return settings


def _champion_without_previous(settings: Settings, tmp: Path) -> Settings:
    _wrong_kind_artifact(settings, tmp)
    registry.set_alias(settings, "churn", "champion", 1)
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
    Case(
        "generate-start-past-timestamps",
        ("data", "generate", "--users", "10", "--days", "10", "--start", "9999-12-25"),
        ("timestamp range", "earlier --start"),
    ),
    Case(
        "generate-read-only-home",
        ("data", "generate", "--users", "10", "--days", "5"),
        ("read-only",),
        LOCAL,
        read_only=True,
    ),
    # data import / profile
    Case("import-nul-byte", ("data", "import", "brands", "{tmp}/brands.csv"), ("line 2", "NUL"), prepare=_nul_csv),
    Case("import-missing-file", ("data", "import", "brands", "{tmp}/nothing.csv"), ("does not exist",), LOCAL),
    Case(
        "import-device-as-csv",
        ("data", "import", "brands", "{tmp}/zero.csv"),
        ("zero.csv: not a regular file",),
        LOCAL,
        prepare=_not_regular_files,
    ),
    Case(
        "import-unknown-table", ("data", "import", "readers", "{tmp}/brands.csv"), ("readers",), LOCAL, prepare=_nul_csv
    ),
    Case(
        "profile-out-is-a-file",
        ("data", "profile", "--out", "{tmp}/a_file"),
        ("is a file",),
        LOCAL,
        prepare=_existing_file,
        exit_code=2,
    ),
    Case(
        "profile-out-under-a-file",
        ("data", "profile", "--out", "{tmp}/a_file/sub"),
        ("a_file is a file",),
        LOCAL,
        prepare=_existing_file,
        exit_code=2,
    ),
    Case("profile-out-empty", ("data", "profile", "--out", ""), ("--out", "empty"), LOCAL, exit_code=2),
    # db init: settings
    Case(
        "home-is-a-file",
        ("db", "init"),
        ("is a file",),
        LOCAL,
        env={"OWNLENS_HOME": "{tmp}/a_file"},
        prepare=_existing_file,
    ),
    Case("home-empty", ("db", "init"), ("OWNLENS_HOME", "empty"), LOCAL, env={"OWNLENS_HOME": ""}),
    Case("redis-url-not-a-url", ("db", "init"), ("OWNLENS_REDIS_URL",), env={"OWNLENS_REDIS_URL": "notaurl"}),
    Case(
        "redis-url-bad-port",
        ("db", "init"),
        ("OWNLENS_REDIS_URL 'redis://127.0.0.1:abc/0'", "malformed port", "use"),
        LOCAL,
        env={"OWNLENS_REDIS_URL": "redis://127.0.0.1:abc/0"},
    ),
    Case(
        "database-url-bad-port",
        ("db", "init"),
        ("OWNLENS_DATABASE_URL 'postgresql://postgres@127.0.0.1:99999/x'", "malformed port", "use"),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": "postgresql://postgres@127.0.0.1:99999/x"},
    ),
    Case(
        "database-url-mysql",
        ("db", "init"),
        ("OWNLENS_DATABASE_URL", "not supported"),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": "mysql://user@127.0.0.1/ownlens"},
    ),
    Case("profile-unknown-option", ("--profile", "prod", "db", "init"), ("'prod'", "local, production"), LOCAL),
    Case(
        "profile-unknown-env", ("db", "init"), ("unknown profile", "staging"), LOCAL, env={"OWNLENS_PROFILE": "staging"}
    ),
    Case("project-name-invalid", ("db", "init"), ("project name",), env={"OWNLENS_FEAST_PROJECT": "bad-name"}),
    Case(
        "cluster-nodes-not-host-port",
        ("db", "init"),
        ("OWNLENS_REDIS_CLUSTER_NODES", "host:port"),
        LOCAL,
        env={"OWNLENS_REDIS_CLUSTER_NODES": "127.0.0.1:7000,redis"},
    ),
    Case(
        "train-backend-unknown-env",
        ("db", "init"),
        ("training backend 'gpu'", "single, dask"),
        LOCAL,
        env={"OWNLENS_TRAIN_BACKEND": "gpu"},
    ),
    Case("db-init-read-only-home", ("db", "init"), ("read-only",), LOCAL, read_only=True),
    Case(
        "db-init-closed-port",
        ("db", "init"),
        ("OWNLENS_DATABASE_URL", "port 1"),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": CLOSED_PG},
    ),
    Case(
        "db-init-database-garbage-header",
        ("db", "init"),
        ("ownlens.db is damaged", "file is not a database", "db init"),
        LOCAL,
        state="copy",
        prepare=_damage("ownlens.db", "header"),
    ),
    # features build
    Case(
        "build-window-without-data",
        ("features", "build", "--start", "2030-01-01", "--end", "2030-01-05"),
        ("no events", "2030-01-01"),
    ),
    Case(
        "build-end-before-start",
        ("features", "build", "--start", "2026-02-10", "--end", "2026-02-01"),
        ("before it starts",),
    ),
    Case("build-start-not-a-date", ("features", "build", "--start", "2026-02-30"), ("--start",), LOCAL),
    Case(
        "build-fails-its-checks",
        ("features", "build"),
        ("data quality", "nothing was written"),
        prepare=_bad_session,
        cleanup=_drop_bad_session,
        state="copy-or-built",
    ),
    Case("build-read-only-home", ("features", "build"), ("read-only",), LOCAL, read_only=True),
    Case("build-before-db-init", ("features", "build"), ("db init",), state="fresh"),
    Case("build-end-beyond-dates", ("features", "build", "--end", "9999-12-31"), ("reaches outside the data",)),
    Case("build-end-far-after-the-data", ("features", "build", "--end", "2100-01-01"), ("reaches outside the data",)),
    Case(
        "build-start-long-before-the-data",
        ("features", "build", "--start", "1700-01-01"),
        ("reaches outside the data",),
    ),
    Case(
        "build-database-garbage-pages",
        ("features", "build"),
        ("ownlens.db is damaged", "malformed", "db init"),
        LOCAL,
        state="copy",
        prepare=_damage("ownlens.db", "pages"),
    ),
    # features check
    Case(
        "check-before-build",
        ("features", "check"),
        ("features build",),
        LOCAL,
        state="copy",
        prepare=_delete("offline/*.parquet"),
    ),
    Case("check-newest-not-a-date", ("features", "check", "--newest", "tomorrow"), ("--newest",), LOCAL),
    Case("check-before-db-init", ("features", "check"), ("MissingTableError", "db init"), state="fresh"),
    Case(
        "check-snapshot-truncated",
        ("features", "check"),
        ("customer_user_features.parquet is damaged", "features build"),
        LOCAL,
        state="copy",
        prepare=_damage("offline/customer_user_features.parquet", "truncated"),
    ),
    Case(
        "check-snapshot-empty",
        ("features", "check"),
        ("customer_user_features.parquet is damaged", "features build"),
        LOCAL,
        state="copy",
        prepare=_damage("offline/customer_user_features.parquet", "empty"),
    ),
    Case(
        "check-snapshot-of-another-table",
        ("features", "check"),
        ("customer_user_features.parquet is damaged", "another table", "features build"),
        LOCAL,
        state="copy",
        prepare=_damage("offline/customer_user_features.parquet", "other"),
    ),
    # features apply
    Case("apply-read-only-home", ("features", "apply"), ("read-only",), LOCAL, read_only=True),
    Case(
        "apply-closed-port",
        ("features", "apply"),
        ("OWNLENS_DATABASE_URL",),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": CLOSED_PG},
    ),
    Case(
        "apply-no-such-database",
        ("features", "apply"),
        ("OWNLENS_DATABASE_URL", "ownlens_no_such_database"),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": NO_DATABASE},
    ),
    Case(
        "apply-unknown-role",
        ("features", "apply"),
        ("OWNLENS_DATABASE_URL", "ownlens_no_such_role"),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": NO_ROLE},
    ),
    # features materialize
    Case(
        "materialize-start-after-end",
        ("features", "materialize", "--start", "2026-02-20", "--end", "2026-02-01"),
        ("starts", "after it ends"),
    ),
    Case(
        "materialize-window-without-data",
        ("features", "materialize", "--start", "2030-01-01", "--end", "2030-02-01"),
        ("no feature snapshots", "2030-01-01"),
    ),
    Case(
        "materialize-registry-deleted",
        ("features", "materialize"),
        ("features apply",),
        LOCAL,
        state="copy",
        prepare=_delete("feast/registry.db", reapply=True),
    ),
    Case(
        "materialize-online-store-deleted",
        ("features", "materialize"),
        ("online store", "features apply"),
        LOCAL,
        state="copy",
        prepare=_delete("feast/online.db", reapply=True),
    ),
    Case(
        "materialize-garbage-online-store",
        ("features", "materialize"),
        ("online.db", "features apply"),
        LOCAL,
        state="copy",
        prepare=_garbage("feast/online.db"),
    ),
    Case("materialize-copied-home", ("features", "materialize"), ("copied", "features apply"), LOCAL, state="copy"),
    Case("materialize-read-only-home", ("features", "materialize"), ("read-only",), LOCAL, read_only=True),
    Case(
        "materialize-redis-down",
        ("features", "materialize"),
        ("Redis", "127.0.0.1:1"),
        PRODUCTION,
        env={"OWNLENS_REDIS_URL": CLOSED_REDIS},
    ),
    Case(
        "materialize-before-build",
        ("features", "materialize"),
        ("features build",),
        LOCAL,
        state="copy",
        prepare=_delete("offline/*.parquet", reapply=True),
    ),
    Case("materialize-before-db-init", ("features", "materialize"), ("MissingTableError", "db init"), state="fresh"),
    Case(
        "materialize-snapshot-truncated",
        ("features", "materialize"),
        ("editorial_article_features.parquet is damaged", "features build"),
        LOCAL,
        state="copy",
        prepare=_damage("offline/editorial_article_features.parquet", "truncated"),
    ),
    Case(
        "materialize-activity-source-garbage",
        ("features", "materialize"),
        ("reader_activity.parquet is damaged", "features build"),
        LOCAL,
        state="copy",
        prepare=_damage("offline/reader_activity.parquet", "garbage"),
    ),
    Case(
        "materialize-registry-garbage",
        ("features", "materialize"),
        ("registry.db is damaged", "features apply"),
        LOCAL,
        state="copy",
        prepare=_damage("feast/registry.db", "garbage"),
    ),
    Case(
        "materialize-redis-db-out-of-range",
        ("features", "materialize"),
        ("ConfigError", "OWNLENS_REDIS_URL", "database 99"),
        PRODUCTION,
        env={"OWNLENS_REDIS_URL": "redis://127.0.0.1:6379/99"},
    ),
    # features online
    Case(
        "online-id-beyond-int64",
        ("features", "online", "churn_v1", "99999999999999999999999"),
        ("9223372036854775807",),
    ),
    Case("online-id-not-a-number", ("features", "online", "churn_v1", "abc"), ("valid integer",), LOCAL),
    Case(
        "online-unknown-service", ("features", "online", "chrun_v1", "1"), ("no feature service 'chrun_v1'", "churn_v1")
    ),
    Case("online-unknown-id", ("features", "online", "churn_v1", "987654321"), ("no online values", "987654321")),
    Case(
        "online-never-materialized",
        ("features", "online", "churn_v1", "1"),
        ("never materialized", "features materialize"),
        state="copy-or-built",
        prepare=_fresh_store,
    ),
    Case(
        "online-store-deleted",
        ("features", "online", "churn_v1", "1"),
        ("online store", "features apply"),
        LOCAL,
        state="copy",
        prepare=_delete("feast/online.db", reapply=True),
    ),
    Case("online-copied-home", ("features", "online", "churn_v1", "1"), ("copied",), LOCAL, state="copy"),
    Case("online-read-only-home", ("features", "online", "churn_v1", "1"), ("read-only",), LOCAL, read_only=True),
    Case(
        "online-unapplied-project",
        ("features", "online", "churn_v1", "1"),
        ("features apply",),
        env={"OWNLENS_FEAST_PROJECT": "tneverapplied"},
    ),
    Case(
        "online-feature-services-table-dropped",
        ("features", "online", "churn_v1", "1"),
        ("feature_services", "features apply"),
        PRODUCTION,
        prepare=_drop_feature_services,
        cleanup=lambda settings: _reapply(settings, Path()),
    ),
    Case(
        "online-closed-port",
        ("features", "online", "churn_v1", "1"),
        ("OWNLENS_DATABASE_URL", "port 1"),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": CLOSED_PG},
    ),
    Case(
        "online-no-such-database",
        ("features", "online", "churn_v1", "1"),
        ("ownlens_no_such_database",),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": NO_DATABASE},
    ),
    Case(
        "online-unknown-role",
        ("features", "online", "churn_v1", "1"),
        ("ownlens_no_such_role",),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": NO_ROLE},
    ),
    Case(
        "online-redis-down",
        ("features", "online", "churn_v1", "1"),
        ("Redis", "127.0.0.1:1"),
        PRODUCTION,
        env={"OWNLENS_REDIS_URL": CLOSED_REDIS},
    ),
    Case(
        "online-redis-db-out-of-range",
        ("features", "online", "churn_v1", "1"),
        ("ConfigError", "OWNLENS_REDIS_URL", "database 99"),
        PRODUCTION,
        env={"OWNLENS_REDIS_URL": "redis://127.0.0.1:6379/99"},
    ),
    Case(
        "online-registry-garbage",
        ("features", "online", "churn_v1", "1"),
        ("registry.db is damaged", "features apply"),
        LOCAL,
        state="copy",
        prepare=_damage("feast/registry.db", "garbage"),
    ),
    Case(
        "online-registry-truncated",
        ("features", "online", "churn_v1", "1"),
        ("registry.db is damaged", "features apply"),
        LOCAL,
        state="copy",
        prepare=_damage("feast/registry.db", "truncated"),
    ),
    Case(
        "online-online-store-garbage",
        ("features", "online", "churn_v1", "1"),
        ("online.db is damaged", "features apply"),
        LOCAL,
        state="copy",
        prepare=_damage("feast/online.db", "garbage"),
    ),
    Case(
        "online-sql-registry-garbage-rows",
        ("features", "online", "churn_v1", "1"),
        ("Feast SQL registry", "is damaged", "features apply"),
        PRODUCTION,
        prepare=_garbage_registry_rows,
        cleanup=discard_damaged,
    ),
    # train / evaluate: missing steps (the lead owns the training-engine cases)
    Case("train-before-db-init", ("train", "churn"), ("db init",), state="fresh"),
    Case("train-home-empty", ("train", "churn"), ("OWNLENS_HOME", "empty"), LOCAL, env={"OWNLENS_HOME": ""}),
    Case(
        "train-database-deleted", ("train", "churn"), ("db init",), LOCAL, state="copy", prepare=_delete("ownlens.db*")
    ),
    Case(
        "train-before-build",
        ("train", "churn"),
        ("features build",),
        LOCAL,
        state="copy",
        prepare=_delete("offline/*.parquet", reapply=True),
    ),
    Case("train-copied-home", ("train", "churn"), ("copied",), LOCAL, state="copy"),
    Case("train-as-of-not-a-date", ("train", "churn", "--as-of", "soon"), ("--as-of",), LOCAL),
    Case(
        "train-as-of-after-the-data",
        ("train", "churn", "--as-of", "2031-01-01"),
        ("--as-of 2031-01-01 is outside the data",),
    ),
    Case(
        "train-articles-as-of-after-the-data",
        ("train", "article_performance", "--as-of", "2031-01-01"),
        ("article_performance", "outside the data"),
        LOCAL,
    ),
    Case("train-unknown-model", ("train", "chrun"), ("no model 'chrun'", "churn"), LOCAL),
    Case("train-all-with-labels", ("train", "all", "--labels", "labels.csv"), ("--labels", "one model"), LOCAL),
    Case(
        "train-labels-no-such-file",
        ("train", "churn", "--labels", "/nonexistent/labels.csv"),
        ("no such file; check the path",),
        LOCAL,
    ),
    Case(
        "train-labels-fifo",
        ("train", "churn", "--labels", "{tmp}/fifo.csv"),
        ("fifo.csv: not a regular file",),
        LOCAL,
        prepare=_not_regular_files,
    ),
    Case(
        "train-closed-port",
        ("train", "churn"),
        ("OWNLENS_DATABASE_URL",),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": CLOSED_PG},
    ),
    Case(
        "train-registry-garbage",
        ("train", "churn"),
        ("registry.db is damaged", "features apply"),
        LOCAL,
        state="copy",
        prepare=_damage("feast/registry.db", "garbage"),
    ),
    Case(
        "train-sql-registry-garbage-rows",
        ("train", "churn"),
        ("Feast SQL registry", "is damaged", "features apply"),
        PRODUCTION,
        prepare=_garbage_registry_rows,
        cleanup=discard_damaged,
    ),
    Case(
        "train-snapshot-empty",
        ("train", "churn"),
        ("customer_user_features.parquet is damaged", "features build"),
        LOCAL,
        state="copy",
        prepare=_damage("offline/customer_user_features.parquet", "empty"),
    ),
    Case(
        "train-snapshot-of-another-table",
        ("train", "churn"),
        ("customer_user_features.parquet is damaged", "features build"),
        LOCAL,
        state="copy",
        prepare=_damage("offline/customer_user_features.parquet", "other"),
    ),
    Case("evaluate-before-db-init", ("evaluate", "churn"), ("db init",), state="fresh"),
    Case(
        "evaluate-database-deleted",
        ("evaluate", "churn"),
        ("db init",),
        LOCAL,
        state="copy",
        prepare=_delete("ownlens.db*"),
    ),
    Case("evaluate-nothing-registered", ("evaluate", "churn"), ("no model 'churn'",)),
    Case(
        "evaluate-version-beyond-int64",
        ("evaluate", "churn", "--version", str(2**63)),
        ("--version", str(2**63 - 1)),
        exit_code=2,
    ),
    Case(
        "evaluate-wrong-kind-artifact",
        ("evaluate", "churn", "--version", "1"),
        ("LinearRegression", "predict_proba"),
        LOCAL,
        state="copy",
        prepare=_wrong_kind_artifact,
    ),
    # registry
    Case("registry-list-before-db-init", ("registry", "list"), ("db init",), state="fresh"),
    Case("registry-list-home-empty", ("registry", "list"), ("OWNLENS_HOME", "empty"), LOCAL, env={"OWNLENS_HOME": ""}),
    Case(
        "registry-list-database-deleted",
        ("registry", "list"),
        ("db init",),
        LOCAL,
        state="copy",
        prepare=_delete("ownlens.db*"),
    ),
    Case("registry-list-unknown-model", ("registry", "list", "nosuchmodel"), ("no model 'nosuchmodel'",)),
    Case(
        "registry-list-closed-port",
        ("registry", "list"),
        ("OWNLENS_DATABASE_URL",),
        PRODUCTION,
        env={"OWNLENS_DATABASE_URL": CLOSED_PG},
    ),
    Case("registry-show-before-db-init", ("registry", "show", "churn"), ("db init",), state="fresh"),
    Case("registry-show-unknown-version", ("registry", "show", "churn", "99"), ("no model 'churn'",)),
    Case(
        "registry-show-version-beyond-int64",
        ("registry", "show", "churn", str(2**64)),
        ("version", str(2**63 - 1)),
        exit_code=2,
    ),
    Case(
        "registry-list-database-garbage-header",
        ("registry", "list"),
        ("ownlens.db is damaged", "db init"),
        LOCAL,
        state="copy",
        prepare=_damage("ownlens.db", "header"),
    ),
    Case(
        "registry-promote-version-beyond-int64", ("registry", "promote", "churn", str(2**63)), ("version",), exit_code=2
    ),
    Case("registry-promote-before-db-init", ("registry", "promote", "churn", "1"), ("db init",), state="fresh"),
    Case("registry-promote-version-zero", ("registry", "promote", "churn", "0"), ("version",), LOCAL),
    Case("registry-rollback-before-db-init", ("registry", "rollback", "churn"), ("db init",), state="fresh"),
    Case("registry-rollback-unknown-model", ("registry", "rollback", "churn"), ("churn", "ownlens-ml train churn")),
    Case(
        "registry-rollback-no-previous-champion",
        ("registry", "rollback", "churn"),
        ("no previous champion", "ownlens-ml registry promote churn"),
        LOCAL,
        state="copy",
        prepare=_champion_without_previous,
    ),
    # segments
    Case(
        "segments-write-redis-down",
        ("segments", "write"),
        ("RedisUnavailableError", "127.0.0.1:1"),
        PRODUCTION,
        env={"OWNLENS_REDIS_URL": CLOSED_REDIS},
        prepare=_segmentation_champion,
    ),
    # score
    Case(
        "score-as-of-before-the-data",
        ("score", "churn", "--as-of", "1999-01-01"),
        ("EmptyWindowError", "--as-of 1999-01-01 is outside the data", "feature snapshots cover"),
    ),
    Case(
        "score-as-of-after-the-data",
        ("score", "churn", "--as-of", "2099-01-01"),
        ("EmptyWindowError", "--as-of 2099-01-01 is outside the data"),
    ),
    Case(
        "segments-write-as-of-a-day",
        ("segments", "write", "--as-of", "2026-02-01", "--version", "99"),
        ("UnknownModelVersionError", "segmentation"),
    ),  # the day is parsed (it was typed str), then v99 refused
    Case("segments-write-as-of-not-a-date", ("segments", "write", "--as-of", "soon"), ("--as-of",), LOCAL, exit_code=2),
    Case(
        "segments-write-version-beyond-int64",
        ("segments", "write", "--version", str(2**63)),
        ("--version",),
        LOCAL,
        exit_code=2,
    ),
    Case("segments-show-id-beyond-int64", ("segments", "show", str(2**64)), (str(2**63 - 1),), LOCAL, exit_code=2),
    # serve: checked before any model is loaded
    Case(
        "serve-port-in-use",
        ("serve", "--port", "{port}"),
        ("ConfigError", "Address already in use", "--port"),
        prepare=_port_in_use,
        cleanup=_free_the_port,
    ),
    Case(
        "serve-host-not-an-address",
        ("serve", "--host", "not an address"),
        ("ConfigError", "--host", "not an address to listen on"),
    ),
    *(
        Case(
            f"serve-{name}-{value}",
            ("serve",),
            ("ConfigError", f"{variable}={value!r}", accepted),
            LOCAL,
            env={variable: value},
        )
        for variable, name, accepted in (
            ("OWNLENS_SERVE_CHECK_SECONDS", "check-seconds", "from 0.1 to 3600"),
            ("OWNLENS_SERVE_REDIS_TIMEOUT", "redis-timeout", "from 0.01 to 60"),
        )
        for value in ("abc", "0", "-5")
    ),
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
        settings = Settings(
            profile=profile,
            home=root / "home",
            database_url=module_pg(),
            redis_url=redis_server,
            project=f"t{uuid.uuid4().hex[:10]}",
        )
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
        return dataclasses.replace(
            base, home=tmp / "fresh", database_url=empty_database, project=f"t{uuid.uuid4().hex[:10]}"
        )
    if case.state == "copy" or (case.state == "copy-or-built" and profile == "local"):
        shutil.copytree(base.home, tmp / "home", ignore=shutil.ignore_patterns("reports"))
        return dataclasses.replace(base, home=tmp / "home")
    return base


def fingerprint(settings: Settings) -> dict:
    """What a failed command must not change: row counts of every table, the local state
    folder's data files and Feast yaml, and the project's online keys."""
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
            if path.is_file() and path.suffix in (".parquet", ".db", ".yaml") and path.name != "ownlens.db":
                out[str(path.relative_to(settings.home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    if settings.is_production:
        client = redis.Redis.from_url(settings.redis_url)
        out["redis keys"] = sum(1 for _ in client.scan_iter(match=b"*" + settings.project.encode(), count=1000))
    return out


def run_cli(settings: Settings, case: Case, tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWNLENS_", "FEAST_")) or k == "OWNLENS_NOW"}
    env |= {
        "OWNLENS_PROFILE": settings.profile,
        "OWNLENS_HOME": str(settings.home),
        "OWNLENS_DATABASE_URL": settings.database_url,
        "OWNLENS_REDIS_URL": settings.redis_url,
        "OWNLENS_FEAST_PROJECT": settings.project,
        "COLUMNS": "250",
    }
    env |= {k: v.format(tmp=tmp) for k, v in case.env.items()}
    command = [CLI, *(a.format(tmp=tmp, **FIELDS) for a in case.args)]
    if case.read_only and os.geteuid() == 0:  # root writes anywhere: a read-only bind mount, private to this process
        command = [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && shift && exec "$@"',
            str(settings.home),
            "_",
            *command,
        ]
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


@pytest.mark.slow  # the CLI in subprocesses, over platforms built for the module
@pytest.mark.parametrize(("case", "profile"), PARAMS)
def test_bad_input_gets_one_clear_line_and_changes_nothing(
    case: Case, profile: str, platforms, empty_database, tmp_path
):
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
    if case.exit_code is not None:
        assert done.returncode == case.exit_code, f"exit {done.returncode}, not {case.exit_code}:\n{output}"
    assert "Traceback" not in output and "internal error" not in output, output
    for words in case.expect:
        assert words.format(tmp=tmp_path) in output, f"{words!r} not in:\n{output}"
    assert after == before, f"data changed:\n{output}"
    if case.state == "fresh" and profile == "local":  # a command refused before `db init` leaves no database
        assert not list(settings.home.glob("ownlens.db*")), f"a database was left behind:\n{output}"


# --- two runs of one job at once (production): one wins, the other says why ---------------


def _cheap_conversion_champion(settings: Settings) -> None:
    """A champion conversion model on conversion_v2's features, without training one."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from ownlens_ml.features.feast_store import feature_names

    names = feature_names(store.feature_service(settings, "conversion_v2"))
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(40, len(names))), columns=names)
    model = make_pipeline(SimpleImputer(keep_empty_features=True), LogisticRegression()).fit(x, np.arange(40) % 2)
    _register_champion(settings, "conversion", "binary", "conversion_v2", model)


def _register_champion(settings: Settings, name: str, task: str, service: str, model) -> None:
    """Register ``model`` as ``name``'s champion without training it (a stand-in with no lineage)."""
    run = registry.start_run(settings, name, {})
    version = registry.register(
        settings,
        run,
        model_name=name,
        task=task,
        estimator=model,
        feature_service=service,
        feature_service_hash="0" * 64,
        training_set_fingerprint="0" * 64,
        window_start=None,
        window_end=None,
        params={},
        metrics={},
    )
    registry.promote(settings, name, version.version)


def _hold_first_run(settings: Settings, blocker: str) -> Callable:
    """Keep a first run inside its critical section: ``blocker`` (SQL run in an open transaction of
    the test's) makes the statement after the job lock wait; returns a function ending the hold."""
    conn = psycopg2.connect(settings.database_url)
    conn.cursor().execute(blocker)
    return conn.rollback


def _holds_lock(settings: Settings, job: str) -> bool:
    from ownlens_ml.db import lock_key

    key = lock_key(job) & (2**64 - 1)
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
            "AND objid = %s AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (key >> 32, key & (2**32 - 1)),
        )
        return cur.fetchone()[0] == 1


CONCURRENT = [
    ("features build", ("features", "build"), "LOCK TABLE customer_user_features IN ACCESS EXCLUSIVE MODE"),
    ("score conversion", ("score", "conversion"), "LOCK TABLE ml_model_predictions IN ACCESS EXCLUSIVE MODE"),
    # on a fresh database: the first migration's CREATE TABLE waits for this uncommitted one of the same name
    ("db init", ("db", "init"), "CREATE TABLE alembic_version (version_num varchar(32))"),
]


@pytest.mark.slow  # the CLI in subprocesses, over platforms built for the module
@pytest.mark.parametrize(("job", "args", "blocker"), CONCURRENT, ids=[c[0] for c in CONCURRENT])
def test_a_second_run_of_a_running_job_is_refused_in_one_line(job, args, blocker, platforms, module_pg, tmp_path):
    settings = platforms["production"]
    if job == "db init":
        settings = dataclasses.replace(settings, database_url=module_pg())
    if job.startswith("score") and not registry.list_versions(settings, "conversion"):
        _cheap_conversion_champion(settings)
    case = Case(job, args, ())
    release = _hold_first_run(settings, blocker)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWNLENS_", "FEAST_")) or k == "OWNLENS_NOW"}
    env |= {
        "OWNLENS_PROFILE": "production",
        "OWNLENS_HOME": str(settings.home),
        "COLUMNS": "250",
        "OWNLENS_DATABASE_URL": settings.database_url,
        "OWNLENS_REDIS_URL": settings.redis_url,
        "OWNLENS_FEAST_PROJECT": settings.project,
    }
    first = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(1200):  # the first run takes the lock, then waits on the test's transaction
            if _holds_lock(settings, job) or first.poll() is not None:
                break
            time.sleep(0.05)
        assert _holds_lock(settings, job), first.communicate()[0] if first.poll() is not None else "no lock"
        second = run_cli(settings, case, tmp_path)
    finally:
        release()
        out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    lines = [line for line in (second.stdout + second.stderr).splitlines() if line.strip()]
    assert second.returncode == 1 and len(lines) == 1, lines
    assert f"ConcurrentJobError: another {job} is running on this production database; wait for it" in lines[0]
    assert not _holds_lock(settings, job)


# --- a job stopped from outside ---------------------------------------------------------------


def _local_copy(platforms, tmp_path: Path) -> Settings:
    shutil.copytree(platforms["local"].home, tmp_path / "home", ignore=shutil.ignore_patterns("reports"))
    return dataclasses.replace(platforms["local"], home=tmp_path / "home")


def _start(settings: Settings, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWNLENS_", "FEAST_")) or k == "OWNLENS_NOW"}
    env |= {
        "OWNLENS_PROFILE": settings.profile,
        "OWNLENS_HOME": str(settings.home),
        "OWNLENS_FEAST_PROJECT": settings.project,
        "COLUMNS": "250",
    }
    return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"never saw {what}: {process.communicate()[0] if process.poll() is not None else ''}")


@pytest.mark.slow  # the CLI in subprocesses, over platforms built for the module
def test_a_build_killed_midway_leaves_staging_the_next_build_removes(platforms, tmp_path):
    settings = _local_copy(platforms, tmp_path)
    killed = _start(settings, "features", "build")
    staging = settings.offline_dir / f".build-{killed.pid}"
    _wait_for(staging.exists, killed, staging)
    killed.kill()  # SIGKILL: no cleanup runs
    killed.communicate(timeout=60)
    assert staging.exists()
    again = _start(settings, "features", "build")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert not list(settings.offline_dir.glob(".build-*")), out


@pytest.mark.slow  # the CLI in subprocesses, over platforms built for the module
def test_sigterm_during_training_records_the_run_as_failed(platforms, tmp_path):
    settings = _local_copy(platforms, tmp_path)

    def runs(status: str) -> int:
        with get_engine(settings).connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM ml_model_training_runs WHERE status = :s"), {"s": status}
            ).scalar()

    failed = runs("failed")
    training = _start(settings, "train", "churn")
    _wait_for(lambda: runs("running") > 0, training, "a running training run")
    training.terminate()
    out, _ = training.communicate(timeout=120)
    assert training.returncode != 0 and "Traceback" not in out, out
    assert runs("running") == 0 and runs("failed") == failed + 1, out


# --- what the fixes above must leave working ------------------------------------------------


def _cli_ok(settings: Settings, tmp: Path, *args: str, columns: str = "250") -> str:
    """Run the CLI with stdout a pipe; it must succeed. Returns stdout."""
    done = run_cli(settings, Case("ok", args, (), env={"COLUMNS": columns}), tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow  # the CLI in subprocesses, over platforms built for the module
@pytest.mark.parametrize("profile", BOTH)
def test_listings_keep_whole_values_when_piped_and_speak_json(profile, platforms, module_pg, tmp_path):
    """`registry list | grep conversion` at 80 columns finds the row, whole; --json parses."""
    import json

    from sklearn.linear_model import LogisticRegression

    base = platforms[profile]
    settings = dataclasses.replace(base, home=tmp_path / "registry-home", database_url=module_pg())
    init_db(settings)
    x = np.arange(20, dtype=float).reshape(-1, 1)
    run = registry.start_run(settings, "conversion", {})
    registry.register(
        settings,
        run,
        model_name="conversion",
        task="binary",
        estimator=LogisticRegression().fit(x, (x.ravel() > 9).astype(int)),
        feature_service="conversion_v2",
        feature_service_hash="0" * 64,
        training_set_fingerprint="0" * 64,
        window_start=None,
        window_end=None,
        params={},
        metrics={"holdout": {"model": {"roc_auc": 0.75}}},
    )
    sha = registry.get_version(settings, "conversion").artifact_sha256

    rows = [
        line
        for line in _cli_ok(settings, tmp_path, "registry", "list", columns="80").splitlines()
        if "conversion" in line
    ]
    assert len(rows) == 1 and "conversion_v2" in rows[0] and sha[:12] in rows[0] and "roc_auc 0.7500" in rows[0], rows
    listed = json.loads(_cli_ok(settings, tmp_path, "registry", "list", "--json", columns="80"))
    assert [(v["model"], v["version"], v["feature_service"], v["sha256"]) for v in listed] == [
        ("conversion", 1, "conversion_v2", sha)
    ]
    shown = json.loads(_cli_ok(settings, tmp_path, "registry", "show", "conversion", "1", "--json", columns="80"))
    assert shown["artifact"]["sha256"] == sha and shown["metrics"]["holdout"]["model"]["roc_auc"] == 0.75

    checked = json.loads(_cli_ok(base, tmp_path, "features", "check", "--json", columns="80"))
    assert checked["problems"] == [] and checked["tables"]["customer_user_features"]["rows"] > 0, checked


def _reader_with_values(settings: Settings) -> str:
    with get_engine(settings).connect() as conn:
        return str(conn.execute(text("SELECT user_id FROM users ORDER BY user_id LIMIT 1")).scalar())


@pytest.mark.slow  # the CLI in subprocesses, over platforms built for the module
@pytest.mark.parametrize(
    ("damage", "profile"),
    [("snapshot", "local"), ("registry", "local"), ("online store", "local"), ("registry", "production")],
)
def test_the_rebuild_each_damage_message_names_works(damage, profile, platforms, tmp_path):
    """`features build` replaces a damaged snapshot; `features apply` (then materialize) a damaged registry
    or online store, after which the commands that were refused answer again."""
    settings = _settings_for(Case("rebuild", (), (), state="copy-or-built"), profile, platforms, None, tmp_path)
    if profile == "production":
        settings = _garbage_registry_rows(settings, tmp_path)
    else:
        name = {
            "snapshot": "offline/customer_user_features.parquet",
            "registry": "feast/registry.db",
            "online store": "feast/online.db",
        }[damage]
        settings = _damage(name, "truncated" if damage == "snapshot" else "garbage")(settings, tmp_path)
    if damage == "snapshot":
        _cli_ok(settings, tmp_path, "features", "build")
        _cli_ok(settings, tmp_path, "features", "check")
        return
    refused = run_cli(settings, Case("refused", ("features", "online", "churn_v1", "1"), ()), tmp_path)
    assert refused.returncode == 1 and "is damaged" in refused.stderr, refused.stderr
    _cli_ok(settings, tmp_path, "features", "apply")
    _cli_ok(settings, tmp_path, "features", "materialize")
    online = _cli_ok(settings, tmp_path, "features", "online", "churn_v1", _reader_with_values(settings), "--json")
    assert '"vectors"' in online


def test_segment_time_takes_naive_and_aware_moments_alike():
    """The Python API's as_of: a naive moment is UTC, as in churn (it raised TypeError)."""
    from datetime import datetime

    import pandas as pd

    from ownlens_ml.models.customer.segmentation import segment_time

    visits = pd.DataFrame({"user_id": [1, 2], "day": pd.to_datetime(["2026-02-01", "2026-03-01"], utc=True)})
    naive, aware = datetime(2026, 2, 10, 15), datetime(2026, 2, 10, 15, tzinfo=UTC)
    assert segment_time(visits, naive) == segment_time(visits, aware) == pd.Timestamp("2026-02-10", tz="UTC")
