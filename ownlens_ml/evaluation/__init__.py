"""Metrics for every task, computed the same way for a model, its baselines and the oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ownlens_ml.errors import TooFewLabelsError


def _clip(p: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate per equal-count bin of the score."""
    frame = pd.DataFrame({"y": y, "p": p})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    return frame.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), rows=("y", "size"))


def gains_table(y: np.ndarray, p: np.ndarray, deciles: int = 10) -> pd.DataFrame:
    """Lift and cumulative gains by score decile, highest scores first."""
    frame = pd.DataFrame({"y": y, "p": p}).sort_values("p", ascending=False, kind="stable", ignore_index=True)
    frame["decile"] = np.arange(len(frame)) * deciles // len(frame) + 1
    table = frame.groupby("decile").agg(rows=("y", "size"), positives=("y", "sum"), rate=("y", "mean"))
    base = frame["y"].mean()
    table["lift"] = table["rate"] / base if base > 0 else np.nan
    table["cumulative_gain"] = table["positives"].cumsum() / max(frame["y"].sum(), 1)
    return table


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier, expected calibration error and top-decile lift."""
    y, p = np.asarray(y, dtype=int), _clip(p)
    if len(np.unique(y)) < 2:
        raise TooFewLabelsError(
            f"the {len(y):,} evaluation rows all have label {int(y[0]) if len(y) else '-'}: "
            "binary metrics need both classes; train on more readers or a longer stretch of data"
        )
    calibration = calibration_table(y, p)
    ece = float(np.average((calibration["predicted"] - calibration["observed"]).abs(), weights=calibration["rows"]))
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "pr_auc": float(skm.average_precision_score(y, p)),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "calibration_error": ece,
        "top_decile_lift": float(gains_table(y, p)["lift"].iloc[0]),
        "positive_rate": float(y.mean()),
        "rows": int(len(y)),
    }


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and Spearman rank correlation."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, p))),
        "mae": float(skm.mean_absolute_error(y, p)),
        "r2": float(skm.r2_score(y, p)),
        "spearman": float(pd.Series(y).corr(pd.Series(p), method="spearman")),
        "rows": int(len(y)),
    }
