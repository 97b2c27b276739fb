"""Fast online reads of a feature service from Redis, equal to Feast's ``get_online_features``.

Per feature service a plan is computed once (and refreshed like Feast's registry cache):
the Redis key codec per join key and, per key, the hash fields of every view the service
reads (Feast's murmur3 names, ``_ts:<view>``), including the inputs its on-demand views
need. A read is then one HMGET per entity and join key in one round trip, a small decoder
for the scalar ``ValueProto`` types, and the on-demand views applied through Feast's own
view's own function (``transform_dict``, or for a python-mode batch view its UDF called
directly, as ``transform_dict`` does) so their definitions stay in ``feature_repo/``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from feast import FeatureService, OnDemandFeatureView
from feast.errors import FeastObjectNotFoundException
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType

from ownlens_ml.errors import ConfigError
from ownlens_ml.features import redis_layout as layout
from ownlens_ml.features.feast_store import feature_service, feature_store
from ownlens_ml.settings import Settings

PLAN_TTL_SECONDS = 60.0
"""How long a plan is reused before the registry is read again (Feast's registry cache TTL)."""


@dataclass
class _KeyGroup:
    join_key: str
    codec: layout.KeyCodec
    fields: list[bytes] = field(default_factory=list)
    slots: list[tuple[str, str]] = field(default_factory=list)
    """(view, feature) per field, or (view, "") for a view's ``_ts`` field."""


@dataclass
class OnlinePlan:
    """Everything needed to read one feature service, computed once."""

    service: str
    join_keys: list[str]
    features: list[str]
    """Output feature names in service order (on-demand ones included)."""
    views: list[str]
    """Batch/push views of the service, for timestamps."""
    groups: list[_KeyGroup]
    view_outputs: list[tuple[str, list[str]]]
    """(view, requested features) in service order, before on-demand views."""
    odfvs: list[tuple[Callable[[dict], dict], list[tuple[str, str]], list[str], list[str], dict[str, ValueType]]]
    """(view's transform, its (source view, feature) inputs, its request fields, requested outputs, output types)."""
    request_fields: list[str]
    projections: list[str] = field(default_factory=list)
    """Every projection of the service (views and on-demand views), in service order."""
    built_at: float = 0.0
    ttls: dict[str, float] = field(default_factory=dict)
    """Per batch/push view: its TTL in seconds (0: none), for reads that enforce it."""


def build_plan(settings: Settings, service: FeatureService) -> OnlinePlan:
    """The Redis fields and on-demand views of ``service``."""
    store = feature_store(settings)
    config = store.config
    if config.online_store.type != "redis":
        raise ConfigError(f"the fast online reader reads Redis; this profile uses {config.online_store.type!r}")
    version = config.entity_key_serialization_version
    groups: dict[str, _KeyGroup] = {}
    wanted: dict[str, list[str]] = {}  # view -> features to fetch (requested + on-demand inputs)
    view_objects = {}
    view_outputs, odfvs, request_fields, join_keys, features, views = [], [], [], [], [], []

    def need(view_name: str, names: list[str]) -> None:
        if view_name not in view_objects:
            view_objects[view_name] = store.get_feature_view(view_name, allow_registry_cache=True)
            wanted[view_name] = []
        wanted[view_name] += [n for n in names if n not in wanted[view_name]]

    for projection in service.feature_view_projections:
        names = [f.name for f in projection.features]
        features += names
        try:
            odfv = store.get_on_demand_feature_view(projection.name, allow_registry_cache=True)
        except FeastObjectNotFoundException:  # a feature view
            odfv = None
        if odfv is None:
            need(projection.name, names)
            view_outputs.append((projection.name, names))
            continue
        inputs = []
        for source in odfv.source_feature_view_projections.values():
            source_names = [f.name for f in source.features]
            need(source.name, source_names)
            inputs += [(source.name, n) for n in source_names]
        requests = [
            f.name for rs in odfv.source_request_sources.values() for f in rs.schema if not rs.name.startswith("__")
        ]
        request_fields += [r for r in requests if r not in request_fields]
        types = {f.name: f.dtype.to_value_type() for f in odfv.features}
        odfvs.append((_transform(odfv), inputs, requests, names, types))

    for view_name, names in wanted.items():
        view = view_objects[view_name]
        key = layout.single_int64_key(view, "the fast online reader")
        if key not in join_keys:
            join_keys.append(key)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _KeyGroup(key, layout.KeyCodec(key, config.project, version))
        redis_name = layout.view_name(view, config)
        for name in names:
            group.fields.append(layout.feature_field(redis_name, name))
            group.slots.append((view_name, name))
        group.fields.append(layout.ts_field(redis_name))
        group.slots.append((view_name, ""))
        views.append(view_name)
    ttls = {name: view_objects[name].ttl.total_seconds() if view_objects[name].ttl else 0.0 for name in views}
    return OnlinePlan(
        service.name,
        join_keys,
        features,
        views,
        list(groups.values()),
        view_outputs,
        odfvs,
        request_fields,
        [p.name for p in service.feature_view_projections],
        time.monotonic(),
        ttls,
    )


def _transform(odfv: OnDemandFeatureView) -> Callable[[dict], dict]:
    """The view's outputs from a dict holding its inputs under short and full names.

    For a python-mode view over lists that is its UDF, which ``transform_dict`` calls after
    adding the names given here and a type check of every argument (a tenth of a millisecond
    per call); any other mode goes through ``transform_dict``.
    """
    udf = getattr(odfv.feature_transformation, "udf", None)
    if odfv.mode == "python" and not odfv.singleton and callable(udf):
        return udf
    return odfv.transform_dict


_plans: dict[tuple[Settings, str], OnlinePlan] = {}
_clients: dict[Settings, redis.Redis | redis.RedisCluster] = {}


def plan_for(settings: Settings, service_name: str) -> OnlinePlan:
    """The cached plan of a service (rebuilt after ``PLAN_TTL_SECONDS``)."""
    plan = _plans.get((settings, service_name))
    if plan is None or time.monotonic() - plan.built_at > PLAN_TTL_SECONDS:
        plan = build_plan(settings, feature_service(settings, service_name))
        _plans[(settings, service_name)] = plan
    return plan


def forget_plans() -> None:
    """Drop cached plans (after ``apply_repo`` changed definitions)."""
    _plans.clear()


def client_for(settings: Settings) -> redis.Redis | redis.RedisCluster:
    client = _clients.get(settings)
    if client is None:
        client = _clients[settings] = layout.redis_client(settings)
    return client


@dataclass(frozen=True)
class OnlineRead:
    values: dict[str, list]
    """Join keys, then every feature of the service, one list entry per entity."""
    timestamps: dict[str, list[int]]
    """Per view: the stored ``_ts`` seconds (0 when absent), as Feast's ``to_dict`` gives them."""
    stale: dict[str, list[bool]] = field(default_factory=dict)
    """Per view, when the read enforced TTLs: whether a stored value was older than the TTL."""


def read(
    settings: Settings,
    plan: OnlinePlan,
    entity_rows: dict[str, list[int]],
    request: dict[str, list] | None = None,
    *,
    client: redis.Redis | redis.RedisCluster | None = None,
    now: float | None = None,
) -> OnlineRead:
    """Read ``plan``'s features for the entities in ``entity_rows`` (join key -> ids).

    Args:
        client: the Redis client to use (default: one per settings, see ``client_for``).
        now: epoch seconds; when given, a view's values older than its TTL are read as None
            (before on-demand views see them) and flagged in ``stale``. Feast's online path
            does not enforce TTLs, so without ``now`` the values equal its response.
    """
    client = client or client_for(settings)
    n = len(entity_rows[plan.join_keys[0]])
    commands = []
    for group in plan.groups:
        for value in entity_rows[group.join_key]:
            commands.append((group.codec.key(value), group.fields))
    try:
        if len(commands) == 1:
            replies = [client.execute_command("HMGET", commands[0][0], *commands[0][1])]
        else:
            pipe = client.pipeline(transaction=False)
            for key, fields in commands:
                pipe.execute_command("HMGET", key, *fields)
            replies = pipe.execute()
    except layout.CLIENT_ERRORS as exc:
        raise layout.unavailable(settings, exc) from None

    columns: dict[tuple[str, str], list] = {}
    at = 0
    decode = layout.decode_value
    for group in plan.groups:
        chunk = replies[at : at + n]
        at += n
        for j, slot in enumerate(group.slots):
            if slot[1]:
                columns[slot] = [decode(reply[j]) for reply in chunk]
            else:
                columns[slot] = [layout.decode_timestamp_nanos(reply[j]) // 1_000_000_000 for reply in chunk]
    stale = _enforce_ttls(plan, columns, now) if now is not None else {}

    values: dict[str, list] = {k: list(entity_rows[k]) for k in plan.join_keys}
    for view_name, names in plan.view_outputs:
        for name in names:
            values[name] = columns[(view_name, name)]
    for transform, inputs, requests, outputs, types in plan.odfvs:
        given = {name: columns[(view_name, name)] for view_name, name in inputs}
        given |= {f"{view_name}__{name}": columns[(view_name, name)] for view_name, name in inputs}
        for name in requests:
            given[name] = list((request or {})[name])
        for key in plan.join_keys:
            given[key] = values[key]
        result = transform(given)
        for name in outputs:
            values[name] = _as_feast_returns(result[name], types.get(name, ValueType.UNKNOWN), n)
    timestamps = {view: columns[(view, "")] for view in plan.views}
    return OnlineRead(values, timestamps, stale)


def _enforce_ttls(plan: OnlinePlan, columns: dict[tuple[str, str], list], now: float) -> dict[str, list[bool]]:
    """Null the values of views stamped longer ago than their TTL; which entities were stale."""
    stale = {}
    for view in plan.views:
        ttl = plan.ttls.get(view, 0.0)
        stamps = columns[(view, "")]
        flags = [bool(ttl) and s > 0 and now - s > ttl for s in stamps]
        stale[view] = flags
        if any(flags):
            for (name, feature), values in columns.items():
                if name == view and feature:
                    columns[(name, feature)] = [None if f else v for v, f in zip(values, flags)]
    return stale


def _as_feast_returns(vector, value_type: ValueType, n: int) -> list:
    """On-demand outputs as Feast returns them after its proto round trip (NaN -> None, types cast)."""
    vector = vector if isinstance(vector, list) else [vector] * n
    if value_type == ValueType.DOUBLE:
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in vector]
    if value_type == ValueType.INT64:
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v) for v in vector]
    return [feast_value_type_to_python_type(p) for p in python_values_to_proto_values(vector, value_type)]
