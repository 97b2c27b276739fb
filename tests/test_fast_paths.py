"""The fast materializer, online reader and training-set path give exactly what Feast's own paths give."""

from __future__ import annotations

import dataclasses
import socket
import uuid

import numpy as np
import pandas as pd
import pytest
import redis
from tiny_platform import load_tiny_platform, ts

from ownlens_ml.db import get_engine, init_db
from ownlens_ml.errors import RedisUnavailableError, ValidationError
from ownlens_ml.features import store
from ownlens_ml.features.materializer import materialize_redis
from ownlens_ml.features.snapshots import build_snapshots

SERVICES = [
    "churn_v1",
    "conversion_v1",
    "conversion_v2",
    "segmentation_v1",
    "recommendation_v1",
    "article_performance_v1",
]


@pytest.fixture
def built(production_settings):
    init_db(production_settings)
    load_tiny_platform(get_engine(production_settings))
    build_snapshots(production_settings)
    store.apply_repo(production_settings)
    return production_settings


@pytest.fixture
def twin(built):
    """A second Feast project over the same tables, so two materializations can be compared."""
    other = dataclasses.replace(built, project=f"t{uuid.uuid4().hex[:10]}")
    store.apply_repo(other)
    yield other
    client = redis.Redis.from_url(other.redis_url)
    keys = list(client.scan_iter(match=b"*" + other.project.encode(), count=1000))
    if keys:
        client.delete(*keys)


def _window():
    return ts(-40).to_pydatetime(), ts(30).to_pydatetime()


def _hashes(settings) -> dict[bytes, dict[bytes, bytes]]:
    client = redis.Redis.from_url(settings.redis_url)
    suffix = settings.project.encode()
    return {key[: -len(suffix)]: client.hgetall(key) for key in client.scan_iter(match=b"*" + suffix, count=1000)}


def test_fast_materializer_writes_the_bytes_feast_writes(built, twin):
    store.materialize(built, *_window(), engine="feast")
    report = materialize_redis(twin, *_window())
    feast_hashes, fast_hashes = _hashes(built), _hashes(twin)
    assert feast_hashes and report.written == report.rows > 0
    assert fast_hashes == feast_hashes
    # Feast's rule: equal or older timestamps are not written again.
    assert materialize_redis(twin, *_window()).written == 0
    # ... and Feast's own reader sees the same values.
    for service in SERVICES:
        keys = store.join_keys(built, store.feature_service(built, service))
        rows = (
            {"user_id": [1, 2, 3, 99]}
            if keys == ["user_id"]
            else {"article_id": [10, 11, 12, 99], "author_id": [1, 1, 1, 1]}
        )
        a = store.online_features(built, service, rows, request_time=ts(6).to_pydatetime(), engine="feast")
        b = store.online_features(twin, service, rows, request_time=ts(6).to_pydatetime(), engine="feast")
        pd.testing.assert_frame_equal(a.frame, b.frame, obj=service)


def test_fast_materializer_records_the_interval_like_feast(built):
    materialize_redis(built, *_window())
    view = store.feature_store(built).get_feature_view("user_daily_engagement")
    assert [i[1] for i in view.materialization_intervals][-1] == _window()[1].replace(
        tzinfo=view.materialization_intervals[-1][1].tzinfo
    )


def test_store_materialize_uses_the_fast_path_and_keeps_feast_selectable(built, twin):
    store.materialize(built, *_window())
    store.materialize(twin, *_window(), engine="feast")
    assert _hashes(built) == _hashes(twin)
    with pytest.raises(ValidationError, match="unknown engine"):
        store.materialize(built, *_window(), engine="spark")


@pytest.mark.parametrize("service", SERVICES)
def test_fast_online_read_equals_the_sdk(built, service):
    store.materialize(built, *_window(), engine="feast")
    keys = store.join_keys(built, store.feature_service(built, service))
    rows = {"user_id": [3, 1, 99, 1]} if keys == ["user_id"] else {"article_id": [12, 99, 10], "author_id": [1, 1, 7]}
    now = ts(6, 3).to_pydatetime()
    sdk = store.online_features(built, service, rows, request_time=now, engine="feast")
    fast = store.online_features(built, service, rows, request_time=now, engine="fast")
    pd.testing.assert_frame_equal(fast.frame, sdk.frame)
    pd.testing.assert_frame_equal(fast.staleness_seconds, sdk.staleness_seconds)
    assert store.online_features(built, service, rows, request_time=now).frame.equals(sdk.frame)


def _entity_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(1, 5, n),  # user 4 does not exist
            "event_timestamp": ts(-2) + pd.to_timedelta(rng.integers(0, 11 * 86400, n), unit="s"),
            "label": rng.integers(0, 2, n),
        }
    )
    # The leakage and TTL edges of tests/test_features.py, for every user.
    edges = [ts(5), ts(5, seconds=-1), ts(4, 23, 3598), ts(7), ts(7, seconds=1), ts(8, seconds=1), ts(-50)]
    extra = pd.DataFrame({"user_id": np.repeat([1, 2, 3], len(edges)), "event_timestamp": edges * 3, "label": 0})
    return pd.concat([frame, extra], ignore_index=True)


@pytest.fixture(params=["local", "production"])
def built_any(request):
    settings = request.getfixturevalue("local_settings" if request.param == "local" else "production_settings")
    init_db(settings)
    load_tiny_platform(get_engine(settings))
    build_snapshots(settings)
    store.apply_repo(settings)
    return settings


@pytest.mark.parametrize("service", ["churn_v1", "conversion_v2", "segmentation_v1", "recommendation_v1"])
def test_fast_training_set_equals_feasts(built_any, service):
    built = built_any
    entity = _entity_frame(300, 5)
    feast = store.training_set(built, service, entity, engine="feast")
    fast = store.training_set(built, service, entity, engine="fast")
    pd.testing.assert_frame_equal(fast.frame, feast.frame)
    assert (fast.fingerprint, fast.features) == (feast.fingerprint, feast.features)
    assert fast.frame.isna().any().any()  # past the TTL and before the first snapshot: nulls
    assert store.training_set(built, service, entity).frame.equals(feast.frame)


def test_article_performance_training_set_works_in_both_profiles(built_any):
    # author_id is both the author entity's join key and a column of the article view.
    entity = pd.DataFrame(
        {
            "article_id": [10, 11, 12, 99, 10],
            "author_id": [1, 1, 1, 1, 1],
            "event_timestamp": [ts(1), ts(2), ts(5), ts(5), ts(-50)],
        }
    )
    feast = store.training_set(built_any, "article_performance_v1", entity, engine="feast")
    auto = store.training_set(built_any, "article_performance_v1", entity)
    pd.testing.assert_frame_equal(auto.frame, feast.frame)
    frame = feast.frame
    assert frame.columns[:3].tolist() == ["article_id", "author_id", "event_timestamp"]
    assert "author_id" not in feast.features and frame.author_id.tolist() == [1] * 5
    assert frame.word_count.tolist()[1:3] == [500, 1200]
    assert frame.author_pageviews_30d.notna().iloc[:4].all()  # the author's view joins on author_id
    assert frame.iloc[3].isna()[["word_count", "hours_since_publish"]].all()  # unknown article
    assert frame.iloc[4].isna()[["word_count", "articles_30d"]].all()  # before any snapshot
    assert frame.hours_since_publish.iloc[1] == pytest.approx(24 * 2 - 9)  # ts(2) - ts(0, 9)


def test_fast_training_set_keeps_the_one_second_leakage_boundary(built):
    entity = pd.DataFrame({"user_id": [1, 1, 1], "event_timestamp": [ts(5), ts(5, seconds=-1), ts(4, 23, 3598)]})
    frame = store.training_set(built, "churn_v1", entity, engine="fast").frame
    assert frame.sessions_7d.tolist() == [3, 2, 2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_down_is_one_clear_line(built):
    port = _closed_port()
    down = dataclasses.replace(built, redis_url=f"redis://127.0.0.1:{port}/0")
    for engine in ("fast", "feast"):
        with pytest.raises(RedisUnavailableError, match=f"127.0.0.1:{port}") as caught:
            store.online_features(down, "churn_v1", {"user_id": [1]}, engine=engine)
        assert "\n" not in str(caught.value)
    with pytest.raises(RedisUnavailableError, match=f"127.0.0.1:{port}"):
        store.materialize(down, *_window())
