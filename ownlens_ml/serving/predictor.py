"""In-process online prediction: a model's champion, its online features in one round trip, its scores.

Everything that can be prepared is prepared when a version is loaded (the ``Scorer`` of
``models/scoring.py`` and the Redis read plan of ``features/online.py``), so a call
is one pipelined HMGET plus the model. A view's values older than its TTL are read as
missing and the answer names the view (Feast's online path does not enforce TTLs). A
background check (or ``refresh()``) follows the champion alias: a new version is loaded
beside the old one and swapped in with one assignment, so calls never wait for a load. A
service calls ``freeze_heap()`` once its models are loaded (the HTTP service does, after
every load, undoing the previous freeze first), so that no request pays a full garbage
collection over them.

Cold start: an entity the online store holds no value for is still scored, on all-missing
features (what the model says of a reader it knows nothing about), and flagged
``cold_start``; a caller that prefers no answer can ignore such scores.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis
from feast import FeatureService
from feast.errors import FeastObjectNotFoundException

from ownlens_ml import clock, registry
from ownlens_ml.errors import OwnLensError, ValidationError
from ownlens_ml.features import online, store
from ownlens_ml.features import redis_layout as layout
from ownlens_ml.models.scoring import Scorer, prepare
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

INT64 = (-(2**63), 2**63 - 1)
MAX_ENTITIES = 1000
REDIS_TIMEOUT_SECONDS = 0.5
"""How long a Redis connect or reply may take on the request path (one immediate retry)."""


@dataclass(frozen=True)
class EntityScore:
    """One entity's answer.

    Attributes:
        feature_age_seconds: per feature view, seconds since its values were stamped (None:
            the store holds none).
        stale_views: views whose values were older than their TTL and so read as missing.
        features: the values the model was given (after the TTL check), by feature name, as
            the reader decoded them.
    """

    entity: dict[str, int]
    score: float
    cold_start: bool
    stale_views: list[str]
    feature_age_seconds: dict[str, float | None]
    features: dict[str, Any]


@dataclass(frozen=True)
class Prediction:
    model: str
    version: int
    feature_service: str
    served_at: datetime
    results: list[EntityScore]


class RedisHandle:
    """One Redis client with bounded timeouts, made on first use (and again after a failed ping)."""

    def __init__(self, settings: Settings, timeout: float = REDIS_TIMEOUT_SECONDS):
        self.settings, self.timeout = settings, timeout
        self._client: redis.Redis | None = None

    def get(self) -> redis.Redis:
        if self._client is None:  # a client that failed its first ping is not kept: the next call retries
            self._client = layout.redis_client(self.settings, timeout=self.timeout)
        return self._client

    def reachable(self) -> bool:
        """Whether Redis answers a PING within the timeout."""
        try:
            return bool(self.get().ping())
        except (OwnLensError, redis.RedisError, OSError):
            return False


class FeatureReader:
    """A feature service's online values in one round trip, stale views read as missing.

    Built once per service (the Redis plan of ``features/online.py``, or for the SDK path on
    the local profile the views, TTLs and on-demand sources), so a read does no registry work.
    """

    def __init__(self, settings: Settings, service: FeatureService, redis_handle: RedisHandle):
        self.settings, self.service, self.redis = settings, service.name, redis_handle
        self.built_at = time.monotonic()
        self.derived: dict[str, list[str]] = {}
        """SDK path: feature -> the views its value comes from (on-demand outputs: their sources)."""
        if settings.online_redis:
            self.plan: online.OnlinePlan | None = online.build_plan(settings, service)
            self.join_keys, self.views, self.ttls = self.plan.join_keys, self.plan.views, self.plan.ttls
            return
        self.plan, self.join_keys, self.views, self.ttls = None, store.join_keys(settings, service), [], {}
        fs = store.feature_store(settings)
        for projection in service.feature_view_projections:
            try:
                view = fs.get_feature_view(projection.name)
            except FeastObjectNotFoundException:  # an on-demand view: its outputs follow its sources' freshness
                odfv = fs.get_on_demand_feature_view(projection.name)
                for feature in projection.features:
                    self.derived[feature.name] = list(odfv.source_feature_view_projections)
                continue
            self.views.append(view.name)
            self.ttls[view.name] = view.ttl.total_seconds() if view.ttl else 0.0
            for feature in projection.features:
                self.derived[feature.name] = [view.name]

    def read(
        self, rows: dict[str, list[int]], now: float
    ) -> tuple[dict[str, list], dict[str, list], dict[str, list[bool]]]:
        """Feature values (stale ones as None), per-view ages in seconds and per-view staleness flags.

        Raises:
            RedisUnavailableError: Redis did not answer within the timeout.
        """
        if self.plan is None:
            return self._read_sdk(rows, now)
        plan = self.plan
        n = len(rows[plan.join_keys[0]])
        request = {store.REQUEST_TIME: [int(now)] * n} if store.REQUEST_TIME in plan.request_fields else None
        result = online.read(self.settings, plan, rows, request, client=self.redis.get(), now=now)
        ages = {view: [now - s if s else None for s in result.timestamps[view]] for view in plan.views}
        return result.values, ages, result.stale

    def _read_sdk(self, rows: dict[str, list[int]], now: float):
        vectors = store.online_features(
            self.settings, self.service, rows, request_time=datetime.fromtimestamp(now, UTC), engine="feast"
        )
        frame = vectors.frame.astype(object).where(vectors.frame.notna(), None)
        values = {c: frame[c].tolist() for c in frame.columns}
        n = len(frame)
        ages, stale = {}, {}
        for view in self.views:
            column = vectors.staleness_seconds.get(view)
            ages[view] = [None] * n if column is None else [None if a is None or a != a else float(a) for a in column]
            ttl = self.ttls[view]
            stale[view] = [bool(ttl) and a is not None and a > ttl for a in ages[view]]
        for name, sources in self.derived.items():
            flags = [any(stale[s][i] for s in sources if s in stale) for i in range(n)]
            if any(flags):
                values[name] = [None if f else v for v, f in zip(values[name], flags)]
        return values, ages, stale

    def warm_up(self) -> None:
        with contextlib.suppress(OwnLensError):  # Redis down at load time: the model loads, /readyz says why
            self.read({k: [0] for k in self.join_keys}, clock.now().timestamp())


@dataclass(frozen=True)
class Loaded:
    """One loaded version: its registry entry, its model, what reads its online features (None: it
    reads none at request time) and, for the tabular kinds, its ``Scorer``."""

    version: registry.ModelVersion
    model: Any
    reader: FeatureReader | None
    scorer: Scorer | None = None


class Follower:
    """Follows one alias of one model: the one loop that the in-process ``Predictor`` and the HTTP
    service's non-tabular answers share.

    ``load(version, model) -> Loaded`` prepares a version; ``refresh()`` loads the version the alias
    points at when it moved (beside the old one, swapped in with one assignment, so calls never wait
    for a load) and rebuilds a read plan older than ``online.PLAN_TTL_SECONDS`` when it did not.

    Raises:
        UnknownModelVersionError: the model or alias is not registered.
        DatabaseUnavailableError: the registry cannot be reached.
    """

    def __init__(self, settings: Settings, model: str, alias: str, load, redis_handle: RedisHandle):
        self.settings, self.model, self.alias, self._prepare, self.redis = settings, model, alias, load, redis_handle
        self.loaded: Loaded = self._prepare(*registry.load_model(settings, model, alias))

    @property
    def version(self) -> registry.ModelVersion:
        return self.loaded.version

    def refresh(self) -> bool:
        """Load the version the alias points at if it moved; rebuild an old read plan.

        Returns:
            Whether a new version was swapped in.
        """
        current = self.loaded
        pointed = registry.get_version(self.settings, self.model, self.alias)
        if pointed.version == current.version.version:
            reader = current.reader
            if reader is not None and time.monotonic() - reader.built_at > online.PLAN_TTL_SECONDS:
                service = store.feature_service(self.settings, reader.service)
                self.loaded = replace(current, reader=FeatureReader(self.settings, service, self.redis))
            return False
        loaded = self._prepare(*registry.load_model(self.settings, self.model, pointed.version))
        self.loaded = loaded  # one reference swap: calls in flight finish on the old version
        log.info("%s: %s -> %s", self.alias, current.version.label, loaded.version.label)
        return True


class Predictor:
    """Scores a model's champion (or another alias) on online features, in process.

    Args:
        settings: profile and locations.
        model: registry name, e.g. ``churn``.
        alias: the alias to follow.
        watch_every: seconds between alias checks in a background thread; None: only
            when ``refresh()`` is called.
        redis_timeout: bound on a Redis connect or reply on the request path.

    Raises:
        UnknownModelVersionError: the model or alias is not registered.
        DatabaseUnavailableError: the registry cannot be reached.
    """

    def __init__(
        self,
        settings: Settings,
        model: str,
        *,
        alias: str = "champion",
        watch_every: float | None = 5.0,
        redis_timeout: float = REDIS_TIMEOUT_SECONDS,
    ):
        self.settings, self.model, self.alias = settings, model, alias
        self.redis = RedisHandle(settings, redis_timeout)
        self._follower = Follower(settings, model, alias, self._load, self.redis)
        self._stop = threading.Event()
        self._watch = None
        if watch_every:
            self._watch = threading.Thread(
                target=self._watch_loop, args=(watch_every,), daemon=True, name=f"predictor-{model}"
            )
            self._watch.start()

    def _load(self, version: registry.ModelVersion, model: Any) -> Loaded:
        service = store.feature_service(self.settings, version.feature_service)
        reader = FeatureReader(self.settings, service, self.redis)
        reader.warm_up()
        loaded = Loaded(version, model, reader, prepare(version, model, service))
        log.info(
            "loaded %s (%s) for online scoring%s",
            version.label,
            version.feature_service,
            "" if loaded.scorer.booster is None else " with the booster shortcut",
        )
        return loaded

    @property
    def _loaded(self) -> Loaded:
        return self._follower.loaded

    @property
    def version(self) -> registry.ModelVersion:
        """The version being served now."""
        return self._loaded.version

    @property
    def join_keys(self) -> list[str]:
        return list(self._loaded.reader.join_keys)

    def refresh(self) -> bool:
        """Load the version the alias points at if it moved; rebuild an old read plan (``Follower``).

        Returns:
            Whether a new version was swapped in.
        """
        return self._follower.refresh()

    def _watch_loop(self, every: float) -> None:
        failing = False
        while not self._stop.wait(every):
            try:
                self.refresh()
                failing = False
            except Exception as exc:  # noqa: BLE001 - keep serving the loaded version; say so once per outage
                if not failing:
                    log.warning(
                        "%s: cannot check the %s alias (%s); still serving %s",
                        self.model,
                        self.alias,
                        exc,
                        self.version.label,
                    )
                failing = True

    def close(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.join(timeout=5)

    def predict(
        self, ids: list[int] | None = None, *, entities: list[dict[str, int]] | None = None, now: datetime | None = None
    ) -> Prediction:
        """Scores for one or many entities from the online store, in one round trip.

        Args:
            ids: entity ids, for a model with one join key.
            entities: join key -> id per entity, for any model.
            now: the request time (default: the clock), for ages, TTLs and request features.

        Raises:
            InvalidEntityError: neither or both of ids/entities, a missing join key, an id that
                is not a 64-bit integer, more than ``MAX_ENTITIES`` entities.
            RedisUnavailableError: the online store did not answer within the timeout.
        """
        loaded = self._loaded  # the whole call uses one version, even if a swap happens meanwhile
        reader = loaded.reader
        rows = entity_rows(reader.join_keys, ids, entities)
        moment = now or clock.now()
        values, ages, stale = reader.read(rows, moment.timestamp())
        n = len(rows[reader.join_keys[0]])
        scores = loaded.scorer.score_columns(values, n).tolist()
        features = loaded.scorer.features
        results = []
        for i in range(n):
            entity_ages = {view: ages[view][i] for view in reader.views}
            results.append(
                EntityScore(
                    {k: rows[k][i] for k in reader.join_keys},
                    scores[i],
                    all(age is None for age in entity_ages.values()),
                    [view for view in reader.views if stale[view][i]],
                    entity_ages,
                    {f: values[f][i] for f in features},
                )
            )
        version = loaded.version
        return Prediction(self.model, version.version, version.feature_service, moment, results)

    def online_store_reachable(self) -> bool:
        """Whether the online store answers (a PING within the timeout; always true locally)."""
        return self._loaded.reader.plan is None or self.redis.reachable()


def freeze_heap() -> int:
    """Take every object alive now (models, read plans, Feast's registry) out of the cyclic
    garbage collector's scans (``gc.freeze``), so that a request never pays a full collection;
    returns how many objects are frozen.

    A serving process holds about 300,000 long-lived objects; a full collection over them took
    60-170 ms here, landing on whichever request allocated last. Frozen objects are still freed
    by reference counting when a version is replaced, but reference cycles among them would stay
    for the life of the process: so the previous freeze is undone and the garbage collected first
    (one full collection per load, in the loading thread; requests in flight may wait on it once),
    and the frozen count stays what is alive.
    Process-wide, so it is the service's call, not the ``Predictor``'s.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class InvalidEntityError(ValidationError):
    """An entity of a request is malformed; ``loc`` names the field, e.g. ``("ids", 3)``."""

    def __init__(self, message: str, loc: tuple = ()):
        super().__init__(message)
        self.loc = loc


def entity_rows(keys: list[str], ids: list[int] | None, entities: list[dict[str, int]] | None) -> dict[str, list]:
    if (ids is None) == (entities is None):
        raise InvalidEntityError("give exactly one of ids (for a model with one join key) or entities")
    field = "ids" if ids is not None else "entities"
    if ids is not None:
        if len(keys) != 1:
            raise InvalidEntityError(f"ids: this model has join keys {keys}; send entities instead", ("ids",))
        entities = [{keys[0]: i} for i in ids]
    if not entities or len(entities) > MAX_ENTITIES:
        raise InvalidEntityError(f"{field}: send 1 to {MAX_ENTITIES} entities, not {len(entities)}", (field,))
    rows: dict[str, list] = {k: [] for k in keys}
    for i, entity in enumerate(entities):
        if set(entity) != set(keys):
            raise InvalidEntityError(
                f"entities[{i}]: join keys must be exactly {keys}, got {sorted(entity)}", ("entities", i)
            )
        for key in keys:
            value = entity[key]
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not INT64[0] <= value <= INT64[1]:
                loc = ("ids", i) if field == "ids" else ("entities", i, key)
                raise InvalidEntityError(f"{'.'.join(map(str, loc))}: {value!r} is not a 64-bit integer id", loc)
            rows[key].append(int(value))
    return rows
