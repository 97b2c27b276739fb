"""Impressions of a generated platform: the homepage slates readers were shown, and which they opened.

The read simulation (``generator``) is left as it is: every article a session read (a page view or
a paywall hit) was clicked on the session's homepage slate, shown at the session's start. The
editors fill the rest of the slate (``SLATE_SIZE`` slots) with pieces of the reader's brand out by
then (published at most the generator's ``ARTICLE_LOOKBACK_DAYS`` before), drawn with chance proportional to
quality ** ``EDITORIAL_QUALITY_POWER`` x recency (exp(-age / 1.5 days)): the editors' choice follows
quality less than readers do, so click-through carries the planted quality and affinity signals.

The truth (``truth/impressions.parquet``) holds each shown piece's click probability: the chance
the piece is read given it is shown, p / (p + (1 - p) d), with p = 1 - (1 - v / V) ** reads (v: the
reader's category affinity x quality x recency of the piece, V: its sum over the brand's pieces out;
the read process's choice, without bursts or the premium split) and d the chance the editors' draws
show it. Positions are shuffled (position carries no planted signal). Each chunk has its own
random stream, ``default_rng([seed, STREAM, chunk])``, so the other tables stay byte for byte as
they were. Served recommendations from the prediction log become ``recommendation`` impressions
through ``from_prediction_log``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SLATE_SIZE = 10
EDITORIAL_QUALITY_POWER = 0.5
STREAM = 18
MS_DAY = 86_400_000
RECOMMENDATION_ID_OFFSET = 10**12
"""Impression ids of served recommendations: the prediction id plus this (slates use session ids)."""


def simulate(config, ed, chunk, k: int, lookback_days: int, tau_days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The homepage impressions of one chunk of readers, and their truth (click probability).

    Args:
        config: the generator config (seed, start).
        ed: the generator's editorial arrays (brand, category, quality, pub_ms in ms since start).
        chunk: the chunk's ``ChunkResult`` (sessions, events, truth_users with affinity columns).
        k: the chunk's index (its random stream).
        lookback_days: how long a piece stays readable (the generator's ``ARTICLE_LOOKBACK_DAYS``).
        tau_days: the recency time constant of reading choice (``RECENCY_TAU_DAYS``).
    """
    rng = np.random.default_rng([config.seed, STREAM, k])
    empty = pd.DataFrame(columns=["impression_id", "position", "user_id", "article_id", "surface",
                                  "shown_at", "clicked"])
    if not len(chunk.events):
        return empty, pd.DataFrame(columns=["impression_id", "position", "click_probability"])
    ev = chunk.events
    reads = ev[ev["event_type"].isin(["page_view", "paywall_hit"]) & ev["article_id"].notna()]
    n_reads = reads.groupby("session_id").size()  # events are in session order
    distinct = reads[["session_id", "article_id"]].astype("int64").drop_duplicates()
    cut = np.flatnonzero(np.diff(distinct["session_id"].to_numpy())) + 1
    read_sets = pd.Series(np.split(distinct["article_id"].to_numpy(), cut), index=n_reads.index)
    sess = chunk.sessions.set_index("session_id").loc[n_reads.index]
    start0 = config.start_ts.value // 1_000_000
    start_ms = sess["started_at"].astype("int64").to_numpy() // 1_000_000 - start0
    users = chunk.truth_users["user_id"].to_numpy()
    aff = chunk.truth_users.filter(like="affinity_").to_numpy()  # in category id order
    upos = np.searchsorted(users, sess["user_id"].to_numpy())
    by_brand = {b: np.flatnonzero(ed.brand == b) for b in np.unique(ed.brand)}  # in publishing order
    cols: dict[str, list] = {k: [] for k in ("impression_id", "position", "user_id", "article_id", "shown_at_ms",
                                             "clicked", "click_probability")}
    for sid, user, u, brand, t, read, n in zip(read_sets.index, sess["user_id"], upos, sess["brand_id"], start_ms,
                                               read_sets.to_numpy(), n_reads.to_numpy()):
        idx = by_brand[brand]
        lo, hi = np.searchsorted(ed.pub_ms[idx], [t - lookback_days * MS_DAY, t], side="right")
        read_pos = read - 1
        pool = np.union1d(idx[lo:hi], read_pos)
        recency = np.exp(-np.maximum(t - ed.pub_ms[pool], 0) / MS_DAY / tau_days)
        q = ed.quality[pool] ** EDITORIAL_QUALITY_POWER * recency
        cq = np.cumsum(q)
        q = q / cq[-1]
        m = max(SLATE_SIZE - len(read_pos), 0)
        drawn = pool[np.minimum(np.searchsorted(cq, rng.random(m) * cq[-1], side="right"), len(pool) - 1)]
        shown = np.concatenate([read_pos, np.setdiff1d(drawn, read_pos)])
        v = aff[u, ed.category[pool]] * ed.quality[pool] * recency
        at = np.searchsorted(pool, shown)
        p = 1.0 - (1.0 - v[at] / v.sum()) ** n
        d = 1.0 - (1.0 - q[at]) ** m
        size = len(shown)
        cols["impression_id"].append(np.full(size, sid))
        cols["position"].append(rng.permutation(size) + 1)
        cols["user_id"].append(np.full(size, user))
        cols["article_id"].append(shown + 1)
        cols["shown_at_ms"].append(np.full(size, t))
        cols["clicked"].append(np.arange(size) < len(read_pos))
        cols["click_probability"].append(p / np.maximum(p + (1.0 - p) * d, 1e-300))
    out = pd.DataFrame({k: np.concatenate(v) for k, v in cols.items()})
    out.insert(4, "surface", "homepage")
    truth = out[["impression_id", "position", "click_probability"]].copy()
    out = out.drop(columns="click_probability")
    out.insert(5, "shown_at", pd.to_datetime(out.pop("shown_at_ms") + start0, unit="ms", utc=True))
    out = out.astype({"impression_id": "int64", "position": "int16", "user_id": "int64", "article_id": "int64"})
    return out, truth.astype({"impression_id": "int64", "position": "int16"})


def from_prediction_log(predictions: pd.DataFrame, clicked: set[tuple[int, int]] = frozenset()) -> pd.DataFrame:
    """Served recommendation answers (``ml_model_predictions`` rows) as ``recommendation`` impressions.

    Args:
        predictions: rows with ``prediction_id``, ``entity_id`` (the reader), ``as_of`` (when it was
            served) and ``output`` (the answer: ``{"items": [{"article_id": ...}, ...]}`` or a list).
        clicked: (user_id, article_id) pairs the reader opened from the answer.
    """
    rows = []
    for pid, user, at, output in predictions[["prediction_id", "entity_id", "as_of", "output"]].itertuples(index=False):
        items = output.get("items", output.get("articles", [])) if isinstance(output, dict) else (output or [])
        for pos, item in enumerate(items, start=1):
            art = int(item["article_id"] if isinstance(item, dict) else item)
            rows.append((RECOMMENDATION_ID_OFFSET + int(pid), pos, int(user), art, "recommendation",
                         pd.Timestamp(at), (int(user), art) in clicked))
    return pd.DataFrame(rows, columns=["impression_id", "position", "user_id", "article_id", "surface",
                                       "shown_at", "clicked"])
