"""The seeded platform generator: determinism, planted signals, truth and oracles, CLI errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import text

from ownlens_ml.data.generator import GeneratorConfig, generate, iter_platform
from ownlens_ml.data.truth import load_truth, oracle_churn_probability, oracle_conversion_probability
from ownlens_ml.db import get_engine, init_db, schema
from ownlens_ml.errors import MissingTableError, ValidationError
from ownlens_ml.features.quality import check_snapshots
from ownlens_ml.features.snapshots import build_snapshots

SMALL = GeneratorConfig(users=300, days=60, brands=2, seed=11)


def _read(settings, table: str) -> pd.DataFrame:
    key = schema.metadata.tables[table].primary_key.columns.keys()
    with get_engine(settings).connect() as conn:
        return pd.read_sql_query(text(f"SELECT * FROM {table} ORDER BY {', '.join(key)}"), conn)


def _hash(settings) -> dict[str, str]:
    out = {}
    for t in schema.PLATFORM_TABLES:
        frame = _read(settings, t.name)
        out[t.name] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return out


def test_same_seed_same_bytes_other_seed_differs(any_settings):
    init_db(any_settings)
    generate(any_settings, SMALL)
    first = _hash(any_settings)
    truth_first = load_truth(any_settings, "users")
    generate(any_settings, SMALL)
    assert _hash(any_settings) == first  # also: a second run replaces, never appends
    pd.testing.assert_frame_equal(load_truth(any_settings, "users"), truth_first)
    generate(any_settings, GeneratorConfig(users=300, days=60, brands=2, seed=12))
    other = _hash(any_settings)
    assert other["events"] != first["events"] and other["users"] != first["users"]


def test_tables_are_consistent_and_build_clean_snapshots(any_settings):
    init_db(any_settings)
    summary = generate(any_settings, SMALL)
    assert summary.rows["events"] > 0 and summary.as_table().row_count >= len(schema.PLATFORM_TABLES)
    events, sessions = _read(any_settings, "events"), _read(any_settings, "sessions")
    assert set(events["event_type"]) <= set(schema.EVENT_TYPES)
    assert {"page_view", "scroll", "paywall_hit", "subscribe"} <= set(events["event_type"])
    # article_daily_performance is the true daily aggregate of the events
    ev = events[events["article_id"].notna()].copy()
    ev["date"] = pd.to_datetime(ev["event_at"], utc=True, format="ISO8601").dt.date
    pv = ev[ev["event_type"] == "page_view"].groupby(["article_id", "date"]).size()
    perf = _read(any_settings, "article_daily_performance")
    perf["date"] = pd.to_datetime(perf["date"]).dt.date
    perf = perf.set_index(["article_id", "date"])
    assert (
        perf["page_views"][perf["page_views"] > 0].sort_index().equals(pv.sort_index().astype(perf["page_views"].dtype))
    )
    assert (sessions.groupby("user_id").size() > 0).all()
    build_snapshots(any_settings)
    check_snapshots(any_settings).raise_for_problems()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A moderate platform in the local profile, shared by the signal tests."""
    from ownlens_ml.settings import Settings

    settings = Settings(profile="local", home=tmp_path_factory.mktemp("gen") / "home")
    init_db(settings)
    generate(settings, GeneratorConfig(users=2_000, days=90, brands=2, seed=7))
    return settings


def _days(frame: pd.DataFrame, column: str) -> pd.Series:
    start = pd.Timestamp(GeneratorConfig.start, tz="UTC")
    return (pd.to_datetime(frame[column], utc=True, format="ISO8601") - start).dt.days


def test_churned_readers_fade_before_their_churn_date(platform):
    users = load_truth(platform, "users")
    sessions = _read(platform, "sessions")
    sessions["day"] = _days(sessions, "started_at")
    # readers whose churn ended a fade that began inside the period, at least two weeks before
    faded = users[(users["onset_day"] >= 15) & (users["churn_day"] - users["onset_day"] >= 15)]
    assert len(faded) >= 20
    counts = sessions.merge(faded[["user_id", "onset_day", "churn_day"]], on="user_id")
    before_fade = counts["day"].between(counts["onset_day"] - 15, counts["onset_day"] - 1)
    before_churn = counts["day"].between(counts["churn_day"] - 15, counts["churn_day"] - 1)
    after_churn = counts["day"].between(counts["churn_day"], counts["churn_day"] + 14)
    # fading readers come less often and read for much less time per visit
    assert before_churn.sum() < 0.75 * before_fade.sum()
    seconds = counts["engaged_seconds"]
    assert seconds[before_churn].mean() < 0.75 * seconds[before_fade].mean()
    assert after_churn.sum() < 0.5 * before_churn.sum()  # gone, apart from the few won back


def test_paywall_pressure_drives_conversion(platform):
    hits = _read(platform, "events")
    hits = hits[hits["event_type"] == "paywall_hit"].assign(day=lambda f: _days(f, "event_at"))
    users = _read(platform, "users").assign(sub_day=lambda f: _days(f, "subscribed_at"))
    rows = []
    for t in (30, 45, 60):
        free = users[users["sub_day"].isna() | (users["sub_day"] >= t)]
        recent = hits[hits["day"].between(t - 14, t - 1)].groupby("user_id").size()
        rows.append(
            pd.DataFrame(
                {
                    "hits": recent.reindex(free["user_id"]).fillna(0).to_numpy(),
                    "converted": free["sub_day"].between(t, t + 29).to_numpy(),
                }
            )
        )
    readers = pd.concat(rows)
    pressed = readers["hits"] > 5
    assert pressed.sum() >= 100
    # free readers who kept hitting the paywall in the last two weeks convert far more often
    assert readers.loc[pressed, "converted"].mean() > 2 * readers.loc[readers["hits"] == 0, "converted"].mean()


def test_segments_have_distinct_habits(platform):
    users = load_truth(platform, "users")[["user_id", "segment"]]
    sessions = _read(platform, "sessions").merge(users, on="user_id")
    sessions["started_at"] = pd.to_datetime(sessions["started_at"], utc=True, format="ISO8601")
    sessions["weekend"] = sessions["started_at"].dt.dayofweek >= 5
    by = sessions.groupby("segment")
    per_user = by.size() / users.groupby("segment").size()
    assert per_user["news_junkie"] > 3 * per_user["casual_skimmer"]
    assert by["weekend"].mean()["weekend_reader"] > by["weekend"].mean()["news_junkie"] + 0.15
    assert by["referrer"].apply(lambda r: (r == "newsletter").mean())["newsletter_loyalist"] > 0.4


def test_bursts_and_article_quality_show_in_performance(platform):
    arts, bursts = load_truth(platform, "articles"), load_truth(platform, "bursts")
    perf = _read(platform, "article_daily_performance").groupby("article_id")["page_views"].sum()
    arts["views"] = perf.reindex(arts["article_id"]).fillna(0).to_numpy()
    plain = arts[(arts["bursting_days"] == 0) & ~arts["is_premium"]]
    assert np.corrcoef(np.log(plain["quality"]), np.log1p(plain["views"]))[0, 1] > 0.3
    assert len(bursts) >= 1 and (bursts["end"] > bursts["start"]).all()
    assert arts.loc[arts["bursting_days"] > 0, "views"].mean() > arts.loc[arts["bursting_days"] == 0, "views"].mean()


def test_bursts_change_what_is_read_not_who_churns_or_converts(monkeypatch):
    """The readers' stream draws as many numbers whatever categories the bursts make them choose."""
    from ownlens_ml.data import generator

    def run():
        out = dict(iter_platform(GeneratorConfig(users=300, days=40, brands=2, seed=5)))
        return out["truth:users"], out["sessions"], out["events"], out["truth:bursts"]

    users, sessions, events, bursts = run()
    monkeypatch.setattr(generator, "BURST_BOOST_RANGE", (20.0, 40.0))
    users2, sessions2, events2, bursts2 = run()
    assert (bursts2["boost"] > bursts["boost"]).all() and bursts2["start"].equals(bursts["start"])
    latent = ["onset_day", "churn_day", "converted_at"]
    pd.testing.assert_frame_equal(users[latent], users2[latent])
    visits = ["user_id", "started_at", "device_type_id", "referrer", "page_views"]
    pd.testing.assert_frame_equal(sessions[visits], sessions2[visits])
    assert not events["article_id"].equals(events2["article_id"]), "the bursts moved reads to their categories"


def _churn_population(settings, days: int) -> pd.DataFrame:
    """Active readers at each T (a session in the 30 days before), labelled by 30 silent days after."""
    users = load_truth(settings, "users")
    sessions = _read(settings, "sessions")
    start = pd.Timestamp(GeneratorConfig.start, tz="UTC")
    day = (pd.to_datetime(sessions["started_at"], utc=True, format="ISO8601") - start).dt.days
    counts = pd.crosstab(sessions["user_id"], day).reindex(index=users["user_id"], columns=range(days), fill_value=0)
    c = counts.to_numpy()
    rows = []
    for t in range(35, days - 30 + 1, 7):
        active = (users["signup_day"].to_numpy() < t) & (c[:, t - 30 : t].sum(axis=1) > 0)
        rows.append(
            pd.DataFrame(
                {
                    "user_id": users["user_id"].to_numpy()[active],
                    "T": t,
                    "label": (c[active, t : t + 30].sum(axis=1) == 0).astype(int),
                }
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    frame["as_of"] = start + pd.to_timedelta(frame["T"], unit="D")
    return frame


def test_oracle_churn_is_calibrated(platform):
    pop = _churn_population(platform, 90)
    p = oracle_churn_probability(platform, pop["user_id"].to_numpy(), pop["as_of"].to_numpy())
    assert ((p >= 0) & (p <= 1)).all()
    assert abs(p.mean() - pop["label"].mean()) < 0.02
    bins = pd.qcut(p, 5, labels=False, duplicates="drop")
    for _, rows in pop.assign(p=p).groupby(bins):
        se = np.sqrt(rows["p"].mean() * (1 - rows["p"].mean()) / len(rows))
        assert abs(rows["p"].mean() - rows["label"].mean()) < 3 * se + 0.02


def test_oracle_churn_auc_is_realistic(platform):
    pop = _churn_population(platform, 90)
    p = oracle_churn_probability(platform, pop["user_id"].to_numpy(), pop["as_of"].to_numpy())
    assert 0.75 <= roc_auc_score(pop["label"], p) <= 0.92


def test_oracle_conversion_matches_what_happened(platform):
    users = load_truth(platform, "users")
    as_of = pd.Timestamp(GeneratorConfig.start, tz="UTC") + pd.Timedelta(days=30)
    ids = users["user_id"].to_numpy()
    p = oracle_conversion_probability(platform, ids, as_of, paths=64)
    conv = pd.to_datetime(users["converted_at"], utc=True)
    happened = ((conv >= as_of) & (conv < as_of + pd.Timedelta(days=30))).to_numpy()
    assert abs(p.sum() - happened.sum()) < 4 * np.sqrt(max(p.sum(), 1)) + 2
    paid = (users["initial_paid"] | (conv < as_of)).to_numpy()
    assert (p[paid] == 0).all()


def test_truth_errors_are_clear(tmp_path):
    from ownlens_ml.settings import Settings

    settings = Settings(profile="local", home=tmp_path)
    with pytest.raises(MissingTableError, match="ownlens-ml data generate"):
        load_truth(settings, "users")
    with pytest.raises(ValidationError, match="known"):
        load_truth(settings, "nope")
    with pytest.raises(ValidationError, match="users"):
        GeneratorConfig(users=0).validate()


@pytest.mark.parametrize("args", [["--users", "0"], ["--days", "-1"], ["--drift", "sideways"]])
def test_cli_rejects_bad_sizes(args, tmp_path):
    env = {"OWNLENS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "ownlens_ml.cli", "data", "generate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert args[0] in proc.stderr


def test_drift_scenarios_change_only_what_they_name_from_their_day():
    """device-mix moves sessions to mobile, engagement-drop halves dwell and scroll depth; before the drift
    day, and in everything else (who visits, when, who churns or converts), the platform is the clean one."""
    from datetime import timedelta

    from ownlens_ml.data.generator import DEVICES, DRIFT_ENGAGEMENT

    clean = GeneratorConfig(users=300, days=40, brands=2, seed=5)
    drift_from = clean.start + timedelta(days=25)
    cut = pd.Timestamp(drift_from, tz="UTC")

    def run(*drift):
        out = dict(
            iter_platform(
                GeneratorConfig(users=300, days=40, brands=2, seed=5, drift_from=drift_from, drift=drift)
                if drift
                else clean
            )
        )
        return out["truth:users"], out["sessions"], out["events"]

    users, sessions, events = run()
    mobile = DEVICES.index("mobile") + 1
    for drift in ("device-mix", "engagement-drop"):
        users2, sessions2, events2 = run(drift)
        pd.testing.assert_frame_equal(users2, users)
        before = sessions["started_at"] < cut
        pd.testing.assert_frame_equal(sessions2[before], sessions[before])
        early = events["event_at"] < cut
        pd.testing.assert_frame_equal(events2[early], events[early])
        visits = ["session_id", "user_id", "started_at", "referrer", "page_views"]
        pd.testing.assert_frame_equal(sessions2[visits], sessions[visits])
        after = ~before
        on_mobile, on_mobile2 = (s.loc[after, "device_type_id"] == mobile for s in (sessions, sessions2))
        dwell, dwell2 = (s.loc[after, "engaged_seconds"].sum() for s in (sessions, sessions2))
        if drift == "device-mix":
            assert on_mobile2.mean() > on_mobile.mean() + 0.3 and on_mobile2[on_mobile].all()
            pd.testing.assert_frame_equal(events2, events)
            assert dwell2 == dwell
        else:
            assert on_mobile2.equals(on_mobile)
            assert dwell2 == pytest.approx(DRIFT_ENGAGEMENT * dwell, rel=0.05)
            depth, depth2 = (e.loc[~early, "scroll_depth"].mean() for e in (events, events2))
            assert depth2 < 0.6 * depth
    with pytest.raises(ValidationError, match="unknown drift 'x'"):
        GeneratorConfig(drift_from=clean.start, drift=("x",)).validate()
    with pytest.raises(ValidationError, match="needs both"):
        GeneratorConfig(drift=("device-mix",)).validate()
    with pytest.raises(ValidationError, match="outside the generated days"):
        GeneratorConfig(days=10, drift_from=clean.start + timedelta(days=10), drift=("device-mix",)).validate()


PINNED = {
    "clean": {
        "brands": "de962edf408f1667",
        "countries": "d77e2369eb4bcd72",
        "device_types": "cf3197350d29d265",
        "categories": "79b0bd7af4ddb94d",
        "authors": "846038a20985c915",
        "articles": "f90d483f80f230b5",
        "users": "69e5c61ccaa9b85c",
        "sessions": "419d537b7f42b573",
        "events": "2f0814654f16cadf",
        "truth:users": "6fabededc1f77e1d",
        "truth:daily": "859ab93284a15a0d",
        "article_daily_performance": "df1fb6d67c5daff1",
        "truth:articles": "1217b1a9c78f1389",
        "truth:bursts": "d8c864f7feb4ee2d",
    },
    "drift": {
        "brands": "de962edf408f1667",
        "countries": "d77e2369eb4bcd72",
        "device_types": "cf3197350d29d265",
        "categories": "79b0bd7af4ddb94d",
        "authors": "846038a20985c915",
        "articles": "f90d483f80f230b5",
        "users": "bfe4372fa8125f9c",
        "sessions": "0105a00086245d44",
        "events": "00218ee6e6cb7fcf",
        "truth:users": "b45f75a9629056d3",
        "truth:daily": "859ab93284a15a0d",
        "article_daily_performance": "f4b218a7f313d4f1",
        "truth:articles": "1217b1a9c78f1389",
        "truth:bursts": "d8c864f7feb4ee2d",
    },
}
"""sha256 (first 16 hex digits) of each item ``iter_platform`` yields for 300 readers x 40 days x 2 brands,
seed 7, clean and with both drifts from 2026-01-26, taken before generator.py was split into modules;
a deliberate change to what the generator draws updates them and says so in its commit."""


def _stream_digests(config: GeneratorConfig) -> dict[str, str]:
    import io

    import pyarrow as pa

    digests: dict = {}
    for name, item in iter_platform(config):
        d = digests.setdefault(name, hashlib.sha256())
        if isinstance(item, pa.Table):
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, item.schema) as writer:
                writer.write_table(item)
            d.update(sink.getvalue())
        else:
            d.update(item.to_csv(index=False).encode())
            d.update(str(item.dtypes.to_dict()).encode())
    return {name: d.hexdigest()[:16] for name, d in digests.items()}


@pytest.mark.parametrize("case", ["clean", "drift"])
def test_the_stream_is_the_pinned_one(case):
    """The generator's output byte for byte (tables and truth), for a refactoring that must change nothing."""
    from datetime import date

    drift = dict(drift_from=date(2026, 1, 26), drift=("device-mix", "engagement-drop")) if case == "drift" else {}
    got = _stream_digests(GeneratorConfig(users=300, days=40, brands=2, seed=7, **drift))
    assert {name: got.get(name) for name in PINNED[case]} == PINNED[case]
