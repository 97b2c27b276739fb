"""The one clock: the real UTC time, or the moment ``OWNLENS_NOW`` pins it to.

Everything that asks "what time is it" for data (a platform that ends today, the
staleness of online values, what trends now, a prediction's time) asks here, so a test
or a replay can pin the whole package to one moment. Durations and timeouts use
``time.monotonic`` and are not affected.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from functools import lru_cache

from ownlens_ml.errors import ConfigError

PIN = "OWNLENS_NOW"


def now() -> datetime:
    """The current time, UTC-aware: ``OWNLENS_NOW`` when it is set (a fixed moment), else the real clock."""
    pinned = os.environ.get(PIN)
    return _parse(pinned) if pinned else datetime.now(UTC)


def today() -> date:
    """The current UTC day."""
    return now().date()


def pinned() -> bool:
    return bool(os.environ.get(PIN))


@lru_cache(maxsize=8)
def _parse(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{PIN}={text!r} is not an ISO-8601 date or time; use e.g. 2026-12-04 or "
            "2026-12-04T12:00:00Z, or unset it for the real clock"
        ) from None
    if not 1970 <= moment.year <= 2200:
        raise ConfigError(f"{PIN}={text!r} is outside 1970..2200; pin a moment in that range")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
