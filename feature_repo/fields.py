"""Feast Fields built from the snapshot tables' columns, so each feature is named,
typed and described once (in ownlens_ml/db/schema.py)."""

from feast import Field
from feast.types import Float64, Int64, String
from sqlalchemy import BigInteger, Float, String as SqlString, Table

_TYPES = ((BigInteger, Int64), (Float, Float64), (SqlString, String))


def fields(table: Table, *names: str) -> list[Field]:
    """Fields for the named columns of ``table``, in the order given."""
    out = []
    for name in names:
        column = table.columns[name]
        dtype = next(feast for sql, feast in _TYPES if isinstance(column.type, sql))
        out.append(Field(name=name, dtype=dtype, description=column.comment or ""))
    return out
