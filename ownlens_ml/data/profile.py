"""Exploration report of the platform tables: sizes, date ranges, distributions, activity over time, plots.

Every aggregate runs in the database (``GROUP BY`` through SQLAlchemy, the same statements
on PostgreSQL and SQLite); only small results (one row per distinct value, day or
category) come back to Python, so the report works on tables of tens of millions of rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib as mpl
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import sqlalchemy as sa
from matplotlib.figure import Figure
from sqlalchemy import Connection

from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import (
    PLATFORM_TABLES,
    article_daily_performance,
    articles,
    authors,
    categories,
    device_types,
    events,
    sessions,
    users,
)
from ownlens_ml.errors import EmptyWindowError
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

TOP_N = 10
COLOR, ACCENT = "#2f6f9f", "#d1495b"
STYLE = {
    "figure.figsize": (8.0, 4.2),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
}
"""One look for every figure of the report."""

FIGURES = (
    "sessions_per_user",
    "page_views_per_session",
    "engaged_seconds_per_session",
    "word_counts",
    "event_type_mix",
    "device_mix",
    "subscription_tiers",
    "articles_per_category",
    "daily_activity",
    "signups_per_day",
    "articles_published_per_day",
    "top_categories",
)
"""Every PNG the report may write; a rerun removes them first so no stale plot survives."""

TIME_COLUMNS = (
    users.c.signup_at,
    authors.c.joined_at,
    articles.c.published_at,
    sessions.c.started_at,
    events.c.event_at,
    article_daily_performance.c.date,
)


def profile_report(settings: Settings, out: Path | None = None) -> Path:
    """Write ``report.md`` with PNG plots next to it, profiling the platform tables.

    Args:
        settings: which database.
        out: the report folder; default ``settings.reports_dir / "profile"``.

    Returns:
        The path of ``report.md``.

    Raises:
        MissingTableError: the schema does not exist (run ``ownlens-ml db init``).
        EmptyWindowError: the platform holds no sessions yet.
    """
    engine = get_engine(settings)
    require_tables(engine, *(t.name for t in PLATFORM_TABLES))
    folder = Path(out) if out is not None else settings.reports_dir / "profile"
    with engine.connect() as conn, mpl.rc_context(STYLE):
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in PLATFORM_TABLES}
        if counts["sessions"] == 0:
            raise EmptyWindowError("no sessions; run `ownlens-ml data generate` or `data import` first")
        folder.mkdir(parents=True, exist_ok=True)
        for name in FIGURES:
            (folder / f"{name}.png").unlink(missing_ok=True)
        report = _Report(folder)
        _overview(conn, report, counts)
        _distributions(conn, report, counts)
        _mixes(conn, report)
        _activity(conn, report)
        _top(conn, report)
    path = folder / "report.md"
    path.write_text("\n".join(report.lines) + "\n", encoding="utf-8")
    log.info("profile report written to %s", path)
    return path


# --- sections ------------------------------------------------------------------------------


def _overview(conn: Connection, report: _Report, counts: dict[str, int]) -> None:
    report.add(f"# OwnLens platform profile ({conn.dialect.name})", "", "## Tables", "")
    report.table(pd.DataFrame({"table": [f"`{n}`" for n in counts], "rows": list(counts.values())}))
    rows = []
    for col in TIME_COLUMNS:
        first, last = conn.execute(sa.select(sa.func.min(col), sa.func.max(col))).one()
        rows.append(
            {"table": f"`{col.table.name}`", "column": f"`{col.name}`", "first": _when(first), "last": _when(last)}
        )
    report.add("## Date ranges (UTC)", "")
    report.table(pd.DataFrame(rows))


def _distributions(conn: Connection, report: _Report, counts: dict[str, int]) -> None:
    report.add("## Distributions", "")
    per_user = sa.select(sa.func.count().label("n")).select_from(sessions).group_by(sessions.c.user_id).subquery()
    sessions_per_user = _value_counts(conn, per_user.c.n)
    readers_without = counts["users"] - int(sessions_per_user.sum())
    if readers_without > 0:  # readers who never visited are part of the distribution
        sessions_per_user.loc[0] = readers_without
        sessions_per_user = sessions_per_user.sort_index()
    specs = [
        ("sessions_per_user", sessions_per_user, "Sessions per reader", "sessions per reader", "readers"),
        (
            "page_views_per_session",
            _value_counts(conn, sessions.c.page_views),
            "Page views per session",
            "page views per session",
            "sessions",
        ),
        (
            "engaged_seconds_per_session",
            _value_counts(conn, sessions.c.engaged_seconds),
            "Engaged time per session",
            "engaged time per session (seconds)",
            "sessions",
        ),
        ("word_counts", _value_counts(conn, articles.c.word_count), "Article length", "length (words)", "articles"),
    ]
    present = [spec for spec in specs if not spec[1].empty]
    report.table(pd.DataFrame([{"measure": xlabel, **_summary(dist)} for _, dist, _, xlabel, _ in present]))
    for name, dist, title, xlabel, ylabel in specs:
        if dist.empty:
            report.add(f"_{title}: no rows._", "")
        else:
            report.figure(name, title, _histogram(dist, title, xlabel, ylabel))


def _mixes(conn: Connection, report: _Report) -> None:
    report.add("## Mixes", "")
    specs = [
        ("event_type_mix", events.c.event_type, None, "Event type mix", "event type", "events"),
        (
            "device_mix",
            device_types.c.name,
            sessions.join(device_types),
            "Device mix of sessions",
            "device",
            "sessions",
        ),
        ("subscription_tiers", users.c.subscription_tier, None, "Subscription tiers of readers", "tier", "readers"),
    ]
    for name, column, source, title, label, unit in specs:
        mix = _value_counts(conn, column, source).sort_values(ascending=False)
        if mix.empty:
            report.add(f"_{title}: no rows._", "")
            continue
        share = 100 * mix / mix.sum()
        report.table(pd.DataFrame({label: mix.index, unit: mix.to_numpy(), "share (%)": share.round(1).to_numpy()}))
        report.figure(name, title, _bars(share, title, f"share of {unit} (%)", fmt="{:.1f}%"))


def _activity(conn: Connection, report: _Report) -> None:
    report.add("## Activity over time (UTC days)", "")
    day = _day(conn, sessions.c.started_at)
    active = _series(conn, sa.select(day, sa.func.count(sa.distinct(sessions.c.user_id))).group_by(day))
    per_day = _series(conn, sa.select(day, sa.func.count()).group_by(day))
    event_day = _day(conn, events.c.event_at)
    events_per_day = _series(conn, sa.select(event_day, sa.func.count()).group_by(event_day))
    panels = [
        ("active readers", "readers / day", active),
        ("sessions", "sessions / day", per_day),
        ("events", "events / day", events_per_day),
    ]
    report.figure(
        "daily_activity", "Daily activity", _timeline([p for p in panels if not p[2].empty], "Daily activity")
    )
    report.table(
        pd.DataFrame(
            [
                {"series": f"{label} per day", "days": len(s), "mean": s.mean(), "min": s.min(), "max": s.max()}
                for label, _, s in panels
                if not s.empty
            ]
        )
    )
    for name, col, title, unit in (
        ("signups_per_day", users.c.signup_at, "Signups per day", "new readers / day"),
        ("articles_published_per_day", articles.c.published_at, "Articles published per day", "articles / day"),
    ):
        d = _day(conn, col)
        series = _series(conn, sa.select(d, sa.func.count()).group_by(d))
        if series.empty:
            report.add(f"_{title}: no rows._", "")
            continue
        report.figure(name, title, _timeline([(title.lower(), unit, series)], title))


def _top(conn: Connection, report: _Report) -> None:
    views = (
        sa.select(events.c.article_id, sa.func.count().label("page_views"))
        .where(events.c.event_type == "page_view", events.c.article_id.is_not(None))
        .group_by(events.c.article_id)
        .subquery()
    )
    page_views = sa.cast(sa.func.coalesce(sa.func.sum(views.c.page_views), 0), sa.BigInteger)  # PG sums to numeric
    per_category = pd.DataFrame(
        conn.execute(
            sa.select(
                categories.c.name.label("category"),
                sa.func.count(articles.c.article_id).label("articles"),
                page_views.label("page views"),
            )
            .select_from(categories.outerjoin(articles).outerjoin(views, views.c.article_id == articles.c.article_id))
            .group_by(categories.c.name)
            .order_by(page_views.desc(), categories.c.name)
        ).all(),
        columns=["category", "articles", "page views"],
    )
    report.add("## Categories", "")
    if per_category.empty:
        report.add("_No categories._", "")
    else:
        per_category["page views per article"] = per_category["page views"] / per_category["articles"].where(
            per_category["articles"] > 0
        )
        report.table(per_category)
        by_articles = per_category.set_index("category")["articles"].sort_values(ascending=False)
        report.figure(
            "articles_per_category",
            "Articles per category",
            _bars(by_articles, "Articles per category", "articles", fmt="{:,.0f}"),
        )
        top = per_category.set_index("category")["page views"].head(TOP_N)
        if top.sum() > 0:
            report.figure(
                "top_categories",
                f"Top {len(top)} categories by page views",
                _bars(top, f"Top {len(top)} categories by page views", "page views", fmt="{:,.0f}"),
            )
    top_articles = pd.DataFrame(
        conn.execute(
            sa.select(
                articles.c.article_id, articles.c.title, categories.c.name, articles.c.published_at, views.c.page_views
            )
            .select_from(views.join(articles, articles.c.article_id == views.c.article_id).join(categories))
            .order_by(views.c.page_views.desc(), articles.c.article_id)
            .limit(TOP_N)
        ).all(),
        columns=["article", "title", "category", "published", "page views"],
    )
    report.add(f"## Top {TOP_N} articles by page views", "")
    if top_articles.empty:
        report.add("_No page views yet._", "")
    else:
        top_articles["published"] = top_articles["published"].map(_when)
        top_articles["title"] = top_articles["title"].map(lambda t: t if len(t) <= 70 else t[:67] + "…")
        report.table(top_articles)


# --- queries ---------------------------------------------------------------------------------


def _value_counts(conn: Connection, column: sa.ColumnElement, source: sa.FromClause | None = None) -> pd.Series:
    """How often each value of ``column`` occurs (GROUP BY in the database), sorted by value."""
    query = sa.select(column, sa.func.count()).group_by(column)
    if source is not None:
        query = query.select_from(source)
    rows = conn.execute(query).all()
    return pd.Series([n for _, n in rows], index=[v for v, _ in rows], dtype="int64").sort_index()


def _day(conn: Connection, column: sa.ColumnElement) -> sa.ColumnElement:
    """The UTC calendar day of a timestamp column, as an SQL expression."""
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date).label("day")
    return sa.func.date(column).label("day")  # SQLite stores naive UTC text


def _series(conn: Connection, query: sa.Select) -> pd.Series:
    """A (day, value) query as a daily series, days without rows filled with 0."""
    rows = conn.execute(query).all()
    if not rows:
        return pd.Series(dtype="int64")
    series = pd.Series([v for _, v in rows], index=pd.to_datetime([d for d, _ in rows]), dtype="int64").sort_index()
    return series.reindex(pd.date_range(series.index.min(), series.index.max(), freq="D"), fill_value=0)


def _quantile(dist: pd.Series, q: float) -> float:
    """The ``q`` quantile of values given as value -> count."""
    cum = dist.cumsum().to_numpy()
    return float(dist.index[min(np.searchsorted(cum, q * cum[-1]), len(cum) - 1)])


def _summary(dist: pd.Series) -> dict[str, float]:
    values = dist.index.to_numpy(dtype=float)
    return {
        "n": int(dist.sum()),
        "mean": float((values * dist.to_numpy()).sum() / dist.sum()),
        "median": _quantile(dist, 0.5),
        "p90": _quantile(dist, 0.9),
        "p99": _quantile(dist, 0.99),
        "max": float(values.max()),
    }


# --- figures ---------------------------------------------------------------------------------


def _histogram(dist: pd.Series, title: str, xlabel: str, ylabel: str) -> Figure:
    """A histogram of value -> count; the long tail beyond the 99th percentile goes in the last bar."""
    values, counts = dist.index.to_numpy(dtype=float), dist.to_numpy(dtype=float)
    low, cap, top = values.min(), _quantile(dist, 0.99), values.max()
    if np.all(values == np.round(values)):
        # Whole-number bins of equal width, so no bar holds one value more than its neighbour.
        width = max(1, int(np.ceil((cap - low + 1) / 40)))
        bins = low - 0.5 + width * np.arange(int(np.ceil((cap - low + 1) / width)) + 1)
    else:
        bins = np.linspace(low, max(cap, low + 1), 41)
    fig = Figure()
    ax = fig.subplots()
    ax.hist(np.minimum(values, cap), bins=bins, weights=counts, color=COLOR, edgecolor="white", linewidth=0.5)
    median = _quantile(dist, 0.5)
    ax.axvline(median, color=ACCENT, linestyle="--", linewidth=1.5, label=f"median {median:,.0f}")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.yaxis.set_major_formatter(mticker.StrMethodFormatter("{x:,.0f}"))
    if top > cap:
        ax.set_xlabel(f"{xlabel}; the last bar also holds all values above p99 = {cap:,.0f} (max {top:,.0f})")
    ax.legend(loc="upper right")
    return fig


def _bars(values: pd.Series, title: str, xlabel: str, fmt: str) -> Figure:
    """Horizontal bars, largest on top, each labelled with its value."""
    fig = Figure(figsize=(8.0, max(2.2, 0.8 + 0.38 * len(values))))
    ax = fig.subplots()
    labels = [str(v).replace("_", " ") for v in values.index]
    bars = ax.barh(labels[::-1], values.to_numpy()[::-1], color=COLOR)
    ax.bar_label(bars, labels=[fmt.format(v) for v in values.to_numpy()[::-1]], padding=3, fontsize=9)
    ax.set(title=title, xlabel=xlabel)
    ax.set_xlim(0, values.max() * 1.15 if values.max() > 0 else 1)
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_formatter(mticker.StrMethodFormatter("{x:,.0f}"))
    return fig


def _timeline(panels: list[tuple[str, str, pd.Series]], title: str) -> Figure:
    """One panel per daily series, stacked over a shared date axis."""
    fig = Figure(figsize=(9.0, 1.0 + 2.2 * len(panels)))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    for ax, (label, unit, series) in zip(axes, panels, strict=True):
        ax.plot(series.index, series.to_numpy(), color=COLOR, linewidth=1.4, marker="o" if len(series) < 20 else None)
        ax.fill_between(series.index, series.to_numpy(), color=COLOR, alpha=0.12)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.set_title(label, fontsize=10, fontweight="normal", loc="left")
        ax.yaxis.set_major_formatter(mticker.StrMethodFormatter("{x:,.0f}"))
    locator = mdates.AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[-1].set_xlabel("day (UTC)")
    fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
    return fig


# --- the Markdown file -------------------------------------------------------------------------


class _Report:
    """Markdown lines and the PNGs they link, written into one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def figure(self, name: str, caption: str, fig: Figure) -> None:
        fig.savefig(self.folder / f"{name}.png")
        self.add(f"![{caption}]({name}.png)", "")

    def table(self, frame: pd.DataFrame) -> None:
        self.add(*_markdown_table(frame), "")


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return [head, rule, *body]


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _when(value: object) -> str:
    """A date as YYYY-MM-DD, a timestamp to the minute; '—' for none."""
    if value is None:
        return "—"
    return f"{value:%Y-%m-%d %H:%M}" if hasattr(value, "hour") else f"{value:%Y-%m-%d}"
