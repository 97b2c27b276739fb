"""Snapshots, point-in-time training sets, online vectors and quality checks, in both profiles."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from tiny_platform import load_tiny_platform, ts

from ownlens_ml import clock
from ownlens_ml.db import get_engine, init_db
from ownlens_ml.errors import DataQualityError, UnknownFeatureServiceError, ValidationError
from ownlens_ml.features import store
from ownlens_ml.features.activity import push_page_view
from ownlens_ml.features.quality import check_snapshots
from ownlens_ml.features.snapshots import build_snapshots


@pytest.fixture
def built(any_settings):
    """The tiny platform, snapshots built and the repo applied, in one profile."""
    init_db(any_settings)
    load_tiny_platform(get_engine(any_settings))
    build_snapshots(any_settings)
    store.apply_repo(any_settings)
    return any_settings


def snapshot_table(settings, name="customer_user_features") -> pd.DataFrame:
    if settings.is_production:
        with get_engine(settings).connect() as conn:
            frame = pd.read_sql_query(text(f"SELECT * FROM {name}"), conn)
    else:
        frame = pd.read_parquet(settings.offline_dir / f"{name}.parquet")
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


def churn_row(settings, user_id, when) -> pd.Series:
    entity = pd.DataFrame({"user_id": [user_id], "event_timestamp": [when]})
    return store.training_set(settings, "churn_v1", entity).frame.iloc[0]


def test_snapshot_values_match_hand_computation(built):
    snap = snapshot_table(built).set_index(["user_id", "event_timestamp"])
    day5 = snap.loc[(1, ts(5))]
    assert (day5.sessions_1d, day5.pageviews_1d, day5.sessions_7d, day5.pageviews_7d) == (1, 5, 3, 10)
    assert day5.category_diversity_30d == 3
    assert day5.days_since_last_visit == pytest.approx(1 / 86400)
    day4 = snap.loc[(1, ts(4))]
    assert (day4.sessions_1d, day4.sessions_7d, day4.category_diversity_30d) == (0, 2, 2)
    assert (
        snap.loc[(3, ts(5))].days_since_last_visit != snap.loc[(3, ts(5))].days_since_last_visit
    )  # NaN: never visited


def test_a_value_that_changes_one_second_after_the_label_does_not_leak(built):
    # The session at day 4 23:59:59 first shows in the snapshot stamped day 5 00:00.
    assert churn_row(built, 1, ts(5)).sessions_7d == 3
    assert churn_row(built, 1, ts(5, seconds=-1)).sessions_7d == 2
    assert churn_row(built, 1, ts(4, 23, 3598)).sessions_7d == 2


def test_values_older_than_the_ttl_come_back_null(built):
    newest = snapshot_table(built).event_timestamp.max()  # daily views: TTL 2 days
    assert churn_row(built, 1, newest + pd.Timedelta(days=2)).sessions_7d == 3
    assert pd.isna(churn_row(built, 1, newest + pd.Timedelta(days=2, seconds=1)).sessions_7d)
    assert pd.isna(churn_row(built, 1, ts(-50)).sessions_7d)  # before the first snapshot


def test_training_rows_match_an_independent_as_of_join(built):
    rng = np.random.default_rng(3)
    snap = snapshot_table(built)
    entity = pd.DataFrame(
        {
            "user_id": rng.integers(1, 5, 200),  # user 4 does not exist
            "event_timestamp": ts(-2) + pd.to_timedelta(rng.integers(0, 11 * 86400, 200), unit="s"),
            "label": rng.integers(0, 2, 200),
        }
    )
    got = store.training_set(built, "churn_v1", entity).frame
    expected = (
        pd.merge_asof(
            entity.assign(_row=range(len(entity))).sort_values("event_timestamp"),
            snap.rename(columns={"event_timestamp": "snapshot_at"}).sort_values("snapshot_at"),
            left_on="event_timestamp",
            right_on="snapshot_at",
            by="user_id",
            tolerance=pd.Timedelta(days=2),
            allow_exact_matches=True,
        )
        .sort_values("_row")
        .reset_index(drop=True)
    )
    assert got["user_id"].tolist() == entity["user_id"].tolist()
    assert got["label"].tolist() == entity["label"].tolist()
    for column in ("sessions_7d", "pageviews_30d", "days_since_last_visit", "session_trend_7d", "is_subscriber"):
        pd.testing.assert_series_equal(
            got[column].astype(float), expected[column].astype(float), check_names=False, obj=column
        )
    ratio = expected.pageviews_30d / expected.sessions_30d.where(expected.sessions_30d > 0)
    np.testing.assert_allclose(got.pageviews_per_session_30d.astype(float), ratio.astype(float))


def test_online_vector_equals_training_row_at_materialization_end(built):
    end = snapshot_table(built).event_timestamp.max()
    store.materialize(built, (end - pd.Timedelta(days=30)).to_pydatetime(), end.to_pydatetime())
    users = [1, 2, 3]
    offline = store.training_set(
        built, "churn_v1", pd.DataFrame({"user_id": users, "event_timestamp": [end] * 3})
    ).frame
    online = store.online_features(built, "churn_v1", {"user_id": users}, request_time=end.to_pydatetime())
    features = store.feature_names(store.feature_service(built, "churn_v1"))
    for column in features:
        pd.testing.assert_series_equal(
            online.frame[column].astype(float), offline[column].astype(float), check_names=False, obj=column
        )
    assert (online.staleness_seconds["user_daily_engagement"] == 0).all()


def test_pushed_activity_changes_the_online_value(built):
    end = snapshot_table(built).event_timestamp.max()
    store.materialize(built, (end - pd.Timedelta(days=30)).to_pydatetime(), end.to_pydatetime())
    before = store.online_features(built, "recommendation_v1", {"user_id": [1]}).frame.iloc[0]
    assert before.last_article_id == 12  # the latest page view in the tiny platform
    push_page_view(built, user_id=1, article_id=11, engaged_seconds=42, at=pd.Timestamp(clock.now()))
    after = store.online_features(built, "recommendation_v1", {"user_id": [1]}).frame.iloc[0]
    assert (after.last_article_id, after.last_engaged_seconds) == (11, 42)


def test_rebuilding_a_range_is_idempotent(built):
    full = snapshot_table(built)
    build_snapshots(built, date(2026, 3, 3), date(2026, 3, 5))
    build_snapshots(built, date(2026, 3, 3), date(2026, 3, 5))
    again = snapshot_table(built)
    pd.testing.assert_frame_equal(full, again)
    articles = snapshot_table(built, "editorial_article_features")
    assert not articles.duplicated(["article_id", "event_timestamp"]).any()


def test_bad_input_gets_clear_errors(built):
    with pytest.raises(ValidationError, match="event_timestamp"):
        store.training_set(built, "churn_v1", pd.DataFrame({"user_id": [1]}))
    with pytest.raises(ValidationError, match="timezone-aware"):
        store.training_set(
            built, "churn_v1", pd.DataFrame({"user_id": [1], "event_timestamp": [pd.Timestamp("2026-03-05")]})
        )
    with pytest.raises(UnknownFeatureServiceError, match="chrun_v1.*churn_v1"):
        store.training_set(built, "chrun_v1", pd.DataFrame({"user_id": [1], "event_timestamp": [ts(5)]}))
    with pytest.raises(ValidationError, match="join key"):
        store.training_set(built, "churn_v1", pd.DataFrame({"article_id": [1], "event_timestamp": [ts(5)]}))
    with pytest.raises(ValidationError, match="before it starts"):
        build_snapshots(built, date(2026, 3, 5), date(2026, 3, 1))
    with pytest.raises(ValidationError, match="integers"):
        store.online_features(built, "churn_v1", {"user_id": ["1"]})


def test_quality_check_names_table_column_and_day(built):
    assert check_snapshots(built).ok
    if built.is_production:
        with get_engine(built).begin() as conn:
            conn.execute(
                text("UPDATE customer_user_features SET pageviews_7d = -1 WHERE user_id = 2 AND event_timestamp = :t"),
                {"t": ts(4).to_pydatetime()},
            )
    else:
        path = built.offline_dir / "customer_user_features.parquet"
        duckdb.sql(
            f"COPY (SELECT * REPLACE (CASE WHEN user_id = 2 AND event_timestamp = '{ts(4).isoformat()}' "
            f"THEN -1 ELSE pageviews_7d END AS pageviews_7d) FROM read_parquet('{path}')) TO '{path}.new' (FORMAT parquet)"
        )
        (built.offline_dir / "customer_user_features.parquet.new").replace(path)
    report = check_snapshots(built)
    assert [(p.table, p.column, p.day) for p in report.problems] == [
        ("customer_user_features", "pageviews_7d", date(2026, 3, 5))
    ]
    with pytest.raises(DataQualityError, match="customer_user_features.pageviews_7d on 2026-03-05"):
        report.raise_for_problems()


def test_a_customer_only_platform_builds_with_editorial_tables_absent(any_settings):
    """Real data, customer tables only (no articles or authors): the editorial snapshots are
    reported absent, not as failures."""
    init_db(any_settings)
    engine = get_engine(any_settings)
    load_tiny_platform(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET article_id = NULL"))
        conn.execute(text("DELETE FROM articles"))
        conn.execute(text("DELETE FROM authors"))
    summary = build_snapshots(any_settings)
    assert summary.quality.ok, summary.quality.problems
    assert sorted(summary.quality.absent) == ["editorial_article_features", "editorial_author_features"]
    assert summary.rows["customer_user_features"] > 0


def test_growth_is_no_defect_but_a_collapsed_day_is():
    from ownlens_ml.features.quality import _row_count_problems

    days = pd.Series(pd.date_range("2026-03-01", periods=8, freq="D").date)
    young = pd.Series([1, 3, 10, 40, 90, 160, 200, 230])  # readers still signing up
    assert _row_count_problems("customer_user_features", days, young) == []
    lost = pd.Series([100, 120, 130, 50, 140, 150, 150, 160])  # day 4 lost most of its rows
    problems = _row_count_problems("customer_user_features", days, lost)
    assert [(p.day, p.message) for p in problems] == [(date(2026, 3, 4), "50 rows, below half of an earlier day's 130")]


def test_a_build_that_fails_its_checks_leaves_the_snapshots_as_they_were(built):
    before = {name: snapshot_table(built, name) for name in ("customer_user_features", "editorial_author_features")}
    with get_engine(built).begin() as conn:  # a negative page count: the range check fails
        conn.execute(text("UPDATE sessions SET page_views = -5 WHERE user_id = 1"))
    with pytest.raises(DataQualityError, match="pageviews_1d.*nothing was written"):
        build_snapshots(built)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(snapshot_table(built, name), frame, obj=name)
    if not built.is_production:  # no staging files are left behind
        assert sorted(p.name for p in built.offline_dir.iterdir()) == sorted(
            f"{n}.parquet"
            for n in (
                "customer_user_features",
                "editorial_article_features",
                "editorial_author_features",
                "reader_activity",
                "customer_user_segments",
            )
        )  # empty until segments are written
    unchecked = build_snapshots(built, check=False)  # --no-check writes, and says it did not check
    assert unchecked.quality is None
    assert (snapshot_table(built)["pageviews_1d"] < 0).any()
