"""``ownlens-ml demo``: everything that exists, end to end, on a small generated platform."""

from __future__ import annotations

import contextlib
import io
from datetime import timedelta

import pandas as pd
from rich.console import Console
from rich.rule import Rule

from ownlens_ml import clock
from ownlens_ml.settings import Settings


def run_demo(settings: Settings, console: Console, *, users: int = 6_000, days: int = 120, seed: int = 7) -> None:
    """Init the database, generate a platform and profile it, build and check features, apply the Feast
    repository, materialize, show a training row and an online vector, then train, evaluate,
    register and promote every model, serve the champions over HTTP for one request, score
    every active reader for churn in a batch, and monitor that batch (summary and report)."""
    from ownlens_ml.data.generator import GeneratorConfig, generate
    from ownlens_ml.data.profile import profile_report
    from ownlens_ml.db import init_db
    from ownlens_ml.errors import OwnLensError, TooFewLabelsError
    from ownlens_ml.features import store
    from ownlens_ml.features.quality import check_snapshots, utc_midnight
    from ownlens_ml.features.snapshots import build_snapshots
    from ownlens_ml.models import get_spec
    from ownlens_ml.pipelines.training import train_all

    console.print(Rule(f"OwnLens ML demo ({settings.profile} profile, home {settings.home})"))
    revision = init_db(settings)
    console.print(f"1. database schema at revision {revision}")

    # the platform ends today, so the online store's values are as fresh as a live one's
    start = (pd.Timestamp(clock.today(), tz="UTC") - pd.Timedelta(days=days)).date()
    summary = generate(settings, GeneratorConfig(users=users, days=days, seed=seed, start=start), progress=True)
    console.print("2. generated a platform with planted signals (latent truth kept apart for the oracle):")
    console.print(summary.as_table())
    with console.status("writing the exploration report"):
        profile = profile_report(settings, None)
    console.print(f"   exploration report with plots: {profile}")

    with console.status("building feature snapshots"):
        built = build_snapshots(settings)
    check_snapshots(settings, expected_newest=built.end).raise_for_problems()
    rows = ", ".join(f"{table} {count:,}" for table, count in built.rows.items())
    console.print(f"3. feature snapshots {built.start}..{built.end}: {rows}; data quality checks passed")

    with console.status("feast apply"):
        services = store.apply_repo(settings)
    end = utc_midnight(built.end)
    with console.status("materializing the online store"), contextlib.redirect_stdout(io.StringIO()):
        store.materialize(settings, end - timedelta(days=30), end)
    console.print(f"4. Feast repository applied ({', '.join(services)}); online store materialized up to {built.end}")

    spec = get_spec("churn")
    labels = spec.build_labels(settings, spec.window)
    candidates = pd.DataFrame({"user_id": labels["user_id"].unique()[:200], "event_timestamp": end})
    rows = store.training_set(settings, "churn_v1", candidates)
    row = rows.frame.loc[rows.frame["sessions_30d"].astype(float).idxmax()]
    user = int(row["user_id"])
    online = store.online_features(settings, "churn_v1", {"user_id": [user]})
    shown = rows.features[:10]
    table = pd.DataFrame({"training set (as of end)": row[shown], "online vector": online.frame.iloc[0][shown]})
    offline, live = (pd.to_numeric(table[c], errors="coerce").astype(float) for c in table.columns)
    agree = bool(((offline - live).abs() < 1e-9).all())
    table = table.map(lambda v: f"{v:g}" if isinstance(v, (int, float)) else v)
    verdict = "agree" if agree else "[red]differ[/]"
    console.print(f"5. churn_v1 for reader {user}: the training row and the online vector {verdict}")
    console.print(table.to_string())
    ages = {view: f"{age / 3600:.1f} h" for view, age in online.staleness_seconds.iloc[0].dropna().items()}
    console.print(f"   age of each view's values: {ages}")

    console.print("6. training every model on point-in-time features, each beside its baselines and the oracle")
    for name, outcome in train_all(settings, progress=True).items():
        if isinstance(outcome, TooFewLabelsError):  # a small platform: said in one line, nothing registered
            console.print(f"   [yellow]{name} not trained:[/] {outcome}")
            continue
        if isinstance(outcome, OwnLensError):
            console.print(f"   [red]{name} failed:[/] {outcome}")
            continue
        spec = get_spec(name)
        metric = spec.metrics[0]
        console.print(outcome.evaluation.table(spec.metrics[:4]).astype(float).round(4).to_string())
        status = "promoted to champion" if outcome.promoted else "kept as challenger: " + "; ".join(outcome.refusals)
        console.print(
            f"   {name} v{outcome.version.version} ({spec.kind}, headline {metric}), {status}; report: {outcome.report}"
        )
    _serve_rankings(settings, console)

    from ownlens_ml import registry

    churn = registry.get_version(settings, "churn", "latest")
    if "champion" not in churn.aliases:  # a small platform can miss the gate
        registry.promote(settings, "churn", churn.version)
        console.print(f"   [yellow]made churn v{churn.version} champion anyway, for the serving steps below only[/]")

    _serve_once(settings, console)

    from ownlens_ml.pipelines.inference import score

    batch = score(settings, "churn", progress=True)
    console.print(
        f"9. batch scoring: {batch.rows:,} active readers scored with churn v{batch.version} as of "
        f"{batch.as_of:%Y-%m-%d} into ml_model_predictions in {batch.seconds:.1f}s (rerunning replaces the batch)"
    )
    _monitor_batch(settings, console, batch.as_of.date())
    console.print(Rule("done"))


def _monitor_batch(settings: Settings, console: Console, day) -> None:
    """Monitor churn over the day's batch (the three served rows are too few to judge): drift against the
    reference profile, live performance (labels mature later), freshness; its summary and report."""
    from ownlens_ml.monitoring.monitor import monitor
    from ownlens_ml.monitoring.report import write_monitoring_report

    with console.status("monitoring churn"):
        run = monitor(settings, "churn", day, day, source="batch", checks=("drift", "performance", "freshness"))
        report = write_monitoring_report(settings, run)
    console.print(
        f"10. monitoring churn v{run.version} over the batch: {len(run.alerting())} measurements alerting, "
        f"{len(run.raised)} alerts raised"
    )
    for line in run.summary():
        console.print(f"   {line}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"   monitoring report: {report}")


def _serve_rankings(settings: Settings, console: Console) -> None:
    """The recommender's answers for a known, a folded-in and an unknown reader; what trends now."""
    from ownlens_ml import registry
    from ownlens_ml.errors import OwnLensError
    from ownlens_ml.models.editorial.trending import trending_now

    console.print("7. the champions answer: top 5 articles for readers, and the trending list")
    try:
        _, recommender = registry.load_model(settings, "recommendation", "champion")
        _, rule = registry.load_model(settings, "trending", "champion")
    except OwnLensError as err:
        console.print(f"   [red]no champion to serve:[/] {err}")
        return
    reader = int(recommender.user_ids_[len(recommender.user_ids_) // 2])
    history = recommender.recommend(reader, 3).article_ids.tolist()
    for label, answer in (
        (f"reader {reader}", recommender.recommend(reader, 5)),
        (f"a new reader who read {history}", recommender.recommend(-1, 5, history=history)),
        ("an unknown reader", recommender.recommend(-1, 5, brand_id=1)),
    ):
        route = "fallback (popularity-recency)" if answer.fallback else "personalised"
        console.print(f"   {label}: {answer.article_ids.tolist()} ({route})")
    now = trending_now(settings, rule).head(5)
    if now.empty:
        console.print("   trending: nothing trends in the newest hour")
        return
    shown = now.assign(since=now["since"].dt.strftime("%Y-%m-%d %H:%M"))[
        ["series", "score", "ratio", "since", "hours_trending"]
    ]
    console.print(shown.round(2).to_string(index=False), soft_wrap=True)


def _serve_once(settings: Settings, console: Console) -> None:
    """Start the HTTP service in this process, ask it for one prediction and one recommendation, stop it."""
    import socket
    import threading
    import time

    import uvicorn

    from ownlens_ml.serving.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        _, ready = _http(f"{base}/readyz")
        _, answer = _http(f"{base}/v1/predict/churn", {"ids": [1, 2, 3]})
        status, ranked = _http(f"{base}/v1/recommendations/1?k=5")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    console.print(f"8. HTTP service on {base} (OpenAPI at /docs): ready={ready['ready']}, models {ready['models']}")
    for p in answer["predictions"]:
        flags = " (cold start)" if p["cold_start"] else ""
        console.print(
            f"   POST /v1/predict/churn reader {p['entity']['user_id']}: churn probability "
            f"{p['score']:.3f}{flags} from churn v{answer['version']}"
        )
    if status == 200:
        top = ranked
        route = "fallback (popularity-recency)" if top["fallback"] else "personalised"
        source = "recent reads" if top["version"] is None else f"recommendation v{top['version']}"
        champion = "" if top["champion"] else ", no champion yet"
        console.print(
            f"   GET /v1/recommendations/1?k=5: {[a['article_id'] for a in top['articles']]} ({route}) "
            f"from {source}{champion}"
        )
    else:
        console.print(f"   GET /v1/recommendations/1?k=5: {status} {ranked['detail']}")
    console.print("   service stopped; its answers are in ml_model_predictions")


def _http(url: str, body: dict | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of one GET, or POST of ``body``: the standard library is enough for the demo's
    three requests (the service's clients bring their own)."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
