"""The plain Feast CLI works on feature_repo/ in both profiles, as Feast documents it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ownlens_ml.db import get_engine, init_db
from ownlens_ml.features import store
from ownlens_ml.features.snapshots import build_snapshots
from tiny_platform import load_tiny_platform, ts

FEAST = str(Path(sys.executable).with_name("feast"))
REPO = Path(__file__).resolve().parent.parent / "feature_repo"


def feast(settings, *args: str) -> str:
    env = os.environ | settings.feast_env()
    yaml = ["-f", str(settings.feature_store_yaml)]
    done = subprocess.run([FEAST, *yaml, *args], cwd=settings.feature_repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"feast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_feast_cli_plan_apply_materialize_list(any_settings, tmp_path):
    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("__pycache__", "data"))
    settings = dataclasses.replace(any_settings, feature_repo=repo)
    init_db(settings)
    load_tiny_platform(get_engine(settings))
    build_snapshots(settings)

    assert "churn_v1" in feast(settings, "plan")
    feast(settings, "apply")
    listed = feast(settings, "feature-services", "list")
    for service in ("churn_v1", "conversion_v1", "segmentation_v1", "recommendation_v1", "article_performance_v1"):
        assert service in listed
    feast(settings, "materialize", ts(-10).isoformat(), ts(3).isoformat())
    at_day3 = store.online_features(settings, "churn_v1", {"user_id": [1]}).frame.iloc[0]
    assert at_day3.sessions_7d == 2
    feast(settings, "materialize-incremental", ts(6).isoformat())
    at_day6 = store.online_features(settings, "churn_v1", {"user_id": [1]}).frame.iloc[0]
    assert at_day6.sessions_7d == 3
    assert pd.notna(at_day6.pageviews_per_session_30d)
