"""Benchmark prediction-log retention on PostgreSQL: batched primary-key-range deletes vs daily partitions.

Two tables hold the same rows, ``--rows`` over ``--days`` days (ids rising with ``as_of``, as the online log
writes them; three models, a served feature row of ten values each): the real ``ml_model_predictions``
(``ownlens-ml db init``) and a copy partitioned by day on ``as_of``. Then, for each:

(a) the write path: ``copy_frame`` (the prediction log's COPY) of ``--append`` rows into today;
(b) retention of the older half of the days: on the plain table ``pipelines.retention.prune`` (summaries
    into ``ml_model_monitoring``, then deletes of ``--batch`` ids per transaction), then the ``VACUUM`` that
    makes the space reusable; on the partitioned one the same summary query per model-day, then
    ``DROP TABLE`` of each old day's partition;
(c) the table's size before and after.

    .venv/bin/python bench/bench_retention.py                    # 400k rows over 10 days
    .venv/bin/python bench/bench_retention.py --rows 2000000     # longer

Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("OWNLENS_NOW", "2026-12-04T12:00:00Z")  # the rows are placed relative to this day

from sqlalchemy import text  # noqa: E402

from ownlens_ml import clock  # noqa: E402
from ownlens_ml.data.load import copy_frame  # noqa: E402
from ownlens_ml.db import get_engine, init_db  # noqa: E402
from ownlens_ml.db.schema import ml_model_predictions  # noqa: E402
from ownlens_ml.features.quality import utc_midnight  # noqa: E402
from ownlens_ml.pipelines import retention  # noqa: E402
from ownlens_ml.settings import Settings  # noqa: E402

PART = "predictions_by_day"
FEATURES = (
    '{"sessions_7d":3,"sessions_30d":11,"pageviews_7d":9,"pageviews_30d":40,"engaged_minutes_7d":12.5,'
    '"engaged_minutes_30d":61.25,"active_days_7d":3,"active_days_30d":9,"days_since_last_visit":0.4,'
    '"session_trend_7d":-0.2}'
)


def fill(conn, table: str, rows: int, start, days: int) -> None:
    conn.execute(
        text(f"""
        INSERT INTO {table} (model_name, version, entity_key, entity_id, as_of, predicted_at, score, output, features,
                             source)
        SELECT (ARRAY['churn','conversion','recommendation'])[1 + i % 3], 1 + i % 2, '{{"user_id":' || i || '}}', i,
               t, t, CASE WHEN i % 3 = 2 THEN NULL ELSE random() END, CAST(:output AS json),
               CAST(:features AS json), 'online'
        FROM generate_series(1, :rows) AS i,
             LATERAL (SELECT :start + (i - 0.5) / :rows * :days * interval '1 day') AS s(t)
    """),
        {"rows": rows, "start": start, "days": days, "output": '{"cold_start":false}', "features": FEATURES},
    )


def partitioned(conn, start, days: int) -> None:
    """The same columns partitioned by day; the primary and unique keys must then include ``as_of``."""
    conn.execute(
        text(f"""
        CREATE TABLE {PART} (LIKE ml_model_predictions INCLUDING DEFAULTS INCLUDING COMMENTS,
                             PRIMARY KEY (prediction_id, as_of), UNIQUE (batch_id, entity_key, as_of))
        PARTITION BY RANGE (as_of)""")
    )
    conn.execute(text(f"CREATE INDEX ON {PART} (model_name, as_of)"))
    conn.execute(text(f"CREATE INDEX ON {PART} (entity_id, as_of)"))
    conn.execute(text(f"CREATE SEQUENCE {PART}_id OWNED BY {PART}.prediction_id"))
    conn.execute(text(f"ALTER TABLE {PART} ALTER prediction_id SET DEFAULT nextval('{PART}_id')"))
    for d in range(days + 1):
        day = start + timedelta(days=d)
        conn.execute(
            text(
                f"CREATE TABLE {PART}_{day:%Y%m%d} PARTITION OF {PART} "
                f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
            )
        )


def size(conn, table: str) -> int:
    return conn.execute(
        text(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.oid = CAST(:t AS regclass) "
            "OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST(:t AS regclass))"
        ),
        {"t": table},
    ).scalar()


def append_frame(n: int) -> pd.DataFrame:
    now = clock.now()
    ids = np.arange(n)
    return pd.DataFrame(
        {
            "model_name": "churn",
            "version": 1,
            "entity_key": [f'{{"user_id":{i}}}' for i in ids],
            "entity_id": ids,
            "as_of": now,
            "predicted_at": now,
            "score": np.random.default_rng(0).random(n),
            "output": '{"cold_start":false}',
            "features": FEATURES,
            "source": "online",
        }
    )


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--append", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=retention.BATCH_ROWS)
    parser.add_argument(
        "--pg", default=os.environ.get("OWNLENS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()

    name = f"ownlens_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.pg)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(
            profile="production",
            home=Path(tempfile.mkdtemp(prefix="bench-retention-")),
            database_url=urlsplit(args.pg)._replace(path=f"/{name}").geturl(),
        )
        run(settings, args)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def run(settings: Settings, args) -> None:
    init_db(settings)
    engine = get_engine(settings)
    today = utc_midnight(clock.today())
    start = today - timedelta(days=args.days)
    keep = args.days // 2
    cut = today - timedelta(days=keep)
    with engine.begin() as conn:
        partitioned(conn, start, args.days)
    load = {}
    for table in (ml_model_predictions.name, PART):
        with engine.begin() as conn:
            load[table] = timed(lambda: fill(conn, table, args.rows, start, args.days))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    frame = append_frame(args.append)
    append = {ml_model_predictions.name: [], PART: []}
    for _ in range(3):  # interleaved, median of three
        for target in (ml_model_predictions, _part_table()):
            with engine.begin() as conn:
                append[target.name].append(timed(lambda: copy_frame(conn, target, frame)))
    append = {table: float(np.median(seconds)) for table, seconds in append.items()}
    with engine.connect() as conn:
        old = conn.execute(text("SELECT count(*) FROM ml_model_predictions WHERE as_of < :cut"), {"cut": cut}).scalar()
        before = {t: size(conn, t) for t in (ml_model_predictions.name, PART)}

    result = None

    def prune() -> None:
        nonlocal result
        result = retention.prune(settings, keep, batch_rows=args.batch)

    plain = timed(prune)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        vacuum = timed(lambda: conn.execute(text("VACUUM ml_model_predictions")))
    assert result.deleted == old, (result.deleted, old)

    def drop_partitions() -> None:
        for d in range(args.days - keep):
            day = start + timedelta(days=d)
            with engine.begin() as conn:
                for model in ("churn", "conversion", "recommendation"):
                    conn.execute(
                        text(
                            f"SELECT version, source, count(*), count(score), avg(score), stddev_samp(score), "
                            f"percentile_cont(ARRAY[0.05,0.25,0.5,0.75,0.95]) WITHIN GROUP (ORDER BY score) "
                            f"FROM {PART}_{day:%Y%m%d} WHERE model_name = :m GROUP BY 1, 2"
                        ),
                        {"m": model},
                    ).all()
                conn.execute(text(f"DROP TABLE {PART}_{day:%Y%m%d}"))

    dropped = timed(drop_partitions)
    with engine.connect() as conn:
        after = {t: size(conn, t) for t in (ml_model_predictions.name, PART)}
        left = conn.execute(text(f"SELECT count(*) FROM {PART} WHERE as_of < :cut"), {"cut": cut}).scalar()
    assert left == 0

    mb = 1 << 20
    print(
        f"{args.rows:,} rows over {args.days} days; retention removes {old:,} rows ({args.days - keep} days); "
        f"deletes of {args.batch:,} ids per transaction ({result.batches} batches)\n"
    )
    print("| | plain table, batched deletes | daily partitions |\n| --- | --- | --- |")
    print(
        f"| bulk load (INSERT ... SELECT), rows/s | {args.rows / load['ml_model_predictions']:,.0f} | "
        f"{args.rows / load[PART]:,.0f} |"
    )
    print(
        f"| prediction-log COPY of {args.append:,} rows (median of 3), rows/s | "
        f"{args.append / append['ml_model_predictions']:,.0f} | "
        f"{args.append / append[PART]:,.0f} |"
    )
    print(f"| retention (summaries + removal), s | {plain:.1f} ({old / plain:,.0f} rows/s) | {dropped:.2f} |")
    print(f"| VACUUM after, s | {vacuum:.1f} | - |")
    print(
        f"| size before -> after, MB | {before['ml_model_predictions'] / mb:,.0f} -> "
        f"{after['ml_model_predictions'] / mb:,.0f} (freed space reused, not returned) | "
        f"{before[PART] / mb:,.0f} -> {after[PART] / mb:,.0f} |"
    )


def _part_table():
    from sqlalchemy import MetaData, Table

    return Table(PART, MetaData(), *[c._copy() for c in ml_model_predictions.columns])


if __name__ == "__main__":
    main()
