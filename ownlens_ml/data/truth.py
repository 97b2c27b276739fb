"""The generator's latent truth: load it, and the oracle probabilities models are scored against.

``ownlens-ml data generate`` writes, next to (never into) the platform tables, parquet files
under ``settings.truth_dir``:

- ``users``: per reader the latent segment, visit rate, decay speed, onset hazard, category
  affinities, and what happened: ``onset_at`` (the latest fade began), ``churn_at`` (start
  of the day the reader last churned: stopped visiting until won back, if ever),
  ``converted_at`` (conversion to paid).
- ``articles``: per article the latent ``quality`` (author + category + premium + publish
  hour + noise) and for how many days its series was bursting while it was readable.
- ``bursts``: ``series`` (a category overall, or ``category@brandN``), ``brand_id`` (0 = every
  brand), ``category_id``, ``start``, ``end`` (UTC, end exclusive), ``hours`` (the real window:
  the drawn length, ``drawn_hours``, extended on a quiet series until its estimated baseline
  reads reach ``generator.BURST_MIN_READS``), ``boost`` (the reading-weight multiplier),
  ``reads`` (the series' reads in the window), ``baseline_reads`` (the series' expected reads
  in the window without the burst) and ``lift`` (expected series reads with the boost over
  those without it).
- ``daily``: per reader and day the latent state at the end of that day (alive, decaying,
  engagement, paid, paywall pressure, meter, newsletter, idle days) and the day's churn and
  conversion hazards; day -1 is the state on entering the generated period.
- ``meta.json``: the generator config and dynamics.

It replays the latent process of ``ownlens_ml.data.latent`` and never imports the generator, so
``ownlens_ml.evaluation.oracle`` may offer ``ORACLES`` to the engines.

An oracle conditions on everything latent up to ``as_of`` (the state at the end of the day
before) and integrates over everything random after it, with the generator's own dynamics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ownlens_ml.data.latent import (
    CATEGORIES,
    RECENCY_TAU_DAYS,
    Dynamics,
    Readers,
    ReaderState,
    step,
)
from ownlens_ml.errors import MissingTableError, ValidationError
from ownlens_ml.settings import Settings

TRUTH_TABLES = ("users", "articles", "bursts", "daily")
MC_PATHS = 64
MC_BATCH = 1_000_000
"""Simulated reader-paths per batch in the Monte Carlo oracle (bounds its memory)."""


def truth_path(settings: Settings, name: str) -> Path:
    return settings.truth_dir / f"{name}.parquet"


def _missing(path: Path) -> MissingTableError:
    return MissingTableError(
        f"generator truth {path} does not exist; run `ownlens-ml data generate` first "
        "(the truth exists only for generated platforms)"
    )


def load_truth(settings: Settings, name: str) -> pd.DataFrame:
    """One truth table as a frame: ``users``, ``articles``, ``bursts`` or ``daily``.

    Raises:
        ValidationError: ``name`` is not a truth table.
        MissingTableError: the file does not exist (no generated platform).
    """
    if name not in TRUTH_TABLES:
        raise ValidationError(f"no truth table {name!r}; known: {', '.join(TRUTH_TABLES)}")
    path = truth_path(settings, name)
    if not path.exists():
        raise _missing(path)
    return pd.read_parquet(path)


def load_meta(settings: Settings) -> dict:
    path = settings.truth_dir / "meta.json"
    if not path.exists():
        raise _missing(path)
    return json.loads(path.read_text())


class _Truth:
    """Static reader parameters and the per-day state needed to condition an oracle."""

    def __init__(self, settings: Settings):
        meta = load_meta(settings)
        self.dyn = Dynamics(**meta["dynamics"])
        self.start = pd.Timestamp(meta["config"]["start"], tz="UTC")
        self.days = int(meta["config"]["days"])
        self.settings = settings
        users = load_truth(settings, "users")
        self.user_index = pd.Index(users["user_id"].to_numpy())
        self.users = users

    def rows(self, user_ids: np.ndarray) -> np.ndarray:
        pos = self.user_index.get_indexer(np.asarray(user_ids))
        if (pos < 0).any():
            bad = np.asarray(user_ids)[pos < 0][:5].tolist()
            raise ValidationError(f"user ids not in the generated truth: {bad}")
        return pos

    def day_index(self, as_of, n: int) -> np.ndarray:
        """Days from the generated start to ``as_of`` (each must be a 00:00 UTC timestamp)."""
        ts = pd.DatetimeIndex(
            np.broadcast_to(np.asarray(pd.to_datetime(as_of, utc=True)), (n,))
            if np.ndim(as_of) == 0
            else pd.to_datetime(as_of, utc=True)
        )
        if len(ts) != n:
            raise ValidationError(f"as_of has {len(ts)} values for {n} user ids")
        delta = (ts - self.start) / pd.Timedelta(days=1)
        day = np.asarray(delta, dtype=float)
        if not np.all(day == np.round(day)):
            raise ValidationError("as_of must be at 00:00 UTC")
        day = day.astype(np.int64)
        if day.min(initial=0) < 0 or day.max(initial=0) > self.days:
            raise ValidationError(
                f"as_of must lie within the generated period {self.start.date()} .. "
                f"{(self.start + pd.Timedelta(days=self.days)).date()}"
            )
        return day

    def readers(self, pos: np.ndarray) -> Readers:
        u = self.users
        return Readers(
            segment=u["segment_id"].to_numpy()[pos],
            signup_day=u["signup_day"].to_numpy()[pos],
            visit_rate=u["visit_rate"].to_numpy()[pos],
            decay=u["decay"].to_numpy()[pos],
            onset_hazard=u["onset_hazard"].to_numpy()[pos],
            premium_share=u["premium_share"].to_numpy()[pos],
        )

    def state(self, user_ids: np.ndarray, state_day: np.ndarray) -> ReaderState:
        """The latent state at the end of ``state_day`` for each (user, day) pair."""
        days = np.unique(state_day)
        table = pq.read_table(truth_path(self.settings, "daily"), filters=[("day", "in", days.astype(int).tolist())])
        table = table.filter(pc.is_in(table["user_id"], value_set=pa_array(np.unique(user_ids))))
        frame = table.to_pandas()
        key = pd.MultiIndex.from_arrays([frame["user_id"].to_numpy(), frame["day"].to_numpy().astype(np.int64)])
        pos = key.get_indexer(pd.MultiIndex.from_arrays([np.asarray(user_ids), state_day.astype(np.int64)]))
        if (pos < 0).any():
            raise MissingTableError("the truth's daily state is incomplete; run `ownlens-ml data generate` again")
        f = frame.iloc[pos]
        return ReaderState(
            alive=f["alive"].to_numpy(),
            decaying=f["decaying"].to_numpy(),
            engagement=f["engagement"].to_numpy(dtype=float),
            paid=f["paid"].to_numpy(),
            pressure=f["pressure"].to_numpy(dtype=float),
            meter=f["meter"].to_numpy().astype(np.int32),
            newsletter=f["newsletter"].to_numpy(),
            idle=f["idle"].to_numpy().astype(np.int32),
        )

    def weekday(self, day: np.ndarray) -> np.ndarray:
        return (self.start.weekday() + day) % 7


def pa_array(values: np.ndarray):
    import pyarrow as pa

    return pa.array(values)


def oracle_churn_probability(
    settings: Settings, user_ids: np.ndarray, as_of, window_days: int = 30, paths: int = MC_PATHS, seed: int = 0
) -> np.ndarray:
    """True probability that each reader makes no session in [as_of, as_of + window_days).

    From each reader's latent state at the end of the day before ``as_of`` (alive, fading,
    engagement, idle days, ...), ``paths`` futures are replayed with the generator's own
    ``step``; on each path the chance of no session is exp(-sum of the daily visit rates),
    averaged over paths (smooth, so far less noisy than counting sampled sessions).

    Args:
        settings: locations (the truth of the last ``ownlens-ml data generate``).
        user_ids: reader ids.
        as_of: one tz-aware UTC timestamp at 00:00, or one per reader, within the generated period.
        window_days: length of the label window.
        paths: simulated futures per reader.
        seed: seed of the replay (the result is deterministic).

    Returns:
        Probabilities, one per reader, in the order given.
    """

    def no_session(draws, log_p):
        return log_p + np.log1p(-draws.visit_probability)

    log_p = _replay(
        settings, user_ids, as_of, window_days, paths, seed, no_session, lambda st: np.ones(len(st.alive), bool)
    )
    return np.exp(log_p).mean(axis=1)


def oracle_conversion_probability(
    settings: Settings, user_ids: np.ndarray, as_of, window_days: int = 30, paths: int = MC_PATHS, seed: int = 0
) -> np.ndarray:
    """True probability that a free reader converts to paid in [as_of, as_of + window_days).

    From each reader's latent state at the end of the day before ``as_of`` (engagement,
    paywall pressure, meter, ...), ``paths`` futures are replayed with the generator's own
    ``step`` with the reader held free; on each path the chance of no conversion is the
    product of (1 - the day's conversion hazard), averaged over paths (smooth: a rare event
    is not left to a few sampled conversions). Readers already paid get 0. Arguments as for
    ``oracle_churn_probability``.
    """

    def stays_free(draws, log_p):
        return log_p + np.log1p(-draws.conversion_hazard)

    def hold_free(state, draws):
        # conditioned on no conversion so far the reader evolves as a free reader
        state.paid = draws.was_paid

    log_p = _replay(
        settings, user_ids, as_of, window_days, paths, seed, stays_free, lambda st: ~st.paid, after_step=hold_free
    )
    return 1.0 - np.exp(log_p).mean(axis=1)


def _replay(
    settings: Settings,
    user_ids,
    as_of,
    window_days: int,
    paths: int,
    seed: int,
    update,
    eligible,
    initial=0.0,
    after_step=None,
) -> np.ndarray:
    """Replay ``paths`` futures per (reader, as_of) with ``step``; fold each day's draws with
    ``update(draws, acc)`` into one value per path; ``after_step(state, draws)`` may adjust the
    state between days. Ineligible pairs keep ``initial``."""
    if window_days < 1:
        raise ValidationError(f"window_days must be positive, got {window_days}")
    truth = _Truth(settings)
    user_ids = np.asarray(user_ids)
    pos = truth.rows(user_ids)
    day0 = truth.day_index(as_of, len(user_ids))
    out = np.full((len(user_ids), paths), initial, dtype=type(initial))
    rng = np.random.default_rng(seed)
    st_all = truth.state(user_ids, day0 - 1)
    todo = np.flatnonzero(eligible(st_all))
    # replay together the pairs that share a start day, so one step call serves them all
    per_batch = max(1, MC_BATCH // paths)
    for start in np.unique(day0[todo]):
        members = todo[day0[todo] == start]
        for lo in range(0, len(members), per_batch):
            idx = members[lo : lo + per_batch]
            rep = np.repeat(idx, paths)
            rd = truth.readers(pos[rep])
            st = st_all.take(rep)
            acc = np.full(len(rep), initial, dtype=type(initial))
            for i in range(window_days):
                d = int(start) + i
                draws = step(rd, st, d, int(truth.weekday(d)), rng, truth.dyn)
                acc = update(draws, acc)
                if after_step is not None:
                    after_step(st, draws)
            out[idx] = acc.reshape(len(idx), paths)
    return out


def oracle_segments(settings: Settings, rows: pd.DataFrame, **_params) -> np.ndarray:
    """The latent segment (``generator.SEGMENT_NAMES``) of each reader in ``rows['user_id']``, in order.

    Raises:
        MissingTableError: no generated truth (imported data).
        ValidationError: a reader the generator did not draw.
    """
    truth = _Truth(settings)
    return truth.users["segment"].to_numpy()[truth.rows(rows["user_id"].to_numpy())].astype(object)


def recommendation_affinity(settings: Settings, rows: pd.DataFrame, as_of, horizon_hours: float = 24.0) -> np.ndarray:
    """How likely each reader is to pick each article in the window after ``as_of`` (signal 4).

    The generator picks a category by the reader's affinity and then an article in
    proportion to quality x exp(-age / RECENCY_TAU_DAYS); this is that product, with the age
    taken at the middle of the window. ``rows`` has ``user_id`` and ``article_id``.
    """
    users = load_truth(settings, "users").set_index("user_id")
    arts = load_truth(settings, "articles").set_index("article_id")
    u_pos = users.index.get_indexer(rows["user_id"].to_numpy())
    a_pos = arts.index.get_indexer(rows["article_id"].to_numpy())
    if (u_pos < 0).any() or (a_pos < 0).any():
        raise ValidationError("readers or articles not in the generated truth")
    affinity = users[[f"affinity_{c}" for c in CATEGORIES]].to_numpy()
    category = arts["category_id"].to_numpy()[a_pos] - 1
    mid = pd.Timestamp(as_of) + pd.Timedelta(hours=horizon_hours / 2)
    age_days = (mid - pd.to_datetime(arts["published_at"].to_numpy()[a_pos], utc=True)) / pd.Timedelta(days=1)
    recency = np.exp(-np.maximum(np.asarray(age_days, dtype=float), 0.0) / RECENCY_TAU_DAYS)
    return affinity[u_pos, category] * arts["quality"].to_numpy()[a_pos] * recency


def click_probability(settings: Settings, rows: pd.DataFrame) -> np.ndarray:
    """The true chance each shown piece is opened (``ownlens_ml.data.impressions``), by impression and position.

    ``rows`` has ``impression_id`` and ``position``; a row not in the generated truth raises.
    """
    truth = load_truth(settings, "impressions").set_index(["impression_id", "position"])["click_probability"]
    out = truth.reindex(pd.MultiIndex.from_frame(rows[["impression_id", "position"]].astype("int64")))
    if out.isna().any():
        raise ValidationError(f"{int(out.isna().sum())} impressions not in the generated truth")
    return out.to_numpy(float)


# --- oracles by name (offered to the engines through ownlens_ml.evaluation.oracle) -------


def _churn_oracle(settings: Settings, rows: pd.DataFrame, window_days: int = 30, **_) -> np.ndarray:
    return oracle_churn_probability(
        settings, rows["user_id"].to_numpy(), rows["event_timestamp"].to_numpy(), window_days=window_days
    )


def _conversion_oracle(settings: Settings, rows: pd.DataFrame, window_days: int = 14, **_) -> np.ndarray:
    return oracle_conversion_probability(
        settings, rows["user_id"].to_numpy(), rows["event_timestamp"].to_numpy(), window_days=window_days
    )


def _article_performance_oracle(settings: Settings, rows: pd.DataFrame, train: pd.DataFrame, **_) -> np.ndarray:
    """What the truth adds to what is observed: gradient-boosted trees fitted on the training
    rows to the article's latent log-quality (author, category, premium, hour effects and
    noise) beside every observed numeric feature of the rows; applied to ``rows``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    quality = load_truth(settings, "articles").set_index("article_id")["quality"]
    skip = {"label", "article_id", "author_id", "event_timestamp"}
    observed = [c for c in train.columns if c not in skip and pd.api.types.is_numeric_dtype(train[c])]

    def design(frame: pd.DataFrame) -> np.ndarray:
        q = frame["article_id"].map(quality)
        if q.isna().any():
            raise ValidationError(
                f"article ids not in the generated truth: {frame.loc[q.isna(), 'article_id'][:5].tolist()}"
            )
        return np.column_stack([np.log(q.to_numpy(float)), frame[observed].to_numpy(float)])

    model = HistGradientBoostingRegressor(random_state=0).fit(design(train), train["label"].to_numpy(float))
    return model.predict(design(rows))


def _recommendation_oracle(
    settings: Settings, rows: pd.DataFrame, as_of=None, horizon_hours: float = 24.0, **_
) -> np.ndarray:
    return recommendation_affinity(settings, rows, as_of, horizon_hours)


def _trending_oracle(settings: Settings, rows=None, **_) -> pd.DataFrame:
    return load_truth(settings, "bursts")


ORACLES = {
    "churn": _churn_oracle,
    "conversion": _conversion_oracle,
    "article_performance": _article_performance_oracle,
    "recommendation": _recommendation_oracle,
    "trending": _trending_oracle,
    "segments": oracle_segments,
    "click": lambda settings, rows, **_: click_probability(settings, rows),
}
"""Oracle name -> ``fn(settings, rows, **params)``: the generator's truth for the rows."""
