"""`train MODEL --labels FILE`: a business label table of one's own, validated like `data import`."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from test_models import cli, platform

from ownlens_ml import registry
from ownlens_ml.models import SPECS
from ownlens_ml.settings import Settings


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Settings, pd.DataFrame]:
    settings = Settings(profile="local", home=tmp_path_factory.mktemp("labels") / "home", project="labels")
    platform(settings, users=600, days=100)
    return settings, SPECS["churn"].build_labels(settings, SPECS["churn"].window)


@pytest.mark.slow
def test_a_good_label_file_trains_and_registers(labelled, tmp_path):
    settings, labels = labelled
    path = tmp_path / "renewals.csv"
    labels.assign(event_timestamp=labels["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    out = cli(settings, "train", "churn", "--labels", str(path), "--no-promote")
    assert "registered churn v" in out and "the oracle is omitted" in out
    version = registry.get_version(settings, "churn")
    assert version.params["labels_file"] == str(path)
    report = (settings.reports_dir / "churn" / f"v{version.version}" / "report.md").read_text()
    assert f"labels come from {path}" in report and "| oracle" not in report
    assert "oracle" not in version.metrics["holdout"]
    # the version can be re-scored from its own lineage while the file is unchanged
    evaluated = cli(settings, "evaluate", "churn", "--version", str(version.version))
    assert "the oracle is omitted" in evaluated and "│ oracle" not in evaluated


def _bad(labels: pd.DataFrame, case: str) -> pd.DataFrame:
    frame = labels.head(40).copy()
    frame["event_timestamp"] = frame["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = frame.astype({"user_id": object, "label": object})
    if case == "missing column":
        return frame.drop(columns="label")
    if case == "unknown entity":
        frame.loc[frame.index[4], "user_id"] = 99_999_999
    if case == "label not 0/1":
        frame.loc[frame.index[6], "label"] = 2
    if case == "timestamp unparseable":
        frame.loc[frame.index[2], "event_timestamp"] = "last tuesday"
    if case == "id not an integer":
        frame.loc[frame.index[3], "user_id"] = "reader-7"
    if case in ("every label in 1990", "every label in 2099"):
        frame["event_timestamp"] = case[-4:] + "-03-01T00:00:00Z"
    if case == "half the labels in 1990":
        frame.loc[frame.index[::2], "event_timestamp"] = "1990-03-01T00:00:00Z"
    return frame


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing column", "missing column(s) label"),
        ("unknown entity", "line 6: user_id '99999999' is not in the users table"),
        ("label not 0/1", "line 8: label '2' must be 0 or 1 for a binary model"),
        ("timestamp unparseable", "line 4: event_timestamp 'last tuesday' is not a timestamp"),
        ("id not an integer", "line 5: user_id 'reader-7' is not an integer id"),
        ("every label in 1990", "line 2: event_timestamp '1990-03-01T00:00:00Z' is outside the data"),
        ("every label in 2099", "line 2: event_timestamp '2099-03-01T00:00:00Z' is outside the data"),
        ("half the labels in 1990", "line 2: event_timestamp '1990-03-01T00:00:00Z' is outside the data"),
    ],
)
def test_a_bad_label_file_is_refused_with_the_line_and_nothing_registered(labelled, tmp_path, case, words):
    settings, labels = labelled
    path = tmp_path / "labels.csv"
    _bad(labels, case).to_csv(path, index=False)
    before = [v.version for v in registry.list_versions(settings, "churn")]
    out = cli(settings, "train", "churn", "--labels", str(path), ok=False)
    assert words in out and "Traceback" not in out, out
    assert len([line for line in out.strip().splitlines() if line.strip()]) == 1, out
    assert [v.version for v in registry.list_versions(settings, "churn")] == before


def test_a_compressed_label_file_is_read_as_its_text(labelled, tmp_path):
    settings, labels = labelled
    path = tmp_path / "labels.csv.gz"
    _bad(labels, "unknown entity").to_csv(path, index=False)  # pandas compresses by the suffix
    out = cli(settings, "train", "churn", "--labels", str(path), ok=False)
    assert "line 6: user_id '99999999' is not in the users table" in out and "NUL" not in out, out


def test_labels_do_not_apply_to_the_wrong_model_key(labelled, tmp_path):
    settings, labels = labelled
    path = tmp_path / "articles.parquet"
    labels.rename(columns={"user_id": "article_id"}).to_parquet(path, index=False)
    out = cli(settings, "train", "article_performance", "--labels", str(path), ok=False)
    assert "missing column(s) author_id" in out
    shutil.rmtree(tmp_path)


def _article_labels(settings: Settings) -> pd.DataFrame:
    spec = SPECS["article_performance"]
    labels = spec.build_labels(settings, spec.window).head(40)
    return labels.assign(event_timestamp=labels["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_article_labels_xgboost_cannot_hold_or_with_another_author_are_refused(labelled, tmp_path):
    settings, _ = labelled
    before = [v.version for v in registry.list_versions(settings, "article_performance")]
    huge = _article_labels(settings)
    huge.loc[3, "label"] = 1e308  # finite, but beyond the 32-bit floats XGBoost holds labels in
    huge.to_csv(tmp_path / "huge.csv", index=False)
    out = cli(settings, "train", "article_performance", "--labels", str(tmp_path / "huge.csv"), ok=False)
    assert "line 5: label '1e+308' must be a finite number within ±1e+30" in out and "Traceback" not in out, out
    swapped = _article_labels(settings)
    other = swapped.loc[swapped["author_id"] != swapped.loc[0, "author_id"], "author_id"].iloc[0]
    swapped.loc[0, "author_id"] = other  # an author who exists, but did not write the article
    swapped.to_csv(tmp_path / "swapped.csv", index=False)
    out = cli(settings, "train", "article_performance", "--labels", str(tmp_path / "swapped.csv"), ok=False)
    assert f"line 2: author_id '{other}' is not the author_id of that article_id in the articles table" in out, out
    assert [v.version for v in registry.list_versions(settings, "article_performance")] == before
