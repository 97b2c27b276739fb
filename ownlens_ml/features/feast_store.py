"""Feast's ``FeatureStore`` per settings, and the lookups every feature module shares.

The lowest layer of ``features/``: it imports no other feature module, and ``store``, the
fast paths and ``activity`` all build on it. Each ``Settings`` gets its own generated
``feature_store.yaml`` (``Settings.feast_yaml``, written into the state folder by apply and
``features env``, held in memory by reads), from the repository's yaml with the project,
paths and non-secret connection values filled in, so two settings in one process never
share a configuration through the environment. Feast's
and its drivers' errors are translated here into one-line ``OwnLensError``s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

import yaml
from feast import FeatureService, FeatureStore, RepoConfig
from feast.errors import FeastObjectNotFoundException, FeatureServiceNotFoundException
from feast.feature_view import DUMMY_ENTITY_ID
from feast.infra.registry.file import FileRegistryStore
from google.protobuf.message import DecodeError

from ownlens_ml.db import get_engine, state_folder
from ownlens_ml.errors import (
    DamagedStateError,
    DatabaseUnavailableError,
    FeatureStoreStateError,
    OwnLensError,
    StateFolderError,
    UnknownFeatureServiceError,
)
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)
SECRETS = ("OWNLENS_PG_PASSWORD", "OWNLENS_FEAST_REGISTRY_URL", "OWNLENS_REDIS_CONNECTION")
"""Variables the generated production yaml leaves to the environment: they may hold passwords."""
REBUILD = "run `ownlens-ml features apply` to rebuild it, then `ownlens-ml features materialize`"


def writable_home(settings: Settings) -> Path:
    """The state folder and its ``feast/`` folder, created; ``StateFolderError`` if read-only."""
    feast_dir = state_folder(settings) / "feast"
    try:
        feast_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise StateFolderError(f"cannot create {feast_dir}: {exc.strerror}; make the state folder writable") from None
    if not os.access(feast_dir, os.W_OK):
        raise StateFolderError(
            f"{feast_dir} is read-only; make the state folder writable or set OWNLENS_HOME to a folder you can write"
        )
    return settings.home


def feast_yaml_text(settings: Settings) -> str:
    """The ``feature_store.yaml`` for these settings, from the repository's yaml of the profile."""
    template = settings.feature_store_yaml.read_text()
    if settings.is_production:
        values = {k: v for k, v in settings.feast_connection().items() if k not in SECRETS}
        values["OWNLENS_FEAST_PROJECT"] = settings.project
        for name, value in values.items():
            template = template.replace("${" + name + "}", value)
        return f"# Written by ownlens-ml for {settings.home}; secrets stay ${{VAR}}.\n{template}"
    if settings.is_cluster:
        for name, value in settings.feast_env().items():
            template = template.replace("${" + name + "}", value)
    config = yaml.safe_load(template)
    config["project"] = settings.project
    config["registry"] = {
        "path": str(settings.feast_registry),
        "registry_store_type": f"{__name__}.AtomicFileRegistryStore",
    }
    if config["online_store"]["type"] == "sqlite":
        config["online_store"]["path"] = str(settings.home / "feast" / "online.db")
    return f"# Written by ownlens-ml for {settings.home}.\n" + yaml.safe_dump(config, sort_keys=False)


def write_feast_yaml(settings: Settings) -> Path:
    """Write ``settings.feast_yaml`` (atomically, only when it changes) and return its path."""
    writable_home(settings)
    text = feast_yaml_text(settings)
    path = settings.feast_yaml
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


class AtomicFileRegistryStore(FileRegistryStore):
    """Feast's file registry, written aside and renamed into place: a crash or a full disk
    mid-write leaves the previous registry, never a truncated one (Feast writes in place)."""

    def _write_registry(self, registry_proto) -> None:  # registry_proto: a RegistryProto
        import uuid

        from feast.utils import _utc_now

        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        self._filepath.parent.mkdir(exist_ok=True)
        tmp = self._filepath.with_name(f".{self._filepath.name}.{os.getpid()}.tmp")
        with open(tmp, mode="wb", buffering=0) as f:
            f.write(registry_proto.SerializeToString())
            os.fsync(f.fileno())
        tmp.replace(self._filepath)


def export_env(settings: Settings, names: tuple[str, ...] | None = None) -> None:
    """Put these settings' Feast variables (or only ``names``) into this process's environment."""
    env = settings.feast_env()
    os.environ.update({k: v for k, v in env.items() if names is None or k in names})


_stores: dict[Settings, FeatureStore] = {}


def feature_store(settings: Settings, create: bool = False) -> FeatureStore:
    """The Feast ``FeatureStore`` for these settings (one per settings, reused).

    Args:
        settings: profile and locations.
        create: allow a local registry file (or production SQL registry tables) that does not
            exist yet, and write ``settings.feast_yaml`` (``apply_repo``); Feast would otherwise
            create an empty registry silently.

    Raises:
        StateFolderError: the state folder cannot be written.
        DatabaseUnavailableError: the production database (Feast's SQL registry) is unreachable.
        FeatureStoreStateError: the local registry file or the SQL registry's tables do not exist
            (and not ``create``).
    """
    store = _stores.get(settings)
    registry_file = settings.feast_registry
    if not settings.is_production and not create and not registry_file.exists():
        _stores.pop(settings, None)
        raise FeatureStoreStateError(
            f"the Feast registry {registry_file} does not exist; run `ownlens-ml features apply`"
        )
    if store is None:
        if settings.is_production:
            engine = get_engine(settings)  # the one clear message for an unreachable database
            if not create:
                _require_sql_registry(engine, settings.project)
            export_env(settings, SECRETS)
        if settings.is_cluster:  # PySpark starts its Python workers with PYSPARK_PYTHON: this interpreter
            os.environ.setdefault("PYSPARK_PYTHON", settings.feast_cluster()["PYSPARK_PYTHON"])
        with feast_errors(settings):
            if create:
                store = FeatureStore(repo_path=str(settings.feature_repo), fs_yaml_file=write_feast_yaml(settings))
            else:
                # a read leaves the state folder as it was (even a failing one, under a project never
                # applied): the yaml is read from memory, ${VAR} expanded as Feast expands a file's
                writable_home(settings)
                config = RepoConfig(**yaml.safe_load(os.path.expandvars(feast_yaml_text(settings))))
                config.repo_path = settings.feature_repo
                store = FeatureStore(repo_path=str(settings.feature_repo), config=config)
        _stores[settings] = store
    return store


def _require_sql_registry(engine, project: str) -> None:  # engine: a sqlalchemy Engine
    """Feast's SQL registry creates its missing tables (empty) and records a project it has not
    seen when it starts: a read must do neither, so both are checked first."""
    from feast.infra.registry.sql import FeastMetadataKeys, feast_metadata, metadata
    from sqlalchemy import inspect, select

    missing = sorted(set(metadata.tables) - set(inspect(engine).get_table_names()))
    if missing:
        raise FeatureStoreStateError(
            f"the Feast SQL registry in database {engine.url.database!r} lacks its "
            f"table(s) {', '.join(missing)}; run `ownlens-ml features apply`"
        )
    with engine.connect() as conn:
        known = conn.execute(
            select(feast_metadata.c.project_id).where(
                feast_metadata.c.metadata_key == FeastMetadataKeys.PROJECT_UUID.value,
                feast_metadata.c.project_id == project,
            )
        ).first()
    if known is None:
        raise FeatureStoreStateError(
            f"Feast project {project!r} was never applied to database "
            f"{engine.url.database!r}; run `ownlens-ml features apply` (or check "
            "OWNLENS_FEAST_PROJECT)"
        )


def discard_damaged(settings: Settings) -> list[str]:
    """Remove the Feast state ``features apply`` cannot read, so that it can rebuild it.

    Locally: a registry file that does not parse, an online store file SQLite cannot open as
    a database. In production: the project's rows of Feast's SQL registry (its online store
    is Redis). Returns what was removed.
    """
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    forget_store(settings)
    removed = []
    if settings.is_production:
        from feast.infra.registry import sql
        from sqlalchemy import delete

        with get_engine(settings).begin() as conn:
            for table in sql.metadata.sorted_tables:
                if "project_id" in table.c:
                    conn.execute(delete(table).where(table.c.project_id == settings.project))
        return [f"the Feast SQL registry of project {settings.project!r}"]
    registry_file, online_file = settings.home / "feast" / "registry.db", settings.home / "feast" / "online.db"
    if registry_file.exists():
        try:
            RegistryProto().ParseFromString(registry_file.read_bytes())
        except DecodeError:
            registry_file.unlink()
            removed.append(str(registry_file))
    if online_file.exists():
        try:
            with contextlib.closing(sqlite3.connect(online_file)) as con:
                con.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError:
            online_file.unlink()
            removed.append(str(online_file))
    return removed


def forget_store(settings: Settings) -> None:
    """Drop the cached store, e.g. after its registry file was replaced."""
    _stores.pop(settings, None)


@contextlib.contextmanager
def feast_errors(settings: Settings, doing: str = "the feature store"):
    """Translate the errors Feast lets through from its drivers into one-line ``OwnLensError``s."""
    import redis
    import sqlalchemy.exc

    try:
        yield
    except OwnLensError:
        raise
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise DatabaseUnavailableError(
            f"{doing}: cannot reach Feast's registry database: {reason}; check OWNLENS_DATABASE_URL"
        ) from None
    except (redis.ConnectionError, redis.ResponseError, redis.exceptions.RedisClusterException) as exc:
        from ownlens_ml.features.redis_layout import unavailable

        if isinstance(exc, redis.ResponseError) and "DB index" not in str(exc):
            raise
        raise unavailable(settings, exc) from None
    except PermissionError as exc:
        raise StateFolderError(
            f"{doing}: cannot write {exc.filename or settings.home}: permission denied; "
            "make the state folder writable or set OWNLENS_HOME"
        ) from None
    except sqlite3.OperationalError as exc:
        raise FeatureStoreStateError(
            f"{doing}: the local online store {settings.home / 'feast' / 'online.db'} "
            f"is unusable ({exc}); run `ownlens-ml features apply` to recreate it"
        ) from None
    except sqlite3.DatabaseError as exc:  # not an OperationalError: the file is no database
        raise DamagedStateError(
            f"{doing}: the local online store {settings.home / 'feast' / 'online.db'} is damaged ({exc}); {REBUILD}"
        ) from None
    except DecodeError as exc:
        where = (
            f"the Feast SQL registry of project {settings.project!r} (OWNLENS_DATABASE_URL)"
            if settings.is_production
            else f"the Feast registry {settings.home / 'feast' / 'registry.db'}"
        )
        raise DamagedStateError(f"{doing}: {where} is damaged ({exc}); {REBUILD}") from None


def require_applied(settings: Settings, online: bool = False) -> FeatureStore:
    """The store, checked to hold this repository's objects for this state folder.

    Args:
        settings: profile and locations.
        online: also require the local online store's file (Feast would recreate it empty).

    Raises:
        FeatureStoreStateError: nothing is applied, the registry was applied for another state
            folder (a copied folder), or the online store file is missing.
        DamagedStateError: the local online store file is not a database.
    """
    store = feature_store(settings)
    with feast_errors(settings):
        views = store.list_feature_views(allow_cache=False)
    if not views:
        raise FeatureStoreStateError(
            f"the Feast registry of project {settings.project!r} has no feature views; run `ownlens-ml features apply`"
        )
    if not settings.is_production:
        expected = settings.offline_dir.resolve()
        for view in views:
            path = getattr(view.batch_source, "path", None)
            if path and Path(path).resolve().parent != expected:
                raise FeatureStoreStateError(
                    f"the Feast registry in {settings.home / 'feast'} reads {Path(path).parent}, not this state "
                    f"folder's {expected} (was the folder copied?); run `ownlens-ml features apply`"
                )
        online_db = settings.home / "feast" / "online.db"
        if online and not settings.online_redis and not online_db.exists():
            raise FeatureStoreStateError(
                f"the local online store {online_db} is missing; "
                "run `ownlens-ml features apply` to recreate it, then `features materialize`"
            )
        if online:  # before Feast: its materialize marks views in the registry before it writes a row
            try:
                with contextlib.closing(sqlite3.connect(f"file:{online_db}?mode=ro", uri=True)) as conn:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                raise DamagedStateError(f"the local online store {online_db} is damaged ({exc}); {REBUILD}") from None
    return store


def feature_service(settings: Settings, name: str) -> FeatureService:
    """A registered feature service; an unknown name lists the known ones."""
    store = feature_store(settings)
    with feast_errors(settings):
        try:
            return store.get_feature_service(name)
        except FeatureServiceNotFoundException:
            known = sorted(fs.name for fs in store.list_feature_services())
    raise UnknownFeatureServiceError(
        f"no feature service {name!r}; known: {', '.join(known) or 'none (run `ownlens-ml features apply`)'}"
    )


def service_views(store: FeatureStore, service: FeatureService) -> list:
    """The feature views and on-demand views a service reads, in service order."""
    views = []
    for projection in service.feature_view_projections:
        try:
            views.append(store.get_feature_view(projection.name))
        except FeastObjectNotFoundException:  # an on-demand view
            views.append(store.get_on_demand_feature_view(projection.name))
    return views


def join_keys(settings: Settings, service: FeatureService) -> list[str]:
    """The entity join keys a service's entity frame must carry, in a stable order."""
    keys: list[str] = []
    for view in service_views(feature_store(settings), service):
        for column in getattr(view, "entity_columns", []):
            if column.name not in keys and column.name != DUMMY_ENTITY_ID:
                keys.append(column.name)
    return keys


def feature_names(service: FeatureService) -> list[str]:
    """Output column names of a service, in service order."""
    return [f.name for p in service.feature_view_projections for f in p.features]
