"""The feature store as the models see it: apply, materialize, training sets, online vectors.

Every function takes ``Settings`` and works the same in both profiles; only
``feature_repo/``'s bindings differ. Feast objects are looked up by feature service, so a
model asks for exactly the features it was trained on. The top of ``features/``: it uses
``feast_store`` and the fast paths (``historical``, ``online``, ``materializer``), none of
which imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from feast import FeatureService

from ownlens_ml import clock
from ownlens_ml.errors import (
    DamagedStateError,
    EmptyWindowError,
    MissingTableError,
    NotMaterializedError,
    ValidationError,
)
from ownlens_ml.features import historical, online
from ownlens_ml.features.feast_store import (  # re-exported: the package's feature API
    discard_damaged,
    feast_errors,
    feature_names,
    feature_service,
    feature_store,
    join_keys,
    require_applied,
    service_views,
)
from ownlens_ml.features.materializer import materialize_redis
from ownlens_ml.features.snapshot_files import snapshot_file
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)
REQUEST_TIME = "request_time_epoch"
"""The request field on-demand views read; filled from ``event_timestamp`` when absent."""
BINDING = ("OWNLENS_PROFILE", "OWNLENS_HOME")
"""The variables ``feature_repo/data_sources.py`` reads to bind its sources."""


@contextlib.contextmanager
def _repo_imports(repo: Path, settings: Settings):
    """Import the repo's modules fresh, as ``feast apply`` does from inside the repo, with
    the variables that bind ``data_sources.py`` set to these settings."""
    names = {p.stem for p in repo.glob("*.py")}
    for name in names:
        sys.modules.pop(name, None)
    cwd = os.getcwd()
    saved = {k: os.environ.get(k) for k in BINDING}
    os.environ.update({k: v for k, v in settings.feast_env().items() if k in BINDING})
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path.remove(str(repo))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for name in names:
            sys.modules.pop(name, None)


def apply_repo(settings: Settings) -> list[str]:
    """Register every object of ``feature_repo/`` (what ``feast apply`` does).

    Returns:
        Names of the feature services now registered.

    A registry or local online store that cannot be read (damaged) is removed and rebuilt.

    Raises:
        StateFolderError: the state folder cannot be written.
        DatabaseUnavailableError: the production database cannot be reached.
    """
    from feast.repo_operations import parse_repo

    with _repo_imports(settings.feature_repo, settings), feast_errors(settings, "features apply"):
        repo = parse_repo(settings.feature_repo)
    objects = [
        *repo.entities,
        *repo.data_sources,
        *repo.feature_views,
        *repo.on_demand_feature_views,
        *repo.feature_services,
    ]
    for attempt in (1, 2):
        try:
            with _repo_imports(settings.feature_repo, settings), feast_errors(settings, "features apply"):
                feature_store(settings, create=True).apply(objects)
            break
        except DamagedStateError:
            if attempt == 2:
                raise
            log.warning("features apply: rebuilding damaged %s", ", ".join(discard_damaged(settings)) or "state")
    online.forget_plans()
    return sorted(fs.name for fs in repo.feature_services)


def service_definition_hash(settings: Settings, service: FeatureService) -> str:
    """SHA-256 of the service's spec and of every view it reads (metadata excluded)."""
    digest = hashlib.sha256(service.to_proto().spec.SerializeToString(deterministic=True))
    for view in service_views(feature_store(settings), service):
        spec = view.to_proto().spec
        for source in getattr(spec, "sources", {}).values():  # an on-demand view embeds its sources
            embedded = getattr(source, source.WhichOneof("source"))
            if "meta" in embedded.DESCRIPTOR.fields_by_name:
                embedded.ClearField("meta")  # creation times, stamped anew on every read
        digest.update(spec.SerializeToString(deterministic=True))
    return digest.hexdigest()


def _needs_request_time(service: FeatureService) -> bool:
    return any(p.name == "article_request_context" for p in service.feature_view_projections)


def _check_entity_frame(entity_df: pd.DataFrame, keys: list[str]) -> None:
    if "event_timestamp" not in entity_df.columns:
        raise ValidationError("entity frame has no 'event_timestamp' column (the label time of each row)")
    ts = entity_df["event_timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValidationError(
            f"entity frame 'event_timestamp' must be timezone-aware (UTC); got dtype {ts.dtype}. "
            "Use pd.to_datetime(..., utc=True)"
        )
    if ts.isna().any():
        raise ValidationError(f"entity frame 'event_timestamp' has {int(ts.isna().sum())} missing values")
    missing = [k for k in keys if k not in entity_df.columns]
    if missing:
        raise ValidationError(f"entity frame lacks join key column(s) {missing}; it needs {keys}")
    if entity_df.empty:
        raise ValidationError("entity frame is empty")


@dataclass(frozen=True)
class TrainingSet:
    """A point-in-time-correct frame and its lineage."""

    frame: pd.DataFrame
    feature_service: str
    features: list[str]
    fingerprint: str
    definition_hash: str


def entity_fingerprint(entity_df: pd.DataFrame) -> str:
    """SHA-256 of an entity frame's rows, in order, independent of pandas' memory layout."""
    values = pd.util.hash_pandas_object(entity_df.reset_index(drop=True), index=False).to_numpy()
    digest = hashlib.sha256(",".join(entity_df.columns).encode())
    digest.update(values.tobytes())
    return digest.hexdigest()


ENGINES = ("auto", "fast", "feast")
"""``auto``: the fast path where it applies (training sets on PostgreSQL and DuckDB; online reads
from Redis and Redis Cluster; materialization into a Redis server), Feast's own elsewhere (the
cluster profile's Spark training sets and ``spark.engine`` materialization); ``fast``: the fast
path or an error; ``feast``: Feast's own path."""


def _use_fast(engine: str, applies: bool, what: str, where: str = "the production profile") -> bool:
    if engine not in ENGINES:
        raise ValidationError(f"unknown engine {engine!r}; use one of: {', '.join(ENGINES)}")
    if engine == "fast" and not applies:
        raise ValidationError(f"the fast {what} path needs {where}; use engine='feast' or 'auto'")
    return engine == "fast" or (engine == "auto" and applies)


def training_set(settings: Settings, service_name: str, entity_df: pd.DataFrame, engine: str = "auto") -> TrainingSet:
    """Point-in-time-correct features for ``entity_df`` from a feature service.

    Args:
        settings: profile and locations.
        service_name: e.g. ``churn_v1``.
        entity_df: join keys, a timezone-aware ``event_timestamp`` per row (the label time),
            and any label columns; extra columns pass through.
        engine: ``auto`` (the fast path of ``historical.py``: PostgreSQL: COPY + one LATERAL
            query per source; local: one DuckDB ASOF JOIN per parquet source), ``fast`` or
            ``feast`` (Feast's ``get_historical_features``; the cluster profile's Spark store under ``auto``).

    Returns:
        The frame in the input's row order with the service's features appended, plus a
        fingerprint of the entity frame and the service definition for lineage.
    """
    require_applied(settings)
    service = feature_service(settings, service_name)
    keys = join_keys(settings, service)
    _check_entity_frame(entity_df, keys)
    _require_sources(settings, service)
    entities = entity_df.reset_index(drop=True)
    if _needs_request_time(service) and REQUEST_TIME not in entities.columns:
        entities = entities.assign(**{REQUEST_TIME: entities["event_timestamp"].astype("int64") // 10**9})
    started = time.perf_counter()
    frame = None
    if _use_fast(engine, not settings.is_cluster, "historical", "the local or production profile"):
        try:
            fast = historical.historical_postgres if settings.is_production else historical.historical_duckdb
            frame = fast(settings, service, entities)
        except historical.FastPathUnsupported as exc:
            if engine == "fast":
                raise
            log.info("training set %s: Feast's path (%s)", service_name, exc)
    if frame is None:
        with feast_errors(settings, "training set"):
            frame = (
                feature_store(settings)
                .get_historical_features(entity_df=entities.assign(_row=range(len(entities))), features=service)
                .to_df()
            )
        frame = frame.sort_values("_row").drop(columns="_row").reset_index(drop=True)
    # Exactly the input columns and the service's features, in service order: Feast's offline
    # path also returns on-demand views' undeclared inputs, in an order that varies by process.
    features = feature_names(service)
    columns = list(entities.columns) + [f for f in features if f not in entities.columns]
    if list(frame.columns) != columns:  # the fast paths return this layout; reordering copies
        frame = frame[columns]
    stamps = frame["event_timestamp"]
    # Feast's PostgreSQL store hands timestamps back naive (in UTC), DuckDB's aware; Spark's in ns, the others in us.
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    frame["event_timestamp"] = stamps.astype("datetime64[us, UTC]")
    log.info("training set %s: %d rows in %.2fs", service_name, len(frame), time.perf_counter() - started)
    definition = service_definition_hash(settings, service)
    fingerprint = hashlib.sha256((entity_fingerprint(entity_df) + definition).encode()).hexdigest()
    return TrainingSet(frame, service_name, features, fingerprint, definition)


@dataclass(frozen=True)
class OnlineVectors:
    """Feature vectors read from the online store and the age of each view's values."""

    frame: pd.DataFrame
    """One row per entity: join keys then features (None where the store has no value)."""
    staleness_seconds: pd.DataFrame
    """One row per entity, one column per feature view: seconds since that view's value was stamped."""


def online_features(
    settings: Settings,
    service_name: str,
    entity_rows: dict[str, list],
    request_time: datetime | None = None,
    engine: str = "auto",
) -> OnlineVectors:
    """A service's feature vectors for one or many entities, from the online store.

    Args:
        settings: profile and locations.
        service_name: e.g. ``churn_v1``.
        entity_rows: join key -> list of ids, e.g. ``{"user_id": [1, 2]}``.
        request_time: "now" for request-time features and staleness; default: the clock.
        engine: ``auto`` (Redis and Redis Cluster: one pipelined HMGET round trip in Feast's
            layout, see ``online.py``; SQLite: Feast's SDK), ``fast`` or ``feast``.

    Raises:
        RedisUnavailableError: the production Redis cannot be reached.
    """
    require_applied(settings, online=True)
    if _use_fast(engine, settings.online_redis, "online", "a Redis online store"):
        return _online_fast(settings, service_name, entity_rows, request_time)
    service = feature_service(settings, service_name)
    keys = join_keys(settings, service)
    _check_entity_rows(service_name, keys, entity_rows)
    now = request_time or clock.now()
    rows = {k: list(entity_rows[k]) for k in keys}
    if _needs_request_time(service):
        rows[REQUEST_TIME] = [int(now.timestamp())] * len(rows[keys[0]])
    with feast_errors(settings, "online features"):
        response = feature_store(settings).get_online_features(features=service, entity_rows=_as_rows(rows))
    values = response.to_dict(include_event_timestamps=True)
    frame = pd.DataFrame({k: values[k] for k in keys + feature_names(service)})
    staleness = {}
    for projection in service.feature_view_projections:
        stamp = values.get(f"{projection.features[0].name}__ts")
        if stamp is not None:
            staleness[projection.name] = [now.timestamp() - s if s else None for s in stamp]
    return OnlineVectors(frame, pd.DataFrame(staleness))


def require_values(settings: Settings, service_name: str, vectors: OnlineVectors) -> None:
    """Raise ``NotMaterializedError`` if any entity of ``vectors`` has no value at all.

    Feast answers an id it holds nothing for with nulls; a caller showing vectors to a
    person says instead whether the store was never materialized or which ids are missing.
    """
    features = [
        c for c in vectors.frame.columns if c not in join_keys(settings, feature_service(settings, service_name))
    ]
    empty = vectors.frame[features].isna().all(axis=1)
    if not empty.any():
        return
    store = feature_store(settings)
    with feast_errors(settings):
        views = store.list_feature_views()
    if not any(v.materialization_intervals for v in views):
        raise NotMaterializedError(
            f"the online store of project {settings.project!r} was never materialized; "
            "run `ownlens-ml features materialize`"
        )
    key = vectors.frame.columns[0]
    missing = vectors.frame.loc[empty, key].tolist()
    raise NotMaterializedError(
        f"no online values for {key} {', '.join(map(str, missing[:10]))} in {service_name} (unknown ids, or "
        "their newest snapshot is older than the views' TTL); check the ids or materialize a newer window"
    )


def _online_fast(
    settings: Settings, service_name: str, entity_rows: dict[str, list], request_time: datetime | None
) -> OnlineVectors:
    plan = online.plan_for(settings, service_name)
    keys = plan.join_keys
    _check_entity_rows(service_name, keys, entity_rows)
    now = request_time or clock.now()
    n = len(entity_rows[keys[0]])
    request = {REQUEST_TIME: [int(now.timestamp())] * n} if REQUEST_TIME in plan.request_fields else None
    result = online.read(settings, plan, entity_rows, request)
    frame = pd.DataFrame({k: result.values[k] for k in keys + plan.features})
    # As Feast's response: on-demand views carry no timestamp, hence no staleness.
    stamps = {view: result.timestamps[view] for view, _ in plan.view_outputs}
    staleness = {
        name: [now.timestamp() - s if s else None for s in stamps.get(name, [0] * n)] for name in plan.projections
    }
    return OnlineVectors(frame, pd.DataFrame(staleness))


def _check_entity_rows(service_name: str, keys: list[str], entity_rows: dict[str, list]) -> None:
    missing = [k for k in keys if k not in entity_rows]
    if missing:
        raise ValidationError(f"entity rows lack {missing}; {service_name} needs {keys}")
    for key in keys:
        bad = [v for v in entity_rows[key] if not isinstance(v, int) or isinstance(v, bool)]
        if bad:
            raise ValidationError(f"{key} must be integers; got {bad[0]!r} ({type(bad[0]).__name__})")
        out_of_range = [v for v in entity_rows[key] if not INT64_MIN <= v <= INT64_MAX]
        if out_of_range:
            raise ValidationError(f"{key} {out_of_range[0]} is outside the 64-bit integer range of entity ids")
    lengths = {len(entity_rows[k]) for k in keys}
    if len(lengths) > 1:
        raise ValidationError(
            f"entity rows of {service_name} differ in length: { {k: len(entity_rows[k]) for k in keys} }"
        )


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _require_sources(settings: Settings, service: FeatureService) -> None:
    """Every snapshot the service reads must exist: locally its parquet file, readable and of its
    table (DuckDB would say "No files found", "No magic bytes"), in production rows in its table
    (else every feature is silently null)."""
    sources = {getattr(view, "batch_source", None) for view in service_views(feature_store(settings), service)}
    for source in sources - {None}:
        if settings.is_production:
            table = source.get_table_query_string()
            if table.startswith("("):
                continue  # a query source (reader activity): its events may legitimately be none
            from sqlalchemy import text

            from ownlens_ml.db import get_engine

            with get_engine(settings).connect() as conn:
                if not conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar():
                    raise MissingTableError(f"snapshot table {table} is empty; run `ownlens-ml features build`")
        elif getattr(source, "path", None):
            snapshot_file(Path(source.path))


def _as_rows(columns: dict[str, list]) -> list[dict]:
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def require_online_store(settings: Settings) -> None:
    """Check before a write that must reach the online store too: applied here, and (production)
    Redis answering, so a write is not left in the offline store alone.

    Raises:
        FeatureStoreStateError: the repository is not applied or the local online store is missing.
        RedisUnavailableError: the production Redis cannot be reached.
    """
    require_applied(settings, online=True)
    if settings.is_production:
        from ownlens_ml.features.redis_layout import redis_client

        redis_client(settings).close()


def materialize(
    settings: Settings, start: datetime, end: datetime, engine: str = "auto", views: list[str] | None = None
) -> None:
    """Load the latest feature values stamped in [start, end] into the online store.

    Args:
        settings: profile and locations.
        start, end: the window, inclusive.
        engine: ``auto`` (a Redis server: the vectorized writer in ``materializer.py``, same bytes
            as Feast's; SQLite and the cluster profile's Redis Cluster: Feast, there with the
            ``spark.engine`` materializer), ``fast`` or ``feast`` (``FeatureStore.materialize``,
            what the plain ``feast materialize`` runs).
        views: feature view names; default: every online view.

    Raises:
        ValidationError: ``start`` is after ``end``.
        FeatureStoreStateError: the repository is not applied to this state folder, or the
            local online store file is missing.
        DamagedStateError: a local source file is not readable parquet of its table.
        EmptyWindowError: no snapshot is stamped in the window.
    """
    if start > end:
        raise ValidationError(
            f"materialization window starts ({start:%Y-%m-%d %H:%M}) after it ends "
            f"({end:%Y-%m-%d %H:%M}); swap --start and --end"
        )
    store = require_applied(settings, online=True)
    if not settings.is_production:  # every source file Feast will read, not only the checked snapshots
        with feast_errors(settings, "features materialize"):
            paths = {getattr(view.batch_source, "path", None) for view in store.list_feature_views()}
        for path in sorted(paths - {None}):
            snapshot_file(Path(path))
    from ownlens_ml.features.quality import snapshot_span

    first, last, rows = snapshot_span(settings, start, end)
    if not rows:
        known = f"snapshots span {first:%Y-%m-%d}..{last:%Y-%m-%d}" if first else "there are no snapshots"
        raise EmptyWindowError(
            f"no feature snapshots stamped in {start:%Y-%m-%d}..{end:%Y-%m-%d} ({known}); "
            "choose a window inside it, or run `ownlens-ml features build`"
        )
    if _use_fast(engine, settings.is_production, "materialization"):
        materialize_redis(settings, start, end, views)
        return
    with feast_errors(settings, "features materialize"):
        feature_store(settings).materialize(start_date=start, end_date=end, feature_views=views)
