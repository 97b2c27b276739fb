"""Drift over a million logged predictions: ours (``monitoring.drift``) against Evidently's data drift report.

One seeded pair of frames, the reference (a version's holdout) and the current window, with
``--features`` columns (a sixth of them categorical): three numeric columns and one
categorical column shifted for real, one numeric column shifted a little (significant on a
million rows, below every effect floor), the rest clean. Each contender runs in a child
process on the same frames (same seed), timed around the drift call alone, its peak RSS
measured above what the frames already hold (``malloc_trim``, Linux ``clear_refs``, then ``VmHWM``). Verdicts
are compared column by column where the tests are the same (PSI, KS); then the false-alarm
rate of both on clean windows (windows drawn like the reference): ours against its configured
family-wise level, Evidently's default preset (Wasserstein/Jensen-Shannon at 0.1) and its KS.

    nice .venv/bin/python bench/bench_monitoring.py --rows 1000000 --windows 50 --evidently-windows 1 \
        --evidently-methods default,ks

Needs the ``bench`` extra (``pip install -e '.[bench]'``: Evidently).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.stdout.reconfigure(line_buffering=True)  # tables show as they are measured

import numpy as np
import pandas as pd

SHIFTED = {"f00": 0.3, "f01": 0.3, "f02": 0.5, "c0": 1.0}
"""Real shifts: numeric in standard deviations of the mean, categorical the weight moved to one category."""
SLIGHT = {"f03": 0.03}
"""A shift real but small: significant on a million rows, far below any effect floor."""
CATEGORIES = np.array(["desktop", "mobile", "tablet", "app", "tv"])


def columns(features: int) -> tuple[list[str], list[str]]:
    n_cat = max(1, features // 6)
    return [f"f{i:02d}" for i in range(features - n_cat)], [f"c{i}" for i in range(n_cat)]


def frame(rng: np.random.Generator, rows: int, features: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """``rows`` seeded rows: numeric columns gamma/normal/Poisson-like, categorical ones five devices."""
    shift = shift or {}
    numeric, categorical = columns(features)
    out = {}
    for i, name in enumerate(numeric):
        s = shift.get(name, 0.0)
        kind = i % 3
        if kind == 0:
            out[name] = rng.normal(s, 1.0, rows)
        elif kind == 1:
            out[name] = rng.gamma(2.0, 1.0, rows) + s * np.sqrt(2.0)
        else:
            out[name] = rng.poisson(3.0 + s * np.sqrt(3.0), rows).astype(float)
    p = np.array([0.45, 0.35, 0.1, 0.07, 0.03])
    for name in categorical:
        q = p.copy()
        if name in shift:  # move a share of desktop to mobile
            q[0] -= 0.2 * shift[name]
            q[1] += 0.2 * shift[name]
        out[name] = CATEGORIES[np.minimum(np.searchsorted(np.cumsum(q), rng.random(rows)), 4)]
    return pd.DataFrame(out)


def frames(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(args.seed)
    return frame(rng, args.reference, args.features), frame(rng, args.rows, args.features, SHIFTED | SLIGHT)


def clean_windows(args, count: int):
    """The reference and ``count`` clean windows of ``--rows`` (a stream of their own)."""
    reference = frame(np.random.default_rng(args.seed), args.reference, args.features)
    rng = np.random.default_rng(args.seed + 1)
    for _ in range(count):
        yield reference, frame(rng, args.rows, args.features)


# --- the contenders ---------------------------------------------------------------------------


def run_ours(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[dict, dict]:
    """(verdicts per test and column, seconds per step) of our drift: profile once, then judge the window."""
    from ownlens_ml.models.kinds import Monitoring
    from ownlens_ml.monitoring.drift import drift
    from ownlens_ml.monitoring.profiles import build_profile
    from ownlens_ml.monitoring.results import ALERT

    t0 = time.perf_counter()
    profile = build_profile(reference, list(reference.columns), None)
    t1 = time.perf_counter()
    measured = drift(profile, current, None, Monitoring())
    t2 = time.perf_counter()
    verdicts = {}
    for m in measured:
        verdicts.setdefault(m.metric, {})[m.feature] = {
            "alert": m.status == ALERT,
            "significant": bool(m.details.get("significant")),
        }
    return verdicts, {"profile": t1 - t0, "drift": t2 - t1}


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, num_method: str | None = None) -> tuple[dict, float]:
    """(drifted per column, seconds) of Evidently's DataDriftPreset (its default tests, or ``num_method``)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    categorical = [c for c in reference.columns if reference[c].dtype == object]
    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c not in categorical], categorical_columns=categorical
    )
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    # a column's method is named by a test's name or display name; p-value tests drift below their threshold
    p_values = {
        key
        for name, tests in _registered_stat_tests.items()
        for test in tests.values()
        if "p_value" in test.display_name
        for key in (name, test.display_name)
    }
    t0 = time.perf_counter()
    preset = DataDriftPreset(num_method=num_method) if num_method else DataDriftPreset()
    snapshot = Report([preset]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - t0
    drifted = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            value, threshold = float(metric["value"]), config["threshold"]
            p_value = config["method"] in p_values
            drifted[config["column"]] = {
                "method": config["method"],
                "drift": value < threshold if p_value else value >= threshold,
            }
    return drifted, seconds


# --- child phases: one contender, its own peak memory ------------------------------------------


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def phase(args) -> None:
    reference, current = frames(args)
    if args.phase == "ours":  # imported before the peak is reset: modules are not the run's memory
        import ownlens_ml.monitoring.drift  # noqa: F401
        import ownlens_ml.monitoring.profiles  # noqa: F401
    else:
        import evidently.presets  # noqa: F401
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)  # what building the frames freed goes back: it is not a run's slack
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here: what the run adds to the frames
    base = _rss("VmRSS")
    if args.phase == "ours":
        verdicts, seconds = run_ours(reference, current)
        out = {"verdicts": verdicts, "seconds": seconds}
    else:
        method = None if args.phase == "evidently" else args.phase.split(":")[1]
        drifted, seconds = run_evidently(reference, current, method)
        out = {"drifted": drifted, "seconds": seconds}
    out["peak_mb"] = (_rss("VmHWM") - base) / 2**20
    print(json.dumps(out))


def child(args, name: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--rows",
        str(args.rows),
        "--reference",
        str(args.reference),
        "--features",
        str(args.features),
        "--seed",
        str(args.seed),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the current window")
    parser.add_argument("--reference", type=int, default=100_000, help="rows of the reference (holdout)")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--windows", type=int, default=50, help="clean windows for our false-alarm rate")
    parser.add_argument("--evidently-windows", type=int, default=5, help="clean windows for Evidently's")
    parser.add_argument(
        "--evidently-methods",
        default="default,psi,ks",
        help="Evidently runs on the drifted pair: default (its preset's tests), psi, ks",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return phase(args)

    size = f"{args.rows:,} x {args.features} against a {args.reference:,}-row reference"
    mine = child(args, "ours")
    methods = args.evidently_methods.split(",")
    names = ["evidently" if m == "default" else f"evidently:{m}" for m in methods]
    theirs = {name: child(args, name) for name in names}
    print(f"\n## drift over {size} (time of the drift call; peak RSS above the frames)\n")
    print("| run | seconds | peak MB | drifted columns |")
    print("| --- | --- | --- | --- |")
    alerted = sorted({f for tests in mine["verdicts"].values() for f, v in tests.items() if v["alert"]})
    print(
        f"| ours (profile the reference once: {mine['seconds']['profile']:.2f} s) | "
        f"{mine['seconds']['drift']:.2f} | {mine['peak_mb']:.0f} | {', '.join(alerted)} |"
    )
    for name, run in theirs.items():
        drifted = sorted(c for c, v in run["drifted"].items() if v["drift"])
        label = (
            "Evidently DataDriftPreset (default tests)" if name == "evidently" else f"Evidently num_method={name[10:]}"
        )
        ratio = run["seconds"] / mine["seconds"]["drift"]
        print(f"| {label} | {run['seconds']:.2f} ({ratio:.0f}x ours) | {run['peak_mb']:.0f} | {', '.join(drifted)} |")
    print(f"\nplanted: shifted {sorted(SHIFTED)}, slightly shifted {sorted(SLIGHT)} (below every effect floor)\n")
    print("| test | columns | same verdict | ours only | Evidently only |")
    print("| --- | --- | --- | --- | --- |")
    for test, name in (("psi", "evidently:psi"), ("ks", "evidently:ks")):
        if name not in theirs:
            continue
        ours_v = {f: v["alert"] for f, v in mine["verdicts"][test].items()}
        their_v = {c: v["drift"] for c, v in theirs[name]["drifted"].items() if c in ours_v}
        same = sum(ours_v[c] == their_v[c] for c in their_v)
        only_ours = sorted(c for c in their_v if ours_v[c] and not their_v[c])
        only_theirs = sorted(c for c in their_v if their_v[c] and not ours_v[c])
        print(f"| {test} | {len(their_v)} | {same} | {', '.join(only_ours) or '-'} | {', '.join(only_theirs) or '-'} |")

    alarms = {"ours: any alert": 0, "ours: any test significant": 0}
    for reference, current in clean_windows(args, args.windows):
        verdicts, _ = run_ours(reference, current)
        tests = [v for t in verdicts.values() for v in t.values()]
        alarms["ours: any alert"] += any(v["alert"] for v in tests)
        alarms["ours: any test significant"] += any(v["significant"] for v in tests)
    theirs_alarms = {
        "Evidently default: any column drifted": 0,
        "Evidently default: dataset drift (share >= 0.5)": 0,
        "Evidently num_method=ks: any column drifted": 0,
    }
    for reference, current in clean_windows(args, args.evidently_windows):
        drifted, _ = run_evidently(reference, current)
        flags = [v["drift"] for v in drifted.values()]
        theirs_alarms["Evidently default: any column drifted"] += any(flags)
        theirs_alarms["Evidently default: dataset drift (share >= 0.5)"] += sum(flags) >= 0.5 * len(flags)
        ks, _ = run_evidently(reference, current, "ks")
        theirs_alarms["Evidently num_method=ks: any column drifted"] += any(v["drift"] for v in ks.values())
    print(f"\n## false alarms on clean windows of {size} (our configured family-wise level: 5 %)\n")
    print("| run | windows | windows alarmed | rate |")
    print("| --- | --- | --- | --- |")
    for counts, n in ((alarms, args.windows), (theirs_alarms, args.evidently_windows)):
        for label, k in counts.items():
            print(f"| {label} | {n} | {k} | {k / max(n, 1):.0%} |")


if __name__ == "__main__":
    main()
