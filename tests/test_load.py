"""Bulk loading on PostgreSQL: COPY keeps every value, and a failed generate() leaves the old platform whole."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Float, MetaData, Table, Text, create_engine, text

from ownlens_ml.data import generator
from ownlens_ml.data.generator import GeneratorConfig, generate
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine, init_db, schema

_CATALOG = """
SELECT 'c ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'i ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1
"""


def test_copy_frame_keeps_nulls_empty_strings_and_microseconds(pg_url):
    meta = MetaData()
    table = Table(
        "t",
        meta,
        Column("s", Text),
        Column("b", Boolean),
        Column("f", Float),
        Column("i", BigInteger),
        Column("ts", DateTime(timezone=True)),
        Column("d", Date),
    )
    frame = pd.DataFrame(
        {
            "s": ['a,"b"\nc', "", None],
            "b": [True, False, True],
            "f": [0.1, np.nan, 1e300],
            "i": pd.array([1, None, 2**62], dtype="Int64"),
            "ts": pd.to_datetime(["2026-03-01 12:00:00.123456789", None, "1999-12-31 23:59:59.000000"], utc=True),
            "d": [dt.date(2026, 3, 1), None, dt.date(2000, 1, 1)],
        }
    )
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        meta.create_all(conn)
        assert copy_frame(conn, table, frame) == 3
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT s, b, f, i, ts, d FROM t ORDER BY i NULLS FIRST")).all()
    utc = dt.UTC
    assert [tuple(r) for r in rows] == [
        ("", False, None, None, None, None),
        ('a,"b"\nc', True, 0.1, 1, dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=utc), dt.date(2026, 3, 1)),
        (None, True, 1e300, 2**62, dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=utc), dt.date(2000, 1, 1)),
    ]


def test_failed_generate_leaves_old_platform_indexes_and_foreign_keys(production_settings, monkeypatch):
    init_db(production_settings)
    small = GeneratorConfig(users=200, days=20, brands=1, seed=3)
    generate(production_settings, small)
    engine = get_engine(production_settings)

    def snapshot():
        with engine.connect() as conn:
            counts = {
                t.name: conn.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar() for t in schema.PLATFORM_TABLES
            }
            return counts, conn.execute(text(_CATALOG)).scalars().all()

    before = snapshot()
    assert any(line.startswith("i CREATE INDEX") for line in before[1])
    assert any("FOREIGN KEY" in line for line in before[1])
    real = generator.iter_platform

    def broken(config, tick=None):
        for name, item in real(config, tick):
            yield name, item
            if name == "events":
                raise RuntimeError("disk full")

    monkeypatch.setattr(generator, "iter_platform", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(production_settings, GeneratorConfig(users=300, days=20, brands=1, seed=4))
    assert snapshot() == before


def test_rows_breaking_a_foreign_key_fail_the_whole_generate(production_settings, monkeypatch):
    init_db(production_settings)
    real = generator.iter_platform

    def orphan_events(config, tick=None):
        for name, item in real(config, tick):
            if name == "events":
                item = item.assign(user_id=item["user_id"] + 10**9)
            yield name, item

    monkeypatch.setattr(generator, "iter_platform", orphan_events)
    with pytest.raises(Exception, match="foreign key"):
        generate(production_settings, GeneratorConfig(users=100, days=10, brands=1, seed=3))
    with get_engine(production_settings).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 0
