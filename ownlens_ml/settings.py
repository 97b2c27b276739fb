"""Settings read from the environment; one object, three profiles (local, production, cluster)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ownlens_ml import clock
from ownlens_ml.errors import ConfigError

PROFILES = ("local", "production", "cluster")
TRAIN_BACKENDS = ("single", "dask")
"""``single``: XGBoost in this process; ``dask``: ``xgboost.dask`` on the Dask scheduler of the settings."""
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FEATURE_REPO = PROJECT_ROOT / "feature_repo"


@dataclass(frozen=True)
class Settings:
    """Where OwnLens keeps its data and which servers it talks to.

    Attributes:
        profile: ``local`` (embedded: SQLite, parquet + DuckDB, SQLite online store),
            ``production`` (PostgreSQL for tables, offline store and Feast registry; Redis online) or
            ``cluster`` (local tables and parquet snapshots; Spark offline store and ``spark.engine``
            materialization; Redis Cluster online).
        home: folder for local files (database, parquet snapshots, Feast registry, reports).
        database_url: SQLAlchemy URL of the production database.
        redis_url: ``redis://host:port/db`` of the production online store.
        feature_repo: the Feast repository folder.
        project: Feast project name (tests use their own to keep runs apart).
        prediction_retention_days: days of ``ml_model_predictions`` kept before
            ``predictions prune`` summarises and removes them.
        alert_webhook: URL monitoring POSTs each new alert to (JSON); None: alerts are only stored and logged.
        spark_master: the cluster profile's Spark master (``local[2]``, ``spark://host:7077``).
        redis_cluster_nodes: the cluster profile's Redis Cluster startup nodes, ``host:port,host:port``.
        dask_scheduler: address of the Dask scheduler ``xgboost.dask`` trains on; empty: a
            LocalCluster of two workers started for the run.
        train_backend: one of ``TRAIN_BACKENDS``.
    """

    profile: str = "local"
    home: Path = Path(".ownlens")
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    feature_repo: Path = DEFAULT_FEATURE_REPO
    project: str = "ownlens"
    prediction_retention_days: int = 30
    alert_webhook: str | None = None
    spark_master: str = "local[2]"
    redis_cluster_nodes: str = "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
    dask_scheduler: str = ""
    train_backend: str = "single"

    @classmethod
    def from_env(cls, profile: str | None = None) -> Settings:
        """Read ``OWNLENS_*`` variables; ``profile`` overrides ``OWNLENS_PROFILE``.

        Raises:
            ConfigError: a variable is set but empty or malformed (named in the message).
        """
        env = os.environ
        for name in (
            "OWNLENS_PROFILE",
            "OWNLENS_HOME",
            "OWNLENS_DATABASE_URL",
            "OWNLENS_REDIS_URL",
            "OWNLENS_FEATURE_REPO",
            "OWNLENS_FEAST_PROJECT",
            "OWNLENS_PREDICTION_RETENTION_DAYS",
            "OWNLENS_SPARK_MASTER",
            "OWNLENS_REDIS_CLUSTER_NODES",
            "OWNLENS_DASK_SCHEDULER",
            "OWNLENS_TRAIN_BACKEND",
        ):
            if name in env and not env[name].strip():
                raise ConfigError(f"{name} is set but empty; unset it for the default or give a value")
        settings = cls(
            profile=profile or env.get("OWNLENS_PROFILE", "local"),
            home=Path(env.get("OWNLENS_HOME", ".ownlens")).expanduser().resolve(),
            database_url=env.get("OWNLENS_DATABASE_URL", cls.database_url),
            redis_url=env.get("OWNLENS_REDIS_URL", cls.redis_url),
            feature_repo=Path(env.get("OWNLENS_FEATURE_REPO", DEFAULT_FEATURE_REPO)).resolve(),
            project=env.get("OWNLENS_FEAST_PROJECT", cls.project),
            prediction_retention_days=_days(
                env.get("OWNLENS_PREDICTION_RETENTION_DAYS"),
                "OWNLENS_PREDICTION_RETENTION_DAYS",
                cls.prediction_retention_days,
            ),
            alert_webhook=env.get("OWNLENS_ALERT_WEBHOOK") or None,
            spark_master=env.get("OWNLENS_SPARK_MASTER", cls.spark_master),
            redis_cluster_nodes=env.get("OWNLENS_REDIS_CLUSTER_NODES", cls.redis_cluster_nodes),
            dask_scheduler=env.get("OWNLENS_DASK_SCHEDULER", cls.dask_scheduler),
            train_backend=env.get("OWNLENS_TRAIN_BACKEND", cls.train_backend),
        )
        settings.validate()
        clock.now()  # a malformed OWNLENS_NOW fails here, before any work
        return settings

    def with_profile(self, profile: str) -> Settings:
        """The same settings under another profile."""
        other = replace(self, profile=profile)
        other.validate()
        return other

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first setting that cannot work."""
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}; use one of: {', '.join(PROFILES)}")
        if self.train_backend not in TRAIN_BACKENDS:
            raise ConfigError(
                f"unknown training backend {self.train_backend!r} (OWNLENS_TRAIN_BACKEND); "
                f"use one of: {', '.join(TRAIN_BACKENDS)}"
            )
        if not self.project.isidentifier():
            raise ConfigError(
                f"Feast project name {self.project!r} must be letters, digits and _; "
                "set OWNLENS_FEAST_PROJECT to one, e.g. ownlens"
            )
        if self.home.exists() and not self.home.is_dir():
            raise ConfigError(f"OWNLENS_HOME {self.home} is a file, not a folder; point it at a folder")
        if not (self.feature_repo / "feature_store.yaml").is_file():
            raise ConfigError(
                f"OWNLENS_FEATURE_REPO {self.feature_repo} is not a Feast repository "
                "(no feature_store.yaml); point it at the project's feature_repo/"
            )
        pg = urlsplit(self.database_url)
        if pg.scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise ConfigError(
                f"OWNLENS_DATABASE_URL {_redact(self.database_url)!r} is not supported; "
                "use a PostgreSQL URL like postgresql://user@host:5432/db"
            )
        redis = urlsplit(self.redis_url)
        if redis.scheme not in ("redis", "rediss") or not redis.hostname:
            raise ConfigError(
                f"OWNLENS_REDIS_URL {_redact(self.redis_url)!r} is not a Redis URL; use redis://host:6379/0"
            )
        try:
            self.cluster_nodes  # noqa: B018 (parses OWNLENS_REDIS_CLUSTER_NODES)
        except ValueError:
            raise ConfigError(
                f"OWNLENS_REDIS_CLUSTER_NODES {self.redis_cluster_nodes!r} is not a list of "
                "host:port; use 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
            ) from None
        try:
            pg.port  # noqa: B018 (urlsplit checks ports lazily)
        except ValueError as exc:
            raise _malformed("OWNLENS_DATABASE_URL", self.database_url, exc, "127.0.0.1:5432/ownlens") from None
        try:
            redis.port, int((redis.path or "/0").lstrip("/") or 0)
        except ValueError as exc:
            raise _malformed("OWNLENS_REDIS_URL", self.redis_url, exc, "127.0.0.1:6379/0") from None

    @property
    def is_production(self) -> bool:
        return self.profile == "production"

    @property
    def is_cluster(self) -> bool:
        return self.profile == "cluster"

    @property
    def online_redis(self) -> bool:
        """The online store is Redis (a server in production, a Redis Cluster in the cluster profile)."""
        return self.profile in ("production", "cluster")

    @property
    def cluster_nodes(self) -> list[tuple[str, int]]:
        """``redis_cluster_nodes`` as (host, port) pairs; ``ValueError`` if one is not ``host:port``."""
        nodes = []
        for node in self.redis_cluster_nodes.split(","):
            host, sep, port = node.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(node)
            nodes.append((host, int(port)))
        return nodes

    @property
    def sqlalchemy_url(self) -> str:
        """The OwnLens database: PostgreSQL in production, a SQLite file under home locally."""
        if self.is_production:
            return self.database_url
        return f"sqlite:///{self.home / 'ownlens.db'}"

    @property
    def offline_dir(self) -> Path:
        """Parquet files of the local offline store (one per snapshot table)."""
        return self.home / "offline"

    @property
    def truth_dir(self) -> Path:
        """The generator's latent truth, kept apart from the platform tables."""
        return self.home / "truth"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def feast_yaml(self) -> Path:
        """The ``feature_store.yaml`` ownlens-ml writes for these settings (``features/feast_store.py``)."""
        return self.home / "feast" / "feature_store.yaml"

    @property
    def feast_registry(self) -> Path:
        """The file registry of the local and cluster profiles; their own files, so both can share
        one state folder (the cluster profile reads the same tables and snapshots)."""
        return self.home / "feast" / ("cluster-registry.db" if self.is_cluster else "registry.db")

    def feast_env(self) -> dict[str, str]:
        """Environment for the plain Feast CLI to see these settings.

        ``OWNLENS_PROFILE`` and ``OWNLENS_HOME`` bind ``feature_repo/data_sources.py``;
        ``FEAST_FS_YAML_FILE_PATH`` points Feast at the generated yaml. The rest are the
        connection settings ``feature_store.production.yaml`` expands, and the secrets the
        generated production yaml leaves to the environment. ``ownlens-ml features env``
        prints them.
        """
        env = {
            "OWNLENS_PROFILE": self.profile,
            "OWNLENS_HOME": str(self.home),
            "OWNLENS_FEAST_PROJECT": self.project,
            "FEAST_FS_YAML_FILE_PATH": str(self.feast_yaml),
        }
        if self.is_production:
            env |= self.feast_connection()
        if self.is_cluster:
            env |= self.feast_cluster()
        return env

    def feast_cluster(self) -> dict[str, str]:
        """The cluster profile's bindings, as the variables ``feature_store.cluster.yaml`` names.

        ``PYSPARK_PYTHON`` makes Spark's Python workers this interpreter (the one with Feast).
        """
        return {
            "OWNLENS_SPARK_MASTER": self.spark_master,
            "OWNLENS_REDIS_CLUSTER_NODES": ",".join(f"{h}:{p}" for h, p in self.cluster_nodes),
            "PYSPARK_PYTHON": sys.executable,
        }

    def feast_connection(self) -> dict[str, str]:
        """The production store's connection values, as the variables the yaml files name."""
        pg = urlsplit(self.database_url)
        redis = urlsplit(self.redis_url)
        redis_db = (redis.path or "/0").lstrip("/") or "0"
        redis_conn = f"{redis.hostname or '127.0.0.1'}:{redis.port or 6379},db={redis_db}"
        if redis.password:
            redis_conn += f",password={unquote(redis.password)}"
        return {
            # a socket directory (postgresql://user@/db?host=/run/postgresql) or a host name
            "OWNLENS_PG_HOST": parse_qs(pg.query).get("host", [pg.hostname or "127.0.0.1"])[0],
            "OWNLENS_PG_PORT": str(pg.port or 5432),
            "OWNLENS_PG_DATABASE": (pg.path or "/postgres").lstrip("/"),
            "OWNLENS_PG_USER": unquote(pg.username or "postgres"),
            "OWNLENS_PG_PASSWORD": unquote(pg.password or ""),
            "OWNLENS_FEAST_REGISTRY_URL": _psycopg_url(self.database_url),
            "OWNLENS_REDIS_CONNECTION": redis_conn,
        }

    @property
    def feature_store_yaml(self) -> Path:
        """The repository's own yaml for this profile (the template of ``feast_yaml``)."""
        name = {"production": "feature_store.production.yaml", "cluster": "feature_store.cluster.yaml"}
        return self.feature_repo / name.get(self.profile, "feature_store.yaml")


def _days(text: str | None, name: str, default: int) -> int:
    """A whole number of days >= 1 from a variable, or ``default`` when it is unset."""
    if text is None:
        return default
    try:
        days = int(text.strip())
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigError(f"{name}={text!r} is not a whole number of days >= 1; set e.g. {name}={default}")
    return days


def _psycopg_url(url: str) -> str:
    """Feast's SQL registry talks to PostgreSQL through psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"OWNLENS_DATABASE_URL {_redact(url)!r} is not a URL; use one like postgresql://user@host:5432/db"
        )
    return f"postgresql+psycopg://{rest}"


def _malformed(name: str, url: str, exc: ValueError, example: str) -> ConfigError:
    return ConfigError(
        f"{name} {_redact(url)!r} has a malformed port or database number ({exc}); "
        f"use host:port/database, e.g. {example}"
    )


def _redact(url: str) -> str:
    """A URL with its password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
