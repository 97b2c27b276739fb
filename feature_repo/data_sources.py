"""Batch and push sources. Only these bindings differ by profile: parquet files in the state
folder's ``offline/`` locally, PostgreSQL tables in production, the same parquet files read by
Spark (``SparkSource``) in the cluster profile.

Two variables choose the binding; with neither set (the plain ``feast`` CLI in this folder)
the sources are the local profile's files under ``../.ownlens/offline``, the default state
folder of ``ownlens-ml`` run from the project root. ``ownlens-ml features env`` prints both.
"""

import os
from pathlib import Path

from feast import FileSource, PushSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource  # no pyspark import

PROFILE = os.environ.get("OWNLENS_PROFILE", "local")
PRODUCTION = PROFILE == "production"
OFFLINE_DIR = Path(os.environ.get("OWNLENS_HOME") or Path(__file__).resolve().parent.parent / ".ownlens") / "offline"

READER_ACTIVITY_QUERY = (
    "SELECT user_id, event_at AS event_timestamp, article_id AS last_article_id, "
    "CAST(engaged_seconds AS BIGINT) AS last_engaged_seconds FROM events WHERE event_type = 'page_view'"
)
"""Page views, latest article read per reader: the production batch source of the real-time
view (locally, ``ownlens-ml features build`` writes the same rows to ``reader_activity.parquet``)."""


def _source(table: str, description: str, query: str | None = None):
    name = f"{table}_source"
    if PRODUCTION:
        return PostgreSQLSource(
            name=name,
            table=None if query else table,
            query=query,
            timestamp_field="event_timestamp",
            description=description,
        )
    if PROFILE == "cluster":
        return SparkSource(
            name=name,
            path=str(OFFLINE_DIR / f"{table}.parquet"),
            file_format="parquet",
            timestamp_field="event_timestamp",
            description=description,
        )
    return FileSource(
        name=name,
        path=str(OFFLINE_DIR / f"{table}.parquet"),
        timestamp_field="event_timestamp",
        description=description,
    )


customer_user_features_source = _source(
    "customer_user_features", "Daily reader snapshots built by `ownlens-ml features build`"
)
editorial_article_features_source = _source(
    "editorial_article_features", "Article content at publish, early performance at +1h, +6h, +24h"
)
editorial_author_features_source = _source("editorial_author_features", "Daily author track-record snapshots")
customer_user_segments_source = _source(
    "customer_user_segments", "Reader segments written back by the segmentation model"
)
reader_activity_source = _source(
    "reader_activity", "Page views (latest article read per reader)", query=READER_ACTIVITY_QUERY
)

reader_activity_push_source = PushSource(
    name="reader_activity_push_source",
    batch_source=reader_activity_source,
    description="Real-time page views pushed by the tracking pipeline",
)
