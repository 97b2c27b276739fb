"""Segmentation: the estimator's conventions, recovery of the generator's latent segments, names
stable across retrains, online assignment equal to batch, and the write-back view through Feast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ownlens_ml import registry
from ownlens_ml.errors import ValidationError
from ownlens_ml.models.customer.segmentation import (
    OCCASIONAL,
    SEGMENT_FEATURES,
    ReaderSegmentation,
    assign,
)


def habits_frame(n_per: int = 120, seed: int = 0) -> pd.DataFrame:
    """Three plainly different reader groups plus a few one-visit readers."""
    rng = np.random.default_rng(seed)

    def group(sessions, minutes, weekend, newsletter):
        n = n_per
        return pd.DataFrame(
            {
                "sessions_30d": rng.poisson(sessions, n) + 2,
                "minutes_per_session_30d": rng.gamma(4, minutes / 4, n),
                "avg_scroll_depth_30d": rng.beta(3, 3, n),
                "mobile_share_30d": rng.beta(2, 2, n),
                "weekend_share_30d": rng.beta(weekend * 10, (1 - weekend) * 10, n),
                "morning_share_30d": rng.beta(2, 2, n),
                "newsletter_subscriber": (rng.random(n) < newsletter).astype(float),
                "category_diversity_30d": rng.poisson(3, n).astype(float),
                "pageviews_30d": rng.poisson(10, n),
            }
        )

    frame = pd.concat([group(25, 0.5, 0.2, 0.1), group(6, 3.0, 0.7, 0.1), group(8, 1.0, 0.15, 0.95)], ignore_index=True)
    once = frame.head(10).assign(sessions_30d=1)
    return pd.concat([frame, once], ignore_index=True)


def test_estimator_follows_scikit_learn_conventions():
    x = habits_frame()
    model = ReaderSegmentation(k_min=2, k_max=5, random_state=3)
    with pytest.raises(NotFittedError):
        model.predict(x)
    assert clone(model).get_params() == model.get_params()
    assert model.fit(x) is model
    names = model.predict(x)
    assert len(set(model.segment_names_)) == model.n_segments_ == 3  # three groups, three segments
    assert set(names[:-10]) == set(model.segment_names_) and set(names[-10:]) == {OCCASIONAL}
    assert OCCASIONAL not in model.segment_names_
    assert set(model.k_curve_) == set(range(2, 6)) and model.n_segments_ in model.k_curve_
    profile = model.profile()
    assert list(profile.index) == model.segment_names_ and profile["share"].sum() == pytest.approx(1.0)
    # the weekend group's centroid is the one named after weekends
    weekend = names[x.index[120:240]]
    assert pd.Series(weekend).mode()[0].endswith("weekend reader")
    # feature order and extra columns do not matter; a missing habit is named
    np.testing.assert_array_equal(assign(model, x[list(reversed(x.columns))]), names)
    with pytest.raises(ValidationError, match="weekend_share_30d"):
        model.predict(x.drop(columns="weekend_share_30d"))


def test_names_follow_centroids_not_cluster_ids():
    x = habits_frame()
    first = ReaderSegmentation(k_min=2, k_max=5, random_state=1).fit(x)
    again = ReaderSegmentation(k_min=2, k_max=5, random_state=99).fit(
        x.sample(frac=1.0, random_state=5), previous=first
    )
    assert all(again.inherited_)
    assert np.mean(again.predict(x) == first.predict(x)) >= 0.98
    assert sorted(again.segment_names_) == sorted(first.segment_names_)


def test_too_few_readers_is_one_clear_error():
    with pytest.raises(ValidationError, match="at least 80 readers"):
        ReaderSegmentation().fit(habits_frame(n_per=10))


def test_artifact_round_trips_through_the_registry_allowlist():
    x = habits_frame()
    model = ReaderSegmentation(k_min=2, k_max=4).fit(x)
    fmt, blob = registry.dump_estimator(model)
    import hashlib

    loaded = registry.load_estimator(fmt, blob, hashlib.sha256(blob).hexdigest())
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.segment_names_ == model.segment_names_
    assert set(SEGMENT_FEATURES) <= set(loaded.feature_names_in_)


# --- on a generated platform --------------------------------------------------------------

from test_models import cli, platform  # noqa: E402

from ownlens_ml.features import store  # noqa: E402
from ownlens_ml.models.baselines import feature_matrix  # noqa: E402
from ownlens_ml.models.customer.segmentation import segment_readers  # noqa: E402


def readers_at(settings, as_of=None) -> pd.DataFrame:
    readers = segment_readers(settings, as_of)
    frame = store.training_set(settings, "segmentation_v1", readers).frame
    return frame


@pytest.mark.slow
def test_segments_recover_the_latent_segments_and_survive_a_reseed(local_settings):
    """3,000 readers x 90 days (seed 7): about 1,600 readers have 2+ sessions in the last 30 days."""
    from ownlens_ml.pipelines.training import train

    platform(local_settings, users=3_000, days=90)
    result = train(local_settings, "segmentation")
    metrics = result.evaluation.metrics
    assert metrics["model"]["adjusted_rand"] >= 0.6, metrics
    assert metrics["oracle"]["adjusted_rand"] == 1.0
    assert metrics["model"]["segments"] == result.evaluation.extras["k"]
    _, champion = registry.load_model(local_settings, "segmentation", result.version.version)
    x = feature_matrix(readers_at(local_settings), list(champion.feature_names_in_))
    reseeded = ReaderSegmentation(random_state=12345).fit(x, previous=champion)
    assert np.mean(reseeded.predict(x) == champion.predict(x)) >= 0.9
    assert sorted(reseeded.segment_names_) == sorted(champion.segment_names_)


def test_online_assignment_equals_batch_and_the_written_view_reads_through_feast(any_settings):
    from ownlens_ml.pipelines.segments import load_segmenter, online_segments, write_segments
    from ownlens_ml.pipelines.training import train

    platform(any_settings, users=800, days=70)
    version = train(any_settings, "segmentation").version
    frame = readers_at(any_settings)
    t = frame["event_timestamp"].iloc[0]
    entry, model = load_segmenter(any_settings, version.version)
    batch = assign(model, frame)
    written = write_segments(any_settings, version.version)
    assert written.as_of == t and written.version == version.version
    assert written.readers >= len(frame) and sum(written.counts.values()) == written.readers

    store.materialize(any_settings, (t - pd.Timedelta(days=2)).to_pydatetime(), t.to_pydatetime())
    ids = [int(i) for i in frame["user_id"].iloc[::7]]
    expected = dict(zip(frame["user_id"], batch))
    assert online_segments(any_settings, model, ids) == [expected[i] for i in ids]

    fs = store.feature_store(any_settings)
    online = fs.get_online_features(
        features=["user_segment:segment_name", "user_segment:segment_model_version"],
        entity_rows=[{"user_id": i} for i in ids],
    ).to_dict()
    assert online["segment_name"] == [expected[i] for i in ids]
    assert set(online["segment_model_version"]) == {version.version}
    history = fs.get_historical_features(
        entity_df=frame[["user_id", "event_timestamp"]].iloc[::7], features=["user_segment:segment_name"]
    ).to_df()
    assert dict(zip(history["user_id"], history["segment_name"])) == {i: expected[i] for i in ids}
    # writing again replaces the rows stamped T instead of adding a second copy
    assert write_segments(any_settings, version.version).readers == written.readers


@pytest.mark.slow
def test_train_evaluate_list_write_and_show_from_the_cli(local_settings):
    import json

    platform(local_settings, users=600, days=100)
    trained = cli(local_settings, "train", "segmentation")
    assert (
        "silhouette" in trained and "adjusted_rand" in trained and "registered segmentation v1 as champion" in trained
    )
    assert "roc_auc" not in trained
    again = cli(local_settings, "train", "segmentation")  # same data, same seed: same model, not better
    assert "registered segmentation v2 as challenger" in again and "does not beat champion_v1" in again
    assert "name_stability" in cli(local_settings, "evaluate", "segmentation", "--version", "2")
    listed = cli(local_settings, "registry", "list", "segmentation")
    assert "clustering" in listed and "silhouette 0." in listed
    written = cli(local_settings, "segments", "write")
    assert "reader segments of segmentation v1" in written
    frame = readers_at(local_settings)
    store.materialize(
        local_settings,
        (frame["event_timestamp"].iloc[0] - pd.Timedelta(days=2)).to_pydatetime(),
        frame["event_timestamp"].iloc[0].to_pydatetime(),
    )
    user = int(frame["user_id"].iloc[0])
    _, model = registry.load_model(local_settings, "segmentation", "champion")
    assert f"{user}: {assign(model, frame.head(1))[0]} (segmentation v1)" in cli(
        local_settings, "segments", "show", str(user)
    )
    shown = cli(local_settings, "segments", "show", str(user), "--json")
    assert json.loads(next(line for line in shown.splitlines() if line.startswith("["))) == [
        {"user_id": user, "segment": assign(model, frame.head(1))[0], "version": 1}
    ]


def test_the_user_segment_view_declares_the_table_columns():
    import importlib
    import sys
    from pathlib import Path

    from feast.types import Int64, String

    from ownlens_ml.db.schema import customer_user_segments

    repo = Path(__file__).resolve().parent.parent / "feature_repo"
    sys.path.insert(0, str(repo))
    try:
        view = importlib.import_module("segment_features").user_segment_fv
    finally:
        sys.path.remove(str(repo))
        for name in ("segment_features", "data_sources", "entities"):
            sys.modules.pop(name, None)
    declared = {f.name: f.dtype for f in view.schema if f.name != "user_id"}
    assert declared == {"segment_name": String, "segment_model_version": Int64}
    assert set(declared) | {"user_id", "event_timestamp"} == set(customer_user_segments.columns.keys())
    assert all(f.description for f in view.schema if f.name in declared)
