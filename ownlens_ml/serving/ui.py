"""The ML owner's web view at ``/ui``: models, versions and aliases, evaluation reports, monitoring, alerts.

Plain server-rendered pages (Jinja2 templates and one stylesheet shipped in the package; no
front-end build, nothing fetched from elsewhere). Everything is read when a page is asked for:
the registry (``registry.list_versions``), the reports the training engine wrote under
``settings.reports_dir / model / vN`` (Markdown rendered by markdown-it-py, its images served
by a route that refuses any path outside the reports folder), and the rows of
``ml_model_monitoring`` and ``ml_alerts``. Those two tables are reflected, not taken from
``schema.py``: columns a later migration adds (``threshold``, ``status``) are shown when the
database has them. The router is left out of the OpenAPI schema.
"""

from __future__ import annotations

import functools
import io
import mimetypes
from collections import defaultdict
from pathlib import Path

import pandas as pd
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from sqlalchemy import MetaData, Table, select
from sqlalchemy.exc import NoSuchTableError

from ownlens_ml import registry
from ownlens_ml.db import get_engine
from ownlens_ml.errors import OwnLensError
from ownlens_ml.evaluation.report import report_folder
from ownlens_ml.models import SPECS
from ownlens_ml.settings import Settings

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STYLESHEET = HERE / "static" / "ui.css"
IMAGES = {".png", ".svg", ".jpg", ".jpeg"}
MONITORING_COLUMNS = (
    "model_name",
    "version",
    "kind",
    "metric",
    "feature",
    "value",
    "threshold",
    "status",
    "window_start",
    "window_end",
    "computed_at",
    "details",
)
ALERT_COLUMNS = (
    "alert_id",
    "model_name",
    "rule",
    "severity",
    "metric",
    "feature",
    "status",
    "message",
    "created_at",
    "last_seen_at",
    "resolved_at",
)
MONITORING_ROWS = 200
"""Rows of ``ml_model_monitoring`` listed on a model's page (newest first); the plots use all."""
PLOT_SERIES = 8


def router(settings: Settings) -> APIRouter:
    """The ``/ui`` routes for these settings."""
    pages = APIRouter(prefix="/ui", include_in_schema=False)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def not_found(request: Request, message: str) -> HTMLResponse:
        return page(request, "error.html", 404, title="Not found", message=message)

    def html_page(route):
        """A page route whose database problems (unreachable, no schema) are a 503 page saying what is wrong."""

        @functools.wraps(route)
        def guarded(request: Request, *args, **kwargs) -> HTMLResponse:
            try:
                return route(request, *args, **kwargs)
            except OwnLensError as exc:
                return page(
                    request, "error.html", 503, title="Database unavailable", message=f"{type(exc).__name__}: {exc}"
                )

        return guarded

    @pages.get("", response_class=HTMLResponse)
    @html_page
    def overview(request: Request) -> HTMLResponse:
        """Every model: its versions with aliases and headline metrics, and its open alerts."""
        versions = registry.list_versions(settings)
        alerts = _open_alerts(settings)
        by_model = defaultdict(list)
        for v in versions:
            by_model[v.model_name].append(v)
        names = sorted(set(SPECS) | set(by_model))
        models = [_model_card(name, by_model.get(name, []), alerts) for name in names]
        return page(request, "index.html", title="Models", models=models)

    @pages.get("/models/{model}", response_class=HTMLResponse)
    @html_page
    def model_page(request: Request, model: str) -> HTMLResponse:
        """One model: versions, monitoring results over time (newest first, a plot per metric), open alerts."""
        versions = registry.list_versions(settings, model)
        if not versions and model not in SPECS:
            return not_found(request, f"no model {model!r}; known: {', '.join(sorted(SPECS))}")
        monitoring = _monitoring(settings, model)
        metrics = sorted(monitoring["metric"].unique()) if not monitoring.empty else []
        return page(
            request,
            "model.html",
            title=model,
            card=_model_card(model, versions, _open_alerts(settings)),
            metrics=metrics,
            monitoring=_rows(monitoring.head(MONITORING_ROWS)),
            monitoring_total=len(monitoring),
            columns=[c for c in MONITORING_COLUMNS if c in monitoring.columns and c != "details"],
        )

    @pages.get("/models/{model}/v{version}", response_class=HTMLResponse)
    @html_page
    def report_page(request: Request, model: str, version: int) -> HTMLResponse:
        """One version's evaluation report, its Markdown rendered and its plots served beside it."""
        entry = next((v for v in registry.list_versions(settings, model) if v.version == version), None)
        if entry is None:
            return not_found(request, f"no version {version} of {model!r}")
        folder = report_folder(settings, model, version)
        report = folder / "report.md"
        html = None
        if report.is_file():
            base = f"/ui/reports/{model}/v{version}/"
            html = _render(markdown, report.read_text(), base)
        return page(
            request,
            "report.html",
            title=entry.label,
            entry=entry,
            card=_model_card(model, [entry]),
            report=html,
            folder=folder,
        )

    @pages.get("/reports/{model}/v{version}/{name:path}")
    def report_file(model: str, version: int, name: str) -> FileResponse:
        """An image of a report; 404 for anything outside the reports folder or not an image."""
        root = settings.reports_dir.resolve()
        target = (report_folder(settings, model, version) / name).resolve()
        if not target.is_relative_to(root) or target.suffix.lower() not in IMAGES or not target.is_file():
            raise HTTPException(404, "no such report image")
        return FileResponse(target, media_type=mimetypes.guess_type(target.name)[0])

    @pages.get("/models/{model}/monitoring/{metric}.png")
    def monitoring_plot(model: str, metric: str) -> Response:
        """The metric over time (window end), a line per feature or source, its threshold dashed when known."""
        frame = _monitoring(settings, model)
        frame = frame[frame["metric"] == metric] if not frame.empty else frame
        if frame.empty:
            raise HTTPException(404, f"no monitoring results for {model} {metric}")
        return Response(_plot(frame, f"{model}: {metric}"), media_type="image/png")

    @pages.get("/static/ui.css")
    def stylesheet() -> FileResponse:
        return FileResponse(STYLESHEET, media_type="text/css")

    return pages


# --- reading ------------------------------------------------------------------------------


def _reflect(settings: Settings, name: str) -> tuple[object, Table | None]:
    """The table as the database has it now (None when it does not exist yet)."""
    engine = get_engine(settings)
    metadata = MetaData()
    try:
        return engine, Table(name, metadata, autoload_with=engine)
    except NoSuchTableError:  # a database before `db init`
        return engine, None


def _monitoring(settings: Settings, model: str) -> pd.DataFrame:
    """The model's rows of ``ml_model_monitoring``, newest first, with the columns this schema has."""
    engine, table = _reflect(settings, "ml_model_monitoring")
    if table is None:
        return pd.DataFrame(columns=["metric"])
    columns = [table.c[c] for c in MONITORING_COLUMNS if c in table.c]
    query = (
        select(*columns)
        .where(table.c.model_name == model)
        .order_by(table.c.computed_at.desc(), table.c.window_end.desc(), table.c.metric, table.c.feature)
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in columns])
    for column in ("window_start", "window_end", "computed_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _open_alerts(settings: Settings) -> pd.DataFrame:
    """Alerts not resolved, newest first."""
    engine, table = _reflect(settings, "ml_alerts")
    if table is None:
        return pd.DataFrame(columns=["model_name"])
    columns = [table.c[c] for c in ALERT_COLUMNS if c in table.c]
    query = select(*columns).where(table.c.resolved_at.is_(None)).order_by(table.c.created_at.desc())
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in columns])


def _model_card(name: str, versions: list[registry.ModelVersion], alerts: pd.DataFrame | None = None) -> dict:
    """What the pages show of a model: kind, versions newest first with headline metrics, aliases, alerts."""
    spec = SPECS.get(name)
    headline = list(spec.metrics[:3]) if spec else []
    rows = []
    for v in sorted(versions, key=lambda v: -v.version):
        model_metrics = v.metrics.get("holdout", {}).get("model", {})
        rows.append(
            {
                "version": v.version,
                "aliases": v.aliases,
                "created_at": v.created_at,
                "task": v.task,
                "feature_service": v.feature_service,
                "sha": v.artifact_sha256[:12],
                "metrics": {m: model_metrics.get(m) for m in headline},
            }
        )
    mine = alerts[alerts["model_name"] == name] if alerts is not None and not alerts.empty else pd.DataFrame()
    return {
        "name": name,
        "kind": spec.kind if spec else (versions[0].task if versions else ""),
        "headline": headline,
        "versions": rows,
        "alerts": _rows(mine),
        "champion": next((r["version"] for r in rows if "champion" in r["aliases"]), None),
        "challenger": next((r["version"] for r in rows if "challenger" in r["aliases"]), None),
    }


def _rows(frame: pd.DataFrame) -> list[dict]:
    """Records for a template, missing values as None."""
    return [
        {k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


# --- rendering ----------------------------------------------------------------------------


def _render(markdown: MarkdownIt, text: str, base: str) -> str:
    """The report's HTML, its relative image links pointed at the report image route."""
    tokens = markdown.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                src = str(child.attrs.get("src", ""))
                if "://" not in src and not src.startswith("/"):
                    child.attrs["src"] = base + src
    return markdown.renderer.render(tokens, markdown.options, {})


def _plot(frame: pd.DataFrame, title: str) -> bytes:
    """A small PNG of the values over time; a line per series (version, then feature or source), at most
    ``PLOT_SERIES``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    series = frame["feature"].where(frame["feature"].notna(), None)
    if "details" in frame:
        sources = frame["details"].map(lambda d: d.get("source") if isinstance(d, dict) else None)
        series = series.where(series.notna(), sources)
    series = series.fillna(frame["metric"])
    if frame["version"].nunique() > 1:
        series = "v" + frame["version"].astype("Int64").astype(str) + " " + series
    frame = frame.assign(series=series)
    figure = Figure(figsize=(5.6, 2.3), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for i, (label, rows) in enumerate(frame.groupby("series", sort=True)):
        if i == PLOT_SERIES:
            break
        rows = rows.sort_values("window_end")
        (line,) = ax.plot(rows["window_end"], rows["value"], marker="o", markersize=3, linewidth=1.4, label=label)
        if "threshold" in rows and rows["threshold"].notna().any():
            ax.plot(rows["window_end"], rows["threshold"], linestyle="--", linewidth=1, color=line.get_color())
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    locator = AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if frame["series"].nunique() > 1:
        ax.legend(fontsize=7, frameon=False, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
