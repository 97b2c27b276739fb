"""The ALS recommender: filters, fold-in and fallback, quality against baselines and the oracle, safe artifacts."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from test_models import cli, platform
from test_registry import _tamper

from ownlens_ml import registry
from ownlens_ml.db import get_engine
from ownlens_ml.db.schema import ml_model_registry
from ownlens_ml.errors import ArtifactIntegrityError, RegistryError
from ownlens_ml.models import kinds_artifacts
from ownlens_ml.models.customer.recommendation import Recommender, RecommenderParams
from ownlens_ml.pipelines.training import train
from ownlens_ml.settings import Settings

T = pd.Timestamp("2026-03-10", tz="UTC")
HOUR = 3600


def _hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two brands; brand 1 readers 1-40 split into two tastes (articles 1-5 vs 6-10); brand 2 apart."""
    now = int(T.timestamp())
    catalogue = pd.DataFrame(
        {
            "article_id": np.arange(1, 16),
            "brand_id": [1] * 10 + [2] * 3 + [1, 1],
            # 14 is a week old (too old to show), 15 is an hour old and unread
            "published_at": [now - 20 * HOUR] * 13 + [now - 7 * 24 * HOUR, now - HOUR],
        }
    )
    rows = []
    for user in range(1, 41):
        taste = range(1, 6) if user <= 20 else range(6, 11)
        for article in taste:
            if (user + article) % 5:  # each reader misses one piece of their taste
                rows.append((user, article, 60, now - 2 * HOUR))
        rows.append((user, 14, 30, now - 100 * HOUR))
    for user in range(41, 46):
        rows += [(user, a, 40, now - 3 * HOUR) for a in (11, 12, 13)]
    reads = pd.DataFrame(rows, columns=["user_id", "article_id", "seconds", "last_at"]).assign(reads=1)
    return reads, catalogue


@pytest.fixture(scope="module")
def fitted() -> Recommender:
    reads, catalogue = _hand_made()
    return Recommender(RecommenderParams(factors=4, iterations=30, threads=1)).fit(reads, catalogue, T)


def test_filters_read_old_and_other_brand_articles(fitted):
    reads, _ = _hand_made()
    for user in (1, 25):
        ids, scores, fallback = fitted.recommend(user, k=10)
        read = set(reads.loc[reads["user_id"] == user, "article_id"])
        assert not fallback and len(ids) > 0
        assert not set(ids) & read, "already-read articles are never shown"
        assert 14 not in ids, "older than max_age_hours"
        assert set(ids) <= set(range(1, 11)) | {15}, "only the reader's brand"
        assert np.all(np.diff(scores) <= 0)
    # the one piece of their taste a reader missed comes first
    assert fitted.recommend(1, k=1).article_ids[0] in range(1, 6)
    assert fitted.recommend(25, k=1).article_ids[0] in range(6, 11)
    assert len(fitted.recommend(41, k=10).article_ids) == 0, "brand 2 has nothing reader 41 has not read"
    assert set(fitted.recommend(1, k=10, brand_id=2).article_ids) <= {11, 12, 13}


def test_unknown_readers_get_the_flagged_fallback_and_history_is_folded_in(fitted):
    cold = fitted.recommend(999, k=5, brand_id=1)
    assert cold.fallback and len(cold.article_ids) == 5
    assert 15 in fitted.recommend(999, k=20, brand_id=1).article_ids, (
        "a new article without reads reaches readers through the fallback"
    )
    folded = fitted.recommend(999, k=2, brand_id=1, history=[(6, 60), (7, 60), (8, 60)])
    assert not folded.fallback
    assert set(folded.article_ids) == {9, 10}, "the folded-in reader gets the rest of their taste, not what they read"
    later = T + pd.Timedelta(hours=2)
    extended = kinds_artifacts.load_als_npz(kinds_artifacts.dump_als_npz(fitted)).extend_catalogue(
        pd.DataFrame({"article_id": [77], "brand_id": [1], "published_at": [int(later.timestamp()) - 600]})
    )
    assert 77 in extended.recommend(999, k=20, brand_id=1, now=later).article_ids, "published since training"
    assert 77 not in extended.recommend(1, k=10, now=later).article_ids, "no factors: not in ALS answers"
    scores = fitted.score_items(999, [6, 9, 1, 77], history=[6, 7, 8])
    assert scores[1] > scores[2] and np.isnan(scores[3])


def test_artifact_round_trip_answers_identically(fitted):
    data = kinds_artifacts.dump_als_npz(fitted)
    loaded = kinds_artifacts.load_als_npz(data)
    for user, history in ((1, None), (25, None), (999, [6, 7]), (999, None)):
        a, b = fitted.recommend(user, 5, history=history), loaded.recommend(user, 5, history=history)
        np.testing.assert_array_equal(a.article_ids, b.article_ids)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
        assert a.fallback == b.fallback


def test_npz_with_a_pickled_member_is_refused(fitted):
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(kinds_artifacts.dump_als_npz(fitted))) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        extra = io.BytesIO()
        np.save(extra, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
        dst.writestr("extra.npy", extra.getvalue())
    with pytest.raises(RegistryError, match="als-npz"):
        kinds_artifacts.load_als_npz(buffer.getvalue())


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Settings:
    """A generated platform (3,000 readers, 90 days, seed 7) for this module's quality tests."""
    settings = Settings(profile="local", home=tmp_path_factory.mktemp("generated") / "home", project="generated")
    platform(settings, users=3_000, days=90)
    return settings


@pytest.mark.slow
def test_recommender_beats_popularity_and_recency_and_nears_the_oracle(generated):
    """On a generated platform: NDCG@10 at least 10 % above the better of popularity and recency,
    below the oracle with the distance reported, and readers folded in score above the fallback."""
    result = train(generated, "recommendation")
    m = result.evaluation.metrics
    best_baseline = max(m["popularity"]["ndcg@10"], m["recency"]["ndcg@10"])
    assert m["model"]["ndcg@10"] >= 1.10 * best_baseline, m
    assert m["oracle"]["ndcg@10"] > m["model"]["ndcg@10"], m
    assert any("distance to the oracle" in note for note in result.evaluation.notes)
    assert m["model"]["fold_in_ndcg@10"] > m["model"]["fallback_ndcg@10"], m["model"]
    assert result.promoted and (result.report.parent / "ndcg_at_k.png").exists()


@pytest.mark.slow
def test_train_promote_evaluate_and_list_from_the_cli(generated):
    out = cli(generated, "train", "recommendation", "--no-promote")
    assert "registered recommendation v2 as challenger" in out and "ndcg@10" in out
    # the same reads give the same factors: v2 does not beat champion v1, so the gate refuses it
    refused = cli(generated, "registry", "promote", "recommendation", "2", ok=False)
    assert "refused: ndcg@10" in refused and "champion_v1" in refused
    cli(generated, "registry", "promote", "recommendation", "2", "--force")
    assert registry.get_version(generated, "recommendation", "champion").version == 2
    listed = cli(generated, "registry", "list")
    assert "recommendation" in listed and "ranking" in listed
    assert "oracle" in cli(generated, "evaluate", "recommendation")


def test_a_tampered_factor_file_is_refused(generated):
    if not registry.list_versions(generated, "recommendation"):  # the CLI test (slow) may not have run
        train(generated, "recommendation")
    with get_engine(generated).connect() as conn:
        blob = conn.execute(
            select(ml_model_registry.c.artifact).where(
                ml_model_registry.c.model_name == "recommendation", ml_model_registry.c.version == 1
            )
        ).scalar_one()
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["item_factors"] = arrays["item_factors"] * 1.01
    forged = io.BytesIO()
    np.savez(forged, **arrays)
    _tamper(generated, artifact=forged.getvalue())
    with pytest.raises(ArtifactIntegrityError, match="recommendation v1.*checksum mismatch"):
        registry.load_model(generated, "recommendation", 1)
