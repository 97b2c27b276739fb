"""Training/serving skew: served feature values against the offline store's at the logged ``as_of``.

A sample of logged online rows is recomputed through the point-in-time offline path
(``features.store.training_set``). A difference is *explained* when the offline store at the
moment the served values were stamped (``as_of`` minus their logged age: the snapshot the
online store held, given the daily cadence and materialization lag, or nothing past a view's
TTL) agrees with what was served; the rest is skew.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ownlens_ml.features import store
from ownlens_ml.models.baselines import feature_matrix
from ownlens_ml.monitoring.results import ALERT, OK, Measurement
from ownlens_ml.settings import Settings

SEED = 7
EXAMPLES = 5


def _same(served: pd.DataFrame, offline: pd.DataFrame) -> pd.DataFrame:
    """Cell by cell: equal values, or both missing."""
    same = {}
    for f in served.columns:
        a, b = served[f], offline[f]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(float), b.to_numpy(float)
            same[f] = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=1e-6, atol=1e-9)
        else:
            same[f] = (a.isna() & b.isna()).to_numpy() | (a.astype(str) == b.astype(str)).to_numpy()
    return pd.DataFrame(same, index=served.index)


def _stamp_age(output) -> float | None:
    ages = [a for a in ((output or {}).get("feature_age_seconds") or {}).values() if a is not None]
    return min(ages) if ages else None


def skew(
    settings: Settings, service: str, key: str, online: pd.DataFrame, features: list[str], rate: float, sample: int
) -> list[Measurement]:
    """Per feature: the share of sampled online rows whose served value the offline path does not reproduce.

    Args:
        online: logged online rows: ``entity_id``, ``as_of``, ``features`` (dict), ``output`` (dict).
    """
    rows = online[online["features"].notna()]
    if rows.empty:
        return []
    rows = rows.sample(min(sample, len(rows)), random_state=SEED).reset_index(drop=True)
    served = feature_matrix(pd.DataFrame.from_records(list(rows["features"])).reindex(columns=features), features)
    entities = pd.DataFrame({key: rows["entity_id"].astype("int64"), "event_timestamp": rows["as_of"]})
    offline = feature_matrix(store.training_set(settings, service, entities).frame, features)
    same = _same(served, offline)
    explained = pd.DataFrame(False, index=same.index, columns=same.columns)
    differ = ~same.all(axis=1)
    ages = rows["output"].map(_stamp_age)
    redo = differ & ages.notna()
    if redo.any():
        stamped = rows.loc[redo, "as_of"] - pd.to_timedelta(ages[redo], unit="s") + pd.Timedelta(seconds=1)
        at_stamp = store.training_set(
            settings, service, pd.DataFrame({key: entities.loc[redo, key], "event_timestamp": stamped})
        ).frame
        at_stamp = feature_matrix(at_stamp, features).set_axis(same.index[redo])
        explained.loc[redo] = _same(served.loc[redo], at_stamp).to_numpy()
        offline = offline.astype(object)
        offline.loc[redo] = at_stamp.astype(object)  # examples show the values at the served stamp
        offline = feature_matrix(offline, features)
    explained &= ~same
    out = []
    for f in features:
        skewed = ~same[f] & ~explained[f]
        value = float(skewed.mean())
        diffs = pd.DataFrame(
            {"entity": rows["entity_id"], "as_of": rows["as_of"], "served": served[f], "offline": offline[f]}
        )[skewed]
        if pd.api.types.is_numeric_dtype(diffs["served"]) and pd.api.types.is_numeric_dtype(diffs["offline"]):
            diffs = diffs.assign(gap=(diffs["served"] - diffs["offline"]).abs()).sort_values("gap", ascending=False)
        out.append(
            Measurement(
                "skew",
                "mismatch_rate",
                f,
                value,
                rate,
                ALERT if value > rate else OK,
                {
                    "sampled": len(rows),
                    "explained_rate": float(explained[f].mean()),
                    "explained_by": "snapshot cadence / materialization lag / TTL: the offline store at the served "
                    "values' stamp agrees",
                    "compared_at": "the served values' stamp where logged, else as_of",
                    "largest": diffs.head(EXAMPLES).astype({"entity": "int64"}).to_dict("records"),
                },
            )
        )
    return out
