"""Retention of the prediction log: old days summarised into ml_model_monitoring, then deleted in batches,
in both profiles (real PostgreSQL for production)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from ownlens_ml import clock
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine, init_db
from ownlens_ml.db.schema import ml_model_monitoring, ml_model_predictions
from ownlens_ml.features.quality import utc_midnight
from ownlens_ml.pipelines import retention
from ownlens_ml.settings import Settings

KEEP = 30


def log_rows(start_day: int, days: int, seed: int = 1, per_day: int = 40) -> pd.DataFrame:
    """Prediction log rows on the days ``start_day`` .. ``start_day + days - 1`` before today: two models (one
    without scores), two versions, online and batch rows, some null scores."""
    rng = np.random.default_rng(seed)
    frames = []
    for back in range(start_day, start_day - days, -1):
        day = utc_midnight(clock.today() - timedelta(days=back))
        n = per_day + int(rng.integers(0, 20))
        as_of = day + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
        model = rng.choice(["churn", "recommendation"], n, p=[0.7, 0.3])
        score = np.where(model == "churn", rng.beta(2, 5, n), np.nan)
        score[rng.random(n) < 0.05] = np.nan
        source = np.where(rng.random(n) < 0.3, "batch", "online")
        ids = rng.choice(10_000, n, replace=False)
        frames.append(
            pd.DataFrame(
                {
                    "model_name": model,
                    "version": rng.integers(1, 3, n),
                    "entity_key": [f'{{"user_id":{i}}}' for i in ids],
                    "entity_id": ids,
                    "as_of": as_of,
                    "predicted_at": as_of,
                    "score": score,
                    "source": source,
                    "batch_id": [f"{m}:{day:%Y-%m-%d}" if s == "batch" else None for m, s in zip(model, source)],
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sample(frac=1, random_state=seed)  # ids interleave days


def write(settings: Settings, frame: pd.DataFrame) -> None:
    with get_engine(settings).begin() as conn:
        copy_frame(conn, ml_model_predictions, frame)


def table(settings: Settings, t) -> pd.DataFrame:
    frame = pd.read_sql(select(t), get_engine(settings))
    for column in ("as_of", "window_start"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def expected_summaries(removed: pd.DataFrame) -> pd.DataFrame:
    """pandas' own counts, means, spreads and quantiles of the removed rows per (model, version, day, source)."""
    removed = removed.assign(day=removed["as_of"].dt.floor("D"))
    keys = ["model_name", "version", "day", "source"]
    scores = removed.groupby(keys)["score"]
    found = pd.DataFrame(
        {
            "daily_predictions": removed.groupby(keys).size(),
            "daily_scored": scores.count(),
            "daily_score_mean": scores.mean(),
            "daily_score_std": scores.std(),
        }
    )
    for q in retention.QUANTILES:
        found[f"daily_score_p{round(q * 100):02d}"] = scores.quantile(q)
    found.loc[found["daily_scored"] == 0, "daily_scored"] = np.nan
    return found.reset_index().melt(id_vars=keys, var_name="metric").dropna()


def written_summaries(settings: Settings) -> pd.DataFrame:
    m = table(settings, ml_model_monitoring)
    m = m[m["kind"] == retention.KIND]
    return pd.DataFrame(
        {
            "model_name": m["model_name"],
            "version": m["version"],
            "day": m["window_start"],
            "source": [d["source"] for d in m["details"]],
            "metric": m["metric"],
            "value": m["value"],
        }
    )


@pytest.fixture
def logged(any_settings: Settings) -> tuple[Settings, pd.DataFrame]:
    init_db(any_settings)
    write(any_settings, log_rows(start_day=KEEP + 6, days=12))  # 6 days older than the cut, 6 days kept
    return any_settings, table(any_settings, ml_model_predictions)


def test_old_days_are_summarised_as_pandas_does_then_deleted_and_a_rerun_is_a_no_op(logged):
    settings, before = logged
    cut = utc_midnight(clock.today() - timedelta(days=KEEP))
    old = before["as_of"] < cut
    assert old.sum() > 100 and (~old).sum() > 100

    result = retention.prune(settings, KEEP, batch_rows=37)  # ids interleave: many sparse batches
    after = table(settings, ml_model_predictions)
    assert sorted(after["prediction_id"]) == sorted(before.loc[~old, "prediction_id"])
    assert result.deleted == old.sum() and result.batches > old.sum() / 37 and result.cut == cut

    keys = ["model_name", "version", "day", "source", "metric"]
    expected = expected_summaries(before[old]).sort_values(keys).reset_index(drop=True)
    written = written_summaries(settings).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(written[keys], expected[keys], check_dtype=False)
    np.testing.assert_allclose(written["value"], expected["value"], rtol=1e-9)
    assert {"daily_predictions", "daily_score_mean", "daily_score_p50"} <= set(written["metric"])

    again = retention.prune(settings, KEEP, batch_rows=37)
    assert (again.deleted, again.summaries, again.batches) == (0, [], 0)
    assert len(written_summaries(settings)) == len(written) and len(table(settings, ml_model_predictions)) == len(after)


def test_an_interrupted_prune_resumes_without_summarising_twice_and_late_rows_get_their_own(logged, monkeypatch):
    settings, before = logged
    real = retention._delete_day

    def one_batch_then_stop(*args):
        for removed in real(*args):
            yield removed
            raise KeyboardInterrupt  # the process dies between two batches

    monkeypatch.setattr(retention, "_delete_day", one_batch_then_stop)
    with pytest.raises(KeyboardInterrupt):
        retention.prune(settings, KEEP, batch_rows=25)
    monkeypatch.undo()
    left = len(table(settings, ml_model_predictions))
    assert len(before) - 25 <= left < len(before)  # exactly one batch went, all or nothing

    retention.prune(settings, KEEP)
    cut = utc_midnight(clock.today() - timedelta(days=KEEP))
    old = before[before["as_of"] < cut]
    summaries = written_summaries(settings)
    counts = summaries[summaries["metric"] == "daily_predictions"]
    assert counts["value"].sum() == len(old) and not counts.duplicated(["model_name", "version", "day", "source"]).any()

    late = log_rows(start_day=KEEP + 3, days=1, seed=9, per_day=10)  # a batch rescored at an old as-of
    write(settings, late)
    result = retention.prune(settings, KEEP)
    assert result.deleted == len(late) and sum(s.rows for s in result.summaries) == len(late)
    assert written_summaries(settings).query("metric == 'daily_predictions'")["value"].sum() == len(old) + len(late)


def test_cli_dry_run_changes_nothing_and_the_retention_comes_from_the_environment(logged):
    settings, before = logged
    cli = str(Path(sys.executable).with_name("ownlens-ml"))
    env = os.environ | {
        "OWNLENS_HOME": str(settings.home),
        "OWNLENS_DATABASE_URL": settings.database_url,
        "OWNLENS_PROFILE": settings.profile,
        "COLUMNS": "200",
    }
    dry = subprocess.run(
        [cli, "predictions", "prune", "--dry-run"],
        env=env | {"OWNLENS_PREDICTION_RETENTION_DAYS": str(KEEP + 3)},
        capture_output=True,
        text=True,
    )
    old = before["as_of"] < utc_midnight(clock.today() - timedelta(days=KEEP + 3))
    assert dry.returncode == 0, dry.stderr
    assert f"would summarise {old.sum():,} rows" in dry.stdout and f"remove {old.sum():,} rows" in dry.stdout
    assert len(table(settings, ml_model_predictions)) == len(before) and written_summaries(settings).empty

    bad = subprocess.run(
        [cli, "predictions", "prune"],
        env=env | {"OWNLENS_PREDICTION_RETENTION_DAYS": "soon"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "ConfigError: OWNLENS_PREDICTION_RETENTION_DAYS='soon' is not a whole number" in bad.stderr
    zero = subprocess.run([cli, "predictions", "prune", "--older-than", "0"], env=env, capture_output=True, text=True)
    assert zero.returncode == 2 and "--older-than" in zero.stderr

    done = subprocess.run(
        [cli, "predictions", "prune", "--older-than", str(KEEP)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (
        len(table(settings, ml_model_predictions))
        == (before["as_of"] >= utc_midnight(clock.today() - timedelta(days=KEEP))).sum()
    )
