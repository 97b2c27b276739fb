"""The monitoring report (``monitor MODEL --report``): Markdown with PNG plots in the evaluation
report's style: reference against current histograms of the drifted features, the live metric
over time with its interval, skew by feature, freshness per view."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sqlalchemy import select

from ownlens_ml.db import get_engine
from ownlens_ml.db.schema import ml_model_monitoring
from ownlens_ml.evaluation.report import MODEL_COLOR, OTHER_COLORS, _style  # the house style
from ownlens_ml.models import get_spec
from ownlens_ml.monitoring.profiles import OUTPUT, bin_counts
from ownlens_ml.monitoring.results import ALERT, NOTICE
from ownlens_ml.settings import Settings

REFERENCE_COLOR = "#8a8a8a"
MAX_HISTOGRAMS = 6


def _bin_labels(column: dict, bins: int) -> list[str]:
    if column["type"] == "categorical":
        return [*column["counts"], "unseen"][:bins]
    edges = [f"{e:.3g}" for e in column["edges"]]
    if not edges:
        return ["all"]
    return [f"<={edges[0]}", *(f"{a}..{b}" for a, b in zip(edges, edges[1:])), f">{edges[-1]}"]


def _histograms(run, folder: Path) -> list[str]:
    drifted = list(
        dict.fromkeys(m.feature for m in run.measurements if m.kind in ("drift", "output_drift") and m.status == ALERT)
    )
    shown = drifted[:MAX_HISTOGRAMS] or [OUTPUT]
    columns = {**run.profile["features"], OUTPUT: run.profile.get("output")} if run.profile else {}
    shown = [f for f in shown if columns.get(f) is not None]
    if not shown:
        return []
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.8 * len(shown)), squeeze=False)
    for ax, name in zip(axes[:, 0], shown):
        values = run.predictions["score"] if name == OUTPUT else run.window[name]
        reference, current, _ = bin_counts(columns[name], values)
        x = np.arange(len(reference))
        ax.bar(x - 0.2, reference / max(reference.sum(), 1), width=0.4, color=REFERENCE_COLOR, label="reference")
        ax.bar(x + 0.2, current / max(current.sum(), 1), width=0.4, color=MODEL_COLOR, label="current window")
        ax.set_xticks(x, _bin_labels(columns[name], len(x)), rotation=30, ha="right", fontsize=7)
        _style(ax, "model output" if name == OUTPUT else name, "", "share of rows")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "drift_histograms.png", dpi=110)
    plt.close(fig)
    title = (
        "## Drifted features: reference against current"
        if drifted
        else "## No feature drifted: the model's output, reference against current"
    )
    return [title, "drift_histograms.png"]


def _history(settings: Settings, model: str) -> pd.DataFrame:
    t = ml_model_monitoring.c
    with get_engine(settings).connect() as conn:
        rows = (
            conn.execute(
                select(t.metric, t.value, t.threshold, t.window_start, t.computed_at, t.details)
                .where(t.model_name == model, t.kind == "performance", t.status.in_(("ok", "alert")))
                .order_by(t.computed_at)
            )
            .mappings()
            .all()
        )
    frame = pd.DataFrame(rows, columns=["metric", "value", "threshold", "window_start", "computed_at", "details"])
    return frame.drop_duplicates(["metric", "window_start"], keep="last")


def _live(settings: Settings, run, folder: Path) -> list[str]:
    history = _history(settings, run.model)
    if history.empty:
        return [
            "## Live performance",
            "",
            "No matured labels yet: " + "; ".join(n for n in run.notes if "mature" in n)
            if run.notes
            else "No matured labels yet.",
        ]
    metrics = list(dict.fromkeys(history["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = history[history["metric"] == metric].sort_values("window_start")
        low = rows["details"].map(lambda d: (d or {}).get("low", np.nan)).astype(float)
        high = rows["details"].map(lambda d: (d or {}).get("high", np.nan)).astype(float)
        when = pd.to_datetime(rows["window_start"], utc=True)
        value = rows["value"].to_numpy(float)
        ax.errorbar(
            when.to_numpy(),
            value,
            yerr=[value - low.to_numpy(), high.to_numpy() - value],
            fmt="o-",
            color=MODEL_COLOR,
            capsize=3,
            label="live (95 % bootstrap interval)",
        )
        if rows["threshold"].notna().any():
            ax.axhline(rows["threshold"].dropna().iloc[-1], color=OTHER_COLORS[0], ls="--", label="registered")
        ax.set_xlim(when.min() - pd.Timedelta(days=3), when.max() + pd.Timedelta(days=3))
        _style(ax, f"Live {metric} by as-of day", "as-of day", metric)
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(folder / "live_metrics.png", dpi=110)
    plt.close(fig)
    return ["## Live performance from matured labels", "live_metrics.png"]


def _skew(run, folder: Path) -> list[str]:
    rows = [m for m in run.measurements if m.kind == "skew"]
    if not rows:
        return []
    names = [m.feature for m in rows]
    fig, ax = plt.subplots(figsize=(10, max(3, 0.22 * len(rows))))
    y = np.arange(len(rows))
    ax.barh(y, [m.value for m in rows], color=MODEL_COLOR, label="unexplained (skew)")
    ax.barh(
        y,
        [m.details["explained_rate"] for m in rows],
        left=[m.value for m in rows],
        color=REFERENCE_COLOR,
        label="explained by snapshot cadence / TTL",
    )
    ax.axvline(rows[0].threshold, color=OTHER_COLORS[0], ls="--", lw=1, label="limit")
    ax.set_yticks(y, names, fontsize=7)
    _style(ax, f"Served against offline values ({rows[0].details['sampled']} sampled rows)", "share of rows", "")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "skew.png", dpi=110)
    plt.close(fig)
    return ["## Training/serving skew by feature", "skew.png"]


def _freshness(run, folder: Path) -> list[str]:
    rows = [m for m in run.measurements if m.kind == "freshness"]
    if not rows:
        return []
    frame = pd.DataFrame([{"view": m.feature, "metric": m.metric, "hours": m.value / 3600} for m in rows])
    table = frame.pivot(index="view", columns="metric", values="hours").rename(
        columns={"online_age_seconds": "online store", "snapshot_age_seconds": "newest snapshot"}
    )
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.5))
    table.plot.barh(ax=ax, color=[MODEL_COLOR, REFERENCE_COLOR][: len(table.columns)])
    limit = next((m.threshold for m in rows if m.threshold is not None), None)
    if limit is not None:
        ax.axvline(limit / 3600, color=OTHER_COLORS[0], ls="--", lw=1, label="online limit")
    _style(ax, "Age of the newest values per view", "hours", "")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "freshness.png", dpi=110)
    plt.close(fig)
    return ["## Freshness", "freshness.png"]


def write_monitoring_report(settings: Settings, run) -> Path:
    """Write ``report.md`` and its plots for one monitoring run; returns the report's path."""
    folder = settings.reports_dir / run.model / "monitoring" / f"{run.end - pd.Timedelta(days=1):%Y-%m-%d}-{run.source}"
    folder.mkdir(parents=True, exist_ok=True)
    flagged = pd.DataFrame(
        [
            {
                "check": m.kind,
                "metric": m.metric,
                "feature": m.feature,
                "value": round(m.value, 4),
                "threshold": None if m.threshold is None else round(m.threshold, 4),
                "status": m.status,
            }
            for m in run.measurements
            if m.status in (ALERT, NOTICE)
        ]
    )
    last = run.end - pd.Timedelta(days=1)
    lines = [
        f"# {run.model} v{run.version}: monitoring",
        "",
        f"{run.rows:,} {run.source} predictions with as-of {run.start:%Y-%m-%d}..{last:%Y-%m-%d}; "
        f"feature service `{get_spec(run.model).feature_service}`. Drift thresholds know the sample size "
        "(PSI against chi-square(B-1) x (1/N + 1/M)) at a family-wise level; a notice is significant but "
        "below the effect-size floor.",
        "",
        "## Alerts and notices",
        "",
        flagged.to_markdown(index=False) if len(flagged) else "None.",
        "",
    ]
    for part in (_histograms(run, folder), _live(settings, run, folder), _skew(run, folder), _freshness(run, folder)):
        lines += [entry if not entry.endswith(".png") else f"![{entry[:-4]}]({entry})" for entry in part] + [""]
    if run.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in run.notes]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
