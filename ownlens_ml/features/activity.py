"""Real-time reader activity: page views pushed straight into the online store."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from feast.data_source import PushMode

from ownlens_ml.errors import ValidationError
from ownlens_ml.features.feast_store import feature_store
from ownlens_ml.settings import Settings

PUSH_SOURCE = "reader_activity_push_source"


def push_page_view(settings: Settings, user_id: int, article_id: int, engaged_seconds: int, at: datetime) -> None:
    """Record a page view in the online store as the reader's latest activity."""
    if at.tzinfo is None:
        raise ValidationError(f"page view time {at} must be timezone-aware (UTC)")
    for name, value in (("user_id", user_id), ("article_id", article_id), ("engaged_seconds", engaged_seconds)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(f"{name} must be an integer; got {value!r}")
    frame = pd.DataFrame(
        {
            "user_id": [user_id],
            "event_timestamp": [pd.Timestamp(at)],
            "last_article_id": [article_id],
            "last_engaged_seconds": [engaged_seconds],
        }
    )
    feature_store(settings).push(PUSH_SOURCE, frame, to=PushMode.ONLINE)
