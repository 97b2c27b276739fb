"""The ``ownlens-ml`` command line: thin commands over the library, one-line errors.

The error boundary is ``main()``: a bad argument is refused by click before a command runs
(exit 2); an ``OwnLensError`` (each names the problem and the fix; the library translates
Feast's, DuckDB's, SQLAlchemy's and redis-py's errors where they are raised) is one line,
exit 1; anything else is a bug, reported in one line pointing at ``-v`` for the traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ownlens_ml.errors import OwnLensError
from ownlens_ml.settings import PROFILES, TRAIN_BACKENDS, Settings

console = Console()
app = typer.Typer(
    help="OwnLens ML: feature-store-backed models for publishers.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="The OwnLens database.", no_args_is_help=True)
data_app = typer.Typer(help="Platform data: generate, import, profile.", no_args_is_help=True)
features_app = typer.Typer(help="Feature snapshots and the Feast repository.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
registry_app = typer.Typer(help="Registered model versions, aliases, promotion and rollback.", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(registry_app, name="registry")


class State:
    settings: Settings | None = None
    verbose: bool = False


def settings() -> Settings:
    if State.settings is None:
        State.settings = Settings.from_env()
    return State.settings


@app.callback()
def _global(
    profile: Annotated[
        str | None,
        typer.Option(
            callback=lambda v: _choice(v, PROFILES),
            help="local (embedded, default), production or cluster; overrides OWNLENS_PROFILE.",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress details; show tracebacks of bugs.")
    ] = False,
) -> None:
    global console
    # this invocation's terminal: a Console made at import keeps the COLUMNS of that moment,
    # so `app` called in-process (CliRunner, tests) would ignore the caller's width
    console = Console()
    console.soft_wrap = not console.is_terminal  # piped or redirected: whole lines, for grep and cut
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    State.verbose = verbose
    State.settings = Settings.from_env(profile)


JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table (for scripts).")]


def _print_table(table) -> None:
    """A table: fitted to a terminal; piped or redirected, at its natural width, so no value is cut."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(width=1_000_000, soft_wrap=True).print(table)


def _print_json(value) -> None:
    """One JSON document on stdout, whole (no wrapping, no colour)."""
    import json

    print(json.dumps(value, default=str))


DAY = ["%Y-%m-%d"]
"""A calendar day, YYYY-MM-DD; click refuses anything else with a usage error."""
ENTITY_ID = {"min": -(2**63), "max": 2**63 - 1}
"""Entity ids are 64-bit integers (Feast INT64 join keys)."""


def _choice(value: str | None, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of: {', '.join(choices)}")
    return value


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


VERSION_MAX = 2**63 - 1
"""Registry versions are 64-bit integers."""


def _version(value: str | None) -> int | str | None:
    """A version number (click callback): digits become an int, refused beyond 64 bits; else an alias."""
    if value is None or not value.isdigit():
        return value
    if int(value) > VERSION_MAX:
        raise typer.BadParameter(
            f"{value} is beyond the 64-bit version numbers (at most {VERSION_MAX}); "
            "give a registered version or an alias"
        )
    return int(value)


def _out_folder(value: str | None) -> Path | None:
    """A report folder (click callback): not empty, and no file where a folder is needed."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("is empty; give a folder, or omit --out for the default")
    path = Path(value)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise typer.BadParameter(f"{part} is a file, not a folder; give a folder")
            break
    return path


# --- db ------------------------------------------------------------------------------


@db_app.command("init")
def db_init() -> None:
    """Create the OwnLens schema, or migrate it to the newest revision (idempotent)."""
    from ownlens_ml.db import init_db

    revision = init_db(settings())
    console.print(f"schema at revision {revision} on {settings().profile} database")


# --- data ----------------------------------------------------------------------------


GENERATOR_DRIFTS = ("device-mix", "engagement-drop")  # generator.DRIFTS, without importing numpy at startup


@data_app.command("generate")
def data_generate(
    users: Annotated[int, typer.Option(min=1, max=10_000_000, help="Number of readers.")] = 2_000,
    days: Annotated[int, typer.Option(min=1, max=3_650, help="Days of activity.")] = 90,
    brands: Annotated[int, typer.Option(min=1, max=20, help="Number of brands.")] = 2,
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Random seed; the same seed gives the same bytes.")
    ] = 7,
    start: Annotated[
        datetime | None, typer.Option(formats=DAY, help="First day (YYYY-MM-DD); default 2026-01-01.")
    ] = None,
    drift_from: Annotated[
        datetime | None, typer.Option(formats=DAY, help="First day of a drifted period (YYYY-MM-DD), with --drift.")
    ] = None,
    drift: Annotated[
        list[str] | None,
        typer.Option(
            callback=lambda v: [_choice(d, GENERATOR_DRIFTS) for d in v or []],
            help="Drift from --drift-from on: device-mix, engagement-drop (repeatable).",
        ),
    ] = None,
) -> None:
    """Generate a whole publisher platform with planted, documented signals (optionally a drifted period)."""
    from ownlens_ml.data.generator import GeneratorConfig, generate

    config = GeneratorConfig(
        users=users,
        days=days,
        brands=brands,
        seed=seed,
        start=_day(start) or GeneratorConfig.start,
        drift_from=_day(drift_from),
        drift=tuple(dict.fromkeys(drift or ())),
    )
    summary = generate(settings(), config, progress=True)
    console.print(summary.as_table())


@data_app.command("import")
def data_import(
    table: Annotated[str, typer.Argument(help="Target table, e.g. users, events, articles.")],
    files: Annotated[list[Path], typer.Argument(help="CSV or Parquet files.", exists=True, dir_okay=False)],
) -> None:
    """Load CSV/Parquet files into a platform table; each file all-or-nothing."""
    from ownlens_ml.data.importer import import_files

    report = import_files(settings(), table, files)
    console.print(report.as_table())
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("profile")
def data_profile(
    out: Annotated[
        str | None, typer.Option(callback=_out_folder, help="Report folder; default OWNLENS_HOME/reports/profile.")
    ] = None,
) -> None:
    """Write an exploration report of the platform tables, with plots."""
    from ownlens_ml.data.profile import profile_report

    path = profile_report(settings(), out)
    console.print(f"report: {path}")


# --- features ------------------------------------------------------------------------


@features_app.command("build")
def features_build(
    start: Annotated[
        datetime | None,
        typer.Option(formats=DAY, help="First snapshot day (YYYY-MM-DD); default: day after the first event."),
    ] = None,
    end: Annotated[
        datetime | None, typer.Option(formats=DAY, help="Last snapshot day; default: day after the last event.")
    ] = None,
    check: Annotated[bool, typer.Option(help="Check the build before it replaces the current snapshots.")] = True,
) -> None:
    """Compute the daily reader, author and article feature snapshots (idempotent).

    The new snapshots replace the current ones only once the data quality checks pass."""
    from ownlens_ml.features.snapshots import build_snapshots

    with console.status("building feature snapshots"):
        summary = build_snapshots(settings(), _day(start), _day(end), check=check)
    for table, rows in summary.rows.items():
        console.print(f"{table}: {rows:,} rows for {summary.start}..{summary.end}")
    if summary.quality is None:
        console.print("[yellow]written without data quality checks[/] (run `ownlens-ml features check`)")
        return
    for table in summary.quality.absent:
        console.print(f"{table}: absent (the platform has no data for it)")
    console.print("data quality checks passed")


CHECK_REMEDY = "; fix the data, then rebuild with `ownlens-ml features build`"


@features_app.command("check")
def features_check(
    newest: Annotated[
        datetime | None, typer.Option(formats=DAY, help="Snapshot day the daily tables must have reached.")
    ] = None,
    as_json: JSON = False,
) -> None:
    """Run the data quality checks on the snapshot tables; exit 1 with a report on failure."""
    from ownlens_ml.features.quality import check_snapshots

    report = check_snapshots(settings(), expected_newest=_day(newest))
    if as_json:
        _print_json(
            {
                "tables": {t: {"rows": n, "absent": t in report.absent} for t, n in report.checked.items()},
                "problems": [str(p) for p in report.problems],
            }
        )
        report.raise_for_problems(outcome=CHECK_REMEDY)
        return
    for table, rows in report.checked.items():
        console.print(
            f"{table}: absent (the platform has no data for it)"
            if table in report.absent
            else f"{table}: {rows:,} rows checked"
        )
    report.raise_for_problems(outcome=CHECK_REMEDY)
    console.print("data quality checks passed")


@features_app.command("apply")
def features_apply() -> None:
    """Register feature_repo/ in the profile's Feast registry (as `feast apply` does)."""
    from ownlens_ml.features.store import apply_repo

    with console.status("applying feature repository"):
        services = apply_repo(settings())
    console.print(f"feature services: {', '.join(services)}")


@features_app.command("materialize")
def features_materialize(
    start: Annotated[
        datetime | None, typer.Option(formats=DAY, help="Window start (YYYY-MM-DD); default: 30 days before --end.")
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(formats=DAY, help="Window end (YYYY-MM-DD, 00:00 UTC); default: the newest snapshot."),
    ] = None,
) -> None:
    """Check the snapshots, then load the latest values in the window into the online store."""
    from ownlens_ml.features.quality import check_snapshots, newest_snapshot, utc_midnight
    from ownlens_ml.features.store import materialize

    report = check_snapshots(settings())
    report.raise_for_problems(outcome="; nothing was materialized")
    end_day = _day(end) or newest_snapshot(settings())
    start_day = _day(start) or end_day - timedelta(days=30)
    with console.status(f"materializing {start_day}..{end_day}"):
        materialize(settings(), utc_midnight(start_day), utc_midnight(end_day))
    console.print(f"online store holds the latest values up to {end_day}")


@features_app.command("env")
def features_env() -> None:
    """Print `export` lines for the plain Feast CLI: eval "$(ownlens-ml features env)"."""
    import shlex

    from ownlens_ml.features.feast_store import write_feast_yaml

    write_feast_yaml(settings())
    for key, value in settings().feast_env().items():
        print(f"export {key}={shlex.quote(value)}")


@features_app.command("online")
def features_online(
    service: Annotated[str, typer.Argument(help="Feature service, e.g. churn_v1.")],
    ids: Annotated[list[int], typer.Argument(**ENTITY_ID, help="Entity ids.")],
    as_json: JSON = False,
) -> None:
    """Print a feature service's online vectors for some entities."""
    from ownlens_ml.features.store import feature_service, join_keys, online_features, require_values

    keys = join_keys(settings(), feature_service(settings(), service))
    if len(keys) != 1:
        raise typer.BadParameter(f"{service} needs several keys ({keys}); use the Python API")
    vectors = online_features(settings(), service, {keys[0]: ids})
    require_values(settings(), service, vectors)
    if as_json:
        import json

        _print_json(
            {
                "vectors": json.loads(vectors.frame.to_json(orient="records")),
                "staleness_seconds": json.loads(vectors.staleness_seconds.to_json(orient="records")),
            }
        )
        return
    console.print(vectors.frame.T.to_string())
    console.print("staleness (s):", vectors.staleness_seconds.to_dict("records"))


# --- models --------------------------------------------------------------------------


def _metrics_table(evaluation, names: tuple[str, ...]):
    from rich.table import Table

    table = Table("scorer", *names, title=f"{evaluation.model}: holdout of {evaluation.holdout}", title_justify="left")
    for who, values in evaluation.metrics.items():
        style = "bold" if who == "model" else "dim" if who == "oracle" else None
        table.add_row(who, *("" if values.get(m) is None else f"{values[m]:.4f}" for m in names), style=style)
    return table


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model name (e.g. churn), or `all` for every model.")],
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=DAY, help="Train as if it were this day (YYYY-MM-DD): only labels known by then."),
    ] = None,
    promote: Annotated[bool, typer.Option(help="Make the new version champion if it passes the gate.")] = True,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Your own labels (CSV or Parquet: the model's entity key(s), event_timestamp, label) "
            "instead of the model's label builder.",
            dir_okay=False,
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            callback=lambda v: _choice(v, TRAIN_BACKENDS),
            help="single (this process) or dask (xgboost.dask on "
            "OWNLENS_DASK_SCHEDULER, else 2 local workers); "
            "overrides OWNLENS_TRAIN_BACKEND.",
        ),
    ] = None,
) -> None:
    """Train a model on point-in-time features, compare with baselines, register it."""
    from ownlens_ml.models import get_spec

    if backend is not None:
        State.settings = replace(settings(), train_backend=backend)

    # a bad name or option is refused before the training engine (and Feast) loads
    if model == "all" and labels is not None:
        raise typer.BadParameter("--labels belongs to one model, not `all`", param_hint="--labels")
    spec = None if model == "all" else get_spec(model)
    from ownlens_ml.features.quality import utc_midnight
    from ownlens_ml.pipelines.training import train as run
    from ownlens_ml.pipelines.training import train_all

    moment = utc_midnight(_day(as_of)) if as_of else None
    if spec is None:

        def show(name, outcome) -> None:
            if isinstance(outcome, OwnLensError):
                console.print(f"[bold red]{name} failed:[/] {type(outcome).__name__}: {outcome}", highlight=False)
            else:
                _show_result(get_spec(name), outcome)

        outcomes = train_all(settings(), moment, promote=promote, progress=True, on_result=show)
        failed = [name for name, outcome in outcomes.items() if isinstance(outcome, OwnLensError)]
        if failed:
            console.print(f"[bold red]{len(failed)} of {len(outcomes)} models failed:[/] {', '.join(failed)}")
            raise typer.Exit(1)
        return
    _show_result(spec, run(settings(), model, moment, promote=promote, progress=True, labels_file=labels))


def _show_result(spec, result) -> None:
    _print_table(_metrics_table(result.evaluation, spec.metrics[:4]))
    if result.evaluation.positives:
        console.print(result.evaluation.positives_line(), highlight=False)
    status = "champion" if result.promoted else "challenger"
    console.print(f"registered {spec.name} v{result.version.version} as {status}")
    for refusal in result.refusals:
        console.print(f"  [yellow]not promoted:[/] {refusal}")
    for note in result.evaluation.notes:
        console.print(f"  note: {note}", soft_wrap=True, highlight=False)
    console.print(f"report: {result.report}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    version: Annotated[
        str | None, typer.Option(callback=_version, help="Version number or alias; default champion, else newest.")
    ] = None,
) -> None:
    """Re-score a registered version on its holdout beside baselines and the oracle; write the report."""
    from ownlens_ml.models import get_spec

    spec = get_spec(model)  # an unknown name fails before the training engine loads
    from ownlens_ml.pipelines.training import evaluate as run

    evaluation, path = run(settings(), model, version, progress=True)
    _print_table(_metrics_table(evaluation, spec.metrics[:4]))
    for note in evaluation.notes:
        console.print(f"  note: {note}", soft_wrap=True, highlight=False)
    console.print(f"report: {path}")


@registry_app.command("list")
def registry_list(
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None, as_json: JSON = False
) -> None:
    """Registered versions by model, oldest first, with aliases and headline metrics."""
    from rich.table import Table

    from ownlens_ml import registry
    from ownlens_ml.models import SPECS

    table = Table("model", "kind", "version", "aliases", "created", "feature service", "headline", "sha256")
    versions = registry.list_versions(settings(), model)
    if model and not versions:
        registry.get_version(settings(), model)  # raises: no model ..., naming the known ones
    if as_json:
        _print_json(
            [
                {
                    "model": v.model_name,
                    "kind": v.task,
                    "version": v.version,
                    "aliases": list(v.aliases),
                    "created_at": v.created_at.isoformat(),
                    "feature_service": v.feature_service,
                    "metrics": v.metrics.get("holdout", {}).get("model", {}),
                    "sha256": v.artifact_sha256,
                }
                for v in versions
            ]
        )
        return
    for v in versions:
        spec = SPECS.get(v.model_name)
        metric = spec.metrics[0] if spec else None
        value = v.metrics.get("holdout", {}).get("model", {}).get(metric)
        table.add_row(
            v.model_name,
            v.task,
            str(v.version),
            ", ".join(v.aliases),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            v.feature_service,
            "" if value is None else f"{metric} {value:.4f}",
            v.artifact_sha256[:12],
        )
    _print_table(table)


@registry_app.command("show")
def registry_show(
    model: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Argument(callback=_version, help="Version or alias; default newest.")] = None,
    as_json: JSON = False,
) -> None:
    """One version's lineage: feature service and hash, training-set fingerprint, window, params, metrics."""
    import json

    from ownlens_ml import registry

    v = registry.get_version(settings(), model, version)
    show = _print_json if as_json else lambda value: console.print_json(json.dumps(value, default=str))
    show(
        {
            "model": v.model_name,
            "version": v.version,
            "aliases": list(v.aliases),
            "task": v.task,
            "created_at": v.created_at.isoformat(),
            "feature_service": v.feature_service,
            "feature_service_hash": v.feature_service_hash,
            "training_set_fingerprint": v.training_set_fingerprint,
            "window": [
                v.window_start.isoformat() if v.window_start else None,
                v.window_end.isoformat() if v.window_end else None,
            ],
            "code_version": v.code_version,
            "artifact": {"format": v.artifact_format, "sha256": v.artifact_sha256},
            "params": v.params,
            "metrics": v.metrics,
        }
    )


@registry_app.command("promote")
def registry_promote(
    model: Annotated[str, typer.Argument()],
    version: Annotated[int, typer.Argument(min=1, max=VERSION_MAX)],
    force: Annotated[
        bool, typer.Option(help="Skip the gate (beat the champion and every baseline on the holdout).")
    ] = False,
) -> None:
    """Make a version champion if it passes the gate; otherwise say which metric and by how much."""
    from ownlens_ml.pipelines.training import promote

    with console.status(f"re-scoring {model} v{version} on its holdout"):
        refusals = promote(settings(), model, version, force=force)
    if refusals:
        for refusal in refusals:
            console.print(f"[red]refused:[/] {refusal}")
        raise typer.Exit(1)
    console.print(f"{model} v{version} is champion")


@registry_app.command("rollback")
def registry_rollback(model: Annotated[str, typer.Argument()]) -> None:
    """Point champion back at the previous champion."""
    from ownlens_ml import registry

    v = registry.rollback(settings(), model)
    console.print(f"{model} champion is v{v.version} again")


# --- segments ------------------------------------------------------------------------

segments_app = typer.Typer(help="Reader segments from the segmentation model.", no_args_is_help=True)
app.add_typer(segments_app, name="segments")


@segments_app.command("write")
def segments_write(
    version: Annotated[str | None, typer.Option(callback=_version, help="Segmentation version or alias.")] = "champion",
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=DAY, help="Assign from the snapshot of this day (YYYY-MM-DD); default: the newest."),
    ] = None,
) -> None:
    """Assign every reader a segment and write them as the user_segment feature view (offline and online)."""
    from ownlens_ml.features.quality import utc_midnight
    from ownlens_ml.pipelines.segments import write_segments

    with console.status("assigning and writing reader segments"):
        written = write_segments(settings(), version, utc_midnight(_day(as_of)) if as_of else None)
    counts = ", ".join(f"{name} {n:,}" for name, n in written.counts.items())
    console.print(
        f"wrote {written.readers:,} reader segments of segmentation v{written.version} "
        f"at {written.as_of:%Y-%m-%d}: {counts}"
    )


@segments_app.command("show")
def segments_show(
    ids: Annotated[list[int], typer.Argument(**ENTITY_ID, help="Reader ids.")], as_json: JSON = False
) -> None:
    """Each reader's segment, assigned now by the champion from their online features."""
    from ownlens_ml.pipelines.segments import load_segmenter, online_segments

    entry, model = load_segmenter(settings())
    names = online_segments(settings(), model, ids)
    if as_json:
        _print_json(
            [{"user_id": user_id, "segment": name, "version": entry.version} for user_id, name in zip(ids, names)]
        )
        return
    for user_id, name in zip(ids, names):
        console.print(f"{user_id}: {name} ({entry.label})")


# --- inference -----------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Serve online predictions over HTTP (OpenAPI at /docs) until SIGTERM or Ctrl-C."""
    from ownlens_ml.serving.metrics_folder import choose_metrics_folder

    choose_metrics_folder(workers)  # before prometheus_client is imported
    from ownlens_ml.serving.app import run

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # uvicorn's own handling: finish in-flight requests, re-raise
    run(settings(), host, port, workers)


@app.command()
def score(
    model: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=DAY, help="Score as of this day (YYYY-MM-DD, 00:00 UTC); default: the newest snapshot."),
    ] = None,
    version: Annotated[
        str | None, typer.Option(callback=_version, help="Version number or alias; default champion.")
    ] = None,
) -> None:
    """Score the model's whole population into ml_model_predictions (rerunning replaces the batch)."""
    from ownlens_ml.features.quality import utc_midnight
    from ownlens_ml.pipelines.inference import score as run

    result = run(
        settings(), model, utc_midnight(_day(as_of)) if as_of else None, version=version or "champion", progress=True
    )
    console.print(
        f"scored {result.rows:,} entities with {model} v{result.version} as of {result.as_of:%Y-%m-%d} "
        f"in {result.seconds:.1f}s (batch {result.batch_id})"
    )


predictions_app = typer.Typer(help="The prediction log (ml_model_predictions).", no_args_is_help=True)
app.add_typer(predictions_app, name="predictions")


@predictions_app.command("prune")
def predictions_prune(
    older_than: Annotated[
        int | None,
        typer.Option(
            min=1, help="Keep this many whole days before today; default OWNLENS_PREDICTION_RETENTION_DAYS (30)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would be summarised and removed; change nothing.")] = False,
) -> None:
    """Summarise old days into ml_model_monitoring, then delete them in bounded batches (rerunning is a no-op)."""
    from ownlens_ml.pipelines.retention import prune

    result = prune(settings(), older_than, dry_run=dry_run, progress=True)
    rows = sum(s.rows for s in result.summaries)
    if not result.deleted and not rows:
        console.print(f"nothing to prune: no predictions with as_of before {result.cut:%Y-%m-%d}")
    elif dry_run:
        console.print(
            f"dry run: would summarise {rows:,} rows ({result.days} model-days) and remove "
            f"{result.deleted:,} rows with as_of before {result.cut:%Y-%m-%d}"
        )
    else:
        console.print(
            f"summarised {rows:,} rows ({result.days} model-days) into ml_model_monitoring and removed "
            f"{result.deleted:,} rows with as_of before {result.cut:%Y-%m-%d} in {result.batches} batches"
        )


# --- monitoring ------------------------------------------------------------------------

MONITOR_CHECKS = ("drift", "performance", "skew", "freshness")


@app.command()
def monitor(
    model: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=DAY, help="First day of the window (YYYY-MM-DD); default: 6 days before --to."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=DAY, help="Last day of the window (YYYY-MM-DD); default: today."),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            callback=lambda v: _choice(v, ("online", "batch")),
            help="online (served rows, served values) or batch (batch-scored rows).",
        ),
    ] = "online",
    only: Annotated[
        list[str] | None,
        typer.Option(
            callback=lambda v: [_choice(c, MONITOR_CHECKS) for c in v or []],
            help="Run only these checks: drift, performance, skew, freshness.",
        ),
    ] = None,
    report: Annotated[bool, typer.Option("--report", help="Also write a report with plots.")] = False,
) -> None:
    """Drift, live performance, skew and freshness of a model over a window; alerts; optionally a report."""
    from ownlens_ml.models import get_spec

    get_spec(model)  # an unknown name fails before Feast loads
    from ownlens_ml.monitoring.monitor import CHECKS
    from ownlens_ml.monitoring.monitor import monitor as run
    from ownlens_ml.monitoring.report import write_monitoring_report

    result = run(settings(), model, _day(start), _day(end), source, tuple(only) if only else CHECKS)
    for line in result.summary(webhook=bool(settings().alert_webhook)):
        console.print(
            line.replace("  alert:", "  [yellow]alert:[/]", 1),
            soft_wrap=True,
            highlight=False,
            markup=line.startswith("  alert:"),
        )
    if report:
        console.print(f"report: {write_monitoring_report(settings(), result)}")


# --- demo ----------------------------------------------------------------------------


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1, max=10_000_000, help="Readers to generate.")] = 6_000,
    days: Annotated[int, typer.Option(min=1, max=3_650, help="Days of activity, ending today.")] = 120,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Generator seed.")] = 7,
) -> None:
    """Run everything that exists end to end on a small generated platform."""
    from ownlens_ml.demo import run_demo

    run_demo(settings(), console, users=users, days=days, seed=seed)


def _interrupt(signum, frame) -> None:  # a signal handler
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point: user errors become one line and exit code 1."""
    # Library chatter (deprecations inside Feast's dependencies, the "experimental"
    # on-demand view notice) is not for the user of a command.
    # Feast re-installs "once" filters when imported, so filter at display time instead.
    show = warnings.showwarning

    def quiet(message, category, *args, **kwargs):
        if issubclass(category, DeprecationWarning) or "experimental feature" in str(message):
            return
        show(message, category, *args, **kwargs)

    warnings.showwarning = quiet
    # SIGTERM (a scheduler stopping the job, `kill`) unwinds like Ctrl-C, so a running job records
    # its failure and leaves nothing half-written (`serve` restores the default for uvicorn's handling)
    signal.signal(signal.SIGTERM, _interrupt)
    err = Console(stderr=True)
    try:
        app()
    except OwnLensError as exc:
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only with -v
        if State.verbose:
            import traceback

            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(first)} (a bug in ownlens-ml; "
            f"{'the traceback is above' if State.verbose else 'rerun with -v for the traceback'} and report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
