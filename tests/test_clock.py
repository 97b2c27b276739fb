"""One clock for the package: OWNLENS_NOW pins it, the suite pins it, a bad pin is one line."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ownlens_ml import clock
from ownlens_ml.errors import ConfigError
from ownlens_ml.settings import Settings


def test_the_suite_runs_on_a_pinned_clock():
    assert clock.pinned()
    assert clock.now() == clock.now()  # fixed, not ticking


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-12-04", datetime(2026, 12, 4, tzinfo=UTC)),
        ("2026-12-04T12:30:00Z", datetime(2026, 12, 4, 12, 30, tzinfo=UTC)),
        ("2026-12-04T13:30:00+01:00", datetime(2026, 12, 4, 12, 30, tzinfo=UTC)),
    ],
)
def test_a_pin_is_read_as_utc(monkeypatch, text, expected):
    monkeypatch.setenv(clock.PIN, text)
    assert clock.now() == expected and clock.now().tzinfo == UTC
    assert clock.today() == expected.date()


def test_unpinned_is_the_real_time(monkeypatch):
    monkeypatch.delenv(clock.PIN)
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01", "1500-01-01"])
def test_a_bad_pin_is_a_config_error_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv(clock.PIN, text)
    with pytest.raises(ConfigError, match="OWNLENS_NOW"):
        Settings.from_env()


def test_the_cli_refuses_a_bad_pin_in_one_line(tmp_path):
    env = {"OWNLENS_HOME": str(tmp_path), "OWNLENS_NOW": "yesterday", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "ownlens_ml.cli", "db", "init"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "OWNLENS_NOW" in lines[0] and "Traceback" not in lines[0], lines
