"""Online and batch inference: the in-process predictor, the HTTP service, batch scoring, and
their behaviour under bad input and faults, against real PostgreSQL and Redis."""

from __future__ import annotations

import gc
import json
import subprocess
import threading
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from serving_platform import build, new_database

from ownlens_ml import clock, registry
from ownlens_ml.errors import ValidationError
from ownlens_ml.features import store
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.models.kinds import get_kind
from ownlens_ml.serving.predictor import Predictor
from ownlens_ml.settings import Settings

pytestmark = pytest.mark.production


@pytest.fixture(scope="module")
def platform(pg_server, redis_server, tmp_path_factory) -> Settings:
    url, drop = new_database(pg_server)
    settings = Settings(
        profile="production",
        home=tmp_path_factory.mktemp("serving"),
        database_url=url,
        redis_url=redis_server,
        project=f"t{np.random.default_rng().integers(1 << 40):x}",
    )
    yield build(settings)
    drop()


@pytest.fixture(scope="module")
def users(platform) -> list[int]:
    """Readers active in the 30 days before the newest snapshot (so batch scoring scores them too),
    with their online features."""
    frame = store.online_features(platform, "churn_v1", {"user_id": list(range(1, 200))}).frame
    known = frame.loc[frame["sessions_30d"] > 0, "user_id"].tolist()
    assert len(known) > 20
    return known[:20]


def pipeline_scores(settings: Settings, features: list[dict]) -> np.ndarray:
    """What the registered sklearn pipeline says of these feature values."""
    _, model = registry.load_model(settings, "churn", "champion")
    x = feature_matrix(pd.DataFrame(features), list(model.feature_names_in_))
    return get_kind("binary").predict(model, x)


def test_predictor_equals_the_registered_pipeline_on_the_served_values(platform, users):
    predictor = Predictor(platform, "churn", watch_every=None)
    ids = users + [10**9]
    prediction = predictor.predict(ids)
    assert predictor.version.version == registry.get_version(platform, "churn", "champion").version
    assert [r.entity["user_id"] for r in prediction.results] == ids
    # the served values are Feast's own online values
    sdk = store.online_features(platform, "churn_v1", {"user_id": ids}, engine="feast").frame
    served = pd.DataFrame([r.features for r in prediction.results])
    pd.testing.assert_frame_equal(served.astype(float), sdk[served.columns].astype(float))
    scores = np.array([r.score for r in prediction.results])
    assert np.array_equal(scores, pipeline_scores(platform, [r.features for r in prediction.results]))
    assert predictor._loaded.scorer.booster is not None  # the shortcut was proved equal at load time
    single = predictor.predict([users[0]]).results[0]
    assert single.score == prediction.results[0].score
    assert not single.cold_start and single.stale_views == []
    assert set(single.feature_age_seconds) == {
        "user_daily_engagement",
        "user_daily_behaviour",
        "user_daily_recency",
        "user_daily_subscription",
    }


def test_unknown_reader_is_a_flagged_cold_start(platform):
    result = Predictor(platform, "churn", watch_every=None).predict([10**9]).results[0]
    assert result.cold_start and all(age is None for age in result.feature_age_seconds.values())
    assert all(value is None for value in result.features.values())
    assert result.score == pipeline_scores(platform, [result.features])[0]


def test_values_older_than_the_ttl_are_missing_and_flagged(platform, users):
    predictor = Predictor(platform, "churn", watch_every=None)
    fresh = predictor.predict([users[0]]).results[0]
    later = clock.now() + timedelta(days=3)  # the daily views' TTL is 2 days
    stale = predictor.predict([users[0]], now=later).results[0]
    assert set(stale.stale_views) == set(fresh.feature_age_seconds)
    assert not stale.cold_start
    assert all(value is None for value in stale.features.values())
    assert stale.score == pipeline_scores(platform, [stale.features])[0]
    assert stale.score != fresh.score


def test_local_profile_predicts_through_feasts_online_path(tmp_path):
    """SQLite online store: Feast's SDK reads, the same TTL rule, the same scores as the pipeline."""
    local = build(
        Settings(profile="local", home=tmp_path / "home", project=f"t{np.random.default_rng().integers(1 << 40):x}"),
        users=600,
    )
    predictor = Predictor(local, "churn", watch_every=None)
    assert predictor._loaded.reader.plan is None
    ids = list(range(1, 40)) + [10**9]
    fresh = predictor.predict(ids)
    known = [r for r in fresh.results if not r.cold_start]
    assert len(known) > 10 and fresh.results[-1].cold_start
    assert np.array_equal([r.score for r in fresh.results], pipeline_scores(local, [r.features for r in fresh.results]))
    sdk = store.online_features(local, "churn_v1", {"user_id": ids}, engine="feast").frame
    served = pd.DataFrame([r.features for r in fresh.results])
    pd.testing.assert_frame_equal(served.astype(float), sdk[served.columns].astype(float))
    stale = predictor.predict([known[0].entity["user_id"]], now=clock.now() + timedelta(days=3)).results[0]
    assert set(stale.stale_views) == set(known[0].feature_age_seconds)
    assert all(value is None for value in stale.features.values())  # on-demand ratios too: their sources are stale
    from ownlens_ml.serving.prediction_log import PredictionLog

    log = PredictionLog(local, flush_seconds=0.05)
    log.record(fresh)
    log.close()  # the local profile's log is SQLite
    rows = {r["entity_id"]: r for r in logged(local, "source = 'online'", len(ids))}
    assert len(rows) == len(ids)
    for r in fresh.results:
        row = rows[r.entity["user_id"]]
        assert row["score"] == r.score and json.loads(row["features"]) == r.features
        assert json.loads(row["output"])["cold_start"] == r.cold_start


def test_bad_entities_get_clear_errors(platform):
    predictor = Predictor(platform, "churn", watch_every=None)
    for kwargs, words in [
        ({}, "exactly one"),
        ({"ids": ["7"]}, r"ids\.0: .7. is not a 64-bit"),
        ({"ids": [2**63]}, "64-bit"),
        ({"ids": []}, "1 to 1000"),
        ({"entities": [{"article_id": 1}]}, "user_id"),
    ]:
        with pytest.raises(ValidationError, match=words):
            predictor.predict(**kwargs)


def test_champion_moves_are_followed_without_a_stall(platform, users):
    """A second version registered and promoted while calls run: they never fail or wait long,
    and switch to the new version."""
    champion, model = registry.load_model(platform, "churn", "champion")
    run = registry.start_run(platform, "churn", {})
    fields = {
        f: getattr(champion, f)
        for f in (
            "feature_service",
            "feature_service_hash",
            "training_set_fingerprint",
            "window_start",
            "window_end",
            "params",
            "metrics",
        )
    }
    second = registry.register(platform, run, model_name="churn", task="binary", estimator=model, **fields)
    predictor = Predictor(platform, "churn", watch_every=0.1)
    seen, slowest, errors = [], [0.0], []
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                seen.append(predictor.predict([users[0]]).version)
            except Exception as exc:  # noqa: BLE001 - any failure fails the test
                errors.append(exc)
            slowest[0] = max(slowest[0], time.perf_counter() - started)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        time.sleep(0.3)
        registry.promote(platform, "churn", second.version)
        deadline = time.monotonic() + 10
        while predictor.version.version != second.version and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        stop.set()
        caller.join()
        predictor.close()
        registry.rollback(platform, "churn")
    assert not errors
    assert seen[0] == champion.version and seen[-1] == second.version
    assert slowest[0] < 0.5, slowest  # a load happens beside the calls, never inside one


@pytest.mark.parametrize("broken", ["build", "call", "inplace"])
def test_a_failing_booster_probe_falls_back_with_one_warning(platform, users, monkeypatch, caplog, broken):
    """An XGBoost release that changed what the shortcut relies on (a config schema, the C call):
    the direct call falls back to inplace_predict, that to the pipeline; scores stay the pipeline's."""
    import xgboost

    from ownlens_ml.models import scoring as inference

    def fail(*args, **kwargs):
        raise KeyError("iteration_begin")  # e.g. a booster config without the keys the shortcut reads

    monkeypatch.setattr(inference._DensePredictor, "__init__" if broken == "build" else "__call__", fail)
    if broken == "inplace":
        monkeypatch.setattr(inference._DensePredictor, "__init__", fail)
        monkeypatch.setattr(xgboost.Booster, "copy", fail)  # the shortcut's single-thread booster
    with caplog.at_level("WARNING", logger="ownlens_ml.models.scoring"):
        scorer = inference.load_scorer(platform, "churn")
    warnings = [r.getMessage() for r in caplog.records if "failed its probe" in r.getMessage()]
    assert len(warnings) == (2 if broken == "inplace" else 1), warnings
    assert "KeyError" in warnings[0] and "using inplace_predict" in warnings[0]
    assert (scorer.booster is None) == (broken == "inplace")
    frame = store.online_features(platform, "churn_v1", {"user_id": users}).frame
    assert np.array_equal(
        scorer.score_frame(frame), pipeline_scores(platform, frame[scorer.features].to_dict("records"))
    )


def test_the_direct_predict_call_declares_its_c_signature_and_holds_its_booster(platform):
    import ctypes

    from ownlens_ml.models import scoring as inference

    _, model = registry.load_model(platform, "churn", "champion")
    final = model.steps[-1][1]
    dense = inference._DensePredictor(final.get_booster().copy(), (0, 0), final.missing)  # the only reference
    gc.collect()
    assert len(dense._call.argtypes) == 7 and dense._call.restype is ctypes.c_int
    x = inference._probe_rows(len(model.feature_names_in_))
    assert np.array_equal(dense(x), final.get_booster().inplace_predict(x, missing=final.missing))


def test_frozen_objects_stay_bounded_over_50_champion_changes(platform):
    """Each load undoes the previous gc.freeze and collects first: what a replaced version left in
    reference cycles does not pile up, and the gauge says how many objects are frozen."""
    from ownlens_ml.serving.app import Serving

    champion, model = registry.load_model(platform, "churn", "champion")
    run = registry.start_run(platform, "churn", {})
    fields = {
        f: getattr(champion, f)
        for f in (
            "feature_service",
            "feature_service_hash",
            "training_set_fingerprint",
            "window_start",
            "window_end",
            "params",
            "metrics",
        )
    }
    other = registry.register(platform, run, model_name="churn", task="binary", estimator=model, **fields).version
    serving = Serving(platform, check_every=3600)  # refreshed by hand below
    serving.start()
    counts = []
    try:
        for change in range(50):
            registry.promote(platform, "churn", other if change % 2 == 0 else champion.version)
            serving._refresh()
            assert serving.predictors["churn"].version.version == (other if change % 2 == 0 else champion.version)
            counts.append(gc.get_freeze_count())
            # another service in this process (the module's HTTP client follows the same alias) may freeze too
            assert abs(sample("ownlens_gc_frozen_objects") - counts[-1]) <= counts[-1] * 0.001
    finally:
        serving.close()
        registry.promote(platform, "churn", champion.version)
    assert max(counts[10:]) <= counts[9] * 1.01, counts


# --- HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(platform):
    from fastapi.testclient import TestClient

    from ownlens_ml.serving.app import create_app

    gc.unfreeze()  # so that test_http_in_process_and_log_agree sees the service's own freeze
    with TestClient(create_app(platform, check_every=0.5), raise_server_exceptions=False) as http:
        yield http


def sample(name: str, labels: dict | None = None) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def logged(settings: Settings, where: str, expected: int, timeout: float = 10.0) -> list:
    from sqlalchemy import text

    from ownlens_ml.db import get_engine

    deadline = time.monotonic() + timeout
    while True:
        with get_engine(settings).connect() as conn:
            rows = conn.execute(text(f"SELECT * FROM ml_model_predictions WHERE {where}")).mappings().all()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_http_in_process_and_log_agree(platform, client, users):
    ids = users[:5]
    response = client.post("/v1/predict/churn", json={"ids": ids})
    assert response.status_code == 200, response.text
    body = response.json()
    local = Predictor(platform, "churn", watch_every=None).predict(ids)
    assert body["version"] == local.version
    assert [p["score"] for p in body["predictions"]] == [r.score for r in local.results]
    rows = logged(platform, f"source = 'online' AND entity_id IN ({','.join(map(str, ids))})", len(ids))
    assert len(rows) >= len(ids)
    row = next(r for r in rows if r["entity_id"] == ids[0])
    assert row["entity_key"] == f'{{"user_id":{ids[0]}}}' and row["version"] == body["version"]
    assert row["score"] == body["predictions"][0]["score"] == row["output"]["score"]
    assert row["features"] == local.results[0].features
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"]["churn"] == body["version"]
    assert gc.get_freeze_count() > 100_000, "what the loads left alive is out of the collector's scans"
    metrics = client.get("/metrics").text
    for name in (
        "ownlens_http_requests_total",
        "ownlens_http_request_seconds_bucket",
        "ownlens_model_version_loaded",
        "ownlens_prediction_log_written_rows_total",
    ):
        assert name in metrics


@pytest.mark.parametrize(
    "body, loc",
    [
        ('{"ids": [1,', ["body", 11]),
        ({"ids": ["7"]}, ["body", "ids", 0]),
        ({"ids": [1.5]}, ["body", "ids", 0]),
        ({"ids": [2**64]}, ["body", "ids", 0]),
        ({"ids": []}, ["body", "ids"]),
        ({"ids": list(range(1001))}, ["body", "ids"]),
        ({"entities": [{"article_id": 1}]}, ["body", "entities", 0]),
        ({"ids": [1], "extra": 2}, ["body", "extra"]),
        ('{"ids": [NaN]}', ["body", "ids", 0]),
        ('{"ids": [Infinity]}', ["body", "ids", 0]),
        ('{"ids": [1e400]}', ["body", "ids", 0]),
        ('{"entities": [{"user_id": -Infinity}]}', ["body", "entities", 0, "user_id"]),
        ('{"ids": [1], "extra": {"deep": [NaN]}}', ["body", "extra"]),
        (b'{"ids": [\xff]}', ["body", 9]),
        ('{"ids": [1], "x": ' + "[" * 40 + "]" * 40 + "}", ["body", 0]),
        ('{"ids": [1], "x": ' + "[" * 100_000 + "]" * 100_000 + "}", ["body", 0]),
    ],
)
def test_bad_requests_are_422_naming_the_field(client, body, loc):
    raw = isinstance(body, (str, bytes))
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if raw else {"json": body}
    for model in ("churn", "chrun") if raw else ("churn",):  # an unknown model's path parses its body first too
        response = client.post(f"/v1/predict/{model}", **kwargs)
        assert response.status_code == 422, response.text
        assert any(error["loc"] == loc for error in response.json()["detail"]), response.json()
    if raw and ("NaN" in str(body) or "Inf" in str(body) or "e400" in str(body)):
        assert any(
            "not a finite number" in e["msg"] or e["loc"] == ["body", "extra"] for e in response.json()["detail"]
        ), response.json()
    if isinstance(body, bytes):
        assert "not UTF-8" in response.json()["detail"][0]["ctx"]["error"]


def test_unknown_model_is_404_listing_the_known_ones(client):
    response = client.post("/v1/predict/chrun", json={"ids": [1]})
    assert response.status_code == 404
    assert "no model 'chrun'" in response.json()["detail"] and "known: churn" in response.json()["detail"]


def test_cold_start_is_answered_and_counted(client):
    before = sample("ownlens_fallbacks_total", {"model": "churn", "reason": "cold_start"})
    response = client.post("/v1/predict/churn", json={"ids": [10**12]})
    assert response.status_code == 200
    answer = response.json()["predictions"][0]
    assert answer["cold_start"] and 0 < answer["score"] < 1
    assert set(answer["feature_age_seconds"].values()) == {None}
    assert sample("ownlens_fallbacks_total", {"model": "churn", "reason": "cold_start"}) == before + 1


def test_every_tabular_model_is_served_and_scores_as_its_pipeline(platform, client, monkeypatch):
    """conversion (one key) and article_performance (composite key, a request-time feature)."""
    from sqlalchemy import text

    from ownlens_ml.db import get_engine
    from ownlens_ml.pipelines import training
    from ownlens_ml.pipelines.training import train

    monkeypatch.setattr(training, "MIN_TEST_POSITIVES", 1)  # this small platform serves, it is not judged

    for name in ("conversion", "article_performance"):
        registry.promote(platform, name, train(platform, name).version.version)
    deadline = time.monotonic() + 20
    while set(client.get("/readyz").json()["models"]) != {"churn", "conversion", "article_performance"}:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.2)
    with get_engine(platform).connect() as conn:
        articles = (
            conn.execute(text("SELECT article_id, author_id FROM articles ORDER BY published_at DESC LIMIT 30"))
            .mappings()
            .all()
        )
    requests = {
        "conversion": {"ids": [1, 2, 3, 10**9]},
        "article_performance": {"entities": [dict(a) for a in articles] + [{"article_id": 10**9, "author_id": 10**9}]},
    }
    now = clock.now()
    for name, body in requests.items():
        response = client.post(f"/v1/predict/{name}", json=body)
        assert response.status_code == 200, response.text
        answers = response.json()["predictions"]
        assert answers[-1]["cold_start"] and not all(a["cold_start"] for a in answers), (name, answers)
        local = Predictor(platform, name, watch_every=None).predict(
            body.get("ids"), entities=body.get("entities"), now=now
        )
        _, model = registry.load_model(platform, name, "champion")
        x = feature_matrix(pd.DataFrame([r.features for r in local.results]), list(model.feature_names_in_))
        kind = get_kind(registry.get_version(platform, name, "champion").task)
        assert np.array_equal(np.array([r.score for r in local.results]), kind.predict(model, x))
    wrong = client.post("/v1/predict/article_performance", json={"ids": [1]})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "ids"]

    # the batch scores the articles that reached their 24-hour mark the day before, keyed by both ids
    from ownlens_ml.models import get_spec
    from ownlens_ml.pipelines.inference import score

    batch = score(platform, "article_performance")
    due = get_spec("article_performance").population(platform, batch.as_of)
    rows = batch_rows(platform, batch.batch_id)
    assert batch.rows == len(rows) == len(due) > 0 and rows["entity_id"].isna().all()
    assert set(rows["entity_key"]) == {f'{{"article_id":{a},"author_id":{b}}}' for a, b in due.itertuples(index=False)}
    assert rows["score"].between(0, 15).all()  # log(1 + first-week page views)


def test_recommendations_without_a_champion_are_the_flagged_fallback(platform, client):
    """No version yet: the popularity-recency ranking of recent reads (version null); then a
    challenger only: its popularity-recency ranking for every reader; never a 404."""
    from ownlens_ml.models.customer.recommendation import recent_prior
    from ownlens_ml.pipelines.training import train

    assert not registry.list_versions(platform, "recommendation")
    first = client.get(f"/v1/recommendations/{10**12}", params={"k": 5, "brand": 1})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["fallback"] and body["version"] is None and body["champion"] is False
    expected = recent_prior(platform).recommend(10**12, 5, brand_id=1, personal=False)
    assert 0 < len(body["articles"]) <= 5
    assert [a["article_id"] for a in body["articles"]] == expected.article_ids.tolist()

    challenger = train(platform, "recommendation", promote=False).version
    assert "champion" not in challenger.aliases
    deadline = time.monotonic() + 20
    while client.get("/v1/recommendations/1").json()["version"] != challenger.version:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    _, model = registry.load_model(platform, "recommendation", challenger.version)
    reader = int(model.user_ids_[len(model.user_ids_) // 2])
    answer = client.get(f"/v1/recommendations/{reader}", params={"k": 5, "brand": 1}).json()
    assert answer["fallback"] and answer["champion"] is False and answer["version"] == challenger.version
    online = store.online_features(platform, "recommendation_v1", {"user_id": [reader]}).frame.iloc[0]
    history = (
        [(int(online["last_article_id"]), int(online["last_engaged_seconds"] or 0))]
        if pd.notna(online["last_article_id"])
        else None
    )
    direct = model.recommend(reader, 5, brand_id=1, history=history, personal=False)
    assert direct.fallback and [a["article_id"] for a in answer["articles"]] == direct.article_ids.tolist()
    unknown = client.get("/v1/recommendations/1", params={"brand": 999})
    assert unknown.status_code == 404 and "no brand 999" in unknown.json()["detail"], unknown.text


def test_recommendations_and_trending_are_served(platform, client):
    from ownlens_ml.pipelines.training import train

    for name in ("recommendation", "trending"):
        registry.promote(platform, name, train(platform, name).version.version)
    deadline = time.monotonic() + 20
    while not {"recommendation", "trending"} <= set(client.get("/readyz").json()["models"]):
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.2)
    _, model = registry.load_model(platform, "recommendation", "champion")
    reader = int(model.user_ids_[len(model.user_ids_) // 2])
    answer = client.get(f"/v1/recommendations/{reader}", params={"k": 5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert not body["fallback"] and body["champion"] and 0 < len(body["articles"]) <= 5
    online = store.online_features(platform, "recommendation_v1", {"user_id": [reader]}).frame.iloc[0]
    history = (
        [(int(online["last_article_id"]), int(online["last_engaged_seconds"] or 0))]
        if pd.notna(online["last_article_id"])
        else None
    )
    brand = int(online["brand_id"]) if pd.notna(online["brand_id"]) else None
    direct = model.recommend(reader, 5, brand_id=brand, history=history)
    assert [a["article_id"] for a in body["articles"]] == direct.article_ids.tolist()

    before = sample("ownlens_fallbacks_total", {"model": "recommendation", "reason": "popularity_recency"})
    unknown = client.get(f"/v1/recommendations/{10**12}", params={"k": 3, "brand": 1}).json()
    assert unknown["fallback"] and len(unknown["articles"]) <= 3
    assert sample("ownlens_fallbacks_total", {"model": "recommendation", "reason": "popularity_recency"}) == before + 1
    for path, params, loc in [
        ("/v1/recommendations/7", {"k": 0}, ["query", "k"]),
        ("/v1/recommendations/7", {"k": 101}, ["query", "k"]),
        ("/v1/recommendations/abc", {}, ["path", "user_id"]),
        ("/v1/trending", {"brand": -1}, ["query", "brand"]),
    ]:
        bad = client.get(path, params=params)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == loc, bad.text
    trending = client.get("/v1/trending", params={"brand": 1})
    assert trending.status_code == 200 and trending.json()["version"] >= 1
    for path in ("/v1/trending", "/v1/recommendations/1"):
        unknown = client.get(path, params={"brand": 999})
        assert unknown.status_code == 404 and "no brand 999; known brands: 1" in unknown.json()["detail"], unknown.text
    assert all(t["brand_id"] in (0, 1) for t in trending.json()["topics"])


def test_segments_are_served(platform, client, users):
    from ownlens_ml.pipelines.segments import online_segments
    from ownlens_ml.pipelines.training import train

    registry.promote(platform, "segmentation", train(platform, "segmentation").version.version)
    deadline = time.monotonic() + 20
    while "segmentation" not in client.get("/readyz").json()["models"]:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.2)
    _, model = registry.load_model(platform, "segmentation", "champion")
    answers = [client.get(f"/v1/segments/{user}") for user in users[:5]]
    assert all(a.status_code == 200 for a in answers), answers[0].text
    assert [a.json()["segment"] for a in answers] == online_segments(platform, model, users[:5])
    unknown = client.get(f"/v1/segments/{10**12}").json()
    assert unknown["cold_start"] and unknown["segment"] == online_segments(platform, model, [10**12])[0]
    bad = client.get("/v1/segments/abc")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "user_id"]


# --- faults ----------------------------------------------------------------------------------


@pytest.fixture
def own_redis(platform, tmp_path):
    """The platform's features in a redis-server of this test's own, and settings that use it."""
    from serving_platform import OwnRedis, with_redis

    server = OwnRedis(tmp_path)
    settings = with_redis(platform, server.url)
    server.materialize = lambda: _materialize(settings)
    server.materialize()
    yield server, settings
    subprocess.run(["kill", "-CONT", str(server.pid)], check=False)
    server.stop()


def _materialize(settings: Settings) -> None:
    from ownlens_ml.features.quality import newest_snapshot, utc_midnight

    end = utc_midnight(newest_snapshot(settings))
    store.materialize(settings, end - timedelta(days=30), end)


def timed_post(http, path: str, body: dict):
    started = time.perf_counter()
    response = http.post(path, json=body)
    return response, time.perf_counter() - started


def test_redis_down_is_503_in_bounded_time_and_recovers_without_restart(own_redis, users):
    from fastapi.testclient import TestClient

    from ownlens_ml.serving.app import create_app

    server, settings = own_redis
    with TestClient(create_app(settings, check_every=0.2)) as http:
        first, _ = timed_post(http, "/v1/predict/churn", {"ids": users[:3]})
        assert first.status_code == 200 and http.get("/readyz").status_code == 200

        server.stop()
        down, seconds = timed_post(http, "/v1/predict/churn", {"ids": users[:3]})
        assert down.status_code == 503 and f"127.0.0.1:{server.port}" in down.json()["detail"]
        assert seconds < 2.0
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["online_store"] is False

        # a Redis that accepts connections but never answers: the read timeout bounds the wait
        server.start()
        subprocess.run(["kill", "-STOP", str(server.pid)], check=True)
        hung, seconds = timed_post(http, "/v1/predict/churn", {"ids": users[:3]})
        assert hung.status_code == 503 and seconds < 3.0
        subprocess.run(["kill", "-CONT", str(server.pid)], check=True)

        server.materialize()  # the new server started empty
        again, _ = timed_post(http, "/v1/predict/churn", {"ids": users[:3]})
        assert again.status_code == 200
        assert [p["score"] for p in again.json()["predictions"]] == [p["score"] for p in first.json()["predictions"]]
        assert http.get("/readyz").status_code == 200


def test_a_full_queue_or_a_database_outage_drops_log_rows_and_counts_them(platform, users):
    import dataclasses

    from serving_platform import free_port

    from ownlens_ml.serving.prediction_log import PredictionLog

    prediction = Predictor(platform, "churn", watch_every=None).predict(users[:2])
    down = dataclasses.replace(platform, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    before = sample("ownlens_prediction_log_dropped_rows_total", {"reason": "database"})
    outage = PredictionLog(down, flush_seconds=0.05)
    started = time.perf_counter()
    for _ in range(5):
        outage.record(prediction)
    assert time.perf_counter() - started < 0.05  # recording never waits for the database
    outage.close()
    assert sample("ownlens_prediction_log_dropped_rows_total", {"reason": "database"}) == before + 10

    full_before = sample("ownlens_prediction_log_dropped_rows_total", {"reason": "queue_full"})
    tiny = PredictionLog(down, max_queue=1, flush_seconds=0.05)
    for _ in range(200):
        tiny.record(prediction)
    tiny.close()
    assert sample("ownlens_prediction_log_dropped_rows_total", {"reason": "queue_full"}) > full_before


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(platform):
    """Requests generated from the service's own OpenAPI document, valid and invalid: no 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode

    from ownlens_ml.serving.app import create_app

    app = create_app(platform)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict/{model}", "/healthz", "/readyz", "/metrics"}
    strategy = st.one_of(
        [
            op.as_strategy(generation_mode=mode)
            for op in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    )
    statuses = []

    @hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(strategy)
    def check(case):
        response = case.call_and_validate(checks=[not_a_server_error])
        statuses.append(response.status_code)

    check()  # schemathesis runs the app's lifespan once and keeps it for the process
    assert {200, 422} <= set(statuses), statuses


# --- a real uvicorn process -----------------------------------------------------------------


def serve(settings: Settings, port: int, *options: str, **env: str) -> subprocess.Popen:
    import os
    import sys
    from pathlib import Path

    # a fresh shell's environment: not the variables importing Feast set in this test process
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    variables = (
        inherited
        | {
            "OWNLENS_HOME": str(settings.home),
            "OWNLENS_DATABASE_URL": settings.database_url,
            "OWNLENS_REDIS_URL": settings.redis_url,
            "OWNLENS_FEAST_PROJECT": settings.project,
            "OWNLENS_SERVE_CHECK_SECONDS": "0.5",
        }
        | env
    )
    cli = str(Path(sys.executable).with_name("ownlens-ml"))
    return subprocess.Popen(
        [cli, "--profile", "production", "serve", "--port", str(port), *options],
        env=variables,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(port: int, path: str, status: int, timeout: float = 60.0):
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
            if response.status_code == status:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{path} never answered {status}")


def test_registry_unreachable_at_start_up_means_not_ready_with_one_log_line(platform):
    import dataclasses
    import signal

    from serving_platform import free_port

    port = free_port()
    down = dataclasses.replace(platform, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    process = serve(down, port)
    try:
        wait_for(port, "/healthz", 200)
        ready = wait_for(port, "/readyz", 503)
        assert any("registry unreachable" in reason for reason in ready.json()["reasons"])
        time.sleep(1.5)  # three more attempts to load
        assert wait_for(port, "/readyz", 503).json()["ready"] is False
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if "registry is unreachable" in line]
    assert len(lines) == 1, stderr
    assert "127.0.0.1" in lines[0] and "Traceback" not in stderr


def test_sigterm_finishes_requests_in_flight_and_flushes_the_log(own_redis, users):
    import signal

    import httpx
    from serving_platform import free_port

    server, settings = own_redis
    port = free_port()
    process = serve(settings, port, OWNLENS_SERVE_REDIS_TIMEOUT="10")
    marker = users[7]
    try:
        wait_for(port, "/readyz", 200)
        started = clock.now()
        subprocess.run(["kill", "-STOP", str(server.pid)], check=True)  # the next request waits on Redis
        answer = {}
        caller = threading.Thread(
            target=lambda: answer.update(
                response=httpx.post(f"http://127.0.0.1:{port}/v1/predict/churn", json={"ids": [marker]}, timeout=30)
            )
        )
        caller.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None  # still finishing the request
        subprocess.run(["kill", "-CONT", str(server.pid)], check=True)
        caller.join(timeout=30)
        assert answer["response"].status_code == 200
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    rows = logged(
        settings,
        f"entity_id = {marker} AND source = 'online' AND predicted_at >= '{started.isoformat()}'",
        1,
        timeout=0,
    )
    assert len(rows) == 1 and rows[0]["score"] == answer["response"].json()["predictions"][0]["score"]


def stop(process: subprocess.Popen) -> str:
    """SIGTERM a serve process and wait for it; its stderr."""
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_of_a_real_serve_process_hold_the_requests(platform, users, workers):
    """Importing Feast sets PROMETHEUS_MULTIPROC_DIR: /metrics must still read where the values live."""
    import re

    import httpx
    from serving_platform import free_port

    port = free_port()
    process = serve(platform, port, "--workers", str(workers))
    try:
        wait_for(port, "/readyz", 200, timeout=120)
        for _ in range(3 * workers):  # every worker (likely) answers one
            assert httpx.post(f"http://127.0.0.1:{port}/v1/predict/churn", json={"ids": users[:2]}).status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        stderr = stop(process)
    assert metrics.status_code == 200 and metrics.text, stderr
    counted = re.findall(r'^ownlens_http_requests_total\{endpoint="predict",status="200"\} (\S+)$', metrics.text, re.M)
    assert counted and float(counted[0]) == 3 * workers, metrics.text[:2000]
    assert re.search(r'^ownlens_model_version_loaded\{model="churn"\} [1-9]', metrics.text, re.M)
    assert re.search(r"^ownlens_gc_frozen_objects(\{[^}]*\})? [1-9]", metrics.text, re.M)


@pytest.mark.browser
def test_docs_render_the_operations_offline_in_headless_chromium(platform, tmp_path):
    """Swagger UI's script and styles come from the package: the page renders with no network."""
    import shutil

    import httpx
    from serving_platform import free_port

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the browser test needs Chromium: apt-get install -y chromium"
    port = free_port()
    process = serve(platform, port)
    try:
        wait_for(port, "/healthz", 200, timeout=120)
        page = httpx.get(f"http://127.0.0.1:{port}/docs").text
        dom = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"http://127.0.0.1:{port}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    finally:
        stop(process)
    assert "http" not in page.replace(f"http://127.0.0.1:{port}", "").split("<body>")[0].lower().replace(
        "http-equiv", ""
    ), page  # no asset from elsewhere
    assert "/docs/assets/swagger-ui-bundle.js" in page
    for path in ("/v1/predict/{model}", "/v1/recommendations/{user_id}", "/healthz", "/metrics"):
        assert f'data-path="{path}"' in dom, dom[:3000]
    assert "OwnLens ML prediction service" in dom


def test_a_paused_redis_holds_threads_not_the_event_loop(own_redis, users):
    """Concurrent requests against a Redis that accepts and never answers: each waits in its own
    thread for its own timeout and gets 503, while /healthz answers before any of them."""
    import httpx
    from serving_platform import free_port

    server, settings = own_redis
    port = free_port()
    process = serve(settings, port, OWNLENS_SERVE_REDIS_TIMEOUT="1")
    order, answers = [], {}
    lock = threading.Lock()

    def ask(name: str, method: str, path: str, **kwargs) -> None:
        response = httpx.request(method, f"http://127.0.0.1:{port}{path}", timeout=60, **kwargs)
        with lock:
            order.append(name)
            answers[name] = response

    try:
        wait_for(port, "/readyz", 200, timeout=120)
        subprocess.run(["kill", "-STOP", str(server.pid)], check=True)
        calls = [
            threading.Thread(
                target=ask, args=(f"predict{i}", "POST", "/v1/predict/churn"), kwargs={"json": {"ids": users[:2]}}
            )
            for i in range(8)
        ]
        for call in calls:
            call.start()
        time.sleep(0.3)  # the requests reach the server and wait on Redis
        ask("healthz", "GET", "/healthz")
        for call in calls:
            call.join(timeout=60)
        subprocess.run(["kill", "-CONT", str(server.pid)], check=True)
        after = httpx.post(f"http://127.0.0.1:{port}/v1/predict/churn", json={"ids": users[:2]}, timeout=10)
    finally:
        subprocess.run(["kill", "-CONT", str(server.pid)], check=False)
        stop(process)
    assert order[0] == "healthz" and answers["healthz"].status_code == 200, order
    assert {name: r.status_code for name, r in answers.items() if name != "healthz"} == {
        f"predict{i}": 503 for i in range(8)
    }
    assert after.status_code == 200


# --- batch scoring --------------------------------------------------------------------------


def batch_rows(settings: Settings, batch_id: str) -> pd.DataFrame:
    from sqlalchemy import text

    from ownlens_ml.db import get_engine

    with get_engine(settings).connect() as conn:
        return pd.read_sql_query(
            text("SELECT * FROM ml_model_predictions WHERE batch_id = :b"), conn, params={"b": batch_id}
        )


def test_batch_in_process_and_http_agree_for_the_same_feature_values(platform, client, users):
    from ownlens_ml.pipelines.inference import default_as_of, score

    result = score(platform, "churn")
    assert result.as_of == default_as_of(platform)
    rows = batch_rows(platform, result.batch_id).set_index("entity_id")
    population = store.training_set(
        platform, "churn_v1", pd.DataFrame({"user_id": users, "event_timestamp": pd.Timestamp(result.as_of)})
    )
    online = Predictor(platform, "churn", watch_every=None).predict(users)
    http = client.post("/v1/predict/churn", json={"ids": users}).json()["predictions"]
    compared = 0
    for i, user in enumerate(users):
        offline = population.frame.iloc[i][population.features].astype(float)
        served = pd.Series(online.results[i].features, dtype=float)[population.features]
        if user not in rows.index or not np.allclose(offline, served, equal_nan=True, rtol=0, atol=0):
            continue  # not in the population at as-of, or different values: nothing to compare
        assert rows.loc[user, "score"] == online.results[i].score == http[i]["score"]
        assert rows.loc[user, "version"] == online.version
        compared += 1
    assert compared >= len(users) // 2


def test_batch_scoring_is_idempotent_and_an_interrupted_run_leaves_nothing(platform, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    from ownlens_ml.models import get_spec
    from ownlens_ml.pipelines import inference

    as_of = inference.default_as_of(platform) - timedelta(days=7)
    expected = len(get_spec("churn").population(platform, as_of))
    real, calls = store.training_set, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the run were stopped between two chunks
        return real(*args, **kwargs)

    monkeypatch.setattr(inference.store, "training_set", failing)
    with pytest.raises(KeyboardInterrupt):
        inference.score(platform, "churn", as_of, chunk_rows=100)
    monkeypatch.setattr(inference.store, "training_set", real)
    version = registry.get_version(platform, "churn", "champion").version
    batch_id = inference.batch_key("churn", version, as_of)
    assert len(batch_rows(platform, batch_id)) == 0

    env = {
        "OWNLENS_HOME": str(platform.home),
        "OWNLENS_DATABASE_URL": platform.database_url,
        "OWNLENS_REDIS_URL": platform.redis_url,
        "OWNLENS_FEAST_PROJECT": platform.project,
    }
    cli = str(Path(sys.executable).with_name("ownlens-ml"))
    done = subprocess.run(
        [cli, "--profile", "production", "score", "churn", "--as-of", f"{as_of:%Y-%m-%d}"],
        env=__import__("os").environ | env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"scored {expected:,} entities" in done.stdout
    for rerun in (False, True):  # the CLI rerun completed the batch; another run replaces it
        if rerun:
            assert inference.score(platform, "churn", as_of).rows == expected
        rows = batch_rows(platform, batch_id)
        assert len(rows) == expected and rows["entity_key"].is_unique
        assert set(rows["version"]) == {version} and (rows["as_of"] == pd.Timestamp(as_of)).all()
