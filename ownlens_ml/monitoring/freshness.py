"""Freshness and data quality of the views a model reads: the age of the newest snapshot and of the
online store's values (materialization lag) per view, and rows and null rates per daily snapshot."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from ownlens_ml.features import store
from ownlens_ml.features.quality import daily_profiles
from ownlens_ml.models.kinds import Monitoring
from ownlens_ml.monitoring.results import ALERT, OK, Measurement
from ownlens_ml.settings import Settings

SOURCE_SUFFIX = "_source"
"""``feature_repo/data_sources.py`` names a snapshot table's source ``<table>_source``."""


def freshness(
    settings: Settings, service_name: str, now: datetime, start: datetime, end: datetime, watch: Monitoring
) -> list[Measurement]:
    """Per batch view of the service: snapshot and online ages; per snapshot table and day in [start, end): rows
    and each served feature's null rate."""
    feast = store.feature_store(settings)
    feast.refresh_registry()
    service = store.feature_service(settings, service_name)
    profiles = daily_profiles(settings)
    now_ts = pd.Timestamp(now)
    out = []
    tables: dict[str, list[str]] = {}
    for view, projection in zip(store.service_views(feast, service), service.feature_view_projections):
        source = getattr(view, "batch_source", None)
        if source is None:
            continue  # an on-demand view: computed at request time, as fresh as its inputs
        table = source.name.removesuffix(SOURCE_SUFFIX)
        tables.setdefault(table, []).extend(f.name for f in projection.features)
        if table in profiles and len(profiles[table]):
            newest = pd.Timestamp(profiles[table]["day"].max())
            newest = newest.tz_localize("UTC") if newest.tz is None else newest.tz_convert("UTC")
            out.append(
                Measurement(
                    "freshness",
                    "snapshot_age_seconds",
                    view.name,
                    (now_ts - newest).total_seconds(),
                    None,
                    OK,
                    {"newest": newest},
                )
            )
        if view.online:
            ends = [interval[1] for interval in view.materialization_intervals]  # (start, end) pairs
            limit = watch.max_online_age_hours * 3600
            if ends:
                newest = pd.Timestamp(max(ends))
                newest = newest.tz_localize("UTC") if newest.tz is None else newest.tz_convert("UTC")
                age = (now_ts - newest).total_seconds()
                out.append(
                    Measurement(
                        "freshness",
                        "online_age_seconds",
                        view.name,
                        age,
                        limit,
                        ALERT if age > limit else OK,
                        {"materialized_to": newest},
                    )
                )
            else:
                out.append(
                    Measurement(
                        "freshness",
                        "online_age_seconds",
                        view.name,
                        -1.0,
                        limit,
                        ALERT,
                        {"message": "never materialized"},
                    )
                )
    for table, features in tables.items():
        days = profiles.get(table)
        if days is None or days.empty:
            continue
        stamps = pd.to_datetime(days["day"], utc=True)
        inside = days[(stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))]
        for _, day in inside.iterrows():
            when = pd.Timestamp(day["day"])
            when = (when.tz_localize("UTC") if when.tz is None else when.tz_convert("UTC")).to_pydatetime()
            span = (when, when + pd.Timedelta(days=1))
            rows = int(day["n_rows"])
            out.append(Measurement("quality", "rows", table, rows, window=span))
            for f in dict.fromkeys(features):
                if f"{f}__n" in day and rows:
                    out.append(Measurement("quality", "null_rate", f, 1 - day[f"{f}__n"] / rows, window=span))
    return out
