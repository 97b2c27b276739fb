"""Churn labels worked out by hand, and the temporal split never mixes time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_platform import load_tiny_platform, ts

from ownlens_ml.db import get_engine, init_db
from ownlens_ml.errors import EmptyWindowError, UnknownModelError
from ownlens_ml.models import SPECS, get_spec
from ownlens_ml.models.customer.labels import lapsed_labels
from ownlens_ml.models.spec import LabelWindow
from ownlens_ml.pipelines.training import temporal_split

# user 1 visits on days 0 and 40, user 2 on days 0 and 70, user 3 every 10 days from 0 to 80
VISITS = [(1, ts(0, 8), 1, 10), (1, ts(40, 8), 1, 10), (2, ts(0, 9), 1, 10), (2, ts(70, 9), 1, 10)] + [
    (3, ts(day, 23, 3599), 1, 10) for day in range(0, 81, 10)
]


def labels_by_time(frame: pd.DataFrame) -> dict:
    return {(row.event_timestamp, row.user_id): row.label for row in frame.itertuples()}


def test_churn_labels_match_hand_computation(any_settings):
    init_db(any_settings)
    load_tiny_platform(get_engine(any_settings), VISITS)
    labels = lapsed_labels(any_settings, LabelWindow(as_of=None, window_days=30, step_days=7))
    # data ends after day 80, so the newest as-of date is day 81 - 30 = 51, then every 7 days back to day 30
    assert labels_by_time(labels) == {
        (ts(30), 1): 0,
        (ts(30), 2): 1,
        (ts(30), 3): 0,  # user 2 is away on days 30..59
        (ts(37), 3): 0,  # users 1, 2 had no visit on days 7..36: not active
        (ts(44), 1): 1,
        (ts(44), 3): 0,  # user 1's visit on day 40 was their last
        (ts(51), 1): 1,
        (ts(51), 3): 0,
    }
    assert str(labels["event_timestamp"].dt.tz) == "UTC"


def test_as_of_only_uses_outcomes_known_by_then(any_settings):
    init_db(any_settings)
    load_tiny_platform(get_engine(any_settings), VISITS)
    labels = lapsed_labels(any_settings, LabelWindow(as_of=ts(60).to_pydatetime(), window_days=30))
    assert set(labels["event_timestamp"]) == {ts(30)}
    with pytest.raises(EmptyWindowError, match="30 days of history"):
        lapsed_labels(any_settings, LabelWindow(as_of=ts(59).to_pydatetime(), window_days=30))


def test_no_sessions_is_a_clear_error(local_settings):
    init_db(local_settings)
    with pytest.raises(EmptyWindowError, match="no sessions"):
        lapsed_labels(local_settings, LabelWindow(as_of=None))


def test_temporal_split_orders_parts_in_time():
    stamps = [ts(d) for d in range(0, 70, 7)]
    frame = pd.DataFrame({"event_timestamp": [s for s in stamps for _ in range(10)], "label": 0})
    split = temporal_split(frame)
    assert split.train["event_timestamp"].max() < split.validation["event_timestamp"].min()
    assert split.validation["event_timestamp"].max() < split.test["event_timestamp"].min()
    assert len(split.train) + len(split.validation) + len(split.test) == len(frame)
    assert split.test["event_timestamp"].nunique() == 2  # the newest 20 % of rows
    with pytest.raises(EmptyWindowError, match="at least 3 distinct"):
        temporal_split(frame[frame["event_timestamp"] <= ts(7)])


def test_a_part_without_the_rare_class_reaches_back_until_it_holds_one():
    stamps = [ts(d) for d in range(0, 70, 7)]
    frame = pd.DataFrame({"event_timestamp": [s for s in stamps for _ in range(10)], "label": 0})
    frame.loc[[5, 35, 45], "label"] = 1  # positives at the 1st, 4th and 5th of 10 label times
    plain = temporal_split(frame)
    assert plain.validation["label"].sum() == 0 and plain.test["label"].sum() == 0  # all left to training
    split = temporal_split(frame, classes=(0, 1))
    for part in (split.train, split.validation, split.test):
        assert set(part["label"]) == {0, 1}
    assert split.train["event_timestamp"].max() < split.validation["event_timestamp"].min()
    assert split.validation["event_timestamp"].max() < split.test["event_timestamp"].min()
    assert split.test["event_timestamp"].min() == ts(28) and split.validation["event_timestamp"].min() == ts(21)
    even = frame.assign(label=np.arange(len(frame)) % 2)  # a split that holds both classes stays as it was
    assert temporal_split(even, classes=(0, 1)).test.equals(temporal_split(even).test)


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownModelError, match="no model 'chrun'; known: .*churn"):
        get_spec("chrun")
    assert set(SPECS) >= {"churn"}
