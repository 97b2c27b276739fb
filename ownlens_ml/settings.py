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
        """Read ``OWNLENS_*`` variables; ``profile`` overrides ``OWNLENS_PROFILE``."""
        env = os.environ
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
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}; use one of: {', '.join(PROFILES)}")
        if not self.project.isidentifier():
            raise ConfigError(f"Feast project name {self.project!r} must be letters, digits and _")

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

    def feast_env(self) -> dict[str, str]:
        """Environment variables that ``feature_repo/feature_store*.yaml`` expand.

        ``ownlens-ml features env`` prints them, so the plain Feast CLI sees the same
        configuration as the Python API.
        """
        env = {
            "OWNLENS_PROFILE": self.profile,
            "OWNLENS_HOME": str(self.home),
            "OWNLENS_FEAST_PROJECT": self.project,
        }
        if self.is_production:
            pg = urlsplit(self.database_url)
            redis = urlsplit(self.redis_url)
            redis_db = (redis.path or "/0").lstrip("/") or "0"
            redis_conn = f"{redis.hostname or '127.0.0.1'}:{redis.port or 6379},db={redis_db}"
            if redis.password:
                redis_conn += f",password={unquote(redis.password)}"
            env |= {
                # a socket directory (postgresql://user@/db?host=/run/postgresql) or a host name
                "OWNLENS_PG_HOST": parse_qs(pg.query).get("host", [pg.hostname or "127.0.0.1"])[0],
                "OWNLENS_PG_PORT": str(pg.port or 5432),
                "OWNLENS_PG_DATABASE": (pg.path or "/postgres").lstrip("/"),
                "OWNLENS_PG_USER": unquote(pg.username or "postgres"),
                "OWNLENS_PG_PASSWORD": unquote(pg.password or ""),
                "OWNLENS_FEAST_REGISTRY_URL": _psycopg_url(self.database_url),
                "OWNLENS_REDIS_CONNECTION": redis_conn,
            }
        return env

    @property
    def feature_store_yaml(self) -> Path:
        name = "feature_store.production.yaml" if self.is_production else "feature_store.yaml"
        return self.feature_repo / name


def _psycopg_url(url: str) -> str:
    """Feast's SQL registry talks to PostgreSQL through psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"OWNLENS_DATABASE_URL {url!r} is not a URL like postgresql://user@host:5432/db")
    return f"postgresql+psycopg://{rest}"
