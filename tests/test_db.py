"""Schema creation on both profiles, and clear errors for unreachable databases."""

import subprocess
import sys

from sqlalchemy import inspect

from ownlens_ml.db import get_engine, init_db
from ownlens_ml.db.schema import metadata


def test_schema_creates_twice(any_settings):
    assert init_db(any_settings) == init_db(any_settings)
    tables = set(inspect(get_engine(any_settings)).get_table_names())
    assert set(metadata.tables) <= tables


def test_db_init_against_unreachable_postgres_is_one_line(tmp_path):
    env = {
        "PATH": "",
        "OWNLENS_HOME": str(tmp_path),
        "OWNLENS_PROFILE": "production",
        "OWNLENS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
    }
    done = subprocess.run(
        [sys.executable, "-m", "ownlens_ml.cli", "db", "init"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "127.0.0.1:1" in lines[0] and "Traceback" not in done.stderr
