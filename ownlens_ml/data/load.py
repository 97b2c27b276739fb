"""Bulk loading of data frames into OwnLens tables: COPY on PostgreSQL, executemany on SQLite.

Both run inside the caller's transaction, so a failed load leaves nothing behind.
"""

from __future__ import annotations

import csv
import io

import pandas as pd
from sqlalchemy import Connection, Table


def copy_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Append ``frame`` (columns named as the table's) to ``table`` on ``conn``.

    Timestamps must be timezone-aware UTC. Returns the number of rows written.
    """
    if frame.empty:
        return 0
    columns = [c for c in table.columns.keys() if c in frame.columns]
    frame = frame[columns]
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, table, frame)
    else:
        _insert_sqlite(conn, table, frame)
    return len(frame)


def _copy_postgres(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    out = frame.copy()
    for name, col in out.items():
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            out[name] = col.dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        elif col.dtype == bool:
            out[name] = col.map({True: "t", False: "f"})
    out.to_csv(buf, index=False, header=False, na_rep="\\N", quoting=csv.QUOTE_MINIMAL)
    buf.seek(0)
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        sql = f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')'
        if hasattr(cur, "copy_expert"):  # psycopg2
            cur.copy_expert(sql, buf)
        else:  # psycopg 3
            with cur.copy(sql) as copy:
                copy.write(buf.getvalue())


def _insert_sqlite(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    out = frame.copy()
    for name, col in out.items():
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            # SQLAlchemy's SQLite DateTime format: naive UTC, microseconds.
            out[name] = col.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%f").where(col.notna(), None)
        elif pd.api.types.is_datetime64_dtype(col.dtype):
            out[name] = col.dt.strftime("%Y-%m-%d").where(col.notna(), None)
    # An object array holds plain Python values, which sqlite3 binds directly.
    rows = list(map(tuple, out.astype(object).where(out.notna(), None).to_numpy(dtype=object).tolist()))
    placeholders = ", ".join("?" for _ in frame.columns)
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({cols}) VALUES ({placeholders})', rows)
