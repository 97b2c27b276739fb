"""Seeded synthetic publisher platform drawn from latent truth with planted, documented signals.

``generate(settings, GeneratorConfig(users, days, brands, seed))`` writes every platform
table (``schema.PLATFORM_TABLES``; COPY on PostgreSQL, one transaction that first clears
the old platform and feature snapshots) and the latent truth under ``settings.truth_dir``
(see ``ownlens_ml.data.truth``). Same config, same bytes: readers are simulated in fixed
chunks of ``CHUNK_USERS`` with their own seeded streams. The latent process runs
``burn_in_days`` before the first written day so the period opens in a lived-in state.

Planted signals:
1. Churn. Each day a healthy reader starts to fade with the onset hazard: the segment's
   base x ``onset_scale``, up to 1 + ``novelty_boost`` times higher for accounts a few days
   old, up to 1 + ``paywall_frustration`` times higher for free readers under paywall
   pressure, lower for newsletter readers and paying subscribers. While fading,
   engagement falls by a per-reader ``decay`` each day; visits (Poisson, rate = visit rate
   x engagement ** ``rate_power`` x weekday) thin out and each visit is shallower (dwell
   and scroll depth shrink with engagement). A reader churns (stops visiting) with daily
   hazard ``churn_scale x (1 - engagement) ** churn_power`` (the end of a fade), or when a
   habit breaks: ``habit_break x (1 - exp(-missed / habit_missed))``, where missed = idle
   days x the reader's usual visit rate. Churned readers come back with ``return_hazard``
   a day. The label "no visit in the next 30 days" therefore stays partly unforeseeable,
   as on real reader logs.
2. Conversion. Free readers hit the paywall on premium pieces and beyond
   ``free_reads_per_week`` metered reads; hits build a decaying pressure, and the daily
   conversion hazard on a visiting day grows with pressure, engagement and the segment's
   propensity. ``users.subscribed_at`` is the conversion time (``subscribe`` event) or the
   signup time for readers paid from the start.
3. Segments (``SEGMENTS``): news junkies, deep readers, casual skimmers, weekend readers,
   newsletter loyalists, each with its own visit rate, hours, weekdays, devices, referrers,
   dwell, scroll depth, sharing, newsletter and paywall behaviour.
4. Reading choice: a per-reader category affinity (Dirichlet around the segment's taste)
   x the mass (quality x recency, exp(-age/1.5 days)) of the category's pieces already out
   by the end of the hour the session starts in, then an article among those pieces in
   proportion to quality x recency (a piece published in that hour but after the read is
   replaced by one of the earlier days' pieces). So a reader is never drawn to a category
   by pieces still to come, which no detector could see.
5. Article performance: quality = exp(author + category + premium + publish-hour effects +
   noise); ``article_daily_performance`` is the exact daily aggregate of the events.
6. Topic bursts: about ``BURSTS_PER_DAY`` a day, each on one category, across every brand
   or inside one brand (a series), with the category's reading weight multiplied by
   ``boost`` (log-uniform in ``BURST_BOOST_RANGE``) for reads whose session starts inside
   [start, end). The drawn length is log-uniform in ``BURST_HOURS`` (hours to days); on a
   quiet series the burst then lasts longer, until the series' estimated baseline reads
   over the window (its reads without the burst) reach ``BURST_MIN_READS``, or the period
   ends: a few hours of a series of one read an hour is too few reads for any "2x" to show.
   The estimate (``_baseline_reads``) comes from a pilot of ``PILOT_READERS`` readers with
   their own seeded stream, run through the latent process and spread over hours and
   categories by the readers' own choice probabilities, before any reader is simulated, so
   the windows depend on the config alone, never on the chunks. Bursts on one category
   never overlap and keep ``BURST_GAP_HOURS`` apart (after the extension). Because the
   category's share of a reader's choice is normalised, the series' activity rises by less
   than ``boost``: the truth records ``lift``, the expected ratio of the series' reads with
   the burst to those without it over the same reads (exact, from the choice
   probabilities), which is what a detector can see, and ``baseline_reads``, the exact
   expected reads without it; ``hours`` is the real window, ``drawn_hours`` the drawn one.

7. Drift scenarios (``GeneratorConfig.drift``, from the day ``drift_from`` on; none by default):
   ``device-mix``: each session moves to mobile with chance ``DRIFT_MOBILE_SHARE`` (readers'
   habits otherwise unchanged: who visits, when, what they read); ``engagement-drop``: every
   read's visible engagement (dwell time and scroll depth, signal 1) is multiplied by
   ``DRIFT_ENGAGEMENT``, as if every reader skimmed, while who visits, how often and who churns
   or converts stay as they were. So a monitor can be checked against features that must move
   (the mobile share; engaged minutes, minutes per session, scroll depth) and all that must not.

8. Impressions: each session's homepage slate, built from its reads and the editors' picks by
   ``ownlens_ml.data.impressions`` (its own stream; the truth's click probability per slot).

Random streams: the editorial, the readers (one per chunk), the bursts, the pilot and the
drift (one per chunk; drawn from only when a drift is asked for) each have their own; within
a chunk the number of draws depends on the latent draws alone (never on the categories or
articles chosen), so moving a burst changes what is read, not who churns or converts.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ownlens_ml import clock
from ownlens_ml.data import impressions
from ownlens_ml.data.latent import (  # noqa: F401  (re-exported: the generator's public names)
    CATEGORIES,
    CONVERSION,
    DYNAMICS,
    NEWSLETTER_SIGNUP,
    PAGES_EXTRA,
    RECENCY_TAU_DAYS,
    SEGMENT_NAMES,
    SEGMENTS,
    WEEKDAY,
    DayDraws,
    Dynamics,
    Readers,
    ReaderState,
    Segment,
    onset_hazard_at,
    step,
)
from ownlens_ml.data.load import bulk_load, copy_frame
from ownlens_ml.db import get_engine, require_tables, schema
from ownlens_ml.errors import ValidationError
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

# --- the platform around the readers ------------------------------------------------------

CHUNK_USERS = 8192
"""Readers simulated together; fixed so that the output never depends on memory or cores."""
NEW_READER_SHARE = 0.3
"""Share of readers who sign up inside the generated period (the rest are older accounts)."""
COUNTRIES = (
    ("DE", "Germany", "Europe", 0.30),
    ("AT", "Austria", "Europe", 0.10),
    ("CH", "Switzerland", "Europe", 0.08),
    ("GB", "United Kingdom", "Europe", 0.14),
    ("FR", "France", "Europe", 0.08),
    ("NL", "Netherlands", "Europe", 0.06),
    ("US", "United States", "North America", 0.16),
    ("CA", "Canada", "North America", 0.08),
)
DEVICES = ("desktop", "mobile", "tablet", "app")
REFERRERS = ("direct", "search", "social", "newsletter", "idle")
CATEGORY_EFFECT = np.array([0.3, 0.1, 0.25, -0.1, 0.15, -0.05, 0.05, -0.2, -0.15, 0.0])
"""Log-popularity of each category (signal 5)."""
TOPICS_PER_CATEGORY = 5
ARTICLES_PER_BRAND_DAY = 24
AUTHORS_PER_BRAND = 16
PREMIUM_ARTICLE_SHARE = 0.3
ARTICLE_LOOKBACK_DAYS = 10
BURSTS_PER_DAY = 0.3
BURST_BOOST_RANGE = (1.6, 16.0)
BURST_HOURS = (3.0, 96.0)
BURST_GLOBAL_SHARE = 0.5
"""Share of bursts on a category in every brand; the rest are on one brand's category."""
BURST_GAP_HOURS = 24.0
"""Least time between two bursts on the same category (so each burst has a clean baseline)."""
BURST_MIN_READS = 60.0
"""A burst lasts at least until its series' estimated baseline reads (without the burst) reach this."""
PILOT_READERS = 4096
"""Readers of the pilot that estimates each series' hourly reads before any reader is simulated."""
DRIFTS = ("device-mix", "engagement-drop")
"""Drift scenarios ``GeneratorConfig.drift`` may name (signal 7)."""
DRIFT_MOBILE_SHARE = 0.6
"""device-mix: chance that a session from the drift day on is on mobile whatever the reader's habit."""
DRIFT_ENGAGEMENT = 0.5
"""engagement-drop: factor on every read's dwell time and scroll depth from the drift day on."""
AD_CLICK_RATE = 0.01
MS_DAY = 86_400_000
EVENT_ORDER = {name: k for k, name in enumerate(schema.EVENT_TYPES)}


def _hour_effect(hour: np.ndarray) -> np.ndarray:
    """Log-popularity of the publish hour: morning and early-evening pieces do best (signal 5)."""
    return 0.35 * np.exp(-((hour - 7.0) ** 2) / 4.0) + 0.25 * np.exp(-((hour - 18.0) ** 2) / 6.0) - 0.2


def _peaks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = max(len(s.hour_peaks) for s in SEGMENTS)
    mu, w, sd = np.zeros((len(SEGMENTS), k)), np.zeros((len(SEGMENTS), k)), np.ones((len(SEGMENTS), k))
    for i, s in enumerate(SEGMENTS):
        for j, (m, weight, spread) in enumerate(s.hour_peaks):
            mu[i, j], w[i, j], sd[i, j] = m, weight, spread
    return mu, np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1), sd


PEAK_MU, PEAK_CDF, PEAK_SD = _peaks()


def _hour_profile() -> np.ndarray:
    """(segments, 24): the chance that a session starts in each hour of the day (wrapped normal peaks)."""
    from scipy.special import ndtr

    weight = np.diff(PEAK_CDF, axis=1, prepend=0.0)
    edges = np.arange(25.0)[None, None, :, None] + 24.0 * np.arange(-2, 3)[None, None, None, :]
    cdf = ndtr((edges - PEAK_MU[:, :, None, None]) / PEAK_SD[:, :, None, None]).sum(axis=3)
    return (weight[:, :, None] * np.diff(cdf, axis=2)).sum(axis=1)


HOUR_PROFILE = _hour_profile()
DEVICE_CDF = np.cumsum([s.devices for s in SEGMENTS], axis=1)
REFERRER_CDF = np.cumsum([s.referrers for s in SEGMENTS], axis=1)
ENGAGED_SECONDS = np.array([s.engaged_seconds for s in SEGMENTS])
SCROLL_A = np.array([s.scroll_beta[0] for s in SEGMENTS])
SCROLL_B = np.array([s.scroll_beta[1] for s in SEGMENTS])
SCROLL_RATE = np.array([s.scroll_rate for s in SEGMENTS])
SHARE_RATE = np.array([s.share_rate for s in SEGMENTS])
COMMENT_RATE = np.array([s.comment_rate for s in SEGMENTS])
SEGMENT_CATEGORY_BASE = np.array(
    [
        # politics business sport culture tech science health travel food opinion
        [3.0, 2.0, 1.5, 0.6, 1.0, 0.6, 0.5, 0.3, 0.3, 2.0],  # news_junkie
        [1.5, 1.0, 0.3, 2.5, 1.2, 2.5, 1.0, 0.8, 0.6, 2.5],  # deep_reader
        [0.8, 0.5, 3.0, 1.0, 1.0, 0.4, 1.0, 0.8, 1.2, 0.3],  # casual_skimmer
        [0.5, 0.4, 1.5, 2.0, 0.6, 0.8, 1.2, 3.0, 3.0, 0.6],  # weekend_reader
        [2.0, 2.5, 0.6, 1.0, 1.5, 1.0, 1.2, 0.5, 0.5, 1.5],  # newsletter_loyalist
    ]
)
"""Dirichlet means of the per-reader category affinity, by segment (signal 4)."""


def _cdf_pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse CDF: the first column whose cumulative weight exceeds ``u``."""
    return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)


@dataclass(frozen=True)
class GeneratorConfig:
    """Scale and seed of a generated platform; the same config gives the same bytes.

    Attributes:
        users: number of readers (>= 1).
        days: days of activity written to the tables (>= 1).
        brands: number of brands (1..20).
        seed: random seed.
        start: first generated day (00:00 UTC).
        dynamics: parameters of the latent reader process.
        drift_from: first day of the drifted period (with ``drift``); None: no drift.
        drift: drift scenarios from ``DRIFTS`` (signal 7); empty: the clean platform.
    """

    users: int = 2_000
    days: int = 90
    brands: int = 2
    seed: int = 7
    start: date = date(2026, 1, 1)
    dynamics: Dynamics = DYNAMICS
    drift_from: date | None = None
    drift: tuple[str, ...] = ()

    def validate(self) -> None:
        for name in ("users", "days", "brands"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValidationError(f"generator {name} must be a positive integer, got {value!r}")
        if self.brands > 20:
            raise ValidationError(f"generator brands must be at most 20, got {self.brands}")
        if not isinstance(self.start, date):
            raise ValidationError(f"generator start must be a date, got {self.start!r}")
        # timestamps are nanoseconds in pandas: they end in April 2262 (and start in 1677)
        if not pd.Timestamp.min.date() < self.start <= pd.Timestamp.max.date() - timedelta(days=self.days + 1):
            raise ValidationError(
                f"generator start {self.start} with {self.days} days leaves the timestamp range "
                f"{pd.Timestamp.min.date()}..{pd.Timestamp.max.date()}; choose an earlier --start"
            )
        unknown = [d for d in self.drift if d not in DRIFTS]
        if unknown:
            raise ValidationError(f"unknown drift {unknown[0]!r}; use any of: {', '.join(DRIFTS)}")
        if bool(self.drift) != (self.drift_from is not None):
            raise ValidationError(
                "a drift needs both --drift-from DATE and at least one --drift "
                f"({', '.join(DRIFTS)}); got drift {list(self.drift)}, from {self.drift_from}"
            )
        last = self.start + timedelta(days=self.days - 1)
        if self.drift_from is not None and not self.start <= self.drift_from <= last:
            raise ValidationError(
                f"--drift-from {self.drift_from} is outside the generated days "
                f"{self.start}..{last}; choose a day inside them"
            )

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    def drifted(self, name: str, day: int) -> bool:
        """Whether drift ``name`` acts on ``day`` (days since ``start``)."""
        return name in self.drift and day >= (self.drift_from - self.start).days


# --- editorial: authors, articles, bursts -------------------------------------------------


@dataclass
class Editorial:
    """Articles as arrays (index = position in ``frame``) plus the burst windows."""

    authors: pd.DataFrame
    frame: pd.DataFrame
    brand: np.ndarray
    category: np.ndarray
    premium: np.ndarray
    topic: np.ndarray
    pub_ms: np.ndarray
    pub_day: np.ndarray
    quality: np.ndarray
    bursts: pd.DataFrame
    burst_reads: np.ndarray | None = None
    """Reads inside each burst's window and series, summed over chunks."""
    burst_expected: np.ndarray | None = None
    """(bursts, 2): each burst's expected series reads without and with its boost."""


def _editorial(config: GeneratorConfig, rng: np.random.Generator) -> Editorial:
    n_auth = AUTHORS_PER_BRAND * config.brands
    author_brand = np.repeat(np.arange(1, config.brands + 1), AUTHORS_PER_BRAND)
    author_effect = rng.normal(0.0, 0.35, n_auth)
    author_main_category = rng.integers(0, len(CATEGORIES), n_auth)
    joined_days = rng.integers(60, 2000, n_auth)
    authors = pd.DataFrame(
        {
            "author_id": np.arange(1, n_auth + 1, dtype=np.int64),
            "brand_id": author_brand,
            "name": [f"Author {i}" for i in range(1, n_auth + 1)],
            "joined_at": config.start_ts - pd.to_timedelta(joined_days, unit="D"),
        }
    )
    first_day = -ARTICLE_LOOKBACK_DAYS
    n_days = config.days - first_day
    per_day = rng.poisson(ARTICLES_PER_BRAND_DAY, (n_days, config.brands))
    n = int(per_day.sum())
    day = np.repeat(np.repeat(np.arange(first_day, config.days), config.brands), per_day.ravel())
    brand = np.repeat(np.tile(np.arange(1, config.brands + 1), n_days), per_day.ravel())
    author = (brand - 1) * AUTHORS_PER_BRAND + rng.integers(0, AUTHORS_PER_BRAND, n)
    category = np.where(rng.random(n) < 0.5, author_main_category[author], rng.integers(0, len(CATEGORIES), n))
    hour = np.clip(rng.normal(12.0, 4.5, n), 5.0, 23.5)
    premium = rng.random(n) < PREMIUM_ARTICLE_SHARE
    topic = category * TOPICS_PER_CATEGORY + rng.integers(0, TOPICS_PER_CATEGORY, n)
    log_quality = (
        author_effect[author]
        + CATEGORY_EFFECT[category]
        + 0.25 * premium
        + _hour_effect(hour)
        + rng.normal(0.0, 0.3, n)
    )
    quality = np.exp(log_quality)
    pub_ms = day.astype(np.int64) * MS_DAY + (hour * 3_600_000).astype(np.int64)
    word_count = np.maximum(150, rng.normal(650 + 350 * premium, 220)).astype(np.int64)
    order = np.argsort(pub_ms, kind="stable")
    names = np.array(
        [
            f"{CATEGORIES[t // TOPICS_PER_CATEGORY]}-{t % TOPICS_PER_CATEGORY + 1}"
            for t in range(len(CATEGORIES) * TOPICS_PER_CATEGORY)
        ]
    )
    ed = Editorial(
        authors=authors,
        frame=pd.DataFrame(),
        brand=brand[order],
        category=category[order],
        premium=premium[order],
        topic=topic[order],
        pub_ms=pub_ms[order],
        pub_day=day[order],
        quality=quality[order],
        bursts=pd.DataFrame(),
    )
    article_id = np.arange(1, n + 1, dtype=np.int64)
    ed.frame = pd.DataFrame(
        {
            "article_id": article_id,
            "brand_id": ed.brand,
            "author_id": author[order] + 1,
            "category_id": ed.category + 1,
            "topic": names[ed.topic],
            "title": [f"{names[t]} story {i}" for t, i in zip(ed.topic, article_id)],
            "published_at": _ts(config, ed.pub_ms),
            "word_count": word_count[order],
            "is_premium": ed.premium,
            "has_video": rng.random(n)[order] < 0.15,
            "image_count": rng.integers(0, 8, n)[order],
        }
    )
    return ed


def _baseline_reads(config: GeneratorConfig, pools: list, rng: np.random.Generator) -> np.ndarray:
    """(hours, brands + 1, categories): estimated reads per hour of every series without bursts.

    Series 0 is a category across all brands, series b the category in brand b. A pilot of
    ``PILOT_READERS`` readers (or ``users``, if fewer) drawn from its own stream runs the
    latent process (``step``); each day its attempted reads are spread over the hours by the
    segments' session hours (``HOUR_PROFILE``) and over the categories by the same choice
    probabilities as the readers' (affinity x the mass of what is out by the end of the
    hour), then scaled to ``users``. An estimate fixed before any reader is simulated, so
    the burst windows it sets do not depend on the chunks.
    """
    dyn = config.dynamics
    n = min(config.users, PILOT_READERS)
    profile = draw_profiles(config, rng, 1, n)
    rd = profile.readers
    state = ReaderState.initial(n, profile.initial_paid, profile.initial_newsletter)
    out = np.zeros((config.days, 24, config.brands, len(CATEGORIES)))
    for day in range(-dyn.burn_in_days, config.days):
        draws = step(rd, state, day, _weekday(config, day), rng, dyn)
        if day < 0:
            continue
        mass = pools[day][0].hour_mass.reshape(24, config.brands, len(CATEGORIES), 2)
        for premium, count in ((0, draws.attempts - draws.premium), (1, draws.premium)):
            for b in range(config.brands):
                mine = np.flatnonzero((profile.brand == b + 1) & (count > 0))
                if not mine.size:
                    continue
                m = mass[:, b, :, premium]  # (24, categories)
                aff = profile.affinity[mine]
                reads = HOUR_PROFILE[rd.segment[mine]] * count[mine, None]  # (readers, 24)
                total = aff @ m.T  # (readers, 24)
                # sum over readers of reads x aff_c m_c / total, per hour and category
                out[day, :, b, :] += m * (aff.T @ (reads / np.where(total > 0, total, np.inf))).T
    out = out.reshape(config.days * 24, config.brands, len(CATEGORIES)) * (config.users / n)
    return np.concatenate([out.sum(axis=1, keepdims=True), out], axis=1)


def _bursts(config: GeneratorConfig, rng: np.random.Generator, baseline: np.ndarray) -> pd.DataFrame:
    """Burst windows (signal 6): series, start, end and boost; ``lift`` is filled in by the readers.

    ``baseline`` is ``_baseline_reads``: a burst's drawn length is extended, where needed,
    until its series' estimated baseline reads reach ``BURST_MIN_READS`` (or the period ends).
    """
    hours = config.days * 24
    n = max(1, int(round(BURSTS_PER_DAY * config.days)))
    cum = np.concatenate([np.zeros((1,) + baseline.shape[1:]), np.cumsum(baseline, axis=0)])
    taken: list[tuple[int, float, float]] = []
    rows = []
    for _ in range(20 * n):
        if len(rows) == n:
            break
        length = float(np.exp(rng.uniform(*np.log(BURST_HOURS))))
        length = min(length, max(hours - 1.0, 1.0))
        start = float(np.floor(rng.uniform(0, max(hours - length, 1.0))))
        category = int(rng.integers(0, len(CATEGORIES)))
        brand = (
            0 if rng.random() < BURST_GLOBAL_SHARE or config.brands == 1 else int(rng.integers(1, config.brands + 1))
        )
        boost = float(np.exp(rng.uniform(*np.log(BURST_BOOST_RANGE))))
        drawn_end = min(start + np.ceil(length), float(hours))
        # a quiet series needs longer for a burst to show: last until the baseline reads reach the floor
        series = cum[:, brand, category]
        enough = float(np.searchsorted(series, series[int(start)] + BURST_MIN_READS, side="left"))
        end = min(max(drawn_end, enough), float(hours))
        if any(c == category and start < e + BURST_GAP_HOURS and s < end + BURST_GAP_HOURS for c, s, e in taken):
            continue
        taken.append((category, start, end))
        rows.append((brand, category, start, end, drawn_end - start, boost))
    frame = pd.DataFrame(rows, columns=["brand_id", "category", "start_hour", "end_hour", "drawn_hours", "boost"])
    frame = frame.sort_values(["start_hour", "category", "brand_id"], ignore_index=True)
    return pd.DataFrame(
        {
            "burst_id": np.arange(1, len(frame) + 1),
            "series": [
                f"{CATEGORIES[c]}" + (f"@brand{b}" if b else "") for b, c in zip(frame["brand_id"], frame["category"])
            ],
            "brand_id": frame["brand_id"].astype(np.int64),
            "category_id": frame["category"].astype(np.int64) + 1,
            "category": np.array(CATEGORIES)[frame["category"].to_numpy(int)] if len(frame) else [],
            "start": _ts(config, (frame["start_hour"] * 3_600_000).astype(np.int64)),
            "end": _ts(config, (frame["end_hour"] * 3_600_000).astype(np.int64)),
            "start_ms": (frame["start_hour"] * 3_600_000).astype(np.int64),
            "end_ms": (frame["end_hour"] * 3_600_000).astype(np.int64),
            "hours": frame["end_hour"] - frame["start_hour"],
            "drawn_hours": frame["drawn_hours"],
            "boost": frame["boost"],
        }
    )


def _burst_hits(ed: Editorial, brand: np.ndarray, at_ms: np.ndarray, day: int) -> list[tuple[int, np.ndarray]]:
    """(burst index, reads inside its window and series) for the bursts live on ``day``."""
    b = ed.bursts
    live = np.flatnonzero((b["start_ms"].to_numpy() < (day + 1) * MS_DAY) & (b["end_ms"].to_numpy() > day * MS_DAY))
    out = []
    for k in live:
        hit = (at_ms >= b["start_ms"].iat[k]) & (at_ms < b["end_ms"].iat[k])
        if b["brand_id"].iat[k]:
            hit &= brand == b["brand_id"].iat[k]
        out.append((int(k), hit))
    return out


def _ts(config: GeneratorConfig, ms: np.ndarray) -> pd.Series:
    """Milliseconds since the first generated day as UTC timestamps."""
    base = config.start_ts.value // 1_000_000
    return pd.Series(pd.to_datetime(np.asarray(ms, dtype=np.int64) + base, unit="ms", utc=True))


class _ArticlePool:
    """One day's readable articles, grouped by (brand, category, premium) for inverse-CDF draws.

    Within a group the articles are in publishing order, so the pieces out by the end of an
    hour of the day are a prefix of the group: ``hour_mass`` and ``hour_end`` give, per hour
    and group, that prefix's weight and end, so a read chooses among what is already out.
    """

    def __init__(self, ed: Editorial, day: int, brands: int, include_today: bool):
        last = day if include_today else day - 1
        idx = np.flatnonzero((ed.pub_day >= day - ARTICLE_LOOKBACK_DAYS) & (ed.pub_day <= last))
        age = (day + 0.5) - ed.pub_ms[idx] / MS_DAY
        weight = ed.quality[idx] * np.exp(-np.maximum(age, 0.0) / RECENCY_TAU_DAYS)
        self.brands = brands
        self.n_groups = brands * len(CATEGORIES) * 2
        group = ((ed.brand[idx] - 1) * len(CATEGORIES) + ed.category[idx]) * 2 + ed.premium[idx]
        order = np.argsort(group, kind="stable")  # idx is in publishing order, and stays so per group
        self.index, self.group = idx[order], group[order]
        csum = np.concatenate([[0.0], np.cumsum(weight[order])])
        self.cum = csum[1:]
        # the first hour of the day by whose end each piece is out (0: published on an earlier day)
        out_hour = np.clip((ed.pub_ms[self.index] - day * MS_DAY) // 3_600_000, 0, 23)
        lo = np.searchsorted(self.group, np.arange(self.n_groups))
        per_hour = np.zeros((24, self.n_groups), dtype=np.int64)
        np.add.at(per_hour, (out_hour, self.group), 1)
        # (24, groups): one past each group's last piece out by the end of each hour, and their weight
        self.hour_end = lo[None, :] + np.cumsum(per_hour, axis=0)
        self.offset = csum[lo]
        self.hour_mass = csum[self.hour_end] - self.offset[None, :]

    def category_mass(self, brand: np.ndarray, premium: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """(n, categories) article mass available to each read in its hour of the day."""
        m = self.hour_mass.reshape(24, self.brands, len(CATEGORIES), 2)
        return m[hour, brand - 1, :, premium.astype(int)]

    def draw(self, group: np.ndarray, u: np.ndarray, hour: np.ndarray | int = 23) -> tuple[np.ndarray, np.ndarray]:
        """Article positions for reads in ``group`` among the pieces out by the end of ``hour``;
        the second array says whether the group had any."""
        mass = self.hour_mass[hour, group]
        end = self.hour_end[hour, group]
        target = self.offset[group] + u * mass
        pos = np.clip(
            np.minimum(np.searchsorted(self.cum, target, side="right"), end - 1), 0, max(len(self.cum) - 1, 0)
        )
        ok = mass > 0
        return (self.index[pos] if len(self.index) else np.zeros(len(group), np.int64)), ok


# --- readers: static draws, the day loop, table rows ------------------------------------------


@dataclass
class ReaderProfile:
    """Static, observable and latent attributes of one chunk of readers."""

    user_id: np.ndarray
    readers: Readers
    brand: np.ndarray
    country: np.ndarray
    device: np.ndarray
    signup_ms: np.ndarray
    affinity: np.ndarray
    initial_paid: np.ndarray
    initial_newsletter: np.ndarray


def draw_profiles(config: GeneratorConfig, rng: np.random.Generator, first_id: int, n: int) -> ReaderProfile:
    """Draw ``n`` readers' segments, habits and affinities (signals 3 and 4)."""
    dyn = config.dynamics
    shares = np.array([s.share for s in SEGMENTS])
    segment = _cdf_pick(np.cumsum(shares / shares.sum())[None, :].repeat(n, 0), rng.random(n))
    brand_w = 1.0 / np.arange(1, config.brands + 1) ** 0.7
    brand = _cdf_pick(np.cumsum(brand_w / brand_w.sum())[None, :].repeat(n, 0), rng.random(n)) + 1
    new = rng.random(n) < NEW_READER_SHARE
    signup_day = np.where(new, rng.integers(0, config.days, n), -rng.integers(1, dyn.burn_in_days + 700, n))
    signup_ms = signup_day.astype(np.int64) * MS_DAY + rng.integers(0, 3_600_000, n)
    visit_rate = (
        dyn.visit_scale
        * np.array([s.visit_rate for s in SEGMENTS])[segment]
        * rng.lognormal(-(dyn.visit_sigma**2) / 2, dyn.visit_sigma, n)
    )
    readers = Readers(
        segment=segment,
        signup_day=signup_day,
        visit_rate=visit_rate,
        decay=rng.uniform(dyn.decay_low, dyn.decay_high, n),
        onset_hazard=np.array([s.onset_hazard for s in SEGMENTS])[segment],
        premium_share=np.array([s.premium_share for s in SEGMENTS])[segment],
    )
    country_w = np.array([c[3] for c in COUNTRIES])
    country = _cdf_pick(np.cumsum(country_w / country_w.sum())[None, :].repeat(n, 0), rng.random(n))
    device = _cdf_pick(DEVICE_CDF[segment], rng.random(n))
    base = SEGMENT_CATEGORY_BASE[segment]
    conc = np.array([s.concentration for s in SEGMENTS])[segment]
    alpha = base / base.sum(axis=1, keepdims=True) * len(CATEGORIES) * conc[:, None]
    g = rng.standard_gamma(alpha) + 1e-12
    affinity = g / g.sum(axis=1, keepdims=True)
    initial_paid = rng.random(n) < np.array([s.initial_paid for s in SEGMENTS])[segment]
    initial_newsletter = rng.random(n) < np.array([s.newsletter_initial for s in SEGMENTS])[segment]
    return ReaderProfile(
        np.arange(first_id, first_id + n, dtype=np.int64),
        readers,
        brand,
        country,
        device,
        signup_ms,
        affinity,
        initial_paid,
        initial_newsletter,
    )


def _weekday(config: GeneratorConfig, day: int) -> int:
    return (config.start.weekday() + day) % 7


@dataclass
class ChunkResult:
    """Everything one chunk of readers produced."""

    users: pd.DataFrame
    sessions: pd.DataFrame
    events: pd.DataFrame
    performance: pd.DataFrame
    truth_users: pd.DataFrame
    truth_daily: pa.Table


def simulate_chunk(
    config: GeneratorConfig,
    ed: Editorial,
    pools: list,
    profile: ReaderProfile,
    rng: np.random.Generator,
    ids: dict[str, int],
    tick=None,
    drift_rng: np.random.Generator | None = None,
) -> ChunkResult:
    """Run the latent process for one chunk from the burn-in to the last day and write its rows.

    ``ids`` holds the next session and event ids and is advanced in place; ``drift_rng`` is the
    chunk's drift stream (signal 7), used only on drifted days.
    """
    dyn = config.dynamics
    rd, n = profile.readers, len(profile.user_id)
    state = ReaderState.initial(n, profile.initial_paid, profile.initial_newsletter)
    onset_day = np.full(n, np.nan)
    churn_day = np.full(n, np.nan)
    converted_ms = np.zeros(n, dtype=np.int64)
    converted = np.zeros(n, dtype=bool)
    opt_in = profile.initial_newsletter.copy()
    sessions, events, perf, daily = [], [], [], []
    for day in range(-dyn.burn_in_days, config.days):
        wd = _weekday(config, day)
        draws = step(rd, state, day, wd, rng, dyn)
        onset_day[draws.onset] = day
        churn_day[draws.churned] = day
        converted |= draws.converted
        if day < 0:
            converted_ms[draws.converted] = day * MS_DAY + MS_DAY // 2
            opt_in |= draws.newsletter_signup
        else:
            s, e, p, conv = _expand_day(config, ed, pools[day], profile, state, draws, day, rng, ids, drift_rng)
            converted_ms[draws.converted] = conv[draws.converted]
            sessions.append(s)
            events.append(e)
            perf.append(p)
        if day >= -1:
            daily.append(_state_rows(profile.user_id, day, state, draws, day == -1))
        if tick:
            tick()
    paid_from = np.where(profile.initial_paid, profile.signup_ms, converted_ms)
    users = pd.DataFrame(
        {
            "user_id": profile.user_id,
            "brand_id": profile.brand,
            "signup_at": _ts(config, profile.signup_ms),
            "country_code": np.array([c[0] for c in COUNTRIES])[profile.country],
            "device_type_id": profile.device + 1,
            "subscription_tier": np.where(state.paid, "paid", "free"),
            "subscribed_at": _ts(config, np.where(state.paid, paid_from, 0)).where(state.paid),
            "newsletter_opt_in": opt_in,
        }
    )
    truth = pd.DataFrame(
        {
            "user_id": profile.user_id,
            "brand_id": profile.brand,
            "segment": np.array(SEGMENT_NAMES)[rd.segment],
            "segment_id": rd.segment,
            "signup_day": rd.signup_day,
            "signup_at": users["signup_at"],
            "visit_rate": rd.visit_rate,
            "decay": rd.decay,
            "onset_hazard": rd.onset_hazard,
            "premium_share": rd.premium_share,
            "onset_day": onset_day,
            "onset_at": _day_ts(config, onset_day),
            "churn_day": churn_day,
            "churn_at": _day_ts(config, churn_day),
            "initial_paid": profile.initial_paid,
            "converted_at": _ts(config, converted_ms).where(converted),
            **{f"affinity_{c}": profile.affinity[:, k] for k, c in enumerate(CATEGORIES)},
        }
    )
    return ChunkResult(users, _concat(sessions), _concat(events), _concat(perf), truth, pa.concat_tables(daily))


def _day_ts(config: GeneratorConfig, day: np.ndarray) -> pd.Series:
    ok = ~np.isnan(day)
    return _ts(config, np.where(ok, day, 0).astype(np.int64) * MS_DAY).where(ok)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _state_rows(user_id: np.ndarray, day: int, state: ReaderState, draws: DayDraws, burn_in: bool) -> pa.Table:
    """The latent state at the end of ``day`` and that day's hazards (the truth behind every row)."""
    return pa.table(
        {
            "user_id": user_id,
            "day": np.full(len(user_id), day, dtype=np.int16),
            "alive": state.alive,
            "decaying": state.decaying,
            "engagement": state.engagement.astype(np.float64),
            "paid": state.paid,
            "pressure": state.pressure.astype(np.float64),
            "meter": state.meter.astype(np.int16),
            "newsletter": state.newsletter,
            "idle": state.idle.astype(np.int16),
            "churn_hazard": draws.churn_hazard.astype(np.float32),
            "conversion_hazard": draws.conversion_hazard.astype(np.float32),
        }
    )


def _expand_day(
    config: GeneratorConfig,
    ed: Editorial,
    pools: tuple,
    profile: ReaderProfile,
    state: ReaderState,
    draws: DayDraws,
    day: int,
    rng: np.random.Generator,
    ids: dict[str, int],
    drift_rng: np.random.Generator | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Turn one day's latent draws into session, event and article-day rows.

    Returns sessions, events, per-(article, date) aggregates and, per reader, the time of
    the day's subscribe event (meaningful where ``draws.converted``).
    """
    rd, n = profile.readers, len(profile.user_id)
    conv_ms = np.zeros(n, dtype=np.int64)
    s = draws.sessions.astype(np.int64)
    ns = int(s.sum())
    if ns == 0:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), conv_ms
    pool_all, pool_old = pools
    su = np.repeat(np.arange(n), s)
    seg = rd.segment[su]
    peak = _cdf_pick(PEAK_CDF[seg], rng.random(ns))
    hour = np.minimum(rng.normal(PEAK_MU[seg, peak], PEAK_SD[seg, peak]) % 24.0, 23.4)
    start_ms = np.maximum(day * MS_DAY + (hour * 3_600_000).astype(np.int64), profile.signup_ms[su] + 60_000)
    order = np.lexsort((start_ms, su))
    start_ms = start_ms[order]
    device = np.where(rng.random(ns) < 0.7, profile.device[su], _cdf_pick(DEVICE_CDF[seg], rng.random(ns)))
    if config.drifted("device-mix", day):  # from the drift's own stream: the readers' draws stay as they were
        device = np.where(drift_rng.random(ns) < DRIFT_MOBILE_SHARE, DEVICES.index("mobile"), device)
    referrer = _cdf_pick(REFERRER_CDF[seg], rng.random(ns))
    first_session = np.cumsum(s) - s

    # reads: one per session plus the extra pages, spread uniformly over the reader's sessions
    a = draws.attempts.astype(np.int64)
    extra = a - s
    eu = np.repeat(np.arange(n), extra)
    extra_sess = first_session[eu] + (rng.random(eu.size) * s[eu]).astype(np.int64)
    att_sess = np.sort(np.concatenate([np.arange(ns), extra_sess]), kind="stable")
    att_user = su[att_sess]
    na = att_sess.size
    # which of a reader's reads were premium / over the meter: a random subset of the step's counts
    shuffled = np.argsort(att_user + rng.random(na), kind="stable")
    rank = np.empty(na, dtype=np.int64)
    rank[shuffled] = np.arange(na) - (np.cumsum(a) - a)[att_user[shuffled]]
    premium = rank < draws.premium[att_user]
    metered = rank >= a[att_user] - draws.metered[att_user]
    paid = draws.was_paid[att_user]
    blocked = ~paid & (premium | metered)

    # which article: category by affinity x what is out by the end of the session's hour x bursts,
    # then popularity x recency among those pieces
    brand = profile.brand[att_user]
    read_hour = np.clip((start_ms[att_sess] - day * MS_DAY) // 3_600_000, 0, 23)
    mass = pool_all.category_mass(brand, premium, read_hour) * profile.affinity[att_user]
    hits = _burst_hits(ed, brand, start_ms[att_sess], day)
    plain = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-300)
    for k, hit in hits:
        mass[hit, ed.bursts["category_id"].iat[k] - 1] *= ed.bursts["boost"].iat[k]
    total = mass.sum(axis=1, keepdims=True)
    share = mass / np.where(total > 0, total, 1.0)
    category = _cdf_pick(np.cumsum(share, axis=1), rng.random(na))
    for k, hit in hits:
        # expected series reads without and with the boost, and the reads drawn (the truth's lift)
        c = ed.bursts["category_id"].iat[k] - 1
        ed.burst_expected[k] += (plain[hit, c].sum(), share[hit, c].sum())
        ed.burst_reads[k] += int((hit & (category == c)).sum())
    group = ((brand - 1) * len(CATEGORIES) + category) * 2 + premium
    art, _ = pool_all.draw(group, rng.random(na), read_hour)

    aseg = rd.segment[att_user]
    dyn = config.dynamics
    # a fading reader skims: dwell and scroll depth shrink with engagement (signal 1)
    shows = 1.0 - dyn.visit_engagement + dyn.visit_engagement * state.engagement[att_user]
    if config.drifted("engagement-drop", day):
        shows = shows * DRIFT_ENGAGEMENT
    engaged = np.maximum(
        1,
        np.round(
            ENGAGED_SECONDS[aseg]
            * rng.lognormal(-(dyn.dwell_sigma**2) / 2, dyn.dwell_sigma, na)
            * shows
            * ed.quality[art] ** 0.3
        ),
    ).astype(np.int64)
    engaged = np.where(blocked, 0, engaged)
    dwell = np.where(blocked, 8_000, engaged * 1000 + 3_000)
    before = np.cumsum(dwell) - dwell
    first_att = np.searchsorted(att_sess, np.arange(ns))
    att_ms = start_ms[att_sess] + before - before[first_att][att_sess]
    early = ed.pub_ms[art] > att_ms
    # one uniform per read, used where needed: the number of draws never depends on the categories
    # drawn, so a change to a burst leaves every later draw (churn, conversion) as it was
    u_early = rng.random(na)
    if early.any():
        # a piece published after the read's time cannot be read yet: draw again among older pieces
        older, ok = pool_old.draw(group[early], u_early[early])
        art[early] = np.where(ok, older, art[early])

    viewed = ~blocked
    u_scroll, u_share, u_comment, u_ad = (rng.random(na) for _ in range(4))
    scroll = viewed & (u_scroll < SCROLL_RATE[aseg])
    share = viewed & (u_share < SHARE_RATE[aseg] * ed.quality[art] ** 0.5)
    comment = viewed & (u_comment < COMMENT_RATE[aseg])
    ad = viewed & ~paid & (u_ad < AD_CLICK_RATE)
    depth = np.clip(rng.beta(SCROLL_A[aseg], SCROLL_B[aseg]) * shows, 0.01, 1.0)
    end_ms = att_ms + engaged * 1000

    def rows(mask, kind, at, article=True, depth_=None, seconds=None) -> dict:
        k = int(mask.sum())
        return {
            "sess": att_sess[mask],
            "user": att_user[mask],
            "article": np.where(article, art[mask] + 1, -1),
            "type": np.full(k, EVENT_ORDER[kind]),
            "ms": at[mask],
            "depth": depth_[mask] if depth_ is not None else np.full(k, np.nan),
            "seconds": seconds[mask] if seconds is not None else np.full(k, -1),
        }

    parts = [
        rows(viewed, "page_view", att_ms, seconds=engaged),
        rows(blocked, "paywall_hit", att_ms),
        rows(scroll, "scroll", np.maximum(end_ms - 1000, att_ms + 500), depth_=depth),
        rows(share, "share", end_ms + 200),
        rows(comment, "comment", end_ms + 400),
        rows(ad, "ad_click", att_ms + 1500),
    ]
    sess_end = start_ms.copy()
    np.maximum.at(sess_end, att_sess, att_ms + dwell)
    signup = np.flatnonzero(draws.newsletter_signup)
    if signup.size:
        fs = first_session[signup]
        parts.append(
            {
                "sess": fs,
                "user": signup,
                "article": np.full(signup.size, -1),
                "type": np.full(signup.size, EVENT_ORDER["newsletter_signup"]),
                "ms": start_ms[fs] + 1000,
                "depth": np.full(signup.size, np.nan),
                "seconds": np.full(signup.size, -1),
            }
        )
    bought = np.flatnonzero(draws.converted)
    if bought.size:
        last = first_session[bought] + s[bought] - 1
        conv_ms[bought] = sess_end[last] + 1000
        parts.append(
            {
                "sess": last,
                "user": bought,
                "article": np.full(bought.size, -1),
                "type": np.full(bought.size, EVENT_ORDER["subscribe"]),
                "ms": conv_ms[bought],
                "depth": np.full(bought.size, np.nan),
                "seconds": np.full(bought.size, -1),
            }
        )
    ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((ev["type"], ev["ms"], ev["sess"]))
    ev = {k: v[order] for k, v in ev.items()}
    ne = ev["sess"].size
    sess_end = np.maximum(sess_end, start_ms)
    np.maximum.at(sess_end, ev["sess"], ev["ms"])
    session_id = ids["session"] + np.arange(ns, dtype=np.int64)
    event_types = np.array(schema.EVENT_TYPES)
    events = pd.DataFrame(
        {
            "event_id": ids["event"] + np.arange(ne, dtype=np.int64),
            "session_id": session_id[ev["sess"]],
            "user_id": profile.user_id[ev["user"]],
            "article_id": pd.arrays.IntegerArray(np.maximum(ev["article"], 0).astype(np.int64), ev["article"] < 0),
            "event_type": event_types[ev["type"]],
            "event_at": _ts(config, ev["ms"]),
            "scroll_depth": ev["depth"],
            "engaged_seconds": pd.arrays.IntegerArray(np.maximum(ev["seconds"], 0).astype(np.int64), ev["seconds"] < 0),
        }
    )
    sessions = pd.DataFrame(
        {
            "session_id": session_id,
            "user_id": profile.user_id[su],
            "brand_id": profile.brand[su],
            "started_at": _ts(config, start_ms),
            "ended_at": _ts(config, sess_end + 1000),
            "device_type_id": device + 1,
            "referrer": np.array(REFERRERS)[referrer],
            "page_views": np.bincount(att_sess[viewed], minlength=ns),
            "engaged_seconds": np.bincount(att_sess[viewed], engaged[viewed], minlength=ns).astype(np.int64),
        }
    )
    ids["session"] += ns
    ids["event"] += ne
    return sessions, events, _article_day(config, ev, profile.user_id), conv_ms


def _article_day(config: GeneratorConfig, ev: dict, user_id: np.ndarray) -> pd.DataFrame:
    """Per (article, date) sums of one day's events; summed again over chunks at the end."""
    has = ev["article"] > 0
    art, ms, kind, user = ev["article"][has], ev["ms"][has], ev["type"][has], ev["user"][has]
    day = ms // MS_DAY
    key = art.astype(np.int64) * 4096 + day
    uniq, inv = np.unique(key, return_inverse=True)
    pv = kind == EVENT_ORDER["page_view"]
    readers = np.unique(inv[pv].astype(np.int64) * len(user_id) + user[pv]) // len(user_id)
    m = len(uniq)

    def count(mask, weights=None):
        return np.bincount(inv[mask], None if weights is None else weights[mask], minlength=m)

    seconds = np.where(ev["seconds"][has] > 0, ev["seconds"][has], 0).astype(float)
    return pd.DataFrame(
        {
            "article_id": uniq // 4096,
            "day": uniq % 4096,
            "page_views": count(pv),
            "unique_readers": np.bincount(readers, minlength=m),
            "engaged_seconds": count(pv, seconds).astype(np.int64),
            "shares": count(kind == EVENT_ORDER["share"]),
            "comments": count(kind == EVENT_ORDER["comment"]),
            "paywall_hits": count(kind == EVENT_ORDER["paywall_hit"]),
        }
    )


# --- the whole platform --------------------------------------------------------------------


@dataclass
class GenerateSummary:
    """What a generation wrote."""

    config: GeneratorConfig
    rows: dict[str, int]
    seconds: float
    truth_dir: str

    def as_table(self):
        """Rows per table and the wall time, as a rich Table."""
        from rich.table import Table

        table = Table(
            title=f"generated {self.config.users:,} readers x {self.config.days} days "
            f"(seed {self.config.seed}) in {self.seconds:.1f}s"
        )
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, n in self.rows.items():
            table.add_row(name, f"{n:,}")
        table.add_row("[dim]truth[/]", f"[dim]{self.truth_dir}[/]")
        return table


def _reference(config: GeneratorConfig) -> dict[str, pd.DataFrame]:
    names = [
        "The Daily Ledger",
        "Morning Courier",
        "City Post",
        "Weekend Review",
        "Tech Wire",
        "Alpine Times",
        "Harbour Herald",
        "Valley Voice",
        "Metro Now",
        "Evening Star",
    ]
    b = np.arange(1, config.brands + 1)
    return {
        "brands": pd.DataFrame(
            {
                "brand_id": b,
                "name": [names[(i - 1) % 10] + (f" {(i - 1) // 10 + 1}" if i > 10 else "") for i in b],
                "domain": [f"brand{i}.example" for i in b],
            }
        ),
        "countries": pd.DataFrame(
            {
                "country_code": [c[0] for c in COUNTRIES],
                "name": [c[1] for c in COUNTRIES],
                "region": [c[2] for c in COUNTRIES],
            }
        ),
        "device_types": pd.DataFrame({"device_type_id": np.arange(1, len(DEVICES) + 1), "name": DEVICES}),
        "categories": pd.DataFrame({"category_id": np.arange(1, len(CATEGORIES) + 1), "name": CATEGORIES}),
    }


def iter_platform(config: GeneratorConfig, tick=None) -> Iterator[tuple[str, object]]:
    """Yield the platform piece by piece, in foreign-key load order, with bounded memory.

    Items are ``(table_name, frame)`` for platform tables, and ``("truth:<name>", frame or
    pyarrow table)`` for the latent truth. The stream is a pure function of ``config``.
    """
    config.validate()
    root = np.random.SeedSequence(config.seed)
    # a third stream for the bursts and a fourth for the pilot that sizes them (spawn keys are positional)
    # and a fifth for the drift scenarios: spawning five leaves the first four as they were
    editorial_seq, reader_seq, burst_seq, pilot_seq, drift_seq = root.spawn(5)
    ed = _editorial(config, np.random.default_rng(editorial_seq))
    pools = [
        (_ArticlePool(ed, d, config.brands, True), _ArticlePool(ed, d, config.brands, False))
        for d in range(config.days)
    ]
    baseline = _baseline_reads(config, pools, np.random.default_rng(pilot_seq))
    ed.bursts = _bursts(config, np.random.default_rng(burst_seq), baseline)
    ed.burst_reads = np.zeros(len(ed.bursts), dtype=np.int64)
    ed.burst_expected = np.zeros((len(ed.bursts), 2))
    yield from _reference(config).items()
    yield "authors", ed.authors
    yield "articles", ed.frame
    n_chunks = -(-config.users // CHUNK_USERS)
    ids = {"session": 1, "event": 1}
    perf = []
    drift_seqs = drift_seq.spawn(n_chunks)
    for k, seq in enumerate(reader_seq.spawn(n_chunks)):
        rng = np.random.default_rng(seq)
        n = min(CHUNK_USERS, config.users - k * CHUNK_USERS)
        profile = draw_profiles(config, rng, k * CHUNK_USERS + 1, n)
        drift_rng = np.random.default_rng(drift_seqs[k]) if config.drift else None
        chunk = simulate_chunk(config, ed, pools, profile, rng, ids, tick, drift_rng)
        yield "users", chunk.users
        yield "sessions", chunk.sessions
        yield "events", chunk.events
        yield from zip(
            ("impressions", "truth:impressions"),
            impressions.simulate(config, ed, chunk, k, ARTICLE_LOOKBACK_DAYS, RECENCY_TAU_DAYS),
        )
        yield "truth:users", chunk.truth_users
        yield "truth:daily", chunk.truth_daily
        if len(chunk.performance):
            perf.append(chunk.performance)
        del chunk
    if perf:
        all_perf = pd.concat(perf, ignore_index=True).groupby(["article_id", "day"], sort=True).sum().reset_index()
        all_perf["date"] = (config.start_ts + pd.to_timedelta(all_perf["day"], unit="D")).dt.date
        yield "article_daily_performance", all_perf.drop(columns="day")
    arts = ed.frame[
        ["article_id", "brand_id", "author_id", "category_id", "topic", "published_at", "is_premium"]
    ].copy()
    arts["quality"] = ed.quality
    arts["publish_hour"] = ed.frame["published_at"].dt.hour
    arts["bursting_days"] = _bursting_days(ed)
    yield "truth:articles", arts
    bursts = ed.bursts.drop(columns=["start_ms", "end_ms"])
    bursts["reads"] = ed.burst_reads
    bursts["baseline_reads"] = ed.burst_expected[:, 0]
    bursts["lift"] = ed.burst_expected[:, 1] / np.maximum(ed.burst_expected[:, 0], 1e-12)
    yield "truth:bursts", bursts


def _bursting_days(ed: Editorial) -> np.ndarray:
    """Days each article's series was bursting while it was readable (its first lookback days)."""
    out = np.zeros(len(ed.pub_ms))
    life = ARTICLE_LOOKBACK_DAYS * MS_DAY
    for brand, category, lo, hi in ed.bursts[["brand_id", "category_id", "start_ms", "end_ms"]].itertuples(index=False):
        mine = (ed.category == category - 1) & ((ed.brand == brand) if brand else True)
        overlap = np.minimum(ed.pub_ms + life, hi) - np.maximum(ed.pub_ms, lo)
        out += np.where(mine, np.maximum(overlap, 0) / MS_DAY, 0.0)
    return out


def _clear(conn, settings: Settings) -> None:
    """Remove platform rows and everything derived from them (inside the caller's transaction)."""
    feature = [t.name for t in schema.FEATURE_TABLES] + [schema.customer_user_segments.name]
    platform = [t.name for t in reversed(schema.PLATFORM_TABLES)]
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in feature + platform))
    else:
        for name in feature + platform:
            conn.exec_driver_sql(f'DELETE FROM "{name}"')


def generate(settings: Settings, config: GeneratorConfig, progress: bool = False) -> GenerateSummary:
    """Generate the platform into the OwnLens tables and its latent truth into ``settings.truth_dir``.

    Existing platform rows and feature snapshots are replaced in one transaction, so a
    failure leaves the old data in place; the truth files are swapped in after the commit.
    On PostgreSQL the platform tables' foreign keys and secondary indexes are dropped for the
    COPYs and re-created before the commit, in the same transaction (``load.bulk_load``).

    Args:
        settings: profile and locations (the schema must exist: ``ownlens-ml db init``).
        config: scale and seed.
        progress: show a progress bar.

    Raises:
        ValidationError: a config value is out of range.
        MissingTableError: the schema has not been created.
    """
    config.validate()
    if config.days > 4000:
        raise ValidationError(f"generator days must be at most 4000, got {config.days}")
    engine = get_engine(settings)
    require_tables(engine, *(t.name for t in schema.PLATFORM_TABLES))
    tables = {t.name: t for t in schema.PLATFORM_TABLES}
    t0 = time.perf_counter()
    truth_tmp = settings.truth_dir.with_name(settings.truth_dir.name + ".tmp")
    shutil.rmtree(truth_tmp, ignore_errors=True)
    truth_tmp.mkdir(parents=True)
    rows = {name: 0 for name in tables}
    truth_frames: dict[str, list[pd.DataFrame]] = {"users": [], "impressions": []}
    daily_writer = None
    bar, task = None, None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("[bold]generating[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        total = -(-config.users // CHUNK_USERS) * (config.dynamics.burn_in_days + config.days)
        task = bar.add_task("days", total=total)
        bar.start()
    tick = (lambda: bar.advance(task)) if bar else None
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
            _clear(conn, settings)
            with bulk_load(conn, schema.PLATFORM_TABLES):
                for name, item in iter_platform(config, tick):
                    if name == "truth:daily":
                        if daily_writer is None:
                            daily_writer = pq.ParquetWriter(truth_tmp / "daily.parquet", item.schema)
                        daily_writer.write_table(item)
                    elif name in ("truth:users", "truth:impressions"):
                        truth_frames[name[6:]].append(item)
                    elif name.startswith("truth:"):
                        item.to_parquet(truth_tmp / f"{name[6:]}.parquet", index=False)
                    elif len(item):
                        rows[name] += copy_frame(conn, tables[name], item)
            if daily_writer is not None:
                daily_writer.close()
                daily_writer = None
            for key, frames in truth_frames.items():
                pd.concat(frames, ignore_index=True).to_parquet(truth_tmp / f"{key}.parquet", index=False)
            meta = {
                "config": {
                    "users": config.users,
                    "days": config.days,
                    "brands": config.brands,
                    "seed": config.seed,
                    "start": config.start.isoformat(),
                    **(
                        {"drift_from": config.drift_from.isoformat(), "drift": list(config.drift)}
                        if config.drift
                        else {}
                    ),
                },
                "dynamics": asdict(config.dynamics),
                "generated_at": clock.now().isoformat(),
            }
            (truth_tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            if conn.dialect.name == "postgresql":
                for name in tables:
                    conn.exec_driver_sql(f'ANALYZE "{name}"')
    except BaseException:
        if daily_writer is not None:
            daily_writer.close()
        shutil.rmtree(truth_tmp, ignore_errors=True)
        raise
    finally:
        if bar:
            bar.stop()
    shutil.rmtree(settings.truth_dir, ignore_errors=True)
    truth_tmp.rename(settings.truth_dir)
    _clear_local_snapshots(settings)
    seconds = time.perf_counter() - t0
    log.info("generated %s in %.1fs", rows, seconds)
    return GenerateSummary(config, rows, seconds, str(settings.truth_dir))


def hourly_reads(config: GeneratorConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A platform's attempted reads per hour, brand and category, in memory, as trending reads them from SQL.

    Returns ``(hourly, articles, bursts)``: hourly has ``hour`` (hours since 1970), ``brand_id``,
    ``category_id`` and ``reads`` (page views and paywall hits); articles has ``article_id``,
    ``brand_id``, ``category_id`` and ``published_at`` in epoch seconds; bursts is the truth's.
    """
    arts, parts, bursts = None, [], None
    for name, item in iter_platform(config):
        if name == "articles":
            arts = item[["article_id", "brand_id", "category_id", "published_at"]].copy()
        elif name == "events":
            e = item[item["event_type"].isin(["page_view", "paywall_hit"]) & item["article_id"].notna()]
            parts.append(
                pd.DataFrame(
                    {
                        "hour": e["event_at"].astype("int64").to_numpy() // 10**9 // 3600,
                        "article_id": e["article_id"].astype("int64").to_numpy(),
                    }
                )
            )
        elif name == "truth:bursts":
            bursts = item
    reads = pd.concat(parts).merge(arts[["article_id", "brand_id", "category_id"]], on="article_id")
    hourly = reads.groupby(["hour", "brand_id", "category_id"]).size().rename("reads").reset_index()
    arts["published_at"] = arts["published_at"].astype("int64") // 10**9
    return hourly, arts, bursts


def _clear_local_snapshots(settings: Settings) -> None:
    """The local offline store's parquet snapshots describe the old platform: remove them."""
    if settings.is_production or not settings.offline_dir.exists():
        return
    for path in settings.offline_dir.glob("*.parquet"):
        path.unlink()
