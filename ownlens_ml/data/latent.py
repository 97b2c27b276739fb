"""The latent reader process the generator simulates and the truth's oracles replay.

Segments (signal 3 of ``ownlens_ml.data.generator``), the dynamics' parameters, the static and
mutable latent state of readers and ``step``, which advances them by one day; plus the two
facts of reading choice an oracle needs (``CATEGORIES``, ``RECENCY_TAU_DAYS``). Apart from the
generator so that ``ownlens_ml.data.truth`` (and through it the evaluation's oracle) can replay
the process without importing the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORIES = (
    "politics",
    "business",
    "sport",
    "culture",
    "technology",
    "science",
    "health",
    "travel",
    "food",
    "opinion",
)
RECENCY_TAU_DAYS = 1.5
"""Recency time constant of reading choice: weight exp(-age / this) per piece (signal 4)."""

# --- segments and dynamics -------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """The habits of one latent reader segment (see the module docstring, signal 3)."""

    name: str
    share: float
    visit_rate: float
    pages_extra: float
    engaged_seconds: float
    scroll_beta: tuple[float, float]
    scroll_rate: float
    devices: tuple[float, float, float, float]
    hour_peaks: tuple[tuple[float, float, float], ...]
    weekday: tuple[float, float, float, float, float, float, float]
    referrers: tuple[float, float, float, float]
    share_rate: float
    comment_rate: float
    newsletter_initial: float
    newsletter_signup: float
    onset_hazard: float
    premium_share: float
    conversion: float
    initial_paid: float
    concentration: float


SEGMENTS: tuple[Segment, ...] = (
    Segment(
        "news_junkie",
        share=0.14,
        visit_rate=1.4,
        pages_extra=2.0,
        engaged_seconds=35,
        scroll_beta=(2.0, 3.0),
        scroll_rate=0.7,
        devices=(0.25, 0.40, 0.05, 0.30),
        hour_peaks=((7, 1.0, 1.5), (12.5, 0.7, 1.5), (19, 0.8, 2.0), (22, 0.5, 1.5)),
        weekday=(1.05, 1.05, 1.05, 1.05, 1.0, 0.9, 0.9),
        referrers=(0.70, 0.15, 0.10, 0.05),
        share_rate=0.012,
        comment_rate=0.015,
        newsletter_initial=0.15,
        newsletter_signup=0.004,
        onset_hazard=0.004,
        premium_share=0.12,
        conversion=1.0,
        initial_paid=0.08,
        concentration=1.5,
    ),
    Segment(
        "deep_reader",
        share=0.14,
        visit_rate=0.55,
        pages_extra=1.4,
        engaged_seconds=120,
        scroll_beta=(6.0, 2.0),
        scroll_rate=0.95,
        devices=(0.50, 0.20, 0.25, 0.05),
        hour_peaks=((21, 1.0, 1.5), (7.5, 0.3, 1.0)),
        weekday=(0.9, 0.9, 0.9, 0.9, 0.9, 1.25, 1.25),
        referrers=(0.45, 0.35, 0.10, 0.10),
        share_rate=0.02,
        comment_rate=0.025,
        newsletter_initial=0.25,
        newsletter_signup=0.006,
        onset_hazard=0.003,
        premium_share=0.22,
        conversion=1.6,
        initial_paid=0.15,
        concentration=0.25,
    ),
    Segment(
        "casual_skimmer",
        share=0.38,
        visit_rate=0.04,
        pages_extra=0.35,
        engaged_seconds=18,
        scroll_beta=(1.2, 4.0),
        scroll_rate=0.5,
        devices=(0.08, 0.82, 0.05, 0.05),
        hour_peaks=((8, 0.8, 1.0), (12.5, 1.0, 1.2), (17.5, 0.9, 1.2)),
        weekday=(1.05, 1.05, 1.05, 1.05, 1.1, 0.85, 0.85),
        referrers=(0.20, 0.35, 0.45, 0.0),
        share_rate=0.004,
        comment_rate=0.002,
        newsletter_initial=0.03,
        newsletter_signup=0.001,
        onset_hazard=0.005,
        premium_share=0.05,
        conversion=0.4,
        initial_paid=0.015,
        concentration=0.6,
    ),
    Segment(
        "weekend_reader",
        share=0.16,
        visit_rate=0.3,
        pages_extra=1.6,
        engaged_seconds=80,
        scroll_beta=(4.0, 2.5),
        scroll_rate=0.85,
        devices=(0.15, 0.30, 0.45, 0.10),
        hour_peaks=((10, 1.0, 1.5), (15, 0.6, 2.0)),
        weekday=(0.55, 0.55, 0.55, 0.55, 0.7, 2.05, 2.05),
        referrers=(0.50, 0.20, 0.20, 0.10),
        share_rate=0.01,
        comment_rate=0.008,
        newsletter_initial=0.10,
        newsletter_signup=0.003,
        onset_hazard=0.008,
        premium_share=0.12,
        conversion=0.8,
        initial_paid=0.05,
        concentration=0.8,
    ),
    Segment(
        "newsletter_loyalist",
        share=0.18,
        visit_rate=0.45,
        pages_extra=0.9,
        engaged_seconds=55,
        scroll_beta=(3.0, 2.5),
        scroll_rate=0.8,
        devices=(0.35, 0.50, 0.05, 0.10),
        hour_peaks=((6.5, 1.0, 0.8), (12, 0.3, 1.5)),
        weekday=(1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5),
        referrers=(0.25, 0.10, 0.05, 0.60),
        share_rate=0.008,
        comment_rate=0.006,
        newsletter_initial=0.85,
        newsletter_signup=0.03,
        onset_hazard=0.003,
        premium_share=0.15,
        conversion=1.3,
        initial_paid=0.10,
        concentration=0.5,
    ),
)
SEGMENT_NAMES = tuple(s.name for s in SEGMENTS)


@dataclass(frozen=True)
class Dynamics:
    """Parameters of the latent reader process shared by the generator and the oracles.

    The defaults are chosen so that churn is as hard to foresee as on real reader logs
    (the oracle's ROC-AUC lies inside 0.75-0.92) while what the oracle knows mostly shows
    in what a reader does: fading readers visit less and skim.
    """

    visit_sigma: float = 0.15
    """Spread (lognormal sigma) of readers' visit rates around their segment's."""
    visit_scale: float = 1.0
    rate_power: float = 0.5
    """Visit rate scales with engagement ** rate_power: fading shows first in how a reader reads."""
    visit_engagement: float = 1.0
    """Dwell time and scroll depth scale by (1 - w + w * engagement)."""
    dwell_sigma: float = 0.3
    onset_scale: float = 1.5
    novelty_boost: float = 12.0
    novelty_days: float = 10.0
    paywall_frustration: float = 10.0
    """Free readers under paywall pressure start to fade up to (1 + this) times as often."""
    paid_loyalty: float = 0.3
    newsletter_loyalty: float = 0.4
    decay_low: float = 0.93
    decay_high: float = 0.97
    churn_scale: float = 1.0
    churn_power: float = 40.0
    return_hazard: float = 0.03
    """Daily chance that a churned reader comes back (win-back), with ``return_engagement``."""
    return_engagement: float = 0.7
    habit_break: float = 0.05
    """Daily churn hazard, at most, of a reader who has missed many of their usual visits."""
    habit_missed: float = 3.0
    """Missed visits (idle days x visit rate) at which the habit-break hazard reaches 63 %."""
    free_reads_per_week: int = 8
    pressure_decay: float = 0.85
    pressure_scale: float = 6.0
    conversion_base: float = 0.008
    conversion_floor: float = 0.1
    paid_premium_factor: float = 2.0
    burn_in_days: int = 60


DYNAMICS = Dynamics()


def _weekday_matrix() -> np.ndarray:
    w = np.array([s.weekday for s in SEGMENTS], dtype=float)
    return w / w.mean(axis=1, keepdims=True)


WEEKDAY = _weekday_matrix()
PAGES_EXTRA = np.array([s.pages_extra for s in SEGMENTS])
CONVERSION = np.array([s.conversion for s in SEGMENTS])
NEWSLETTER_SIGNUP = np.array([s.newsletter_signup for s in SEGMENTS])


# --- the latent step ---------------------------------------------------------------------


@dataclass
class Readers:
    """Static latent parameters of a set of readers (one entry per reader or per path)."""

    segment: np.ndarray
    signup_day: np.ndarray
    visit_rate: np.ndarray
    decay: np.ndarray
    onset_hazard: np.ndarray
    premium_share: np.ndarray

    def take(self, index: np.ndarray) -> Readers:
        return Readers(**{k: v[index] for k, v in self.__dict__.items()})


@dataclass
class ReaderState:
    """Mutable latent state at the end of a day."""

    alive: np.ndarray
    decaying: np.ndarray
    engagement: np.ndarray
    paid: np.ndarray
    pressure: np.ndarray
    meter: np.ndarray
    newsletter: np.ndarray
    idle: np.ndarray
    """Days since the reader's last session (0 on a day with a session)."""

    @classmethod
    def initial(cls, n: int, paid: np.ndarray, newsletter: np.ndarray) -> ReaderState:
        return cls(
            alive=np.ones(n, bool),
            decaying=np.zeros(n, bool),
            engagement=np.ones(n),
            paid=paid.copy(),
            pressure=np.zeros(n),
            meter=np.zeros(n, np.int32),
            newsletter=newsletter.copy(),
            idle=np.zeros(n, np.int32),
        )

    def take(self, index: np.ndarray) -> ReaderState:
        return ReaderState(**{k: v[index].copy() for k, v in self.__dict__.items()})


@dataclass
class DayDraws:
    """What the latent process did on one day, per reader."""

    signed_up: np.ndarray
    onset: np.ndarray
    churned: np.ndarray
    churn_hazard: np.ndarray
    visit_probability: np.ndarray
    sessions: np.ndarray
    attempts: np.ndarray
    premium: np.ndarray
    metered: np.ndarray
    paywall_hits: np.ndarray
    conversion_hazard: np.ndarray
    converted: np.ndarray
    newsletter_signup: np.ndarray
    was_paid: np.ndarray
    was_newsletter: np.ndarray


def onset_hazard_at(
    readers: Readers, state: ReaderState, day: int | np.ndarray, dyn: Dynamics = DYNAMICS
) -> np.ndarray:
    """Daily hazard that a reader starts to fade: the segment's base, higher for young
    accounts and for free readers under paywall pressure, lower for newsletter readers and
    paying subscribers (each factor a planted, observable driver of churn)."""
    age = np.maximum(np.asarray(day) - readers.signup_day, 0)
    novelty = 1.0 + dyn.novelty_boost * np.exp(-age / dyn.novelty_days)
    frustration = np.where(
        state.paid, dyn.paid_loyalty, 1.0 + dyn.paywall_frustration * np.tanh(state.pressure / dyn.pressure_scale)
    )
    newsletter = np.where(state.newsletter, dyn.newsletter_loyalty, 1.0)
    return dyn.onset_scale * readers.onset_hazard * novelty * frustration * newsletter


def step(
    readers: Readers, state: ReaderState, day: int, weekday: int, rng: np.random.Generator, dyn: Dynamics = DYNAMICS
) -> DayDraws:
    """Advance every reader by one day (in place on ``state``); the generator's only dynamics.

    The order of the random draws is part of the contract: the generator and the Monte
    Carlo oracles call this same function.
    """
    n = len(readers.segment)
    signed = day >= readers.signup_day
    back = signed & ~state.alive & (rng.random(n) < dyn.return_hazard)
    state.alive |= back
    state.decaying &= ~back
    state.engagement = np.where(back, dyn.return_engagement, state.engagement)
    live = signed & state.alive
    u_onset = rng.random(n)
    onset = live & ~state.decaying & (u_onset < onset_hazard_at(readers, state, day, dyn))
    state.decaying |= onset
    falling = live & state.decaying
    state.engagement = np.where(falling, state.engagement * readers.decay, state.engagement)
    fading = np.where(falling, dyn.churn_scale * (1.0 - state.engagement) ** dyn.churn_power, 0.0)
    # a broken habit: the more visits a reader has missed by their own cadence, the likelier they are gone
    missed = state.idle * readers.visit_rate
    broken = dyn.habit_break * -np.expm1(-missed / dyn.habit_missed)
    churn_hazard = np.where(live, 1.0 - (1.0 - fading) * (1.0 - broken), 0.0)
    churned = live & (rng.random(n) < churn_hazard)
    state.alive &= ~churned
    live &= ~churned
    rate = np.where(
        live, readers.visit_rate * state.engagement**dyn.rate_power * WEEKDAY[readers.segment, weekday], 0.0
    )
    sessions = rng.poisson(rate)
    state.idle = np.where(signed & (sessions == 0), state.idle + 1, 0).astype(np.int32)
    attempts = sessions + rng.poisson(PAGES_EXTRA[readers.segment] * state.engagement * sessions)
    was_paid = state.paid.copy()
    share = np.where(was_paid, np.minimum(readers.premium_share * dyn.paid_premium_factor, 0.6), readers.premium_share)
    premium = rng.binomial(attempts, share)
    if weekday == 0:
        state.meter[:] = 0
    free = ~was_paid
    open_reads = attempts - premium
    allowed = np.maximum(dyn.free_reads_per_week - state.meter, 0)
    metered = np.where(free, np.maximum(open_reads - allowed, 0), 0)
    state.meter += np.where(free, open_reads - metered, 0).astype(np.int32)
    hits = np.where(free, premium + metered, 0)
    state.pressure = dyn.pressure_decay * state.pressure + hits
    drive = dyn.conversion_floor + 1.0 - np.exp(-state.pressure / dyn.pressure_scale)
    conversion_hazard = np.where(
        free & (sessions > 0),
        -np.expm1(-dyn.conversion_base * CONVERSION[readers.segment] * state.engagement * drive),
        0.0,
    )
    converted = rng.random(n) < conversion_hazard
    state.paid |= converted
    was_newsletter = state.newsletter.copy()
    signup = ~was_newsletter & (sessions > 0) & (rng.random(n) < NEWSLETTER_SIGNUP[readers.segment])
    state.newsletter |= signup
    return DayDraws(
        signed_up=signed,
        onset=onset,
        churned=churned,
        churn_hazard=churn_hazard,
        visit_probability=-np.expm1(-rate),
        sessions=sessions,
        attempts=attempts,
        premium=premium,
        metered=metered,
        paywall_hits=hits,
        conversion_hazard=conversion_hazard,
        converted=converted,
        newsletter_signup=signup,
        was_paid=was_paid,
        was_newsletter=was_newsletter,
    )
