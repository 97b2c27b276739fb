"""The ``ownlens-ml`` command line: thin commands over the library, one-line errors."""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ownlens_ml.errors import OwnLensError
from ownlens_ml.settings import Settings

console = Console()
app = typer.Typer(help="OwnLens ML: feature-store-backed models for publishers.", no_args_is_help=True)
db_app = typer.Typer(help="The OwnLens database.", no_args_is_help=True)
data_app = typer.Typer(help="Platform data: generate, import, profile.", no_args_is_help=True)
features_app = typer.Typer(help="Feature snapshots and the Feast repository.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")


class State:
    settings: Settings | None = None


def settings() -> Settings:
    if State.settings is None:
        State.settings = Settings.from_env()
    return State.settings


@app.callback()
def _global(
    profile: Annotated[Optional[str], typer.Option(help="local (embedded, default) or production; overrides OWNLENS_PROFILE.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    State.settings = Settings.from_env(profile)


def _positive(value: int) -> int:
    if value < 1:
        raise typer.BadParameter(f"must be at least 1, got {value}")
    return value


# --- db ------------------------------------------------------------------------------


@db_app.command("init")
def db_init() -> None:
    """Create the OwnLens schema, or migrate it to the newest revision (idempotent)."""
    from ownlens_ml.db import init_db

    revision = init_db(settings())
    console.print(f"schema at revision {revision} on {settings().profile} database")


# --- data ----------------------------------------------------------------------------


@data_app.command("generate")
def data_generate(
    users: Annotated[int, typer.Option(callback=_positive, help="Number of readers.")] = 2_000,
    days: Annotated[int, typer.Option(callback=_positive, help="Days of activity.")] = 90,
    brands: Annotated[int, typer.Option(callback=_positive, help="Number of brands.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 7,
    start: Annotated[Optional[str], typer.Option(help="First day (YYYY-MM-DD); default 2026-01-01.")] = None,
) -> None:
    """Generate a whole publisher platform with planted, documented signals."""
    from ownlens_ml.data.generator import GeneratorConfig, generate

    config = GeneratorConfig(users=users, days=days, brands=brands, seed=seed,
                             start=date.fromisoformat(start) if start else GeneratorConfig.start)
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
    out: Annotated[Optional[Path], typer.Option(help="Report folder; default OWNLENS_HOME/reports/profile.")] = None,
) -> None:
    """Write an exploration report of the platform tables, with plots."""
    from ownlens_ml.data.profile import profile_report

    path = profile_report(settings(), out)
    console.print(f"report: {path}")


# --- demo ----------------------------------------------------------------------------


@app.command()
def demo(
    users: Annotated[int, typer.Option(callback=_positive)] = 2_000,
    days: Annotated[int, typer.Option(callback=_positive)] = 90,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Run everything that exists end to end on a small generated platform."""
    from ownlens_ml.demo import run_demo

    run_demo(settings(), console, users=users, days=days, seed=seed)


def main() -> None:
    """Console-script entry point: user errors become one line and exit code 1."""
    try:
        app()
    except OwnLensError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
