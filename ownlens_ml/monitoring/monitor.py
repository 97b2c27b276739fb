"""One monitoring run of a model: a window of logged predictions → drift, live performance, skew,
freshness → alerts → ``ml_model_monitoring``, ``ml_alerts`` and the webhook (→ the report).

Everything is checked before anything is written: an unknown model, a window in the future or
without predictions, labels not matured (when only performance is asked for), or a version
without a reference profile each stop the run with one line and leave the tables as they were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from ownlens_ml import clock, registry
from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import ml_alerts, ml_model_predictions
from ownlens_ml.errors import EmptyWindowError, LabelsNotMaturedError, UnknownModelVersionError, ValidationError
from ownlens_ml.models import get_spec
from ownlens_ml.models.spec import ModelSpec
from ownlens_ml.monitoring import alerts, results
from ownlens_ml.monitoring.drift import drift
from ownlens_ml.monitoring.freshness import freshness
from ownlens_ml.monitoring.performance import live_performance
from ownlens_ml.monitoring.profiles import reference_profile
from ownlens_ml.monitoring.results import PENDING, Measurement
from ownlens_ml.monitoring.skew import skew
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

SOURCES = ("online", "batch")
CHECKS = ("drift", "performance", "skew", "freshness")
DEFAULT_DAYS = 7


@dataclass
class MonitorResult:
    """What one run measured and what it raised."""

    model: str
    version: int
    source: str
    start: datetime
    end: datetime
    rows: int
    measurements: list[Measurement]
    notes: list[str] = field(default_factory=list)
    raised: list[dict] = field(default_factory=list)
    resolved: list[dict] = field(default_factory=list)
    open_alerts: int = 0
    delivered: int = 0
    undelivered: int = 0
    computed_at: datetime | None = None
    report: Path | None = None
    profile: dict | None = None
    predictions: pd.DataFrame | None = None
    window: pd.DataFrame | None = None

    def alerting(self) -> list[Measurement]:
        return [m for m in self.measurements if m.status == results.ALERT]

    def summary(self, webhook: bool = False) -> list[str]:
        """Lines for a person: the window, measurements per check and status, each alert, the notes, the
        alerts raised/resolved/open (and the webhook's deliveries when ``webhook``)."""
        measured: dict[str, dict[str, int]] = {}
        for m in self.measurements:
            measured.setdefault(m.kind, {}).setdefault(m.status, 0)
            measured[m.kind][m.status] += 1
        lines = [
            f"{self.model} v{self.version}: {self.rows:,} {self.source} predictions, "
            f"{self.start:%Y-%m-%d}..{self.end - timedelta(days=1):%Y-%m-%d}"
        ]
        lines += [
            f"  {kind}: " + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
            for kind, statuses in measured.items()
        ]
        for m in self.alerting():
            threshold = (
                ""
                if m.threshold is None
                else f" > {m.threshold:.4g}"
                if m.kind != "performance"
                else f" vs registered {m.threshold:.4g}"
            )
            lines.append(f"  alert: {m.kind} {m.metric} {m.feature or ''} {m.value:.4g}{threshold}")
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(
            f"alerts: {len(self.raised)} raised, {len(self.resolved)} resolved, {self.open_alerts} open"
            + (f"; webhook: {self.delivered} delivered, {self.undelivered} to retry" if webhook else "")
        )
        return lines


def window_bounds(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """[start 00:00, end + 1 day 00:00) in UTC; default: the ``DEFAULT_DAYS`` days up to today.

    Raises:
        ValidationError: the window ends before it starts, or lies (partly) in the future.
    """
    today = clock.today()
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ValidationError(f"the window starts ({start}) after it ends ({end}); swap --from and --to")
    if end > today:
        raise ValidationError(
            f"the window {start}..{end} reaches into the future (today is {today}); choose days up to today"
        )
    as_dt = lambda d: datetime.combine(d, datetime.min.time(), UTC)  # noqa: E731
    return as_dt(start), as_dt(end + timedelta(days=1))


def monitored_version(settings: Settings, name: str) -> registry.ModelVersion:
    """The champion, else the newest version."""
    try:
        return registry.get_version(settings, name, "champion")
    except UnknownModelVersionError:
        return registry.get_version(settings, name, None)


def read_predictions(
    settings: Settings, name: str, version: int, source: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """Logged predictions of one version from one source with ``as_of`` in [start, end)."""
    engine = get_engine(settings)
    require_tables(engine, ml_model_predictions.name)
    t = ml_model_predictions.c
    query = (
        select(t.entity_id, t.entity_key, t.as_of, t.score, t.output, t.features)
        .where(t.model_name == name, t.version == version, t.source == source, t.as_of >= start, t.as_of < end)
        .order_by(t.prediction_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        if not rows:
            first, last = conn.execute(
                select(func.min(t.as_of), func.max(t.as_of)).where(
                    t.model_name == name, t.version == version, t.source == source
                )
            ).one()
            held = (
                f"its {source} predictions span {pd.Timestamp(first):%Y-%m-%d}..{pd.Timestamp(last):%Y-%m-%d}"
                if first is not None
                else f"it has no {source} predictions at all"
            )
            hint = "serve it or run `ownlens-ml score`" if first is None else "choose a window inside that span"
            raise EmptyWindowError(
                f"no {source} predictions of {name} v{version} with as-of in "
                f"{start:%Y-%m-%d}..{end - timedelta(days=1):%Y-%m-%d}; {held}; {hint}"
            )
    frame = pd.DataFrame(rows, columns=["entity_id", "entity_key", "as_of", "score", "output", "features"])
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    return frame


def window_features(
    settings: Settings,
    spec: ModelSpec,
    version: registry.ModelVersion,
    source: str,
    predictions: pd.DataFrame,
    features: list[str],
) -> pd.DataFrame:
    """The window's feature values: as served (online), or from the offline store at each ``as_of`` (batch)."""
    if source == "online":
        return pd.DataFrame.from_records(
            [f if isinstance(f, dict) else {} for f in predictions["features"]], columns=features
        )
    from ownlens_ml.features import store

    entities = pd.DataFrame(
        {spec.entity_key[0]: predictions["entity_id"].astype("int64"), "event_timestamp": predictions["as_of"]}
    )
    return store.training_set(settings, version.feature_service, entities).frame[features]


def monitor(
    settings: Settings,
    name: str,
    start: date | None = None,
    end: date | None = None,
    source: str = "online",
    checks: tuple[str, ...] = CHECKS,
) -> MonitorResult:
    """Run the checks on one window of a model's logged predictions and record what they measure.

    Args:
        start, end: the window's first and last day (UTC); default the last ``DEFAULT_DAYS`` days.
        source: ``online`` (served rows, with the feature values served) or ``batch`` (batch-scored
            rows; features from the offline store at their as-of).
        checks: a subset of ``CHECKS``.

    Raises:
        UnknownModelError, ValidationError, EmptyWindowError, LabelsNotMaturedError, NoReferenceProfileError.
    """
    spec = get_spec(name)
    if source not in SOURCES:
        raise ValidationError(f"unknown source {source!r}; use one of: {', '.join(SOURCES)}")
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValidationError(f"unknown check {unknown[0]!r}; use any of: {', '.join(CHECKS)}")
    lo, hi = window_bounds(start, end)
    version = monitored_version(settings, spec.name)
    predictions = read_predictions(settings, spec.name, version.version, source, lo, hi)
    watch = spec.watch
    run = MonitorResult(spec.name, version.version, source, lo, hi, len(predictions), [], predictions=predictions)
    if "performance" in checks:
        measured, notes = live_performance(settings, spec, version, predictions)
        if checks == ("performance",) and measured and all(m.status == PENDING for m in measured):
            raise LabelsNotMaturedError(f"{spec.name}: " + "; ".join(notes) + "; monitor this window after then")
        run.measurements += measured
        run.notes += notes
    model = registry.load_model(settings, spec.name, version.version)[1] if {"drift", "skew"} & set(checks) else None
    if "drift" in checks:
        run.profile = reference_profile(settings, version, model)
        features = list(run.profile["features"])
        if features:
            run.window = window_features(settings, spec, version, source, predictions, features)
            outputs = predictions["score"].to_numpy(dtype=float) if predictions["score"].notna().any() else None
            run.measurements += drift(run.profile, run.window, outputs, watch)
        else:
            run.notes.append(f"{spec.name}: {run.profile.get('note', 'no features profiled')}; no drift measured")
    if version.feature_service and "skew" in checks:
        if source == "online" and len(spec.entity_key) == 1:
            features = list(run.profile["features"]) if run.profile else list(getattr(model, "feature_names_in_", []))
            run.measurements += skew(
                settings,
                version.feature_service,
                spec.entity_key[0],
                predictions,
                features,
                watch.skew_rate,
                watch.skew_sample,
            )
        else:
            run.notes.append("skew is measured on online predictions (their served values are logged)")
    if version.feature_service and "freshness" in checks:
        run.measurements += freshness(settings, version.feature_service, clock.now(), lo, hi, watch)
    too_few = [m for m in run.measurements if m.status == results.TOO_FEW]
    run.notes += [m.details["message"] for m in too_few]
    _record(settings, run)
    return run


def _record(settings: Settings, run: MonitorResult) -> None:
    engine = get_engine(settings)
    require_tables(engine, ml_alerts.name)
    run.computed_at = datetime.now(UTC)
    with engine.begin() as conn:
        run.raised, run.resolved = alerts.evaluate(conn, run.model, run.version, run.measurements)
        results.write(conn, run.model, run.version, (run.start, run.end), run.computed_at, run.measurements)
    with engine.begin() as conn:
        run.delivered, run.undelivered = alerts.deliver(conn, settings.alert_webhook, run.model)
        a = ml_alerts.c
        run.open_alerts = conn.execute(
            select(func.count()).select_from(ml_alerts).where(a.model_name == run.model, a.status == alerts.OPEN)
        ).scalar()
