"""The plain Feast CLI works on feature_repo/ in both profiles, as Feast documents it: bare
in the repository on the local profile, and with ``ownlens-ml features env``'s variables
for any settings."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tiny_platform import load_tiny_platform, ts

from ownlens_ml.db import get_engine, init_db
from ownlens_ml.features import store
from ownlens_ml.features.feast_store import AtomicFileRegistryStore, write_feast_yaml
from ownlens_ml.features.snapshots import build_snapshots
from ownlens_ml.settings import Settings

FEAST = str(Path(sys.executable).with_name("feast"))
REPO = Path(__file__).resolve().parent.parent / "feature_repo"


def feast(settings, *args: str, env: dict | None = None, yaml: Path | None = None) -> str:
    """Run the plain Feast CLI in the settings' repository (by default with `features env`'s
    variables, which point it at the generated yaml; ``yaml`` picks another with ``-f``)."""
    if env is None:
        write_feast_yaml(settings)
        env = os.environ | settings.feast_env()
    chosen = ["-f", str(yaml)] if yaml else []
    done = subprocess.run(
        [FEAST, *chosen, *args], cwd=settings.feature_repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"feast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_feast_cli_plan_apply_materialize_list(any_settings, tmp_path):
    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("__pycache__", "data"))
    settings = dataclasses.replace(any_settings, feature_repo=repo)
    init_db(settings)
    load_tiny_platform(get_engine(settings))
    build_snapshots(settings)
    # production: the repository's own yaml, expanded from `features env`; local: the generated one
    yaml = settings.feature_store_yaml if settings.is_production else None

    assert "churn_v1" in feast(settings, "plan", yaml=yaml)
    feast(settings, "apply", yaml=yaml)
    listed = feast(settings, "feature-services", "list")
    for service in (
        "churn_v1",
        "conversion_v1",
        "conversion_v2",
        "segmentation_v1",
        "recommendation_v1",
        "article_performance_v1",
    ):
        assert service in listed
    feast(settings, "materialize", ts(-10).isoformat(), ts(3).isoformat())
    at_day3 = store.online_features(settings, "churn_v1", {"user_id": [1]}).frame.iloc[0]
    assert at_day3.sessions_7d == 2
    feast(settings, "materialize-incremental", ts(6).isoformat())
    at_day6 = store.online_features(settings, "churn_v1", {"user_id": [1]}).frame.iloc[0]
    assert at_day6.sessions_7d == 3
    assert pd.notna(at_day6.pageviews_per_session_30d)


@pytest.mark.slow
def test_bare_feast_apply_in_the_repository_needs_no_environment(tmp_path):
    """After the demo's set-up (here on the tiny platform, in a copy of the project), a data
    engineer runs `cd feature_repo && feast plan/apply/materialize` with no OWNLENS_* set."""
    project = tmp_path / "project"
    shutil.copytree(REPO, project / "feature_repo", ignore=shutil.ignore_patterns("__pycache__", "data"))
    # the defaults of `ownlens-ml` run from the project root
    settings = Settings(profile="local", home=project / ".ownlens", feature_repo=project / "feature_repo")
    init_db(settings)
    load_tiny_platform(get_engine(settings))
    build_snapshots(settings)
    store.apply_repo(settings)

    bare = {k: v for k, v in os.environ.items() if not k.startswith(("OWNLENS_", "FEAST_")) or k == "OWNLENS_NOW"}
    # the bare CLI sees the registry the package applied: nothing to change
    assert "No changes to registry" in feast(settings, "plan", env=bare)
    feast(settings, "apply", env=bare)
    feast(settings, "materialize", ts(-10).isoformat(), ts(3).isoformat(), env=bare)
    # the package and the bare CLI share one registry and online store; the package writes
    # the registry atomically (aside, then renamed)
    assert isinstance(store.feature_store(settings).registry._registry_store, AtomicFileRegistryStore)
    assert store.online_features(settings, "churn_v1", {"user_id": [1]}).frame.iloc[0].sessions_7d == 2
