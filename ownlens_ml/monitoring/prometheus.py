"""The latest monitoring results as Prometheus gauges, read from the tables at scrape time.

``ownlens_feature_drift{model,feature,test}`` (the statistic; the output is feature ``__output__``),
``ownlens_live_metric{model,metric}`` (the newest matured day), ``ownlens_open_alerts{model,severity}``
and ``ownlens_feature_age_seconds{view}`` (age of the online store's values). The HTTP app
registers ``MonitoringCollector``; a scrape that cannot read the tables yields no samples.
"""

from __future__ import annotations

import logging
import weakref

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select

from ownlens_ml.db import get_engine
from ownlens_ml.db.schema import ml_alerts
from ownlens_ml.monitoring.results import latest
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)


def gauges(settings: Settings) -> list[GaugeMetricFamily]:
    """The four gauge families from the newest run of every model and the open alerts."""
    drift = GaugeMetricFamily(
        "ownlens_feature_drift",
        "Drift statistic of a feature in the newest monitoring run",
        labels=["model", "feature", "test"],
    )
    live = GaugeMetricFamily(
        "ownlens_live_metric", "Live metric from matured labels, newest as-of day", labels=["model", "metric"]
    )
    open_alerts = GaugeMetricFamily("ownlens_open_alerts", "Open monitoring alerts", labels=["model", "severity"])
    age = GaugeMetricFamily(
        "ownlens_feature_age_seconds", "Age of the online store's values per feature view", labels=["view"]
    )
    rows = latest(settings)
    for r in rows.itertuples():
        if r.kind in ("drift", "output_drift") and r.feature is not None:
            drift.add_metric([r.model_name, r.feature, r.metric], r.value)
    performance = rows[(rows["kind"] == "performance") & rows["status"].isin(["ok", "alert"])]
    for (model, metric), group in performance.groupby(["model_name", "metric"]):
        live.add_metric([model, metric], group.sort_values("window_start")["value"].iloc[-1])
    views = rows[(rows["kind"] == "freshness") & (rows["metric"] == "online_age_seconds")]
    for view, group in views.groupby("feature"):
        age.add_metric([view], group["value"].min())
    a = ml_alerts.c
    with get_engine(settings).connect() as conn:
        counts = conn.execute(
            select(a.model_name, a.severity, func.count()).where(a.status == "open").group_by(a.model_name, a.severity)
        ).all()
    for model, severity, n in counts:
        open_alerts.add_metric([model, severity], n)
    return [drift, live, open_alerts, age]


class MonitoringCollector(Collector):
    """Collects ``gauges`` at each scrape."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def describe(self):
        return []  # nothing read at registration; names are checked at scrape

    def collect(self):
        try:
            yield from gauges(self.settings)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on an unmigrated or unreachable database
            log.warning("monitoring gauges unavailable: %s: %s", type(exc).__name__, str(exc).splitlines()[0])


_installed: weakref.WeakKeyDictionary[CollectorRegistry, MonitoringCollector] = weakref.WeakKeyDictionary()


def install(settings: Settings, registry: CollectorRegistry = REGISTRY) -> None:
    """Register the collector for these settings on ``registry`` (the process's, or a scrape's own in
    multiprocess mode), replacing one an earlier app installed there."""
    previous = _installed.pop(registry, None)
    if previous is not None:
        registry.unregister(previous)
    _installed[registry] = collector = MonitoringCollector(settings)
    registry.register(collector)
