"""The profile report: row counts that match the database, real plots, clear errors when empty."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text
from tiny_platform import load_tiny_platform

from ownlens_ml.data.profile import profile_report
from ownlens_ml.db import get_engine, init_db
from ownlens_ml.db.schema import PLATFORM_TABLES
from ownlens_ml.errors import EmptyWindowError, MissingTableError


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar_one() for t in PLATFORM_TABLES}


def test_report_names_every_table_with_its_rows_and_has_real_plots(any_settings, tmp_path):
    init_db(any_settings)
    engine = get_engine(any_settings)
    load_tiny_platform(engine)
    path = profile_report(any_settings, tmp_path / "profile")
    assert path == tmp_path / "profile" / "report.md" and path.is_file()
    report = path.read_text(encoding="utf-8")

    counts = _counts(engine)
    assert counts["sessions"] == 5 and counts["events"] == 15  # the tiny platform, counted apart
    for table, rows in counts.items():
        assert re.search(rf"^\| `{table}` \| {rows:,} \|$", report, re.MULTILINE), (table, rows)

    # Date ranges and a top article, as the tiny platform wrote them.
    assert re.search(r"\| `sessions` \| `started_at` \| 2026-03-01 09:30 \| 2026-03-05 23:59 \|", report)
    assert re.search(r"^\| 12 \| c \| culture \| 2026-03-04 09:00 \| 5 \|$", report, re.MULTILINE)  # 5 views, first

    # Sessions on days 0, 0, 1, 2 and 4 (the last one at 23:59:59 UTC): 5 days, day 3 empty.
    assert "| sessions per day | 5 | 1 | 0 | 2 |" in report

    linked = re.findall(r"!\[[^\]]+\]\(([a-z_]+\.png)\)", report)
    assert {"sessions_per_user.png", "event_type_mix.png", "daily_activity.png", "word_counts.png"} <= set(linked)
    for name in linked:
        png = path.parent / name
        assert png.is_file(), name
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 200, name
            pixels = np.asarray(image.convert("L"), dtype=float)
        # Not blank: ink covers a real share of the image and the tones vary.
        assert pixels.std() > 10 and (pixels < 200).mean() > 0.01, name


def test_default_folder_and_rerun(local_settings):
    init_db(local_settings)
    load_tiny_platform(get_engine(local_settings))
    first = profile_report(local_settings)
    assert first == local_settings.reports_dir / "profile" / "report.md"
    assert profile_report(local_settings, None).read_text() == first.read_text()


def test_empty_platform_gets_a_clear_error(any_settings, tmp_path):
    init_db(any_settings)
    with pytest.raises(EmptyWindowError, match=r"no sessions; run `ownlens-ml data generate` or `data import` first"):
        profile_report(any_settings, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_missing_schema_names_the_fix(local_settings, tmp_path):
    with pytest.raises(MissingTableError, match="run `ownlens-ml db init` first"):
        profile_report(local_settings, tmp_path / "p")
