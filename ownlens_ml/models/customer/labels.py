"""Reader activity the customer labels are drawn from: which days each reader visited."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select, text

from ownlens_ml.db import get_engine, require_tables, schema
from ownlens_ml.errors import EmptyWindowError
from ownlens_ml.models.spec import LabelWindow, as_utc
from ownlens_ml.settings import Settings

HISTORY_DAYS = 30
"""A reader is active at T if they visited in the HISTORY_DAYS before T."""


def visit_days(settings: Settings) -> pd.DataFrame:
    """One row per (user_id, day) with at least one session; ``day`` is UTC midnight."""
    engine = get_engine(settings)
    require_tables(engine, schema.sessions.name)
    s = schema.sessions.c
    day = func.date(s.started_at).label("day")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL TIME ZONE 'UTC'"))
        rows = conn.execute(select(s.user_id, day).group_by(s.user_id, day)).all()
    frame = pd.DataFrame(rows, columns=["user_id", "day"])
    frame["day"] = pd.to_datetime(frame["day"].astype(str)).dt.tz_localize("UTC")
    frame["user_id"] = frame["user_id"].astype("int64")
    return frame


def as_of_dates(visits: pd.DataFrame, window: LabelWindow, model: str) -> list[pd.Timestamp]:
    """Midnights T with a full history before and a closed outcome window after, newest last."""
    if visits.empty:
        raise EmptyWindowError(f"{model}: no sessions; run `ownlens-ml data generate` or `data import` first")
    first, last = visits["day"].min(), visits["day"].max()
    data_end = last + pd.Timedelta(days=1)
    cutoff = window.cutoff(first, data_end, model)
    newest = cutoff - pd.Timedelta(days=window.window_days)
    oldest = first + pd.Timedelta(days=HISTORY_DAYS)
    dates = []
    while newest >= oldest:
        dates.append(newest)
        newest -= pd.Timedelta(days=window.step_days)
    if not dates:
        raise EmptyWindowError(
            f"{model}: sessions cover {first.date()}..{last.date()}; labels need {HISTORY_DAYS} days of history "
            f"and a closed {window.window_days}-day outcome window before {cutoff.date()}"
        )
    return dates[::-1]


def lapsed_labels(settings: Settings, window: LabelWindow) -> pd.DataFrame:
    """Churn labels: for each as-of T, readers active in the 30 days before T; 1 if no visit in [T, T+window)."""
    visits = visit_days(settings)
    frames = []
    for t in as_of_dates(visits, window, "churn"):
        after = visits["day"].between(t, t + pd.Timedelta(days=window.window_days), inclusive="left")
        active = _active(visits, t)
        returned = visits.loc[after, "user_id"].unique()
        frames.append(
            pd.DataFrame(
                {"user_id": active, "event_timestamp": t, "label": (~pd.Index(active).isin(returned)).astype("int64")}
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values(["event_timestamp", "user_id"], ignore_index=True)


def subscription_starts(settings: Settings) -> pd.Series:
    """When each reader became a paying subscriber (NaT for readers who never did), by user_id."""
    engine = get_engine(settings)
    require_tables(engine, schema.users.name)
    u = schema.users.c
    with engine.connect() as conn:
        rows = conn.execute(select(u.user_id, u.subscribed_at)).all()
    frame = pd.DataFrame(rows, columns=["user_id", "subscribed_at"])
    return pd.Series(
        pd.to_datetime(frame["subscribed_at"], utc=True).to_numpy(),
        index=frame["user_id"].astype("int64").to_numpy(),
        name="subscribed_at",
    )


def conversion_labels(settings: Settings, window: LabelWindow) -> pd.DataFrame:
    """Conversion labels: for each as-of T, readers active in the 30 days before T who are not
    paying at T; 1 if they subscribe in [T, T + window)."""
    visits = visit_days(settings)
    subscribed = subscription_starts(settings)
    frames = []
    for t in as_of_dates(visits, window, "conversion"):
        active = _active(visits, t)
        since = pd.DatetimeIndex(subscribed.reindex(active).to_numpy())
        free = since.isna() | (since >= t)
        converts = (since >= t) & (since < t + pd.Timedelta(days=window.window_days))
        frames.append(
            pd.DataFrame(
                {"user_id": active[free], "event_timestamp": t, "label": np.asarray(converts[free], dtype="int64")}
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values(["event_timestamp", "user_id"], ignore_index=True)


def engaged_minutes(settings: Settings) -> pd.DataFrame:
    """Engaged minutes per (user_id, day) from sessions (``day``: UTC midnight of the session start)."""
    engine = get_engine(settings)
    require_tables(engine, schema.sessions.name)
    s = schema.sessions.c
    day = func.date(s.started_at).label("day")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL TIME ZONE 'UTC'"))
        rows = conn.execute(select(s.user_id, day, func.sum(s.engaged_seconds)).group_by(s.user_id, day)).all()
    frame = pd.DataFrame(rows, columns=["user_id", "day", "seconds"])
    frame["day"] = pd.to_datetime(frame["day"].astype(str)).dt.tz_localize("UTC")
    frame["user_id"] = frame["user_id"].astype("int64")
    frame["minutes"] = frame["seconds"].astype(float) / 60
    return frame.drop(columns="seconds")


def engagement_labels(settings: Settings, window: LabelWindow) -> pd.DataFrame:
    """Engagement labels: for each as-of T, readers active in the 30 days before T; the label is
    their engaged minutes in sessions starting in [T, T + window) (0 without a visit). Only
    sessions after T count, so the label never overlaps what the features at T saw."""
    daily = engaged_minutes(settings)
    visits = daily[["user_id", "day"]]
    frames = []
    for t in as_of_dates(visits, window, "engagement"):
        active = _active(visits, t)
        after = daily[daily["day"].between(t, t + pd.Timedelta(days=window.window_days), inclusive="left")]
        minutes = after.groupby("user_id")["minutes"].sum()
        frames.append(
            pd.DataFrame(
                {
                    "user_id": active,
                    "event_timestamp": t,
                    "label": minutes.reindex(active, fill_value=0.0).to_numpy(dtype=float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values(["event_timestamp", "user_id"], ignore_index=True)


def _active(visits: pd.DataFrame, t: pd.Timestamp) -> np.ndarray:
    before = visits["day"].between(t - pd.Timedelta(days=HISTORY_DAYS), t, inclusive="left")
    return visits.loc[before, "user_id"].unique()


def active_readers(settings: Settings, as_of: datetime) -> pd.DataFrame:
    """Readers who visited in the HISTORY_DAYS before ``as_of``: whom churn scores then."""
    return pd.DataFrame({"user_id": np.sort(_active(visit_days(settings), as_utc(as_of)))})


def free_active_readers(settings: Settings, as_of: datetime) -> pd.DataFrame:
    """Active readers not paying at ``as_of``: whom conversion scores then."""
    t = as_utc(as_of)
    active = _active(visit_days(settings), t)
    since = pd.DatetimeIndex(subscription_starts(settings).reindex(active).to_numpy())
    return pd.DataFrame({"user_id": np.sort(active[since.isna() | (since >= t)])})
