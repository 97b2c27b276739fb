"""Evaluation reports: a Markdown page with PNG plots, model vs baselines vs oracle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ownlens_ml.evaluation import calibration_table, gains_table

MODEL_COLOR = "#1f5fa8"
ORACLE_COLOR = "#2a2a2a"
OTHER_COLORS = ("#d9822b", "#3c9d5d", "#a63d7a", "#8a8a8a")


@dataclass
class Evaluation:
    """One model version scored on its holdout, beside its baselines and the oracle."""

    model: str
    version: int | None
    kind: str
    feature_service: str | None
    metrics: dict[str, dict[str, float]]
    """Metric values by scorer: "model", each baseline, "champion_vN" and "oracle" where known."""
    holdout: str
    """Which rows: e.g. "1,234 rows with label times 2026-03-02..2026-03-30"."""
    y: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    """Outputs on the holdout rows by scorer (supervised kinds)."""
    importance: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    notes: list[str] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    """Kind-specific data the plots draw (curves, series, profiles)."""
    positives: dict[str, tuple[int, int]] = field(default_factory=dict)
    """A classifier's (positives, rows) by part of the split: train, validation, test."""

    def positives_line(self) -> str | None:
        """One line: how many positives each part held (classifiers), else None."""
        if not self.positives:
            return None
        return "Positives: " + ", ".join(
            f"{part} {held:,} of {rows:,} rows ({held / max(rows, 1):.2%})"
            for part, (held, rows) in self.positives.items()
        )

    def table(self, names: tuple[str, ...]) -> pd.DataFrame:
        """Metrics side by side, one row per scorer."""
        return pd.DataFrame({who: {m: values.get(m) for m in names} for who, values in self.metrics.items()}).T


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)


def _color(i: int, who: str) -> str:
    return MODEL_COLOR if who == "model" else ORACLE_COLOR if who == "oracle" else OTHER_COLORS[i % len(OTHER_COLORS)]


def _roc_pr(ev: Evaluation, folder: Path) -> list[str]:
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.6))
    for i, (who, p) in enumerate(ev.scores.items()):
        fpr, tpr, _ = skm.roc_curve(ev.y, p)
        precision, recall, _ = skm.precision_recall_curve(ev.y, p)
        style = {"color": _color(i, who), "lw": 2.2 if who == "model" else 1.3, "ls": "--" if who == "oracle" else "-"}
        roc.plot(fpr, tpr, label=f"{who} ({ev.metrics[who]['roc_auc']:.3f})", **style)
        pr.plot(recall, precision, label=f"{who} ({ev.metrics[who]['pr_auc']:.3f})", **style)
    roc.plot([0, 1], [0, 1], color="#bbbbbb", lw=1)
    pr.axhline(ev.y.mean(), color="#bbbbbb", lw=1)
    _style(roc, "ROC curve (AUC in legend)", "false positive rate", "true positive rate")
    _style(pr, "Precision-recall (average precision in legend)", "recall", "precision")
    roc.legend(fontsize=8, loc="lower right")
    pr.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(folder / "roc_pr.png", dpi=110)
    plt.close(fig)
    return ["roc_pr.png"]


def _calibration(ev: Evaluation, folder: Path) -> list[str]:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, who in enumerate(w for w in ev.scores if w in ("model", "oracle")):
        table = calibration_table(ev.y, ev.scores[who])
        ax.plot(table["predicted"], table["observed"], marker="o", color=_color(i, who), label=who)
    ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=1, label="perfect")
    _style(ax, "Calibration (10 equal-count bins)", "mean predicted probability", "observed rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "calibration.png", dpi=110)
    plt.close(fig)
    return ["calibration.png"]


def _gains(ev: Evaluation, folder: Path) -> list[str]:
    table = gains_table(ev.y, ev.scores["model"])
    fig, (lift, gain) = plt.subplots(1, 2, figsize=(11, 4))
    lift.bar(table.index, table["lift"], color=MODEL_COLOR)
    lift.axhline(1.0, color="#bbbbbb", lw=1)
    _style(lift, "Lift by score decile (model)", "decile (1 = highest scores)", "positive rate / base rate")
    share = np.arange(len(table) + 1) / len(table)
    gain.plot(share, np.r_[0.0, table["cumulative_gain"]], marker="o", color=MODEL_COLOR, label="model")
    gain.plot([0, 1], [0, 1], color="#bbbbbb", lw=1, label="random")
    _style(gain, "Cumulative gains (model)", "share of rows, highest scores first", "share of positives found")
    gain.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "gains.png", dpi=110)
    plt.close(fig)
    # the blank line ends the table: without it Markdown reads the image as one more table row
    return ["## Lift and gains by decile (model)\n\n" + table.round(3).to_markdown() + "\n", "gains.png"]


def _predicted_vs_actual(ev: Evaluation, folder: Path) -> list[str]:
    fig, (scatter, residuals) = plt.subplots(1, 2, figsize=(11, 4.4))
    p = ev.scores["model"]
    scatter.scatter(ev.y, p, s=6, alpha=0.35, color=MODEL_COLOR, label="model")
    if "oracle" in ev.scores:
        scatter.scatter(ev.y, ev.scores["oracle"], s=6, alpha=0.25, color=ORACLE_COLOR, label="oracle")
    low, high = float(np.min(ev.y)), float(np.max(ev.y))
    scatter.plot([low, high], [low, high], color="#bbbbbb", lw=1)
    _style(scatter, "Predicted vs actual (holdout)", "actual", "predicted")
    scatter.legend(fontsize=8)
    for i, (who, q) in enumerate(ev.scores.items()):
        residuals.hist(
            np.asarray(q) - ev.y,
            bins=40,
            histtype="step",
            lw=2.2 if who == "model" else 1.2,
            color=_color(i, who),
            label=f"{who} (RMSE {ev.metrics[who]['rmse']:.3f})",
        )
    _style(residuals, "Residuals (predicted - actual)", "residual", "rows")
    residuals.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "predicted_vs_actual.png", dpi=110)
    plt.close(fig)
    return ["predicted_vs_actual.png"]


def _importance(ev: Evaluation, folder: Path) -> list[str]:
    if ev.importance.empty:
        return []
    top = ev.importance.sort_values().tail(20)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top) + 1.2))
    ax.barh(top.index, top.values, color=MODEL_COLOR)
    _style(ax, "Permutation importance (validation rows)", "share of the total importance", "")
    fig.tight_layout()
    fig.savefig(folder / "feature_importance.png", dpi=110)
    plt.close(fig)
    return ["feature_importance.png"]


def _comparison(ev: Evaluation, folder: Path) -> list[str]:
    metric = ev.extras.get("headline") or next(iter(next(iter(ev.metrics.values()))))
    names = list(ev.metrics)
    values = [ev.metrics[n][metric] for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    labels = [n.replace("_", "\n", 1) for n in names]
    bars = ax.bar(labels, values, color=[_color(i, n) for i, n in enumerate(names)])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    low = min(values)
    ax.set_ylim(max(0.0, low - 0.1), min(1.0, max(values) + 0.05) if metric in ("roc_auc", "pr_auc") else None)
    _style(ax, f"{metric} on the same holdout rows", "", metric)
    fig.tight_layout()
    fig.savefig(folder / "model_vs_baselines.png", dpi=110)
    plt.close(fig)
    return ["model_vs_baselines.png"]


# --- clustering plots ------------------------------------------------------------------


def _k_selection(ev: Evaluation, folder: Path) -> list[str]:
    """Mean silhouette per number of segments tried, the tie band and the chosen count marked."""
    curve, chosen = ev.extras.get("k_curve"), ev.extras.get("k")
    if not curve:
        return []
    ks, values = [int(k) for k in curve], list(curve.values())
    fig, ax = plt.subplots(figsize=(7, 4.3))
    ax.plot(ks, values, marker="o", color=MODEL_COLOR)
    tolerance = ev.extras.get("k_tolerance")
    if tolerance:
        ax.axhspan(
            max(values) - tolerance,
            max(values),
            color=MODEL_COLOR,
            alpha=0.12,
            label=f"within {tolerance} of the best: ties, the largest k is taken",
        )
    if chosen is not None:
        ax.scatter(
            [chosen],
            [curve[chosen]],
            s=120,
            facecolors="none",
            edgecolors=ORACLE_COLOR,
            lw=1.6,
            label=f"chosen: {chosen} segments",
            zorder=3,
        )
    if tolerance or chosen is not None:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    ax.set_xticks(ks)
    _style(ax, "Number of segments: mean silhouette (higher = better separated)", "segments (k)", "silhouette")
    fig.tight_layout()
    fig.savefig(folder / "k_selection.png", dpi=110)
    plt.close(fig)
    return ["k_selection.png"]


def _heatmap(ax, table: pd.DataFrame, fmt: str, cmap: str, center: float | None = None) -> None:
    values = table.to_numpy(dtype=float)
    if center is None:
        image = ax.imshow(values, cmap=cmap, aspect="auto")
    else:
        span = max(abs(np.nanmin(values) - center), abs(np.nanmax(values) - center), 1e-9)
        image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=center - span, vmax=center + span)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=9)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7.5)
    ax.figure.colorbar(image, ax=ax, fraction=0.03)


def _segment_profiles(ev: Evaluation, folder: Path) -> list[str]:
    """Each segment's standardised centroid (0 = the average reader) and its share of readers."""
    profile = ev.extras.get("profile")
    if profile is None or len(profile) == 0:
        return []
    z = profile[[c for c in profile.columns if c.startswith("z_")]].rename(columns=lambda c: c[2:])
    z.index = [f"{name} ({share:.0%})" for name, share in zip(profile.index, profile["share"])]
    fig, ax = plt.subplots(figsize=(1.0 * z.shape[1] + 3.5, 0.55 * len(z) + 2.2))
    _heatmap(ax, z, "+.1f", "RdBu_r", center=0.0)
    ax.set_title("Segment profiles: standardised centroid per habit (share of readers)", fontsize=11, loc="left")
    fig.tight_layout()
    fig.savefig(folder / "segment_profiles.png", dpi=110)
    plt.close(fig)
    habits = profile[[c for c in profile.columns if not c.startswith("z_")]].round(2)
    return [
        "segment_profiles.png",
        "",
        "Segment centroids in the habits' own units (per-session habits shrunk "
        "towards the population for readers with few sessions):",
        "",
        habits.to_markdown(),
    ]


def _segment_transitions(ev: Evaluation, folder: Path) -> list[str]:
    """Where the previous version's segments went: share of each old segment's readers per new segment."""
    moves = ev.extras.get("transitions")
    if moves is None or len(moves) == 0:
        return []
    shares = moves.div(moves.sum(axis=1).replace(0, np.nan), axis=0)
    fig, ax = plt.subplots(figsize=(0.9 * moves.shape[1] + 4, 0.55 * len(moves) + 2.4))
    _heatmap(ax, shares, ".0%", "Blues")
    ax.set_xlabel("segment in this version", fontsize=9)
    ax.set_ylabel(f"segment in {ev.extras.get('previous', 'the previous version')}", fontsize=9)
    ax.set_title("Movement of readers between segments (row shares)", fontsize=11, loc="left")
    fig.tight_layout()
    fig.savefig(folder / "segment_transitions.png", dpi=110)
    plt.close(fig)
    return ["segment_transitions.png"]


def _ndcg_curves(ev: Evaluation, folder: Path) -> list[str]:
    """NDCG@k against k for the recommender, its baselines and the oracle (ranking kinds)."""
    curves, ks = ev.extras.get("ndcg_curves", {}), ev.extras.get("ks", [])
    if not curves:
        return []
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for i, (who, values) in enumerate(curves.items()):
        ax.plot(
            ks,
            values,
            marker="o",
            ms=3,
            color=_color(i, who),
            lw=2.2 if who == "model" else 1.3,
            ls="--" if who == "oracle" else "-",
            label=who,
        )
    _style(ax, "NDCG@k on the same readers and candidates", "k (articles shown)", "NDCG@k")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "ndcg_at_k.png", dpi=110)
    plt.close(fig)
    return ["ndcg_at_k.png"]


def _activity_bursts(ev: Evaluation, folder: Path) -> list[str]:
    """Hourly reads of a few series with the injected bursts shaded and the detections marked (rule kinds)."""
    panels = ev.extras.get("activity", [])
    if not panels:
        return []
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.3 * len(panels)), sharex=True, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        hours = pd.to_datetime(np.asarray(panel["hours"]) * 3600, unit="s", utc=True)
        ax.plot(hours, panel["reads"], color="#8a8a8a", lw=0.7, label="reads per hour")
        ax.plot(hours, panel["expected"], color=MODEL_COLOR, lw=0.9, alpha=0.8, label="baseline")
        for start, end, lift in panel.get("bursts", []):
            ax.axvspan(
                pd.Timestamp(start * 3600, unit="s", tz="UTC"),
                pd.Timestamp(end * 3600, unit="s", tz="UTC"),
                color=OTHER_COLORS[0],
                alpha=0.25,
                lw=0,
            )
            ax.text(
                pd.Timestamp(start * 3600, unit="s", tz="UTC"),
                max(panel["reads"]) * 0.95,
                f"{lift:.1f}x",
                fontsize=7,
                color=OTHER_COLORS[0],
                va="top",
            )
        for start, end in panel.get("detected", []):
            ax.hlines(
                0,
                pd.Timestamp(start * 3600, unit="s", tz="UTC"),
                pd.Timestamp(end * 3600, unit="s", tz="UTC"),
                color="#c0392b",
                lw=5,
            )
        _style(ax, f"{panel['series']}: injected bursts shaded (lift), detections in red", "", "reads / hour")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(folder / "activity_bursts.png", dpi=100)
    plt.close(fig)
    return ["activity_bursts.png"]


def _detection_curve(ev: Evaluation, folder: Path) -> list[str]:
    """Share of injected bursts found, by lift (rule kinds)."""
    curve = ev.extras.get("recall_by_lift", {})
    if not curve:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    labels = list(curve)
    bars = ax.bar(labels, [curve[k]["found"] for k in labels], color=MODEL_COLOR)
    ax.bar_label(bars, labels=[f"{curve[k]['found']:.0%} of {curve[k]['bursts']}" for k in labels], fontsize=8)
    ax.set_ylim(0, 1.1)
    _style(ax, "Injected bursts found, by lift", "lift (series reads with / without the burst)", "share found")
    fig.tight_layout()
    fig.savefig(folder / "detection_curve.png", dpi=110)
    plt.close(fig)
    return ["detection_curve.png"]


PLOTS: dict[str, Callable[[Evaluation, Path], list[str]]] = {
    "roc_pr": _roc_pr,
    "calibration": _calibration,
    "gains": _gains,
    "predicted_vs_actual": _predicted_vs_actual,
    "importance": _importance,
    "comparison": _comparison,
    "ndcg_at_k": _ndcg_curves,
    "activity_bursts": _activity_bursts,
    "detection_curve": _detection_curve,
    "k_selection": _k_selection,
    "segment_profiles": _segment_profiles,
    "segment_transitions": _segment_transitions,
}
"""Report sections by name; a kind lists the ones it draws. Each writes its PNGs into the
folder and returns them in order (an entry not ending in ``.png`` is Markdown, e.g. a table)."""


def report_folder(settings, name: str, version: int) -> Path:
    """Where version ``version`` of model ``name`` keeps its evaluation report and plots."""
    return settings.reports_dir / name / f"v{version}"


def write_report(ev: Evaluation, folder: Path, metrics: tuple[str, ...], plots: tuple[str, ...]) -> Path:
    """Write ``report.md`` and its PNG plots into ``folder``; returns the report's path.

    Args:
        metrics: the columns of the metrics table; the first is the headline.
        plots: names in ``PLOTS``, drawn in this order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ev.extras.setdefault("headline", metrics[0])
    table = ev.table(metrics).map(lambda v: "" if v is None or pd.isna(v) else f"{v:.4f}")
    lines = [
        f"# {ev.model} v{ev.version}: evaluation" if ev.version else f"# {ev.model}: evaluation",
        "",
        (
            f"Feature service `{ev.feature_service}`; holdout: {ev.holdout}."
            if ev.feature_service
            else f"Holdout: {ev.holdout}."
        ),
        "Every scorer below is measured on the same holdout; baselines were fitted on the same training data.",
        *([ev.positives_line() + "."] if ev.positives else []),
        "",
        table.to_markdown(),
        "",
    ]
    for name in plots:
        lines += [
            entry if not entry.endswith(".png") else f"![{entry[:-4]}]({entry})" for entry in PLOTS[name](ev, folder)
        ]
        lines.append("")
    if ev.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in ev.notes]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
