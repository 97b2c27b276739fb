"""Drift of a window against a version's reference profile, with thresholds that know the sample size.

Per numeric feature: PSI against its sampling distribution under no drift (Yurdakul 2018: about
chi-square(B - 1) x (1/N + 1/M) for B bins, N reference and M current rows), and KS
(``scipy.stats.ks_2samp``'s asymptotic test in its binned form, ``ks_binned``). Per categorical feature:
PSI, chi-square on the 2 x K table (``scipy.stats.chi2_contingency``) and the Jensen-Shannon
distance. Every feature: the change of its null rate (chi-square on the 2 x 2 table). The
model's output: the same, as ``output_drift``. All tests of one run share a family-wise level
(Bonferroni); a significant shift below the effect-size floor is a notice, not an alert; a
window below the minimum size is "too few rows to judge".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ownlens_ml.models.kinds import Monitoring
from ownlens_ml.monitoring.profiles import OUTPUT, bin_counts
from ownlens_ml.monitoring.results import ALERT, NOTICE, OK, TOO_FEW, Measurement

SMOOTHING = 0.5
"""Added to every bin's count before PSI's logarithm: an empty bin gives a large, finite PSI."""


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    p = (reference + SMOOTHING) / (reference.sum() + SMOOTHING * len(reference))
    q = (current + SMOOTHING) / (current.sum() + SMOOTHING * len(current))
    return float(np.sum((q - p) * np.log(q / p)))


def psi_threshold(bins: int, n: int, m: int, alpha: float) -> float:
    """PSI's upper ``1 - alpha`` quantile under no drift: chi2(bins - 1) scaled by 1/n + 1/m."""
    return float(stats.chi2.ppf(1 - alpha, max(bins - 1, 1)) * (1 / n + 1 / m))


def ks_binned(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS over the same bins: what ``scipy.stats.ks_2samp(method="asymp")`` returns for the bin
    indices repeated by their counts (the largest gap of the two CDFs at a bin edge, and scipy's ``kstwo``
    tail at the effective size n*m/(n+m)), without materialising a million repeated values."""
    n, m = int(reference.sum()), int(current.sum())
    d = float(np.max(np.abs(np.cumsum(reference) / n - np.cumsum(current) / m)))
    return d, float(np.clip(stats.kstwo.sf(d, np.round(n * m / (n + m))), 0, 1))


def _column_tests(column: dict, values, kind: str, name: str) -> list[dict]:
    """Statistics of one column (no verdicts yet): dicts of metric, value, p (or None), effect floor key."""
    reference, current, nulls = bin_counts(column, values)
    n_ref, n_cur = int(reference.sum()), int(current.sum())
    tests = []
    occupied = (reference + current) > 0
    if n_ref and n_cur and occupied.sum() > 1:
        value = psi(reference, current)
        tests.append(
            {"metric": "psi", "value": value, "bins": int(len(reference)), "floor": "psi_floor", "n": n_ref, "m": n_cur}
        )
        if column["type"] == "numeric":
            d, p = ks_binned(reference, current)
            tests.append({"metric": "ks", "value": d, "p": p, "floor": "ks_floor"})
        else:
            table = np.vstack([reference, current])[:, occupied]
            chi2 = stats.chi2_contingency(table, correction=False)
            tests.append({"metric": "chi2", "value": float(chi2.statistic), "p": float(chi2.pvalue), "floor": None})
            tests.append(
                {
                    "metric": "js",
                    "value": float(jensenshannon(reference, current, base=2)),
                    "p": None,
                    "floor": "js_floor",
                    "effect_of": "chi2",
                }
            )
    ref_nulls, ref_rows = column["nulls"], column["rows"]
    cur_rows = n_cur + nulls
    if (ref_nulls or nulls) and ref_rows and cur_rows and (ref_nulls < ref_rows or nulls < cur_rows):
        table = np.array([[ref_nulls, ref_rows - ref_nulls], [nulls, cur_rows - nulls]])
        change = nulls / cur_rows - ref_nulls / ref_rows
        p = float(stats.chi2_contingency(table, correction=False).pvalue) if (table.sum(axis=0) > 0).all() else 1.0
        tests.append(
            {
                "metric": "null_rate",
                "value": float(change),
                "p": p,
                "floor": "null_floor",
                "reference_rate": ref_nulls / ref_rows,
            }
        )
    for test in tests:
        test |= {"kind": kind, "feature": name, "rows": cur_rows}
    return tests


def drift(profile: dict, window: pd.DataFrame, outputs: np.ndarray | None, watch: Monitoring) -> list[Measurement]:
    """Every drift measurement of a window (feature columns as in the profile) against the profile."""
    rows = len(window)
    columns = {name: column for name, column in profile["features"].items() if name not in watch.skip}
    if rows < watch.min_rows:
        return [
            Measurement(
                "drift",
                "rows",
                None,
                rows,
                watch.min_rows,
                TOO_FEW,
                {"message": f"too few rows to judge: {rows:,} in the window, {watch.min_rows:,} needed"},
            )
        ]
    tests = []
    for name, column in columns.items():
        if name in window.columns:
            tests += _column_tests(column, window[name], "drift", name)
    if outputs is not None and "output" in profile:
        tests += _column_tests(profile["output"], outputs, "output_drift", OUTPUT)
    alpha = watch.level / max(len([t for t in tests if t["metric"] != "js"]), 1)
    out = []
    for test in tests:
        floor = getattr(watch, test["floor"]) if test["floor"] else None
        if test["metric"] == "psi":
            threshold = psi_threshold(test["bins"], test["n"], test["m"], alpha)
            significant = test["value"] > threshold
        elif test["metric"] == "js":  # an effect size: judged with its chi-square test's p-value
            chi2 = next(t for t in tests if t["feature"] == test["feature"] and t["metric"] == "chi2")
            threshold, significant = floor, chi2["p"] < alpha
        else:
            threshold, significant = alpha, test["p"] < alpha
        large = floor is None or abs(test["value"]) >= floor
        if test["metric"] == "chi2":
            large = False  # chi-square alone never alerts: the JS distance beside it carries the effect
        status = (ALERT if large else NOTICE) if significant else OK
        details = {k: v for k, v in test.items() if k in ("p", "bins", "rows", "reference_rate")}
        details |= {"significant": bool(significant), "effect_floor": floor, "level": alpha}
        out.append(
            Measurement(test["kind"], test["metric"], test["feature"], test["value"], threshold, status, details)
        )
    return out
