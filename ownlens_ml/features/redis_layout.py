"""Feast's Redis online-store layout, vectorized: entity keys, hash fields and ValueProto bytes.

Feast keeps one Redis hash per entity key (``serialize_entity_key`` + project name), with one
field per feature (4-byte murmur3 of ``"view:feature"``) holding a serialized ``ValueProto``
and one ``_ts:<view>`` field holding a serialized ``Timestamp``. Keys and field names come
from Feast's own functions; only the per-value protobuf encoding is done here, with numpy,
for the three scalar types the repository uses (Int64, Float64, String) and Feast's
``ValueProto`` for anything else. The encoding is the canonical protobuf wire format, so the
bytes equal what Feast writes (tests compare them byte for byte).
"""

from __future__ import annotations

import struct
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import redis
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from ownlens_ml.errors import ConfigError, RedisUnavailableError
from ownlens_ml.settings import Settings

# Protobuf tags (field number << 3 | wire type) of ValueProto's oneof members and Timestamp.
_TAG_STRING, _TAG_INT64, _TAG_DOUBLE = 0x12, 0x20, 0x29
_TAG_SECONDS, _TAG_NANOS = 0x08, 0x10
_DOUBLE = struct.Struct("<d")


CLIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, RedisClusterException)
"""What redis-py raises when the online store (a server or a cluster) cannot answer."""


def redis_client(settings: Settings, timeout: float | None = None) -> redis.Redis | RedisCluster:
    """A redis-py client for the online store (a ``RedisCluster`` in the cluster profile); a
    clear error when it is down.

    A cluster client routes each key to the master of its slot and splits a pipeline into one
    pipeline per node; Feast keeps one hash per entity, so one entity's HMGET is one node's.

    Args:
        timeout: seconds a connect or a reply may take, with one immediate retry (a pooled
            connection broken by a Redis restart reconnects); default: no read timeout and
            redis-py's retries with back-off, for bulk work. Request paths pass a bound.
    """
    bounded = {} if timeout is None else {"socket_timeout": timeout, "retry": Retry(NoBackoff(), 1)}
    try:
        if settings.is_cluster:
            nodes = [ClusterNode(host, port) for host, port in settings.cluster_nodes]
            client = RedisCluster(startup_nodes=nodes, socket_connect_timeout=timeout or 2, **bounded)
        else:
            client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout or 2, **bounded)
        client.ping()
    except (*CLIENT_ERRORS, redis.ResponseError, OSError) as exc:
        raise unavailable(settings, exc) from None
    return client


def unavailable(settings: Settings, exc: Exception) -> RedisUnavailableError | ConfigError:
    """The one-line error naming the Redis host and port (or, for a database number the server
    does not have, the variable that names it)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if settings.is_cluster:
        return RedisUnavailableError(
            f"Redis Cluster at {settings.redis_cluster_nodes} is unreachable ({reason}); "
            "start it or set OWNLENS_REDIS_CLUSTER_NODES"
        )
    parts = urlsplit(settings.redis_url)
    if isinstance(exc, redis.ResponseError) and "DB index" in str(exc):
        return ConfigError(
            f"OWNLENS_REDIS_URL names database {(parts.path or '/0').lstrip('/')}, which the Redis at "
            f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379} does not have ({exc}); "
            "use a database number it has (0-15 by default)"
        )
    return RedisUnavailableError(
        f"Redis at {parts.hostname or '127.0.0.1'}:{parts.port or 6379} is unreachable ({reason}); "
        "start it or set OWNLENS_REDIS_URL"
    )


def view_name(view, config) -> str:
    """The view's name in Redis fields (with ``_vN`` when online versioning is on, as Feast does)."""
    return compute_versioned_name(view, config.registry.enable_online_feature_view_versioning)


def single_int64_key(view, what: str) -> str:
    """The view's one INT64 join key, the only key layout the fast paths encode."""
    columns = list(view.entity_columns)
    if len(columns) != 1 or columns[0].dtype.to_value_type() != ValueType.INT64:
        raise ConfigError(
            f"{what} needs one INT64 join key; view {view.name!r} has {[c.name for c in columns]}; use engine='feast'"
        )
    return columns[0].name


def feature_field(view: str, feature: str) -> bytes:
    return _mmh3(f"{view}:{feature}")


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


class KeyCodec:
    """Redis keys of single-INT64-join-key entities: a constant prefix, the id, the project."""

    def __init__(self, join_key: str, project: str, version: int):
        def key(value: int) -> bytes:
            proto = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=value)])
            return serialize_entity_key(proto, entity_key_serialization_version=version)

        sample = key(0)
        self.prefix = sample[:-8]
        self.suffix = project.encode()
        # The layout must be prefix + little-endian int64; check against Feast for two ids.
        for probe in (1, -(2**40) - 7):
            if key(probe) != self.prefix + struct.pack("<q", probe):
                raise RuntimeError("unexpected Feast entity key layout; use engine='feast'")

    def keys(self, ids: np.ndarray) -> list[bytes]:
        raw = np.ascontiguousarray(ids, dtype="<i8").tobytes()
        prefix, suffix = self.prefix, self.suffix
        return [prefix + raw[i : i + 8] + suffix for i in range(0, len(raw), 8)]

    def key(self, value: int) -> bytes:
        return self.prefix + struct.pack("<q", value) + self.suffix


def _split(buffer: bytes, lengths: np.ndarray) -> list[bytes]:
    ends = np.cumsum(lengths)
    starts = (ends - lengths).tolist()
    return [buffer[s:e] for s, e in zip(starts, ends.tolist())]


def _varints(tag: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``tag`` + varint(value) as a (n, 11) byte matrix and each row's length."""
    u = values.astype(np.int64).view(np.uint64)
    groups = np.stack([(u >> np.uint64(7 * k)) & np.uint64(0x7F) for k in range(10)], axis=1).astype(np.uint8)
    count = np.ones(len(u), dtype=np.int64)
    for k in range(1, 10):
        count += (u >> np.uint64(7 * k)) != 0
    more = np.arange(10)[None, :] < (count - 1)[:, None]
    groups |= (more * 0x80).astype(np.uint8)
    matrix = np.empty((len(u), 11), dtype=np.uint8)
    matrix[:, 0] = tag
    matrix[:, 1:] = groups
    return matrix, count + 1


def _pack(matrix: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    mask = np.arange(matrix.shape[1])[None, :] < lengths[:, None]
    return _split(matrix[mask].tobytes(), lengths)


def encode_column(column: pa.ChunkedArray | pa.Array, value_type: ValueType) -> list[bytes]:
    """Serialized ``ValueProto`` per value, ``b""`` for null (and NaN), as Feast writes them."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    if value_type == ValueType.DOUBLE:
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        rows = np.empty(n, dtype=[("tag", "u1"), ("value", "<f8")])
        rows["tag"] = _TAG_DOUBLE
        rows["value"] = values
        out = _split(rows.tobytes(), np.full(n, 9, dtype=np.int64))
        null = np.isnan(values)
    elif value_type == ValueType.INT64:
        null = column.is_null().to_numpy(zero_copy_only=False)
        values = column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        out = _pack(*_varints(_TAG_INT64, values))
    elif value_type == ValueType.STRING:
        null = column.is_null().to_numpy(zero_copy_only=False)
        out = [b"" if s is None else _string(s) for s in column.to_pylist()]
        return out
    else:
        return [
            p.SerializeToString()
            for p in python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)
        ]
    if null.any():
        for i in np.flatnonzero(null).tolist():
            out[i] = b""
    return out


def _string(s: str) -> bytes:
    data = s.encode()
    if len(data) < 128:
        return bytes((_TAG_STRING, len(data))) + data
    return ValueProto(string_val=s).SerializeToString()


def encode_timestamps(micros: np.ndarray) -> list[bytes]:
    """Serialized ``google.protobuf.Timestamp`` per epoch-microsecond value."""
    micros = micros.astype(np.int64)
    seconds, rest = np.divmod(micros, 1_000_000)
    matrix, lengths = _varints(_TAG_SECONDS, seconds)
    lengths = np.where(seconds == 0, 0, lengths)  # proto3 omits zero scalars
    out = _pack(matrix, lengths)
    if rest.any():
        nanos_m, nanos_len = _varints(_TAG_NANOS, rest * 1000)
        nanos = _pack(nanos_m, np.where(rest == 0, 0, nanos_len))
        out = [a + b for a, b in zip(out, nanos)]
    return out


def decode_timestamp_nanos(raw: bytes | None) -> int:
    """Nanoseconds since the epoch of a serialized Timestamp (0 when absent)."""
    if not raw:
        return 0
    ts = Timestamp.FromString(raw)
    return ts.seconds * 1_000_000_000 + ts.nanos


def _varint_at(raw: bytes, pos: int) -> int:
    result = shift = 0
    while True:
        byte = raw[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return result
        shift += 7


def decode_value(raw: bytes | None):
    """A serialized ValueProto as the Python value Feast's ``to_dict`` returns."""
    if not raw:
        return None
    tag = raw[0]
    if tag == _TAG_DOUBLE and len(raw) == 9:
        return _DOUBLE.unpack_from(raw, 1)[0]
    if tag == _TAG_INT64:
        value = _varint_at(raw, 1)
        return value - (1 << 64) if value >= 1 << 63 else value
    if tag == _TAG_STRING and len(raw) >= 2 and raw[1] < 128 and len(raw) == raw[1] + 2:
        return raw[2:].decode()
    return feast_value_type_to_python_type(ValueProto.FromString(raw))
