"""Impressions: generated slates agree with the reads, the truth knows the click probability, the contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ownlens_ml.data import impressions
from ownlens_ml.data.generator import GeneratorConfig, iter_platform
from ownlens_ml.data.importer import contract
from ownlens_ml.db import schema

SMALL = GeneratorConfig(users=300, days=20, brands=2, seed=3)


def _platform(config: GeneratorConfig) -> dict[str, pd.DataFrame]:
    parts: dict[str, list] = {}
    for name, item in iter_platform(config):
        if name in ("events", "impressions", "truth:impressions", "sessions"):
            parts.setdefault(name, []).append(item)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


def test_clicks_are_the_sessions_reads_and_the_truth_knows_their_chance():
    p = _platform(SMALL)
    shown, truth, ev = p["impressions"], p["truth:impressions"], p["events"]
    reads = ev[ev["event_type"].isin(["page_view", "paywall_hit"]) & ev["article_id"].notna()]
    reads = reads[["session_id", "article_id"]].astype("int64").drop_duplicates()
    clicks = shown.loc[shown["clicked"], ["impression_id", "article_id"]]
    pairs = set(zip(reads["session_id"], reads["article_id"]))
    assert set(zip(clicks["impression_id"], clicks["article_id"])) == pairs
    assert not shown.duplicated(["impression_id", "article_id"]).any()
    assert not shown.duplicated(["impression_id", "position"]).any()
    slate = shown.groupby("impression_id")["clicked"].agg(["size", "sum"])
    assert (slate["size"] - slate["sum"] <= np.maximum(impressions.SLATE_SIZE - slate["sum"], 0)).all()
    assert set(shown["surface"]) <= set(schema.SURFACES)
    sessions = p["sessions"].set_index("session_id")
    assert (shown["shown_at"].to_numpy() == sessions.loc[shown["impression_id"], "started_at"].to_numpy()).all()
    both = shown.merge(truth, on=["impression_id", "position"], validate="one_to_one")
    assert len(both) == len(shown)
    # calibrated: the mean true probability is the click-through rate, within sampling noise
    ctr, se = both["clicked"].mean(), np.sqrt(both["clicked"].mean() * (1 - both["clicked"].mean()) / len(both))
    assert abs(both["click_probability"].mean() - ctr) < 4 * se + 0.01
    assert roc_auc_score(both["clicked"], both["click_probability"]) > 0.75


def test_impressions_have_their_own_stream_and_repeat():
    a, b = _platform(SMALL), _platform(SMALL)
    pd.testing.assert_frame_equal(a["impressions"], b["impressions"])
    other = _platform(GeneratorConfig(users=300, days=20, brands=2, seed=4))
    assert not a["impressions"]["article_id"].equals(other["impressions"]["article_id"])


def test_served_recommendations_become_recommendation_impressions():
    log = pd.DataFrame(
        {
            "prediction_id": [5],
            "entity_id": [7],
            "as_of": [pd.Timestamp("2026-12-01", tz="UTC")],
            "output": [{"articles": [{"article_id": 11}, {"article_id": 12}], "fallback": False}],
        }
    )
    rows = impressions.from_prediction_log(log, clicked={(7, 12)})
    assert rows["surface"].tolist() == ["recommendation", "recommendation"]
    assert rows["position"].tolist() == [1, 2] and rows["clicked"].tolist() == [False, True]
    assert rows["impression_id"].nunique() == 1 and rows["impression_id"].iat[0] > impressions.RECOMMENDATION_ID_OFFSET


def test_impressions_are_importable_with_their_rules():
    spec = contract("impressions")
    assert spec.columns["surface"].allowed == schema.SURFACES
    assert spec.columns["position"].low == 1
    assert spec.columns["user_id"].references == "users.user_id"
