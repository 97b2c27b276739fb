"""PostgreSQL COPY out to Arrow and Feast types as Arrow types, shared by the fast feature paths."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
from feast.value_type import ValueType

from ownlens_ml.errors import DatabaseUnavailableError
from ownlens_ml.settings import Settings

_ARROW = {
    ValueType.INT64: pa.int64(),
    ValueType.DOUBLE: pa.float64(),
    ValueType.STRING: pa.string(),
    ValueType.INT32: pa.int32(),
    ValueType.FLOAT: pa.float32(),
    ValueType.BOOL: pa.bool_(),
}


_STRING = pa.string()


def arrow_type(value_type: ValueType, default: pa.DataType = _STRING) -> pa.DataType:
    """The Arrow type a Feast scalar type is read as (``default`` for anything else)."""
    return _ARROW.get(value_type, default)


def connect(settings: Settings):
    """A psycopg2 connection to the production database, or a one-line error."""
    import psycopg2

    try:
        return psycopg2.connect(settings.database_url)
    except psycopg2.OperationalError as exc:
        raise DatabaseUnavailableError(
            f"PostgreSQL is unreachable: {str(exc).strip()}; check OWNLENS_DATABASE_URL"
        ) from None


def copy_to_arrow(cursor, sql: str, column_types: dict[str, pa.DataType]) -> pa.Table:
    """``COPY (sql) TO STDOUT`` as CSV, parsed by pyarrow with the given column types.

    Empty unquoted fields are NULL, quoted empty strings stay empty strings, as in PostgreSQL.
    """
    out = io.BytesIO()
    cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", out)
    out.seek(0)
    return pacsv.read_csv(
        out,
        convert_options=pacsv.ConvertOptions(
            column_types=column_types, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
