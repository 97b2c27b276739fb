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


EPOCH_DAYS = 200
"""Recency weights are summed per epoch of this many days, each relative to its own start (no overflow)."""


def simulate(config, ed, chunk, k: int, lookback_days: int, tau_days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The homepage impressions of one chunk of readers, and their truth (click probability).

    Vectorized: a session's editorial weights are quality ** power x exp(-(t - published) / tau), so
    over a brand's pieces in publishing order their running sums give every session's window total,
    and one searchsorted per draw picks the piece.

    Args:
        config: the generator config (seed, start).
        ed: the generator's editorial arrays (brand, category, quality, pub_ms in ms since start).
        chunk: the chunk's ``ChunkResult`` (sessions, events, truth_users with affinity columns).
        k: the chunk's index (its random stream).
        lookback_days: how long a piece stays readable (the generator's ``ARTICLE_LOOKBACK_DAYS``).
        tau_days: the recency time constant of reading choice (``RECENCY_TAU_DAYS``).
    """
    columns = ["impression_id", "position", "user_id", "article_id", "surface", "shown_at", "clicked"]
    ev = chunk.events
    reads = ev[ev["event_type"].isin(["page_view", "paywall_hit"]) & ev["article_id"].notna()] if len(ev) else ev
    if not len(reads):
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=["impression_id", "position", "click_probability"])
    rng = np.random.default_rng([config.seed, STREAM, k])
    n_reads = reads.groupby("session_id").size()
    read = reads[["session_id", "article_id"]].astype("int64").drop_duplicates()
    sess = chunk.sessions.set_index("session_id").loc[n_reads.index]
    start0 = config.start_ts.value // 1_000_000
    t = sess["started_at"].astype("int64").to_numpy() // 1_000_000 - start0
    brand = sess["brand_id"].to_numpy()
    upos = np.searchsorted(chunk.truth_users["user_id"].to_numpy(), sess["user_id"].to_numpy())
    aff = chunk.truth_users.filter(like="affinity_").to_numpy()  # in category id order
    n_cat = aff.shape[1]
    tau = tau_days * MS_DAY
    # per session: the editors' window total Q, the readers' choice total V (by category), in the
    # session's own recency scale; per epoch of sessions, sums relative to the epoch's start
    lo, hi = np.zeros(len(t), np.int64), np.zeros(len(t), np.int64)
    q_total, v_total = np.zeros(len(t)), np.zeros(len(t))
    q_cum: dict[tuple, np.ndarray] = {}
    epoch = (t // (EPOCH_DAYS * MS_DAY)).astype(np.int64)
    for b, e in sorted(set(zip(brand.tolist(), epoch.tolist()))):
        s = np.flatnonzero((brand == b) & (epoch == e))
        idx = np.flatnonzero(ed.brand == b)  # in publishing order
        ref = e * EPOCH_DAYS * MS_DAY
        grow = np.exp(np.minimum(ed.pub_ms[idx] - ref, (EPOCH_DAYS + 1) * MS_DAY) / tau)
        cq = np.concatenate([[0.0], np.cumsum(ed.quality[idx] ** EDITORIAL_QUALITY_POWER * grow)])
        cv = np.zeros((len(idx) + 1, n_cat))
        np.add.at(cv[1:], (np.arange(len(idx)), ed.category[idx]), ed.quality[idx] * grow)
        cv = np.cumsum(cv, axis=0)
        lo[s] = np.searchsorted(ed.pub_ms[idx], t[s] - lookback_days * MS_DAY, side="right")
        hi[s] = np.searchsorted(ed.pub_ms[idx], t[s], side="right")
        shrink = np.exp(-(t[s] - ref) / tau)
        q_total[s] = (cq[hi[s]] - cq[lo[s]]) * shrink
        v_total[s] = ((cv[hi[s]] - cv[lo[s]]) * aff[upos[s]]).sum(axis=1) * shrink
        q_cum[b, e] = cq
    # the editors' draws: m = SLATE_SIZE - distinct reads, with replacement, from the window
    n_distinct = read.groupby("session_id").size().reindex(n_reads.index).to_numpy()
    m = np.where(hi > lo, np.maximum(SLATE_SIZE - n_distinct, 0), 0)  # lo, hi: offsets in the brand's pieces
    draws = []
    for (b, e), cq in q_cum.items():
        s = np.flatnonzero((brand == b) & (epoch == e) & (m > 0))
        idx = np.flatnonzero(ed.brand == b)
        rep = np.repeat(s, m[s])
        first, last = lo[rep], hi[rep]
        j = np.searchsorted(cq, cq[first] + rng.random(len(rep)) * (cq[last] - cq[first]), side="right") - 1
        draws.append(pd.DataFrame({"row": rep, "article_id": idx[np.clip(j, first, last - 1)] + 1}))
    drawn = pd.concat(draws, ignore_index=True) if draws else pd.DataFrame({"row": [], "article_id": []})
    drawn["session_id"] = n_reads.index.to_numpy()[drawn["row"].to_numpy(np.int64)]
    drawn = drawn[["session_id", "article_id"]].astype("int64").drop_duplicates()
    drawn = drawn.merge(read, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")
    out = pd.concat([read.assign(clicked=True), drawn.assign(clicked=False)], ignore_index=True)
    row = np.searchsorted(n_reads.index.to_numpy(), out["session_id"].to_numpy())
    art = out["article_id"].to_numpy() - 1
    age = np.maximum(t[row] - ed.pub_ms[art], 0) / tau
    in_window = (
        (ed.brand[art] == brand[row]) & (ed.pub_ms[art] > t[row] - lookback_days * MS_DAY) & (ed.pub_ms[art] <= t[row])
    )
    v = aff[upos[row], ed.category[art]] * ed.quality[art] * np.exp(-age)
    # readers also chose pieces outside the editors' window: they join the readers' total
    v_total += np.bincount(row, weights=np.where(in_window, 0.0, v), minlength=len(t))
    p = 1.0 - (1.0 - np.clip(v / v_total[row], 0.0, 1.0)) ** n_reads.to_numpy()[row]
    q = ed.quality[art] ** EDITORIAL_QUALITY_POWER * np.exp(-age)
    share = np.where(in_window, q / np.where(q_total[row] > 0, q_total[row], 1.0), 0.0)
    d = 1.0 - (1.0 - np.clip(share, 0.0, 1.0)) ** m[row]
    out["click_probability"] = p / np.maximum(p + (1.0 - p) * d, 1e-300)
    # positions: a random order within each slate (position carries no planted signal)
    out["key"] = rng.random(len(out))
    out = out.sort_values(["session_id", "key"], kind="stable", ignore_index=True)
    out["position"] = out.groupby("session_id").cumcount() + 1
    at = np.searchsorted(n_reads.index.to_numpy(), out["session_id"].to_numpy())
    out["user_id"] = sess["user_id"].to_numpy()[at]
    out["shown_at"] = sess["started_at"].iloc[at].reset_index(drop=True)
    out = out.rename(columns={"session_id": "impression_id"})
    out["surface"] = "homepage"
    out = out.astype({"impression_id": "int64", "position": "int16", "user_id": "int64", "article_id": "int64"})
    truth = out[["impression_id", "position", "click_probability"]].copy()
    return out[columns], truth


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
            rows.append(
                (
                    RECOMMENDATION_ID_OFFSET + int(pid),
                    pos,
                    int(user),
                    art,
                    "recommendation",
                    pd.Timestamp(at),
                    (int(user), art) in clicked,
                )
            )
    return pd.DataFrame(
        rows, columns=["impression_id", "position", "user_id", "article_id", "surface", "shown_at", "clicked"]
    )
