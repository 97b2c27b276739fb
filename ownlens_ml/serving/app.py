"""The HTTP prediction service (``ownlens-ml serve``): FastAPI over the in-process predictors.

``POST /v1/predict/{model}`` scores one or many entities; ``/healthz`` says the process is
up, ``/readyz`` that models are loaded and the online store answers, ``/metrics`` exposes
Prometheus counters and histograms; OpenAPI at ``/docs`` (Swagger UI served from the package,
so it renders offline). Models are loaded at start-up and kept current by one background
thread (champion moves, models that gain a champion, a registry that comes back); a request
never waits for a load, and what a load leaves alive is frozen out of the garbage collector's
scans (``freeze_heap``). The routes that read Redis are plain functions, so Starlette runs them
in its thread pool: a slow Redis holds a thread each, never the event loop (``/healthz`` keeps
answering). Every answer goes to the prediction log through a bounded queue
(``prediction_log.py``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import warnings
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import values as prometheus_values
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from ownlens_ml import clock, registry
from ownlens_ml.db import get_engine
from ownlens_ml.db.schema import brands
from ownlens_ml.errors import (
    ConfigError,
    DatabaseUnavailableError,
    OwnLensError,
    RedisUnavailableError,
    UnknownModelVersionError,
)
from ownlens_ml.features import store
from ownlens_ml.models import SPECS
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.monitoring.prometheus import install as install_monitoring_gauges
from ownlens_ml.serving import ui
from ownlens_ml.serving.prediction_log import Answer, PredictionLog
from ownlens_ml.serving.predictor import (
    INT64,
    MAX_ENTITIES,
    REDIS_TIMEOUT_SECONDS,
    FeatureReader,
    Follower,
    InvalidEntityError,
    Loaded,
    Predictor,
    RedisHandle,
    freeze_heap,
)
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

REQUESTS = Counter("ownlens_http_requests", "HTTP requests by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram(
    "ownlens_http_request_seconds",
    "HTTP request latency by endpoint",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ERRORS = Counter(
    "ownlens_http_errors", "Requests answered with an error, by endpoint and reason", ["endpoint", "reason"]
)
FALLBACKS = Counter("ownlens_fallbacks", "Answers that fell back (cold start, popularity)", ["model", "reason"])
STALE = Counter(
    "ownlens_stale_features", "Entity feature views older than their TTL, read as missing", ["model", "view"]
)
VERSIONS = Gauge("ownlens_model_version_loaded", "Model version being served", ["model"], multiprocess_mode="max")
FROZEN = Gauge(
    "ownlens_gc_frozen_objects",
    "Objects taken out of the garbage collector's scans (gc.freeze)",
    multiprocess_mode="max",
)
_REASONS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 422: "invalid_request", 503: "unavailable"}


def served() -> list[str]:
    """Models that score feature rows (the tabular kinds), each at /v1/predict/{model}."""
    return [name for name, spec in SPECS.items() if spec.task_kind.supervised]


def rankers() -> list[str]:
    """The other kinds' models (clustering, ranking, rule), followed by ``Follower``s and answered at the
    paths of ``ModelSpec.routes`` by their kind's route (``ANSWERS``)."""
    return [name for name, spec in SPECS.items() if not spec.task_kind.supervised]


TRENDING_SECONDS = 60.0
"""How often the trending list, the known brands and a fallback ranking from recent reads are recomputed."""
MAX_K = 100
MAX_BODY_DEPTH = 32
"""Deepest nesting of a request body (the deepest valid one nests 3 levels)."""
SERVE_OPTIONS = {
    "OWNLENS_SERVE_CHECK_SECONDS": ("check_every", 5.0, 0.1, 3600.0),
    "OWNLENS_SERVE_REDIS_TIMEOUT": ("redis_timeout", REDIS_TIMEOUT_SECONDS, 0.01, 60.0),
}
"""Variable -> (``Serving`` option, default, lowest, highest accepted, in seconds)."""

Id = Annotated[int, Field(strict=True, ge=INT64[0], le=INT64[1])]


class PredictRequest(BaseModel):
    """Entities to score: ``ids`` for a model with one join key, else ``entities``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"ids": [17, 42]}]})
    ids: list[Id] | None = Field(
        None, min_length=1, max_length=MAX_ENTITIES, description="Entity ids, e.g. user ids for a model of readers"
    )
    entities: list[dict[str, Id]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_ENTITIES,
        description='Join key -> id per entity, e.g. [{"article_id": 5, "author_id": 2}]',
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.ids is None) == (self.entities is None):
            raise ValueError("give exactly one of 'ids' or 'entities'")
        return self


class EntityPrediction(BaseModel):
    entity: dict[str, int]
    score: float = Field(description="Probability of the positive class (binary models) or the prediction")
    cold_start: bool = Field(
        description="The online store holds nothing for this entity: the score is the "
        "model's answer on all-missing features"
    )
    stale_views: list[str] = Field(description="Feature views older than their TTL, read as missing")
    feature_age_seconds: dict[str, float | None] = Field(
        description="Per feature view, seconds since its values were stamped (null: none stored)"
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    feature_service: str
    served_at: datetime
    predictions: list[EntityPrediction]


class Article(BaseModel):
    article_id: int
    score: float | None


class RecommendationResponse(BaseModel):
    user_id: int
    model: str
    version: int | None = Field(
        description="The version that ranked (with no champion yet: the newest "
        "registered one, or null when the ranking is of recent reads)"
    )
    champion: bool = Field(description="Ranked by the champion (false: no champion yet, the fallback ranking)")
    articles: list[Article] = Field(description="Best first, at most k")
    fallback: bool = Field(
        description="The popularity-recency ranking: the reader has no factors and no history, "
        "or no champion of the model is served yet"
    )


class SegmentResponse(BaseModel):
    user_id: int
    model: str
    version: int
    segment: str
    cold_start: bool = Field(
        description="The online store holds nothing for this reader: the segment of a reader with no recent activity"
    )
    stale_views: list[str] = Field(description="Feature views older than their TTL, read as missing")


class Topic(BaseModel):
    series: str
    brand_id: int = Field(description="0: a series over every brand")
    category_id: int
    score: float
    ratio: float
    since: datetime
    hours_trending: int


class TrendingResponse(BaseModel):
    model: str
    version: int
    brand: int | None
    topics: list[Topic] = Field(description="Strongest first")


class Readiness(BaseModel):
    ready: bool
    models: dict[str, int] = Field(description="Model -> version loaded")
    online_store: bool
    reasons: list[str]


def _champion(settings: Settings, name: str, redis_handle: RedisHandle) -> Follower:
    """A ranking, clustering or rule model's champion, followed by the shared ``Follower`` (which also
    rebuilds an old read plan); it reads the feature service its spec reads at request time, if any."""
    service = SPECS[name].request_features

    def load(entry: registry.ModelVersion, model: Any) -> Loaded:
        reader = (
            None if service is None else FeatureReader(settings, store.feature_service(settings, service), redis_handle)
        )
        log.info("loaded %s for online answers", entry.label)
        return Loaded(entry, model, reader)

    return Follower(settings, name, "champion", load, redis_handle)


class _Fallback:
    """With no champion of a ranking spec that declares a ``fallback``: the popularity-recency ranking
    of its newest registered version (``version``), or the spec's fallback when none is registered
    (``version`` None)."""

    def __init__(self, settings: Settings, name: str, redis_handle: RedisHandle, reader: FeatureReader | None):
        spec = SPECS[name]
        self.name, self.at = name, time.monotonic()
        try:
            newest = registry.get_version(settings, name, "latest")
        except UnknownModelVersionError:
            newest = None
        self.version = None if newest is None else newest.version
        self.model = (
            spec.fallback(settings) if newest is None else registry.load_model(settings, name, newest.version)[1]
        )
        if reader is None and spec.request_features is not None:
            reader = FeatureReader(settings, store.feature_service(settings, spec.request_features), redis_handle)
        self.reader = reader
        log.info(
            "no %s champion: serving the popularity-recency ranking %s",
            name,
            "of recent reads" if newest is None else f"of {newest.label}",
        )

    def stale(self, settings: Settings) -> bool:
        """Whether the newest version changed, or a ranking of recent reads is a minute old."""
        try:
            newest = registry.get_version(settings, self.name, "latest").version
        except UnknownModelVersionError:
            newest = None
        return newest != self.version or (newest is None and time.monotonic() - self.at >= TRENDING_SECONDS)


class Serving:
    """The models one process serves, loaded off the request path and kept current."""

    def __init__(
        self,
        settings: Settings,
        *,
        check_every: float = 5.0,
        redis_timeout: float = REDIS_TIMEOUT_SECONDS,
        log_queue: int = 10_000,
    ):
        self.settings, self.check_every, self.redis_timeout = settings, check_every, redis_timeout
        self.predictors: dict[str, Predictor] = {}
        self.unserved: dict[str, str] = {}
        self.registry_error: str | None = None
        self.log_queue = log_queue
        self.log: PredictionLog | None = None
        self.redis = RedisHandle(settings, redis_timeout)
        self.champions: dict[str, Follower] = {}
        self.current: dict[str, tuple[float, int, Any]] = {}
        """Rule model -> (when computed, by which version, what it finds now over every brand, or None)."""
        self.fallbacks: dict[str, _Fallback] = {}
        self.brands: tuple[float, frozenset[int] | None] | None = None
        """(when read, the brand ids of the platform or None when they cannot be read)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Load the models, start the prediction log and the refresh thread (again after ``close``)."""
        self._stop.clear()
        self.log = PredictionLog(self.settings, max_queue=self.log_queue)
        self._refresh()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="serving-refresh")
        self._thread.start()

    def close(self) -> None:
        """Stop the refresh thread and write the prediction log's queue out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.log is not None:
            self.log.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.check_every):
            self._refresh()

    def _loaded_versions(self) -> dict[str, int]:
        return {n: p.version.version for n, p in [*self.predictors.items(), *self.champions.items()]}

    def _refresh(self) -> None:
        before = self._loaded_versions()
        try:
            for name in served():
                self._refresh_model(name)
            for name in rankers():
                self._refresh_model(name, ranker=True)
                kind = SPECS[name].kind
                if kind == "rule":
                    self._refresh_current(name)
                elif kind == "ranking":
                    self._refresh_fallback(name)
            self._refresh_brands()
        except DatabaseUnavailableError as exc:
            if self.registry_error is None:  # one line per outage, not one per retry
                log.error(
                    "not ready: the model registry is unreachable (%s); retrying every %.0fs", exc, self.check_every
                )
            self.registry_error = str(exc)
            return
        finally:
            if self._loaded_versions() != before:
                FROZEN.set(freeze_heap())  # what the loads left alive, out of the collector's scans
        if self.registry_error is not None:
            log.warning("the model registry is reachable again; serving %s", ", ".join(self.predictors) or "nothing")
        self.registry_error = None

    def _refresh_model(self, name: str, ranker: bool = False) -> None:
        """Load a model not served yet, or follow its alias; a failure keeps what is served."""
        served = self.champions if ranker else self.predictors
        predictor = served.get(name)
        try:
            if predictor is not None:
                predictor.refresh()
            elif ranker:
                self.champions[name] = _champion(self.settings, name, self.redis)
            else:
                self.predictors[name] = Predictor(
                    self.settings, name, watch_every=None, redis_timeout=self.redis_timeout
                )
            self.unserved.pop(name, None)
        except UnknownModelVersionError:
            self.unserved[name] = "no champion yet"
        except DatabaseUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. an artifact that fails its checksum: say so once, keep serving
            problem = f"cannot load its champion ({type(exc).__name__}: {exc})"
            if self.unserved.get(name) != problem:
                log.warning(
                    "%s: %s%s",
                    name,
                    problem,
                    f"; still serving {predictor.version.label}" if predictor is not None else "",
                )
            self.unserved[name] = problem
        VERSIONS.labels(name).set(served[name].version.version if name in served else 0)

    def _refresh_current(self, name: str) -> None:
        """What rule ``name`` finds now over every brand, recomputed off the request path once a minute."""
        champion, cached = self.champions.get(name), self.current.get(name)
        if champion is None or (cached and time.monotonic() - cached[0] < TRENDING_SECONDS):
            return
        try:
            found = SPECS[name].current(self.settings, champion.loaded.model)
        except OwnLensError as exc:  # e.g. no page views yet: the endpoint answers an empty list
            log.info("%s: %s", name, exc)
            found = None
        self.current[name] = (time.monotonic(), champion.version.version, found)

    def _refresh_fallback(self, name: str) -> None:
        """A ranking spec's fallback while it has no champion (see ``_Fallback``)."""
        fallback = self.fallbacks.get(name)
        if SPECS[name].fallback is None or name in self.champions:
            self.fallbacks.pop(name, None)
            return
        if fallback is not None and not fallback.stale(self.settings):
            return
        try:
            self.fallbacks[name] = _Fallback(self.settings, name, self.redis, fallback and fallback.reader)
        except DatabaseUnavailableError:
            raise
        except OwnLensError as exc:  # e.g. no reads yet: the endpoint answers 404, saying why
            log.info("no %s fallback: %s", name, exc)
            self.fallbacks.pop(name, None)
            self.unserved[name] = f"no champion yet, and no fallback ranking ({exc})"

    def _refresh_brands(self) -> None:
        """The platform's brand ids, read off the request path once a minute (None: unreadable)."""
        if self.brands and time.monotonic() - self.brands[0] < TRENDING_SECONDS:
            return
        try:
            with get_engine(self.settings).connect() as conn:
                known = frozenset(conn.execute(select(brands.c.brand_id)).scalars())
        except DatabaseUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - no brands table yet: brands go unchecked
            log.info("brands unreadable (%s): brand filters are not checked", exc)
            known = None
        self.brands = (time.monotonic(), known)

    def check_brand(self, brand: int | None) -> None:
        """404 naming the known brands when ``brand`` is not one of them."""
        known = self.brands[1] if self.brands else None
        if brand is not None and known is not None and brand not in known:
            raise HTTPException(404, f"no brand {brand}; known brands: {', '.join(map(str, sorted(known))) or 'none'}")

    def predictor(self, model: str) -> Predictor:
        predictor = self.predictors.get(model)
        if predictor is None:
            known = ", ".join(sorted([*self.predictors, *self.champions])) or "none"
            waiting = "; ".join(f"{name}: {why}" for name, why in sorted(self.unserved.items()))
            raise HTTPException(
                404, f"no model {model!r} is served; known: {known}" + (f" ({waiting})" if waiting else "")
            )
        return predictor

    def online_store_reachable(self) -> bool:
        return not self.settings.online_redis or self.redis.reachable()

    def champion(self, model: str) -> Follower:
        champion = self.champions.get(model)
        if champion is None:
            self.predictor(model)  # the same 404, listing what is served
        return champion

    def readiness(self) -> Readiness:
        reasons = []
        if self.registry_error:
            reasons.append(f"model registry unreachable: {self.registry_error}")
        if not self.predictors:
            reasons.append("no model loaded")
        online = self.online_store_reachable()
        if not online:
            reasons.append("online store unreachable")
        return Readiness(ready=not reasons, models=self._loaded_versions(), online_store=online, reasons=reasons)


class _Metrics:
    """Counts and times every request by endpoint (pure ASGI: no per-request task or copy)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            endpoint = getattr(scope.get("endpoint"), "__name__", "unmatched")
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
            REQUESTS.labels(endpoint, str(status[0])).inc()
            if status[0] >= 400:
                ERRORS.labels(endpoint, _REASONS.get(status[0], "internal" if status[0] >= 500 else "client")).inc()


def _read_reader(reader: FeatureReader, user_id: int, now: datetime):
    """One reader's online values, ages and staleness; 503 when the online store does not answer."""
    try:
        return reader.read({"user_id": [user_id]}, now.timestamp())
    except RedisUnavailableError as exc:
        raise HTTPException(503, str(exc)) from None


class _BodyRequest(Request):
    """A request whose JSON body that cannot be read is a JSON error (422 naming the body), not a 400.

    FastAPI answers 422 for a ``JSONDecodeError`` and 400 for any other failure to parse; a
    body that is not UTF-8 or nests too deep (``MAX_BODY_DEPTH``) is made the former.
    Non-finite numbers (``NaN``, ``Infinity``, ``1e400``) are parsed, and refused by validation
    naming their field (``_validation_error``)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError(
                    f"the body is not UTF-8 text (byte {exc.start}); send UTF-8 JSON", "", exc.start
                ) from None
            deep = json.JSONDecodeError(f"the body nests deeper than {MAX_BODY_DEPTH} levels", "", 0)
            try:
                parsed = json.loads(text)
            except RecursionError:
                raise deep from None
            if text.count("[") + text.count("{") > MAX_BODY_DEPTH and _depth(parsed) > MAX_BODY_DEPTH:
                raise deep
            self._json = parsed
        return self._json


def _depth(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


class _Route(APIRoute):
    """Routes that read their body through ``_BodyRequest`` (FastAPI's documented custom request class)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_BodyRequest(request.scope, request.receive))

        return route


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as its JSON-ish text (``NaN``, ``Infinity``), so it can be echoed."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with non-finite inputs named as such instead of failing to render (a 500)."""
    errors = []
    for error in exc.errors():
        given = error.get("input")
        if isinstance(given, float) and not math.isfinite(given):
            error = {**error, "msg": f"{_finite(given)} is not a finite number (JSON has no NaN or Infinity)"}
        errors.append(_finite(error))
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _multiprocess_metrics() -> bool:
    """Whether this process's metrics live in ``PROMETHEUS_MULTIPROC_DIR`` files (``run`` with several
    workers), not in memory: the variable alone does not say, as importing Feast sets it."""
    return bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))


def _docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI with its script and styles from the ``swagger-ui-bundle-v2`` package, not a CDN."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


def _serving(request: Request) -> Serving:
    """The ``Serving`` of the app the request reached (``app.state.serving``)."""
    return request.app.state.serving


ServingDep = Annotated[Serving, Depends(_serving)]

router = APIRouter(route_class=_Route)
"""Every route of the service; each reads the models it answers from through ``ServingDep``."""


@router.post(
    "/v1/predict/{model}",
    response_model=PredictResponse,
    responses={
        404: {"description": "Unknown model; the message lists the known ones"},
        422: {"description": "Malformed body or entity; the field is named"},
        503: {"description": "The online store did not answer in time"},
    },
)
def predict(model: str, body: PredictRequest, serving: ServingDep) -> dict:
    """Score one or many entities with the model's champion on its online features."""
    # A plain function, so in Starlette's thread pool: the Redis read blocks (up to the Redis
    # timeout when Redis hangs), and on the event loop it would hold every other request.
    predictor = serving.predictor(model)
    try:
        prediction = predictor.predict(body.ids, entities=body.entities)
    except InvalidEntityError as exc:
        raise HTTPException(422, [{"loc": ["body", *exc.loc], "msg": str(exc), "type": "value_error"}]) from None
    except RedisUnavailableError as exc:
        raise HTTPException(503, str(exc)) from None
    serving.log.record(prediction)
    results = []
    for r in prediction.results:
        if r.cold_start:
            FALLBACKS.labels(model, "cold_start").inc()
        for view in r.stale_views:
            STALE.labels(model, view).inc()
        results.append(
            {
                "entity": r.entity,
                "score": r.score,
                "cold_start": r.cold_start,
                "stale_views": r.stale_views,
                "feature_age_seconds": r.feature_age_seconds,
            }
        )
    return {
        "model": prediction.model,
        "version": prediction.version,
        "feature_service": prediction.feature_service,
        "served_at": prediction.served_at,
        "predictions": results,
    }


UserId = Annotated[int, Path(ge=INT64[0], le=INT64[1])]
Brand = Annotated[int | None, Query(ge=0, le=INT64[1], description="Only this brand (default: the reader's)")]


def _segment_answer(name: str):
    """The clustering kind's answer: a reader's named segment from the champion on its online features."""

    def segments(user_id: UserId, serving: ServingDep) -> dict:
        """The named segment of a reader, from the model's champion on the reader's online features."""
        loaded = serving.champion(name).loaded
        entry, model, reader = loaded.version, loaded.model, loaded.reader
        now = clock.now()
        values, ages, stale = _read_reader(reader, user_id, now)
        rows = feature_matrix(pd.DataFrame(values), list(model.feature_names_in_))
        segment = str(SPECS[name].task_kind.predict(model, rows)[0])
        cold = all(ages[view][0] is None for view in reader.views)
        if cold:
            FALLBACKS.labels(name, "cold_start").inc()
        stale_views = [view for view in reader.views if stale[view][0]]
        serving.log.record(
            Answer(
                name,
                entry.version,
                {"user_id": user_id},
                {"segment": segment, "cold_start": cold, "stale_views": stale_views},
                now,
            )
        )
        return {
            "user_id": user_id,
            "model": name,
            "version": entry.version,
            "segment": segment,
            "cold_start": cold,
            "stale_views": stale_views,
        }

    return segments, dict(
        response_model=SegmentResponse,
        responses={
            404: {"description": f"No {name} champion is served"},
            422: {"description": "user_id is not a 64-bit integer"},
            503: {"description": "The online store did not answer in time"},
        },
    )


def _ranking_answer(name: str):
    """The ranking kind's answer: top-k items for a reader from the champion, or the spec's fallback."""

    def recommendations(
        user_id: UserId,
        serving: ServingDep,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many articles")] = 10,
        brand: Brand = None,
    ) -> dict:
        """Top-k articles for a reader: ALS factors, the latest read folded in, or the flagged fallback
        (also for every reader while no champion is served)."""
        serving.check_brand(brand)
        champion, fallback = serving.champions.get(name), serving.fallbacks.get(name)
        if champion is not None:
            loaded = champion.loaded
            version, model, reader = loaded.version.version, loaded.model, loaded.reader
        elif fallback is not None:
            version, model, reader = fallback.version, fallback.model, fallback.reader
        else:
            serving.champion(name)  # the 404, listing what is served and why not this
        now = clock.now()
        values = _read_reader(reader, user_id, now)[0] if reader is not None else {}
        last, seconds = values.get("last_article_id", [None])[0], values.get("last_engaged_seconds", [None])[0]
        history = [(last, seconds or 0)] if last is not None else None
        if brand is None and values.get("brand_id", [None])[0] is not None:
            brand = int(values["brand_id"][0])
        answer = model.recommend(user_id, k, brand_id=brand, history=history, personal=champion is not None)
        articles = [
            {"article_id": int(a), "score": float(s) if np.isfinite(s) else None}
            for a, s in zip(answer.article_ids, answer.scores)
        ]
        if answer.fallback:
            FALLBACKS.labels(name, "popularity_recency" if champion else "no_champion").inc()
        serving.log.record(
            Answer(
                name,
                version or 0,
                {"user_id": user_id},
                {
                    "articles": articles,
                    "fallback": bool(answer.fallback),
                    "k": k,
                    "brand": brand,
                    "champion": champion is not None,
                },
                now,
            )
        )
        return {
            "user_id": user_id,
            "model": name,
            "version": version,
            "champion": champion is not None,
            "articles": articles,
            "fallback": bool(answer.fallback),
        }

    return recommendations, dict(
        response_model=RecommendationResponse,
        responses={
            404: {"description": f"Unknown brand, or no {name} version and no recent reads to rank"},
            422: {"description": "user_id or k out of range; the field is named"},
            503: {"description": "The online store did not answer in time"},
        },
    )


def _rule_answer(name: str):
    """The rule kind's answer: what the champion rule finds now (``ModelSpec.current``), strongest first."""

    async def trending(
        serving: ServingDep,
        brand: Annotated[
            int | None, Query(ge=0, le=INT64[1], description="Keep this brand's series and the all-brand ones")
        ] = None,
    ) -> dict:
        """What trends now (recomputed once a minute off the request path), strongest first."""
        champion = serving.champion(name)
        serving.check_brand(brand)
        cached = serving.current.get(name)
        frame = cached[2] if cached else None
        topics = []
        if frame is not None and not frame.empty:
            if brand is not None:
                frame = frame[frame["brand_id"].isin([0, brand])]
            topics = [
                {
                    "series": r.series,
                    "brand_id": int(r.brand_id),
                    "category_id": int(r.category_id),
                    "score": float(r.score),
                    "ratio": float(r.ratio),
                    "since": r.since.to_pydatetime(),
                    "hours_trending": int(r.hours_trending),
                }
                for r in frame.itertuples()
            ]
        version = cached[1] if cached else champion.version.version
        serving.log.record(
            Answer(name, version, {"brand_id": brand or 0}, {"topics": [t["series"] for t in topics]}, clock.now())
        )
        return {"model": name, "version": version, "brand": brand, "topics": topics}

    return trending, dict(
        response_model=TrendingResponse,
        responses={
            404: {"description": f"No {name} champion is served, or an unknown brand"},
            422: {"description": "brand out of range"},
        },
    )


ANSWERS = {"clustering": _segment_answer, "ranking": _ranking_answer, "rule": _rule_answer}
"""The serving adapter of each kind the tabular /v1/predict/{model} does not answer: ``name -> (endpoint,
route options)``, mounted at every path of the spec's ``routes``."""


def answer_router() -> APIRouter:
    """The answer routes of every spec in ``SPECS`` now, generated from its kind's adapter."""
    answers = APIRouter(route_class=_Route)
    for name in rankers():
        spec = SPECS[name]
        endpoint, options = ANSWERS[spec.kind](name)
        for path in spec.routes:
            answers.add_api_route(path, endpoint, methods=["GET"], **options)
    return answers


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(serving: ServingDep):
    """Models are loaded, the registry was reached and the online store answers."""
    state = serving.readiness()
    return JSONResponse(state.model_dump(), status_code=200 if state.ready else 503)


@router.get("/metrics")
def metrics(serving: ServingDep) -> Response:
    """Prometheus metrics (all workers' when several run)."""
    registry = REGISTRY
    if _multiprocess_metrics():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        install_monitoring_gauges(serving.settings, registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, **options) -> FastAPI:
    """The service for these settings; ``options`` go to ``Serving`` (check_every, redis_timeout, log_queue)."""
    serving = Serving(settings, **options)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        serving.start()
        yield
        serving.close()  # after uvicorn has finished the requests in flight

    app = FastAPI(
        title="OwnLens ML prediction service",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        description="Online predictions from the registry's champions on the online store's features.",
    )
    app.router.route_class = _Route
    app.state.serving = serving
    app.add_middleware(_Metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    _docs(app)
    app.include_router(ui.router(settings))
    app.include_router(router)
    app.include_router(answer_router())
    install_monitoring_gauges(settings)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from ``OWNLENS_*``, options from ``OWNLENS_SERVE_*``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ownlens_ml").setLevel(logging.INFO)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    return create_app(Settings.from_env(), **serve_options(os.environ))


def serve_options(env) -> dict[str, float]:
    """``Serving`` options from the ``OWNLENS_SERVE_*`` variables (``SERVE_OPTIONS``).

    Raises:
        ConfigError: a value is not a number of seconds in its range.
    """
    options = {}
    for variable, (option, default, low, high) in SERVE_OPTIONS.items():
        text = env.get(variable, "").strip()
        try:
            value = float(text) if text else default
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # NaN fails too
            raise ConfigError(
                f"{variable}={text!r} is not a number of seconds from {low:g} to {high:g}; "
                f"set one in that range or unset it (default {default:g})"
            )
        options[option] = value
    return options


def check_bind(host: str, port: int) -> None:
    """Fail fast, before any model is loaded, when ``host:port`` cannot be listened on.

    Raises:
        ConfigError: ``host`` is not an address of this machine, or the port is taken.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise ConfigError(
            f"--host {host!r} is not an address to listen on ({exc}); give an IP address or "
            "host name of this machine, e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or "
                "--host, or stop what listens there"
            ) from None


def run(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT: uvicorn finishes the requests in flight, then the log is flushed.

    With several workers, ``metrics_folder.choose_metrics_folder`` must have run before this
    module was imported (the ``serve`` command does), so that /metrics sums every worker.

    Raises:
        ConfigError: a bad ``OWNLENS_SERVE_*`` value, or ``host:port`` cannot be listened on
            (checked before anything is loaded).
    """
    import uvicorn

    serve_options(os.environ)
    check_bind(host, port)

    os.environ.update(
        {
            "OWNLENS_PROFILE": settings.profile,
            "OWNLENS_HOME": str(settings.home),
            "OWNLENS_DATABASE_URL": settings.database_url,
            "OWNLENS_REDIS_URL": settings.redis_url,
            "OWNLENS_FEATURE_REPO": str(settings.feature_repo),
            "OWNLENS_FEAST_PROJECT": settings.project,
        }
    )
    uvicorn.run(
        "ownlens_ml.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="info",
    )
