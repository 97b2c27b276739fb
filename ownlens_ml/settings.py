"""Settings read from the environment; one object, two profiles (local, production)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ownlens_ml.errors import ConfigError

PROFILES = ("local", "production")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FEATURE_REPO = PROJECT_ROOT / "feature_repo"


@dataclass(frozen=True)
class Settings:
    """Where OwnLens keeps its data and which servers it talks to.

    Attributes:
        profile: ``local`` (embedded: SQLite, parquet + DuckDB, SQLite online store) or
            ``production`` (PostgreSQL for tables, offline store and Feast registry; Redis online).
        home: folder for local files (database, parquet snapshots, Feast registry, reports).
        database_url: SQLAlchemy URL of the production database.
        redis_url: ``redis://host:port/db`` of the production online store.
        feature_repo: the Feast repository folder.
        project: Feast project name (tests use their own to keep runs apart).
    """

    profile: str = "local"
    home: Path = Path(".ownlens")
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    feature_repo: Path = DEFAULT_FEATURE_REPO
    project: str = "ownlens"

    @classmethod
    def from_env(cls, profile: str | None = None) -> Settings:
        """Read ``OWNLENS_*`` variables; ``profile`` overrides ``OWNLENS_PROFILE``.

        Raises:
            ConfigError: a variable is set but empty or malformed (named in the message).
        """
        env = os.environ
        for name in ("OWNLENS_PROFILE", "OWNLENS_HOME", "OWNLENS_DATABASE_URL", "OWNLENS_REDIS_URL",
                     "OWNLENS_FEATURE_REPO", "OWNLENS_FEAST_PROJECT"):
            if name in env and not env[name].strip():
                raise ConfigError(f"{name} is set but empty; unset it for the default or give a value")
        settings = cls(
            profile=profile or env.get("OWNLENS_PROFILE", "local"),
            home=Path(env.get("OWNLENS_HOME", ".ownlens")).expanduser().resolve(),
            database_url=env.get("OWNLENS_DATABASE_URL", cls.database_url),
            redis_url=env.get("OWNLENS_REDIS_URL", cls.redis_url),
            feature_repo=Path(env.get("OWNLENS_FEATURE_REPO", DEFAULT_FEATURE_REPO)).resolve(),
            project=env.get("OWNLENS_FEAST_PROJECT", cls.project),
        )
        settings.validate()
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
        if not self.project.isidentifier():
            raise ConfigError(f"Feast project name {self.project!r} must be letters, digits and _; "
                              "set OWNLENS_FEAST_PROJECT to one, e.g. ownlens")
        if self.home.exists() and not self.home.is_dir():
            raise ConfigError(f"OWNLENS_HOME {self.home} is a file, not a folder; point it at a folder")
        if not (self.feature_repo / "feature_store.yaml").is_file():
            raise ConfigError(f"OWNLENS_FEATURE_REPO {self.feature_repo} is not a Feast repository "
                              "(no feature_store.yaml); point it at the project's feature_repo/")
        pg = urlsplit(self.database_url)
        if pg.scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise ConfigError(f"OWNLENS_DATABASE_URL {_redact(self.database_url)!r} is not supported; "
                              "use a PostgreSQL URL like postgresql://user@host:5432/db")
        redis = urlsplit(self.redis_url)
        if redis.scheme not in ("redis", "rediss") or not redis.hostname:
            raise ConfigError(f"OWNLENS_REDIS_URL {_redact(self.redis_url)!r} is not a Redis URL; "
                              "use redis://host:6379/0")
        try:
            pg.port  # noqa: B018 (urlsplit checks ports lazily)
        except ValueError as exc:
            raise _malformed("OWNLENS_DATABASE_URL", self.database_url, exc, "127.0.0.1:5432/ownlens") from None
        try:
            redis.port, int((redis.path or "/0").lstrip("/") or 0)  # noqa: B018
        except ValueError as exc:
            raise _malformed("OWNLENS_REDIS_URL", self.redis_url, exc, "127.0.0.1:6379/0") from None

    @property
    def is_production(self) -> bool:
        return self.profile == "production"

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
        return env

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
        name = "feature_store.production.yaml" if self.is_production else "feature_store.yaml"
        return self.feature_repo / name


def _psycopg_url(url: str) -> str:
    """Feast's SQL registry talks to PostgreSQL through psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"OWNLENS_DATABASE_URL {_redact(url)!r} is not a URL; "
                          "use one like postgresql://user@host:5432/db")
    return f"postgresql+psycopg://{rest}"


def _malformed(name: str, url: str, exc: ValueError, example: str) -> ConfigError:
    return ConfigError(f"{name} {_redact(url)!r} has a malformed port or database number ({exc}); "
                       f"use host:port/database, e.g. {example}")


def _redact(url: str) -> str:
    """A URL with its password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
