"""Fast materialization into a Redis online store, in Feast's exact layout.

What it writes equals what ``FeatureStore.materialize`` writes (the latest row per entity in
[start, end] for every online batch view; the same keys, fields, ``ValueProto`` and
``_ts:<view>`` bytes; the same "only newer timestamps win" rule unless the store's
``skip_dedup`` is set; ``key_ttl_seconds`` honoured), and it records the materialized
interval in the registry as Feast does, so ``feast materialize-incremental`` and
``get_online_features`` keep working. It differs in how: one latest-row query per *source*
(all views over a snapshot table share it), values serialized column-at-a-time with numpy,
and one pipelined HSET per entity carrying every view of that source.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import redis
from feast import FeatureView, FileSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.value_type import ValueType

from ownlens_ml.errors import ConfigError
from ownlens_ml.features import pgcopy
from ownlens_ml.features import redis_layout as layout
from ownlens_ml.features.feast_store import feature_store
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)
PIPELINE_CHUNK = 2000


@dataclass(frozen=True)
class MaterializeReport:
    """What one fast materialization wrote."""

    rows: int
    """Entity-view rows read (latest per entity per view in the window)."""
    written: int
    """Entity-view rows written (fewer when Redis already held newer or equal timestamps)."""
    seconds: float


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _latest_rows_sql(source, key: str, columns: list[str], start: datetime, end: datetime, production: bool) -> str:
    ts = source.timestamp_field
    cols = ", ".join(f'"{c}"' for c in columns)
    window = f"\"{ts}\" >= '{start.isoformat()}'::timestamptz AND \"{ts}\" <= '{end.isoformat()}'::timestamptz"
    if production:
        relation = source.get_table_query_string()
        relation = f"{relation} AS src" if relation.startswith("(") else relation
        return (
            f'SELECT DISTINCT ON ("{key}") "{key}", '
            f'(EXTRACT(EPOCH FROM "{ts}") * 1000000)::bigint AS __ts_us, {cols} '
            f'FROM {relation} WHERE {window} ORDER BY "{key}", "{ts}" DESC'
        )
    return (
        f'SELECT "{key}", epoch_us("{ts}") AS __ts_us, {cols} FROM read_parquet(\'{source.path}\') '
        f'WHERE {window} QUALIFY row_number() OVER (PARTITION BY "{key}" ORDER BY "{ts}" DESC) = 1'
    )


def _read_latest(
    settings: Settings, source, key: str, types: dict[str, ValueType], start: datetime, end: datetime
) -> pa.Table:
    sql = _latest_rows_sql(source, key, list(types), start, end, settings.is_production)
    if isinstance(source, PostgreSQLSource):
        conn = pgcopy.connect(settings)
        try:
            with conn.cursor() as cur:
                column_types = {key: pa.int64(), "__ts_us": pa.int64()}
                return pgcopy.copy_to_arrow(
                    cur, sql, column_types | {c: pgcopy.arrow_type(t) for c, t in types.items()}
                )
        finally:
            conn.close()
    if isinstance(source, FileSource):
        import duckdb

        with duckdb.connect() as con:
            return con.sql(sql).to_arrow_table()
    raise ConfigError(
        f"fast materialization reads PostgreSQL or parquet sources; got {type(source).__name__}; use engine='feast'"
    )


def _object_column(values: list) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values  # an object array keeps bytes as they are (no NUL stripping)
    return column


def materialize_redis(
    settings: Settings, start: datetime, end: datetime, views: list[str] | None = None
) -> MaterializeReport:
    """Load the latest values stamped in [start, end] into Redis, as ``feast materialize`` does.

    Args:
        settings: a profile whose online store is Redis.
        start, end: the window (inclusive), as for ``FeatureStore.materialize``.
        views: feature view names; default all online batch views.
    """
    started = time.perf_counter()
    start, end = _utc(start), _utc(end)
    store = feature_store(settings)
    config = store.config
    if config.online_store.type != "redis":
        raise ConfigError(
            f"fast materialization writes Redis; this profile's online store is "
            f"{config.online_store.type!r}; use engine='feast'"
        )
    if getattr(config.online_store, "redis_type", "redis") != "redis":
        raise ConfigError("fast materialization writes a single Redis server; use engine='feast' for cluster/sentinel")
    all_views = [v for v in store.list_feature_views() if v.online and getattr(v, "enabled", True)]
    chosen = [v for v in all_views if views is None or v.name in views]
    if views is not None and len(chosen) != len(set(views)):
        known = sorted(v.name for v in all_views)
        raise ConfigError(f"unknown feature view(s) {sorted(set(views) - {v.name for v in chosen})}; known: {known}")
    skip_dedup = bool(getattr(config.online_store, "skip_dedup", False))
    key_ttl = getattr(config.online_store, "key_ttl_seconds", None)
    client = layout.redis_client(settings)

    # Views over the same source and join key share one latest-row query and one HSET per entity.
    groups: dict[tuple, list[FeatureView]] = defaultdict(list)
    for view in chosen:
        source = view.batch_source
        groups[(source.name, layout.single_int64_key(view, "fast materialization"))].append(view)

    rows = written = 0
    try:
        for (_, key), group in groups.items():
            types: dict[str, ValueType] = {}
            for view in group:
                types |= {f.name: f.dtype.to_value_type() for f in view.features}
            table = _read_latest(settings, group[0].batch_source, key, types, start, end)
            n = table.num_rows
            if n == 0:
                continue
            rows += n * len(group)
            ids = table.column(key).to_numpy()
            keys = layout.KeyCodec(key, config.project, config.entity_key_serialization_version).keys(ids)
            micros = table.column("__ts_us").to_numpy()
            stamp = _object_column(layout.encode_timestamps(micros))
            encoded = {c: _object_column(layout.encode_column(table.column(c), t)) for c, t in types.items()}
            # Per view: its [field, value, field, value, ...] columns, ts first.
            blocks = []
            for view in group:
                name = layout.view_name(view, config)
                block = np.empty((n, 2 * (len(view.features) + 1)), dtype=object)
                block[:, 0] = layout.ts_field(name)
                block[:, 1] = stamp
                for j, feature in enumerate(view.features, start=1):
                    block[:, 2 * j] = layout.feature_field(name, feature.name)
                    block[:, 2 * j + 1] = encoded[feature.name]
                blocks.append(block)
            write = np.ones((n, len(group)), dtype=bool)
            if not skip_dedup:
                write = _newer_than_stored(
                    client,
                    keys,
                    [layout.ts_field(layout.view_name(v, config)) for v in group],
                    micros.astype(np.int64) * 1000,
                )
            full = np.hstack(blocks) if len(blocks) > 1 else blocks[0]
            all_rows = write.all(axis=1)
            written += int(write.sum())
            pipe = client.pipeline(transaction=False)
            queued = 0
            partial = np.flatnonzero(write.any(axis=1) & ~all_rows)
            for i, args in zip(np.flatnonzero(all_rows).tolist(), full[all_rows].tolist()):
                pipe.execute_command("HSET", keys[i], *args)
                if key_ttl:
                    pipe.expire(keys[i], key_ttl)
                queued += 1  # noqa: SIM113 - counts the rows of this loop only
                if queued % PIPELINE_CHUNK == 0:
                    pipe.execute()
            for i in partial.tolist():
                args = [x for b, ok in zip(blocks, write[i]) if ok for x in b[i].tolist()]
                pipe.execute_command("HSET", keys[i], *args)
                if key_ttl:
                    pipe.expire(keys[i], key_ttl)
            pipe.execute()
            log.info("materialized %s: %d entities x %d views", ", ".join(v.name for v in group), n, len(group))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise layout.unavailable(settings, exc) from None

    for view in chosen:
        store.registry.apply_materialization(view, config.project, start, end)
    seconds = time.perf_counter() - started
    log.info("fast materialization: %d rows read, %d written in %.2fs", rows, written, seconds)
    return MaterializeReport(rows, written, seconds)


def _newer_than_stored(
    client: redis.Redis, keys: list[bytes], ts_fields: list[bytes], new_nanos: np.ndarray
) -> np.ndarray:
    """Per entity and view: is the new timestamp newer than the one Redis holds (Feast's rule)?"""
    stored = []
    for lo in range(0, len(keys), 10 * PIPELINE_CHUNK):
        pipe = client.pipeline(transaction=False)
        for key in keys[lo : lo + 10 * PIPELINE_CHUNK]:
            pipe.hmget(key, ts_fields)
        stored.extend(pipe.execute())
    old = np.array([[layout.decode_timestamp_nanos(raw) for raw in row] for row in stored], dtype=np.int64).reshape(
        len(keys), len(ts_fields)
    )
    return (old == 0) | (new_nanos[:, None] > old)
