"""The local offline store's parquet files, checked before anything reads them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ownlens_ml.db.schema import metadata
from ownlens_ml.errors import DamagedStateError, MissingTableError

REBUILD = "run `ownlens-ml features build` to rebuild it"


def snapshot_file(path: Path) -> Path:
    """``path``, if it is a parquet file holding the columns of its table (named by its stem).

    Reading the footer is enough to tell a garbage, truncated or empty file, and the schema
    tells a file of another table; neither costs a scan.

    Raises:
        MissingTableError: the file does not exist.
        DamagedStateError: it is not a readable parquet file, or lacks its table's columns.
    """
    if not path.exists():
        raise MissingTableError(f"snapshot file {path} does not exist; run `ownlens-ml features build`")
    try:
        names = set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DamagedStateError(f"snapshot file {path} is damaged ({reason}); {REBUILD}") from None
    table = metadata.tables.get(path.stem)
    missing = [c.name for c in table.columns if c.name not in names] if table is not None else []
    if missing:
        raise DamagedStateError(
            f"snapshot file {path} is damaged: it lacks {path.stem}'s columns "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} (another table's "
            f"file?); {REBUILD}"
        )
    return path
