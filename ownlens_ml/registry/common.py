"""What the registry's parts share: the engine, the time of writing, JSON values, lengths, the code version."""

from __future__ import annotations

import logging
import math
import subprocess
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String

from ownlens_ml import __version__
from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.errors import RegistryError
from ownlens_ml.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)


REGISTRY_TABLES = ("ml_model_registry", "ml_model_aliases", "ml_model_training_runs")


def _engine(settings: Settings) -> Engine:
    engine = get_engine(settings)
    require_tables(engine, *REGISTRY_TABLES)
    return engine


def _now() -> datetime:
    """When a registry row is written: the real time even under a pinned ``clock`` (it orders runs and
    audits changes; it is no data time)."""
    return datetime.now(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetimes from both backends (SQLite hands back naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(value: Any, name: str) -> datetime | None:
    """A datetime/date/Timestamp as aware UTC; naive values are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if not isinstance(value, datetime):
        raise RegistryError(f"{name} must be a datetime or None; got {value!r}")
    return _as_utc(value)


def _check_lengths(table, optional: bool = False, **values: str) -> None:
    for name, value in values.items():
        limit = table.c[name].type.length if isinstance(table.c[name].type, String) else None
        if not isinstance(value, str) or not (value or optional):
            raise RegistryError(f"{name} must be a non-empty string; got {value!r}")
        if limit and len(value) > limit:
            raise RegistryError(f"{name} {value[:80]!r} is {len(value)} characters; the limit is {limit}")


def _jsonable(value: Any, path: str) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays unwrapped), or RegistryError.

    Non-finite floats are refused: PostgreSQL's JSON rejects them, and a NaN metric would
    quietly lose every comparison a promotion gate makes with it.
    """
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RegistryError(f"{path} is {value}; registry values must be finite numbers")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RegistryError(f"{path} has a non-string key {key!r}; use strings")
            out[key] = _jsonable(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise RegistryError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__} ({value!r:.80}), which is "
        "not JSON-encodable; pass numbers, strings, booleans, lists or dicts"
    )


def _code_version() -> str:
    """``git rev-parse HEAD`` of the package checkout (``+dirty`` if tracked files differ)."""
    if (PROJECT_ROOT / ".git").exists():
        try:
            head = subprocess.run(
                ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
                check=True,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            dirty = (
                subprocess.run(
                    ["git", "-C", str(PROJECT_ROOT), "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=30
                ).returncode
                == 1
            )
            if head:
                return head + ("+dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("no git code version: %s", exc)
    return __version__
