"""A small production platform ending today, churn trained and champion, for the serving tests."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import psycopg2
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ownlens_ml import clock, registry
from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.db import init_db
from ownlens_ml.features import store
from ownlens_ml.features.quality import utc_midnight
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.pipelines.training import train
from ownlens_ml.settings import Settings

USERS, DAYS = 1000, 100


def build(settings: Settings, users: int = USERS, drift: tuple[str, ...] = (), drift_from=None) -> Settings:
    """Generate (with the drift scenarios ``drift`` from ``drift_from`` on, if any), build snapshots, apply,
    materialize, train churn and make it champion."""
    init_db(settings)
    start = (pd.Timestamp(clock.today(), tz="UTC") - pd.Timedelta(days=DAYS)).date()
    generate(settings, GeneratorConfig(users=users, days=DAYS, seed=7, start=start, drift=drift, drift_from=drift_from))
    built = build_snapshots(settings)
    store.apply_repo(settings)
    end = utc_midnight(built.end)
    store.materialize(settings, end - timedelta(days=30), end)
    result = train(settings, "churn")
    registry.promote(settings, "churn", result.version.version)  # a tiny platform may miss the gate
    return settings


def new_database(pg_server: str) -> tuple[str, callable]:
    name = f"ownlens_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(pg_server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    from urllib.parse import urlsplit

    return urlsplit(pg_server)._replace(path=f"/{name}").geturl(), drop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of the test's own on a free port, to stop, pause and start again."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--dir",
                str(self.folder),
                "--pidfile",
                str(self.folder / f"redis-{self.port}.pid"),
            ],
            check=True,
        )
        for _ in range(100):
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def client(self) -> redis.Redis:
        # no retries: redis-py's default backs off for seconds on a server that is going away
        return redis.Redis(port=self.port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))

    @property
    def pid(self) -> int:
        return int((self.folder / f"redis-{self.port}.pid").read_text())

    def stop(self) -> None:
        try:
            self.client().shutdown(nosave=True)
        except redis.ConnectionError:  # shutdown closes the connection
            pass
        for _ in range(100):
            try:
                self.client().ping()
                time.sleep(0.05)
            except redis.ConnectionError:
                return


def with_redis(settings: Settings, url: str) -> Settings:
    return dataclasses.replace(settings, redis_url=url)
