"""Bulk loading of data frames into OwnLens tables: COPY on PostgreSQL, executemany on SQLite.

Both run inside the caller's transaction, so a failed load leaves nothing behind.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Table

log = logging.getLogger(__name__)

COPY_BATCH_ROWS = 65_536
"""Rows formatted per CSV piece sent to COPY: bounds the text held in memory at once."""

_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, batch_size=COPY_BATCH_ROWS)


def copy_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Append ``frame`` (columns named as the table's) to ``table`` on ``conn``.

    Timestamps must be timezone-aware UTC. Returns the number of rows written.
    """
    if frame.empty:
        return 0
    columns = [c.name for c in table.columns if c.name in frame.columns]
    frame = frame[columns]
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, table, frame)
    else:
        _insert_sqlite(conn, table, frame)
    return len(frame)


def _copy_postgres(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    # CSV's own NULL: an unquoted empty field; pyarrow quotes every string, so "" stays ''.
    sql = f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv)'
    pieces = _csv_pieces(frame)
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        if hasattr(cur, "copy_expert"):  # psycopg2
            cur.copy_expert(sql, _PieceReader(pieces))
        else:  # psycopg 3
            with cur.copy(sql) as copy:
                for piece in pieces:
                    copy.write(piece)


def _csv_pieces(frame: pd.DataFrame) -> Iterator[memoryview]:
    """``frame`` as PostgreSQL CSV, formatted by pyarrow in pieces of ``COPY_BATCH_ROWS`` rows.

    Timestamps are cut to microseconds (PostgreSQL's precision, as ``strftime('%f')`` did)
    and written as ``YYYY-MM-DD HH:MM:SS.ffffffZ``; booleans as ``true``/``false``; NaN,
    NaT and NA as NULL.
    """
    data = pa.Table.from_pandas(frame, preserve_index=False)
    for i, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            data = data.set_column(i, field.name, data.column(i).cast(pa.timestamp("us", field.type.tz), safe=False))
    for batch in data.to_batches(max_chunksize=COPY_BATCH_ROWS):
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(batch, sink, _CSV_OPTIONS)
        yield memoryview(sink.getvalue())


class _PieceReader(io.RawIOBase):
    """A read-only file over an iterator of byte pieces, for psycopg2's ``copy_expert``."""

    def __init__(self, pieces: Iterable[memoryview]):
        self._pieces = iter(pieces)
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, out) -> int:
        while not len(self._rest):
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._rest = piece
        n = min(len(out), len(self._rest))
        out[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


@contextmanager
def bulk_load(conn: Connection, tables: Iterable[Table]) -> Iterator[None]:
    """Load ``tables`` without their foreign keys and secondary indexes, then restore both.

    On PostgreSQL, inside the caller's transaction: drops the tables' foreign keys and
    non-unique indexes, and after the block re-creates the indexes (one sort each instead of
    an insert per row) and re-adds the foreign keys (one anti-join each instead of a trigger
    per row). A violating row makes ``ADD CONSTRAINT`` fail and the transaction roll back,
    so integrity is checked as before. DDL is transactional in PostgreSQL: on a rollback the
    constraints and indexes come back with the old rows. Elsewhere (SQLite) a no-op.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    names = [t.name for t in tables]
    owned = "SELECT oid FROM pg_class WHERE relname = ANY(%(names)s) AND pg_table_is_visible(oid)"
    fks = conn.exec_driver_sql(
        "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint "
        f"WHERE contype = 'f' AND conrelid IN ({owned}) ORDER BY conrelid, conname",
        {"names": names},
    ).all()
    indexes = conn.exec_driver_sql(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        f"WHERE NOT indisunique AND NOT indisprimary AND indrelid IN ({owned}) ORDER BY indexrelid",
        {"names": names},
    ).all()
    for table, name, _ in fks:
        conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for index, _ in indexes:
        conn.exec_driver_sql(f"DROP INDEX {index}")
    yield
    for _, definition in indexes:
        conn.exec_driver_sql(definition)
    for table, name, definition in fks:
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    log.debug("re-created %d indexes and %d foreign keys", len(indexes), len(fks))


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
