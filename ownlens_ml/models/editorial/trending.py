"""Trending topics: bursts of reading in a category (overall or in one brand) against the series' own baseline.

A rule, not an estimator. Every hour, each series (a category across all brands, and each
brand's category) is compared with what its own baseline predicts for that hour: the
series' decayed share of its parent's exposure times the parent's exposure in the last 1,
3, 6 or 12 hours. The exposure is the parent's attempted reads (all, or the brand's) times
the series' share of the parent's article supply: a category with more fresh articles is
read more, so supply swings are not trends (``supply``). Normalising by the parent removes
the daily and weekly cycle; the share is decayed (half-life ``half_life_hours``) and frozen while the
series trends, so a burst does not raise its own baseline. A window is significant when its
reads are improbable under Poisson(expected) (``-log10 p >= min_score``), at least
``min_ratio`` times the expectation and at least ``min_reads`` (the floor that keeps a quiet
series' noise from looking like a trend). The score is the strongest window's ``-log10 p``.
A trend starts when the score reaches ``start_score`` (10) and lasts while it stays above
``min_score`` (8): a higher ``start_score`` trades recall and time to detection for fewer
false alarms. The defaults are the best point of ``bench/bench_trending.py --sweep`` on the
demo platform (see ``bench/README.md``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from scipy.special import (
    gammainc,  # regularised lower incomplete gamma: the Poisson upper tail, vectorised
)

from ownlens_ml.errors import (
    EmptyWindowError,
    ModelValidationError,
    NoTruthError,
    ValidationError,
)
from ownlens_ml.evaluation.oracle import oracle
from ownlens_ml.evaluation.report import Evaluation
from ownlens_ml.models.reads import articles, hourly_reads
from ownlens_ml.models.spec import ModelSpec, TrainContext, Trained
from ownlens_ml.settings import Settings

HOUR = 3600


@dataclass(frozen=True)
class TrendingRule:
    """The rule's parameters: what is registered as a version (``rule-json``)."""

    half_life_hours: float = 336.0
    prior_reads: float = 200.0
    """Parent reads' worth of the series' overall share mixed into each hour-of-week slot's share."""
    windows: tuple[int, ...] = (1, 3, 6, 12)
    min_score: float = 8.0
    """-log10 of the Poisson tail probability a window must reach."""
    start_score: float = 10.0
    """-log10 p at which a trend starts (it then lasts while windows reach ``min_score``)."""
    min_ratio: float = 1.4
    min_z: float = 3.5
    """How many of the series' own standard deviations (of the window's ratio) a window must rise."""
    noise_half_life_hours: float = 168.0
    min_reads: int = 8
    warmup_hours: int = 48
    merge_gap_hours: int = 2
    """Trending hours this close together form one episode."""
    lookback_days: int = 14
    """How much history ``trending_now`` reads to warm the baseline."""
    supply_tau_hours: float = 36.0
    """E-folding age of an article's weight in its series' supply (readers favour fresh pieces)."""
    supply_days: int = 10
    """Articles older than this are no longer supply."""

    def validate(self) -> None:
        if not (
            self.half_life_hours > 0
            and self.windows
            and min(self.windows) >= 1
            and self.min_reads >= 1
            and self.min_ratio >= 1
            and self.min_score > 0
            and self.lookback_days >= 2
        ):
            raise ValidationError(f"trending rule parameters out of range: {self}")

    def to_json(self) -> bytes:
        return json.dumps({"rule": "trending", "params": asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TrendingRule:
        """The rule stored by ``to_json``; ValidationError for anything else."""
        try:
            doc = json.loads(data)
            rule = (
                cls(**{**doc["params"], "windows": tuple(doc["params"]["windows"])})
                if doc.get("rule") == "trending"
                else None
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(f"not a trending rule document: {exc}") from None
        if rule is None:
            raise ValidationError('not a trending rule document (no "rule": "trending")')
        rule.validate()
        return rule


@dataclass
class Series:
    """Hourly reads of every series, and of its parent, on one grid of hours."""

    hours: np.ndarray
    """Epoch hours, consecutive."""
    names: list[str]
    brand_id: np.ndarray
    """0 for a category across all brands."""
    category_id: np.ndarray
    reads: np.ndarray
    """(hours, series)."""
    parent: np.ndarray
    """(hours, series): reads of the series' parent (all reads, or its brand's)."""
    supply: np.ndarray | None = None
    """(hours, series): the series' share of its parent's article supply x the parent's categories
    (1 = an even share); None when the articles are unknown (the exposure is then the parent's reads)."""

    def exposure(self) -> np.ndarray:
        """The parent's reads weighted by the series' share of the supply."""
        return self.parent if self.supply is None else self.parent * self.supply


def series_from_hourly(
    hourly: pd.DataFrame,
    categories: dict[int, str] | None = None,
    articles: pd.DataFrame | None = None,
    rule: TrendingRule = TrendingRule(),
) -> Series:
    """Series (every category overall, and per brand) from ``reads.hourly_reads`` rows.

    ``articles`` (``reads.articles`` rows: brand_id, category_id, published_at in epoch
    seconds) gives each series its share of the article supply (see ``supply``).
    """
    if hourly.empty:
        raise EmptyWindowError("no hourly reads to look for trends in; import or generate page views first")
    hours = np.arange(hourly["hour"].min(), hourly["hour"].max() + 1)
    brands = np.sort(hourly["brand_id"].unique())
    cats = np.sort(hourly["category_id"].unique())
    cube = np.zeros((len(hours), len(brands), len(cats)))
    np.add.at(
        cube,
        (
            hourly["hour"].to_numpy() - hours[0],
            np.searchsorted(brands, hourly["brand_id"]),
            np.searchsorted(cats, hourly["category_id"]),
        ),
        hourly["reads"].to_numpy(),
    )
    name = (categories or {}).get
    overall = cube.sum(axis=1)
    per_brand = cube.reshape(len(hours), -1)
    reads = np.concatenate([overall, per_brand], axis=1)
    parent = np.concatenate(
        [
            np.repeat(overall.sum(axis=1, keepdims=True), len(cats), axis=1),
            np.repeat(cube.sum(axis=2), len(cats), axis=1),
        ],
        axis=1,
    )
    brand_id = np.concatenate([np.zeros(len(cats), np.int64), np.repeat(brands, len(cats))])
    category_id = np.concatenate([cats, np.tile(cats, len(brands))])
    names = [f"{name(int(c), f'category{c}')}" + (f"@brand{b}" if b else "") for b, c in zip(brand_id, category_id)]
    share = None if articles is None else supply(hours, brands, cats, articles, rule)
    return Series(hours, names, brand_id, category_id, reads, parent, share)


def supply(
    hours: np.ndarray, brands: np.ndarray, cats: np.ndarray, articles: pd.DataFrame, rule: TrendingRule = TrendingRule()
) -> np.ndarray:
    """(hours, series) each series' share of its parent's article supply x the parent's categories.

    A brand-category's supply in an hour is its articles of the last ``supply_days``, each
    weighted by exp(-age / ``supply_tau_hours``) with the age taken at midday (readers choose
    among the day's pieces), counting today's pieces once published and, for those still to
    come today, the series' usual daily output times the share of a day's publishing that is
    usually still ahead at this hour (both learned from the articles table). Series order as
    ``series_from_hourly``: every category overall, then each brand's.
    """
    pub = articles["published_at"].to_numpy(np.float64) / HOUR
    b = np.searchsorted(brands, articles["brand_id"].to_numpy())
    c = np.searchsorted(cats, articles["category_id"].to_numpy())
    keep = (b < len(brands)) & (c < len(cats))
    keep &= brands[np.minimum(b, len(brands) - 1)] == articles["brand_id"].to_numpy()
    keep &= cats[np.minimum(c, len(cats) - 1)] == articles["category_id"].to_numpy()
    pub, cell = pub[keep], b[keep] * len(cats) + c[keep]
    n_cells = len(brands) * len(cats)
    span_days = max((pub.max() - pub.min()) / 24.0, 1.0) if pub.size else 1.0
    daily = np.bincount(cell, minlength=n_cells) / span_days
    done_by_hour = np.cumsum(np.bincount((pub % 24).astype(np.int64), minlength=24)) / max(pub.size, 1)
    order = np.argsort(pub)
    pub, cell = pub[order], cell[order]
    mass = np.zeros((len(hours), n_cells))
    for t, hour in enumerate(hours):
        midday = (hour // 24) * 24 + 12
        lo, hi = np.searchsorted(pub, [midday - 12 - 24 * rule.supply_days, hour + 1])
        weight = np.exp(-np.maximum(midday - pub[lo:hi], 0.0) / rule.supply_tau_hours)
        mass[t] = np.bincount(cell[lo:hi], weight, minlength=n_cells) + daily * (1.0 - done_by_hour[hour % 24])
    cube = mass.reshape(len(hours), len(brands), len(cats))
    overall = cube.sum(axis=1)
    per_brand = cube / np.maximum(cube.sum(axis=2, keepdims=True), 1e-12)
    share = np.concatenate(
        [overall / np.maximum(overall.sum(axis=1, keepdims=True), 1e-12), per_brand.reshape(len(hours), -1)], axis=1
    )
    return share * len(cats)


def _poisson_score(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """-log10 P(X >= observed) for X ~ Poisson(expected)."""
    p = gammainc(np.maximum(observed, 1.0), np.maximum(expected, 1e-9))  # P(X >= k) = P(k, mu)
    return np.where(observed > 0, -np.log10(np.maximum(p, 1e-300)), 0.0)


@dataclass
class Detection:
    """The rule run over a series grid: per-hour scores, flags and the alert episodes."""

    series: Series
    score: np.ndarray
    """(hours, series): the strongest window's -log10 p where it passed every test, else 0."""
    ratio: np.ndarray
    """(hours, series): observed / expected reads in that window."""
    flags: np.ndarray
    expected: np.ndarray
    """(hours, series): the baseline's expected reads in each hour."""
    episodes: pd.DataFrame
    """series, brand_id, category_id, start_hour, end_hour (exclusive), peak_score."""


def _slots(hours: np.ndarray) -> np.ndarray:
    """Hour of day, and weekday or weekend: who reads, and so what is read, follows this cycle."""
    weekend = ((hours // 24 + 3) % 7 >= 5).astype(np.int64)  # 1970-01-01 was a Thursday
    return hours % 24 + 24 * weekend


def detect(series: Series, rule: TrendingRule = TrendingRule()) -> Detection:
    """Run the rule hour by hour (the baseline at hour t uses hours before t only)."""
    rule.validate()
    n_hours, n_series = series.reads.shape
    decay = 0.5 ** (1.0 / rule.half_life_hours)
    var_decay = 0.5 ** (1.0 / rule.noise_half_life_hours)
    slot = _slots(series.hours)
    num, den = np.zeros((48, n_series)), np.zeros((48, n_series))
    # decayed extra-Poisson variance of each window's ratio on ordinary hours: the series' organic
    # noise (a strong story lifts its category for a day), learned from its past; the Poisson part,
    # 1 / expected, is added back per window, so quiet night hours do not inflate it
    var = np.full((len(rule.windows), n_series), 0.05)
    score, ratio = np.zeros((n_hours, n_series)), np.zeros((n_hours, n_series))
    flags = np.zeros((n_hours, n_series), dtype=bool)
    base = np.zeros((n_hours, n_series))
    windows = np.array(sorted(rule.windows))
    span = int(windows.max())
    exposure = series.exposure()
    for t in range(n_hours):
        if t >= rule.warmup_hours:
            lo = max(t + 1 - span, 0)
            # the share expected in each recent hour's slot, shrunk towards the series' overall share
            overall = num.sum(axis=0) / np.maximum(den.sum(axis=0), 1e-12)
            share = (num[slot[lo : t + 1]] + rule.prior_reads * overall) / (den[slot[lo : t + 1]] + rule.prior_reads)
            expected_h = share * exposure[lo : t + 1]
            base[t] = expected_h[-1]
            observed_h = series.reads[lo : t + 1]
            k = np.minimum(windows, t + 1 - lo)
            expected = np.cumsum(expected_h[::-1], axis=0)[k - 1]  # (windows, series)
            observed = np.cumsum(observed_h[::-1], axis=0)[k - 1]
            s = _poisson_score(observed, expected)
            r = observed / np.maximum(expected, 1e-9)
            z = (r - 1.0) / np.sqrt(var + 1.0 / np.maximum(expected, 1e-9))
            s = np.where(
                (observed >= rule.min_reads) & (r >= rule.min_ratio) & (s >= rule.min_score) & (z >= rule.min_z), s, 0.0
            )
            best = s.argmax(axis=0)
            score[t] = s[best, np.arange(n_series)]
            ratio[t] = r[best, np.arange(n_series)]
            # hysteresis: a trend starts at ``start_score`` and carries on while windows pass ``min_score``
            flags[t] = (score[t] > 0) & ((score[t] >= rule.start_score) | (flags[t - 1] if t else False))
        # learn from this hour unless the series is trending (the burst must not become its baseline)
        keep = ~flags[t]
        if t >= rule.warmup_hours:
            seen = (expected >= 1.0) & keep
            extra = np.clip((r - 1.0) ** 2 - 1.0 / np.maximum(expected, 1e-9), 0.0, 16.0)
            var = np.where(seen, var_decay * var + (1 - var_decay) * extra, var)
        num *= decay
        den *= decay
        num[slot[t]] += np.where(keep, series.reads[t], 0.0)
        den[slot[t]] += np.where(keep, exposure[t], 0.0)
    return Detection(series, score, ratio, flags, base, _episodes(series, flags, score, rule.merge_gap_hours))


def _episodes(series: Series, flags: np.ndarray, score: np.ndarray, gap: int) -> pd.DataFrame:
    rows = []
    for j in range(flags.shape[1]):
        on = np.flatnonzero(flags[:, j])
        if not on.size:
            continue
        breaks = np.flatnonzero(np.diff(on) > gap + 1)
        for lo, hi in zip(np.r_[0, breaks + 1], np.r_[breaks, on.size - 1]):
            a, b = on[lo], on[hi] + 1
            rows.append(
                (
                    series.names[j],
                    int(series.brand_id[j]),
                    int(series.category_id[j]),
                    int(series.hours[a]),
                    int(series.hours[b - 1]) + 1,
                    float(score[a:b, j].max()),
                )
            )
    return pd.DataFrame(rows, columns=["series", "brand_id", "category_id", "start_hour", "end_hour", "peak_score"])


def current(detection: Detection, brand_id: int | None = None) -> pd.DataFrame:
    """What trends at the last hour of the grid, strongest first.

    Columns: series, brand_id (0 = all brands), category_id, score, ratio, since (UTC),
    hours_trending.
    """
    d, s = detection, detection.series
    last = len(s.hours) - 1
    rows = []
    for j in np.flatnonzero(d.flags[last]):
        if brand_id is not None and s.brand_id[j] not in (0, brand_id):
            continue
        start = last
        while start > 0 and d.flags[start - 1, j]:
            start -= 1
        rows.append(
            (
                s.names[j],
                int(s.brand_id[j]),
                int(s.category_id[j]),
                float(d.score[last, j]),
                float(d.ratio[last, j]),
                pd.Timestamp(int(s.hours[start]) * HOUR, unit="s", tz="UTC"),
                last - start + 1,
            )
        )
    frame = pd.DataFrame(
        rows, columns=["series", "brand_id", "category_id", "score", "ratio", "since", "hours_trending"]
    )
    frame["since"] = pd.to_datetime(frame["since"], utc=True)  # typed even when nothing trends
    return frame.sort_values("score", ascending=False, ignore_index=True)


def trending_now(
    settings: Settings, rule: TrendingRule = TrendingRule(), brand_id: int | None = None, at: datetime | None = None
) -> pd.DataFrame:
    """The trending list at ``at`` (default: the newest hour with reads), strongest first.

    Reads ``rule.lookback_days`` of hourly page views before ``at`` to warm each series'
    baseline; ``brand_id`` keeps that brand's series and the all-brand ones. Columns as
    ``current``.

    Raises:
        EmptyWindowError: no page views in the lookback window.
    """
    end = pd.Timestamp(at) if at is not None else None
    if end is None:
        latest = hourly_reads(settings)["hour"].max()
        end = pd.Timestamp(int(latest + 1) * HOUR, unit="s", tz="UTC")
    start = end - pd.Timedelta(days=rule.lookback_days)
    hourly = hourly_reads(settings, start.to_pydatetime(), end.to_pydatetime())
    return current(
        detect(series_from_hourly(hourly, category_names(settings), articles(settings), rule), rule), brand_id
    )


def category_names(settings: Settings) -> dict[int, str]:
    """category_id -> name from the reference table."""
    from sqlalchemy import text

    from ownlens_ml.db import get_engine

    with get_engine(settings).connect() as conn:
        return {int(k): v for k, v in conn.execute(text("SELECT category_id, name FROM categories"))}


# --- evaluation against known bursts ---------------------------------------------------------

LIFT_BINS = (1.0, 1.5, 2.0, 3.0, 5.0, np.inf)


def score_bursts(detection: Detection, bursts: pd.DataFrame, grace_hours: int = 6) -> tuple[dict, pd.DataFrame]:
    """Compare episodes with injected bursts (``series brand_id category_id start end lift``).

    A burst is found when an episode on its own series overlaps [start, end + grace). An
    episode is a false alarm when it overlaps no burst on its category in a related series
    (the same brand, or all brands on either side) within the same grace; a burst that starts
    in the detector's warm-up is not scored for recall but still explains the episodes on it.

    Returns:
        Metrics (recall of bursts with lift >= 2, precision of episodes, false alarms per
        series-day, median hours to detection) and the per-burst table (found, hours to detect).
    """
    s = detection.series
    ep = detection.episodes
    b = bursts.copy()
    b["start_hour"] = (pd.to_datetime(b["start"], utc=True).astype("int64") // 10**9 // HOUR).astype(np.int64)
    b["end_hour"] = (pd.to_datetime(b["end"], utc=True).astype("int64") // 10**9 // HOUR).astype(np.int64)
    # every burst excuses the episodes it explains, but one starting in the detector's warm-up (or
    # after the data) cannot be judged for recall: it is dropped from the table after matching
    first = int(s.hours[0]) + TrendingRule().warmup_hours if len(s.hours) else 0
    judged = ((b["start_hour"] >= first) & (b["start_hour"] <= int(s.hours[-1]))).to_numpy()
    found, delay = np.zeros(len(b), bool), np.full(len(b), np.nan)
    seen_any = np.zeros(len(b), bool)
    matched = np.zeros(len(ep), bool)
    for i, burst in b.iterrows():
        same_cat = ep["category_id"].to_numpy() == burst["category_id"]
        overlap = (ep["start_hour"].to_numpy() < burst["end_hour"] + grace_hours) & (
            ep["end_hour"].to_numpy() > burst["start_hour"]
        )
        related = (
            same_cat
            & overlap
            & (
                (ep["brand_id"].to_numpy() == burst["brand_id"])
                | (ep["brand_id"].to_numpy() == 0)
                | (burst["brand_id"] == 0)
            )
        )
        matched |= related
        own = related & (ep["brand_id"].to_numpy() == burst["brand_id"])
        if related.any():
            seen_any[i] = True
        if own.any():
            found[i] = True
            # hours from the burst's start to the end of the first flagged hour
            delay[i] = max(ep.loc[own, "start_hour"].min() - burst["start_hour"], 0) + 1
    b["found"], b["hours_to_detect"], b["found_any_scope"] = found, delay, seen_any
    b = b[judged].reset_index(drop=True)
    strong = b["lift"] >= 2.0
    series_days = s.reads.shape[1] * len(s.hours) / 24.0
    false_alarms = int((~matched).sum())
    recall = float(b.loc[strong, "found"].mean()) if strong.any() else 0.0
    precision = float(matched.mean()) if len(ep) else 1.0
    metrics = {
        "f1_2x": 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0,
        "recall_2x": float(b.loc[strong, "found"].mean()) if strong.any() else float("nan"),
        "recall_all": float(b["found"].mean()) if len(b) else float("nan"),
        "recall_2x_any_scope": float(b.loc[strong, "found_any_scope"].mean()) if strong.any() else float("nan"),
        "precision": float(matched.mean()) if len(ep) else 1.0,
        "false_alarm_share": float((~matched).mean()) if len(ep) else 0.0,
        "false_alarms_per_series_day": false_alarms / max(series_days, 1e-9),
        "median_hours_to_detect": float(np.nanmedian(b.loc[strong & b["found"], "hours_to_detect"]))
        if (strong & b["found"]).any()
        else float("nan"),
        "bursts": len(b),
        "bursts_2x": int(strong.sum()),
        "episodes": len(ep),
        "false_alarms": false_alarms,
    }
    b["lift_bin"] = pd.cut(b["lift"], LIFT_BINS, right=False).astype(str)
    # a metric with nothing to measure (no burst found) is None, not NaN: the registry stores JSON
    return {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in metrics.items()}, b


def recall_by_lift(per_burst: pd.DataFrame) -> pd.DataFrame:
    """The detection curve: bursts and the share found, by lift bin."""
    return (
        per_burst.groupby("lift_bin", sort=False)
        .agg(bursts=("found", "size"), found=("found", "mean"), median_hours=("hours_to_detect", "median"))
        .sort_index()
    )


# --- the trainer the engine calls (rule kind) -----------------------------------------------------

NAIVE = TrendingRule(prior_reads=1e12, min_z=0.0, min_ratio=2.0, min_reads=1, min_score=3.0, start_score=3.0)
"""The baseline: twice the series' decayed mean share at p < 0.001, no daily cycle, no noise model, no floor."""
PANELS = 4


def _panels(detection: Detection, per_burst: pd.DataFrame) -> list[dict]:
    """A few series to draw: those with the most bursts overall and per brand, and the quietest with one."""
    s, ep = detection.series, detection.episodes
    counts = per_burst["series"].value_counts()
    volume = pd.Series(s.reads.mean(axis=0), index=s.names)
    picks = [n for n in counts.index if "@" not in n][:2] + [n for n in counts.index if "@" in n][:1]
    quiet = volume.reindex(counts.index).dropna().sort_values()
    picks += [n for n in quiet.index if n not in picks][: PANELS - len(picks)]
    panels = []
    for name in picks[:PANELS]:
        j = s.names.index(name)
        mine = per_burst[per_burst["series"] == name]
        panels.append(
            {
                "series": name,
                "hours": s.hours.tolist(),
                "reads": s.reads[:, j].tolist(),
                "expected": detection.expected[:, j].tolist(),
                "bursts": [
                    (int(a), int(b), float(c))
                    for a, b, c in mine[["start_hour", "end_hour", "lift"]].itertuples(index=False)
                ],
                "detected": [
                    (int(a), int(b))
                    for a, b in ep.loc[ep["series"] == name, ["start_hour", "end_hour"]].itertuples(index=False)
                ],
            }
        )
    return panels


@dataclass(frozen=True)
class TrendingTrainer:
    """Register the rule's parameters and score them against the generator's injected bursts (rule kind).

    The rule runs over every hour of page views up to ``train --as-of`` (default: all); it is
    scored beside ``NAIVE`` and the champion's parameters on the same series.
    """

    rule: TrendingRule = TrendingRule()

    def _series(self, ctx: TrainContext, as_of: pd.Timestamp | None, rule: TrendingRule) -> tuple[Series, str]:
        from ownlens_ml.features.store import entity_fingerprint

        with ctx.steps("activity", f"{ctx.spec.name}: hourly reads per category and brand"):
            hourly = hourly_reads(ctx.settings, end=None if as_of is None else pd.Timestamp(as_of).to_pydatetime())
            series = series_from_hourly(hourly, category_names(ctx.settings), articles(ctx.settings), rule)
        return series, entity_fingerprint(hourly)

    def _evaluation(self, ctx: TrainContext, series: Series, rule: TrendingRule, version: int | None) -> Evaluation:
        try:
            bursts = oracle(ctx.settings, ctx.spec.oracle, None)
        except NoTruthError as err:
            raise ModelValidationError(
                f"{ctx.spec.name} is scored against the generator's injected bursts and this "
                f"data has none ({err}); its parameters cannot be judged"
            ) from None
        rules = {"model": rule, "naive_ratio": NAIVE}
        champion = ctx.rival(version)
        if champion is not None:
            rules[f"champion_v{champion[0].version}"] = champion[1]
        metrics, found = {}, {}
        with ctx.steps(
            "evaluate", f"{ctx.spec.name}: detect over {series.reads.shape[1]} series x {len(series.hours):,} hours"
        ):
            for who, r in rules.items():
                detection = detect(series, r)
                metrics[who], per_burst = score_bursts(detection, bursts)
                if who == "model":
                    mine, found = detection, per_burst
        curve = recall_by_lift(found)
        notes = [
            (
                f"judged by the oracle: the generator's {len(found)} injected bursts; a burst is found when an "
                "episode on its own series overlaps it (up to 6 hours after its end); an episode overlapping no "
                "burst of its category is a false alarm"
            ),
            "lift = the series' expected reads with the burst over those without it (the generator's truth)",
            "recall by lift: " + ", ".join(f"{k}: {v['found']:.0%} of {int(v['bursts'])}" for k, v in curve.iterrows()),
        ]
        first = pd.Timestamp(int(series.hours[0]) * HOUR, unit="s", tz="UTC")
        holdout = (
            f"{series.reads.shape[1]} series x {len(series.hours):,} hours from {first:%Y-%m-%d} "
            f"({metrics['model']['bursts']} bursts, {metrics['model']['bursts_2x']} of 2x or more)"
        )
        extras = {
            "recall_by_lift": {
                k: {"bursts": int(v["bursts"]), "found": float(v["found"])} for k, v in curve.iterrows()
            },
            "activity": _panels(mine, found),
        }
        return Evaluation(ctx.spec.name, version, ctx.spec.kind, None, metrics, holdout, notes=notes, extras=extras)

    def train(self, ctx: TrainContext) -> Trained:
        """Run the rule over the activity and score it; the parameters are the artifact."""
        series, fingerprint = self._series(ctx, ctx.window.as_of, self.rule)
        evaluation = self._evaluation(ctx, series, self.rule, None)
        start = pd.Timestamp(int(series.hours[0]) * HOUR, unit="s", tz="UTC")
        end = pd.Timestamp(int(series.hours[-1] + 1) * HOUR, unit="s", tz="UTC")
        lineage = {
            "rule": asdict(self.rule),
            "as_of": end.isoformat() if ctx.window.as_of is not None else None,
            "series": len(series.names),
            "hours": len(series.hours),
        }
        return Trained(self.rule, evaluation, lineage, fingerprint, None, start.to_pydatetime(), end.to_pydatetime())

    def evaluate(self, ctx: TrainContext, version, model: TrendingRule) -> Evaluation:
        """Re-score a registered rule on the activity of its lineage."""
        series, fingerprint = self._series(ctx, ctx.lineage_as_of(version), model)
        return ctx.note_rebuilt(
            self._evaluation(ctx, series, model, version.version), version, fingerprint, "activity series"
        )


SPEC = ModelSpec(
    name="trending",
    kind="rule",
    feature_service=None,
    entity_key=("series",),
    metrics=("f1_2x", "recall_2x", "precision", "false_alarms_per_series_day", "median_hours_to_detect", "recall_all"),
    trainer=TrendingTrainer(),
    route="/v1/trending",
    current=trending_now,
    oracle="trending",
    description="Which categories (overall and per brand) are reading far above their own baseline right now?",
    label_description=(
        "a burst = hours in which a category's reads rise above what its own decayed, "
        "hour-of-week share of its parent's reads predicts (Poisson and own-noise tests, volume floor)"
    ),
)
