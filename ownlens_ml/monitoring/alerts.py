"""Alert rules over a run's measurements: raised once, deduplicated while the condition persists,
resolved when it clears; stored in ``ml_alerts``, logged, and POSTed to the webhook.

Delivery never fails or slows a run: one short-timeout POST per undelivered open alert, none
after the first failure of a run; a failed alert is retried on later runs with backoff (it
waits 0, 1, 3, 7, ... runs, at most ``MAX_WAIT_RUNS``).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from ownlens_ml.db.schema import ml_alerts, ml_model_monitoring
from ownlens_ml.monitoring.results import ALERT, PENDING, TOO_FEW, Measurement

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
MAX_WAIT_RUNS = 15
OPEN, RESOLVED = "open", "resolved"


@dataclass(frozen=True)
class Rule:
    """An alert rule: which measurements it watches, how severe, for how many consecutive runs.

    A measurement's own threshold (sample-size aware for drift, the registered metric for live
    performance, ``Monitoring``'s limits for skew and freshness) decides its ``alert`` status;
    the rule decides what that status raises.
    """

    name: str
    kind: str
    metrics: tuple[str, ...]
    severity: str
    windows: int = 1
    """Consecutive runs the condition must hold before the alert is raised."""

    def watches(self, m: Measurement) -> bool:
        return m.kind == self.kind and m.metric in self.metrics


RULES = (
    Rule("feature_drift", "drift", ("psi", "ks", "js", "null_rate"), "warning"),
    Rule("output_drift", "output_drift", ("psi", "ks", "js", "null_rate"), "warning"),
    Rule("live_metric", "performance", ("roc_auc", "calibration_error", "rmse", "spearman"), "critical"),
    Rule("skew", "skew", ("mismatch_rate",), "critical"),
    Rule("stale_online_store", "freshness", ("online_age_seconds",), "critical"),
)


@dataclass(frozen=True)
class Outcome:
    raised: list[dict]
    resolved: list[dict]
    open: int
    delivered: int
    undelivered: int


def _key(m: Measurement) -> str:
    return m.feature if m.feature is not None else m.metric


def _message(model: str, version: int, rule: Rule, m: Measurement) -> str:
    what = {
        "feature_drift": f"feature {m.feature} drifted",
        "output_drift": "the model's output drifted",
        "live_metric": f"live {m.metric} is worse than registered",
        "skew": f"served {m.feature} differs from the offline store",
        "stale_online_store": f"the online store's {m.feature} values are stale",
    }
    threshold = "" if m.threshold is None else f" (threshold {m.threshold:.4g})"
    return f"{model} v{version}: {what[rule.name]}: {m.metric} {m.value:.4g}{threshold}"


def _held(conn: Connection, model: str, rule: Rule, key: str, runs: int) -> bool:
    """Whether the previous ``runs`` runs measuring this rule's metric also alerted on ``key``."""
    t = ml_model_monitoring.c
    stamps = (
        conn.execute(
            select(t.computed_at)
            .where(t.model_name == model, t.kind == rule.kind)
            .group_by(t.computed_at)
            .order_by(t.computed_at.desc())
            .limit(runs)
        )
        .scalars()
        .all()
    )
    if len(stamps) < runs:
        return False
    rows = conn.execute(
        select(t.computed_at, t.feature, t.metric, t.status).where(
            t.model_name == model,
            t.kind == rule.kind,
            t.computed_at.in_(stamps),
            t.status == ALERT,
            t.metric.in_(rule.metrics),
        )
    ).all()
    return {r.computed_at for r in rows if (r.feature if r.feature is not None else r.metric) == key} == set(stamps)


def evaluate(
    conn: Connection, model: str, version: int, measurements: list[Measurement], rules: tuple[Rule, ...] = RULES
) -> tuple[list[dict], list[dict]]:
    """Raise, refresh and resolve the model's alerts from one run (before the run's rows are written)."""
    now = datetime.now(UTC)  # when an alert happened to a person: the real time, as the registry's
    a = ml_alerts.c
    open_rows = {
        (r.rule, r.feature if r.feature is not None else r.metric): r
        for r in conn.execute(select(ml_alerts).where(a.model_name == model, a.status == OPEN)).all()
    }
    raised, resolved = [], []
    for rule in rules:
        watched = [m for m in measurements if rule.watches(m) and m.status not in (TOO_FEW, PENDING)]
        if not watched:
            continue  # the check did not run or could not judge: its open alerts stay as they are
        firing = {}
        for m in watched:
            if m.status == ALERT and _key(m) not in firing:
                firing[_key(m)] = m
        for key, m in firing.items():
            if rule.windows > 1 and not _held(conn, model, rule, key, rule.windows - 1):
                continue
            current = open_rows.get((rule.name, key))
            if current is not None:
                conn.execute(update(ml_alerts).where(a.alert_id == current.alert_id).values(last_seen_at=now))
                continue
            row = {
                "model_name": model,
                "rule": rule.name,
                "severity": rule.severity,
                "message": _message(model, version, rule, m),
                "created_at": now,
                "metric": m.metric,
                "feature": m.feature,
                "status": OPEN,
                "last_seen_at": now,
                "notify_attempts": 0,
                "notify_wait": 0,
            }
            row["alert_id"] = conn.execute(insert(ml_alerts).values(**row)).inserted_primary_key[0]
            log.warning("alert raised (%s): %s", rule.severity, row["message"])
            raised.append(row)
        for (name, key), current in open_rows.items():
            if name == rule.name and key not in firing:
                conn.execute(
                    update(ml_alerts).where(a.alert_id == current.alert_id).values(status=RESOLVED, resolved_at=now)
                )
                log.warning("alert resolved: %s", current.message)
                resolved.append(dict(current._mapping))
    return raised, resolved


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body, default=str).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # the operator's URL
        response.read()


def deliver(conn: Connection, url: str | None, model: str) -> tuple[int, int]:
    """POST the model's open, undelivered alerts whose backoff has run out; returns (delivered, undelivered)."""
    if not url:
        return 0, 0
    a = ml_alerts.c
    pending = conn.execute(
        select(ml_alerts).where(a.model_name == model, a.status == OPEN, a.notified_at.is_(None)).order_by(a.alert_id)
    ).all()
    delivered, failing = 0, False
    for row in pending:
        if failing:
            continue
        if (row.notify_wait or 0) > 0:
            conn.execute(update(ml_alerts).where(a.alert_id == row.alert_id).values(notify_wait=row.notify_wait - 1))
            continue
        body = {
            "alert_id": row.alert_id,
            "model": row.model_name,
            "rule": row.rule,
            "severity": row.severity,
            "metric": row.metric,
            "feature": row.feature,
            "message": row.message,
            "status": row.status,
            "created_at": row.created_at,
        }
        try:
            _post(url, body)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            attempts = (row.notify_attempts or 0) + 1
            conn.execute(
                update(ml_alerts)
                .where(a.alert_id == row.alert_id)
                .values(notify_attempts=attempts, notify_wait=min(2 ** (attempts - 1) - 1, MAX_WAIT_RUNS))
            )
            log.warning(
                "alert webhook %s failed (%s); %d undelivered alert(s) are retried on later runs",
                url,
                exc,
                len(pending) - delivered,
            )
            failing = True
            continue
        conn.execute(update(ml_alerts).where(a.alert_id == row.alert_id).values(notified_at=datetime.now(UTC)))
        delivered += 1
    return delivered, len(pending) - delivered
