"""The OwnLens tables (reference, customer, editorial, ML) as SQLAlchemy Core metadata.

All timestamps are UTC. PostgreSQL stores them as ``timestamptz``; SQLite (local profile)
stores naive UTC. Alembic migrations under ``migrations/`` create and evolve this schema.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
TS = DateTime(timezone=True)

# --- reference -------------------------------------------------------------------------

brands = Table(
    "brands",
    metadata,
    Column("brand_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("name", String(80), nullable=False, unique=True),
    Column("domain", String(120), nullable=False),
)

countries = Table(
    "countries",
    metadata,
    Column("country_code", String(2), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("region", String(40), nullable=False),
)

device_types = Table(
    "device_types",
    metadata,
    Column("device_type_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("name", String(20), nullable=False, unique=True),
)

categories = Table(
    "categories",
    metadata,
    Column("category_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("name", String(40), nullable=False, unique=True),
)

# --- customer --------------------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("brand_id", SmallInteger, ForeignKey("brands.brand_id"), nullable=False),
    Column("signup_at", TS, nullable=False),
    Column("country_code", String(2), ForeignKey("countries.country_code"), nullable=False),
    Column("device_type_id", SmallInteger, ForeignKey("device_types.device_type_id"), nullable=False),
    Column("subscription_tier", String(10), nullable=False, server_default="free"),
    Column("subscribed_at", TS, nullable=True),
    Column("newsletter_opt_in", Boolean, nullable=False, server_default=text("false")),
    Index(None, "brand_id", "signup_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, ForeignKey("users.user_id"), nullable=False),
    Column("brand_id", SmallInteger, ForeignKey("brands.brand_id"), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("ended_at", TS, nullable=False),
    Column("device_type_id", SmallInteger, ForeignKey("device_types.device_type_id"), nullable=False),
    Column("referrer", String(20), nullable=False),
    Column("page_views", Integer, nullable=False),
    Column("engaged_seconds", Integer, nullable=False),
    Index(None, "user_id", "started_at"),
    Index(None, "started_at"),
)

EVENT_TYPES = (
    "page_view",
    "scroll",
    "share",
    "comment",
    "paywall_hit",
    "newsletter_signup",
    "subscribe",
    "ad_click",
)

events = Table(
    "events",
    metadata,
    Column("event_id", BigInteger, primary_key=True, autoincrement=False),
    Column("session_id", BigInteger, ForeignKey("sessions.session_id"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.user_id"), nullable=False),
    Column("article_id", BigInteger, ForeignKey("articles.article_id"), nullable=True),
    Column("event_type", String(24), nullable=False),
    Column("event_at", TS, nullable=False),
    Column("scroll_depth", Float, nullable=True),
    Column("engaged_seconds", Integer, nullable=True),
    Index(None, "user_id", "event_at"),
    Index(None, "article_id", "event_at"),
    Index(None, "event_at"),
)

# --- editorial -------------------------------------------------------------------------

authors = Table(
    "authors",
    metadata,
    Column("author_id", Integer, primary_key=True, autoincrement=False),
    Column("brand_id", SmallInteger, ForeignKey("brands.brand_id"), nullable=False),
    Column("name", String(120), nullable=False),
    Column("joined_at", TS, nullable=False),
)

articles = Table(
    "articles",
    metadata,
    Column("article_id", BigInteger, primary_key=True, autoincrement=False),
    Column("brand_id", SmallInteger, ForeignKey("brands.brand_id"), nullable=False),
    Column("author_id", Integer, ForeignKey("authors.author_id"), nullable=False),
    Column("category_id", SmallInteger, ForeignKey("categories.category_id"), nullable=False),
    Column("topic", String(60), nullable=False),
    Column("title", Text, nullable=False),
    Column("published_at", TS, nullable=False),
    Column("word_count", Integer, nullable=False),
    Column("is_premium", Boolean, nullable=False),
    Column("has_video", Boolean, nullable=False),
    Column("image_count", SmallInteger, nullable=False),
    Index(None, "published_at"),
    Index(None, "author_id", "published_at"),
)

article_daily_performance = Table(
    "article_daily_performance",
    metadata,
    Column("article_id", BigInteger, ForeignKey("articles.article_id"), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("page_views", Integer, nullable=False),
    Column("unique_readers", Integer, nullable=False),
    Column("engaged_seconds", BigInteger, nullable=False),
    Column("shares", Integer, nullable=False),
    Column("comments", Integer, nullable=False),
    Column("paywall_hits", Integer, nullable=False),
)

SURFACES = ("homepage", "recommendation", "section", "newsletter", "search")
"""Where an impression was shown: the editors' front page, our recommendations, and the rest."""

impressions = Table(
    # One row per article shown in one impression (a slate: the list one reader saw at once).
    "impressions",
    metadata,
    Column(
        "impression_id",
        BigInteger,
        primary_key=True,
        autoincrement=False,
        comment="The slate: every article shown to one reader at once shares it",
    ),
    Column("position", SmallInteger, primary_key=True, autoincrement=False, comment="Slot in the slate, 1 = first"),
    Column("user_id", BigInteger, ForeignKey("users.user_id"), nullable=False),
    Column("article_id", BigInteger, ForeignKey("articles.article_id"), nullable=False),
    Column("surface", String(20), nullable=False, comment="homepage, recommendation, section, newsletter or search"),
    Column("shown_at", TS, nullable=False),
    Column("clicked", Boolean, nullable=False, comment="The reader opened the article from this slate"),
    Index(None, "user_id", "shown_at"),
    Index(None, "article_id", "shown_at"),
    Index(None, "shown_at"),
)

# --- feature snapshots (built by `ownlens-ml features build`) ---------------------------
# Each column's comment is its feature description. feature_repo/fields.py writes each feature's type and
# description again (Feast imports feature_repo/, which imports nothing of the package): change both together.


def _feature(name: str, type_, comment: str) -> Column:
    return Column(name, type_, nullable=True, comment=comment)


customer_user_features = Table(
    "customer_user_features",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column(
        "event_timestamp",
        TS,
        primary_key=True,
        comment="Snapshot time (00:00 UTC); every value uses only events before it",
    ),
    _feature("sessions_1d", BigInteger, "Sessions in the last day"),
    _feature("sessions_7d", BigInteger, "Sessions in the last 7 days"),
    _feature("sessions_30d", BigInteger, "Sessions in the last 30 days"),
    _feature("pageviews_1d", BigInteger, "Page views in the last day"),
    _feature("pageviews_7d", BigInteger, "Page views in the last 7 days"),
    _feature("pageviews_30d", BigInteger, "Page views in the last 30 days"),
    _feature("engaged_minutes_1d", Float, "Engaged reading minutes in the last day"),
    _feature("engaged_minutes_7d", Float, "Engaged reading minutes in the last 7 days"),
    _feature("engaged_minutes_30d", Float, "Engaged reading minutes in the last 30 days"),
    _feature("active_days_7d", BigInteger, "Days with at least one session, last 7 days"),
    _feature("active_days_30d", BigInteger, "Days with at least one session, last 30 days"),
    _feature("shares_30d", BigInteger, "Article shares in the last 30 days"),
    _feature("comments_30d", BigInteger, "Comments in the last 30 days"),
    _feature("ad_clicks_30d", BigInteger, "Ad clicks in the last 30 days"),
    _feature(
        "avg_scroll_depth_30d", Float, "Mean scroll depth (0-1) of scroll events, last 30 days; null without scrolls"
    ),
    _feature("category_diversity_30d", BigInteger, "Distinct categories read in the last 30 days"),
    _feature("mobile_share_30d", Float, "Share of sessions on mobile, last 30 days; null without sessions"),
    _feature(
        "weekend_share_30d", Float, "Share of sessions on Saturday or Sunday, last 30 days; null without sessions"
    ),
    _feature(
        "morning_share_30d", Float, "Share of sessions starting 05:00-11:59 UTC, last 30 days; null without sessions"
    ),
    _feature("days_since_last_visit", Float, "Days from the last session start to the snapshot; null if never visited"),
    _feature("days_since_signup", Float, "Days from signup to the snapshot"),
    _feature("sessions_prev_7d", BigInteger, "Sessions 8-14 days before the snapshot"),
    _feature("session_trend_7d", Float, "(sessions_7d - sessions_prev_7d) / max(sum, 1): -1 falling to +1 rising"),
    _feature("is_subscriber", BigInteger, "1 if a paid subscriber at the snapshot"),
    _feature("paywall_hits_7d", BigInteger, "Paywall hits in the last 7 days"),
    _feature("paywall_hits_30d", BigInteger, "Paywall hits in the last 30 days"),
    _feature("sessions_90d", BigInteger, "Sessions in the last 90 days"),
    _feature("pageviews_90d", BigInteger, "Page views in the last 90 days"),
    _feature("engaged_minutes_90d", Float, "Engaged reading minutes in the last 90 days"),
    _feature("active_days_90d", BigInteger, "Days with at least one session, last 90 days"),
    _feature("paywall_hits_90d", BigInteger, "Paywall hits in the last 90 days"),
    _feature(
        "paywall_share_90d",
        Float,
        "Share of attempted reads (page views + paywall hits) stopped by the paywall, last 90 days; null without reads",
    ),
    _feature(
        "visit_trend_7d",
        Float,
        "Active days in the last 7 against the 90-day rate (1 = as usual); null without a visit in 90 days",
    ),
    _feature(
        "dwell_trend_7d",
        Float,
        "Engaged seconds per page view in the last 7 days against the 90-day mean (1 = as usual); null without page views",
    ),
    _feature(
        "depth_trend_7d",
        Float,
        "Attempted reads per session in the last 7 days against the 90-day mean (1 = as usual); null without sessions",
    ),
    _feature("newsletter_subscriber", BigInteger, "1 if opted in to the newsletter at the snapshot"),
    _feature("country_code", String(2), "Country of the reader (ISO 3166 alpha-2)"),
    _feature("primary_device", String(20), "Device type the reader signed up with"),
    _feature("brand_id", BigInteger, "Brand the reader belongs to"),
    Index(None, "event_timestamp"),
)

editorial_article_features = Table(
    "editorial_article_features",
    metadata,
    Column("article_id", BigInteger, primary_key=True, autoincrement=False),
    Column(
        "event_timestamp",
        TS,
        primary_key=True,
        comment="published_at, then published_at + 1h, 6h, 24h: each row holds what was known then",
    ),
    _feature("brand_id", BigInteger, "Brand that published the article"),
    _feature("author_id", BigInteger, "Author of the article"),
    _feature("category_id", BigInteger, "Category of the article"),
    _feature("word_count", BigInteger, "Length of the article in words"),
    _feature("is_premium", BigInteger, "1 if behind the paywall"),
    _feature("has_video", BigInteger, "1 if the article embeds a video"),
    _feature("image_count", BigInteger, "Number of images in the article"),
    _feature("publish_hour", BigInteger, "Hour of day (UTC) the article was published"),
    _feature("published_at_epoch", BigInteger, "Publish time as seconds since 1970-01-01 UTC"),
    _feature("pageviews_1h", BigInteger, "Page views in the first hour; null until an hour has passed"),
    _feature("pageviews_6h", BigInteger, "Page views in the first 6 hours; null until 6 hours have passed"),
    _feature("pageviews_24h", BigInteger, "Page views in the first 24 hours; null until a day has passed"),
    _feature("engaged_minutes_24h", Float, "Engaged minutes in the first 24 hours; null until a day has passed"),
    _feature("shares_24h", BigInteger, "Shares in the first 24 hours; null until a day has passed"),
    _feature("early_hours_observed", BigInteger, "How many hours after publish this row was stamped (0, 1, 6, 24)"),
)

editorial_author_features = Table(
    "editorial_author_features",
    metadata,
    Column("author_id", BigInteger, primary_key=True, autoincrement=False),
    Column(
        "event_timestamp",
        TS,
        primary_key=True,
        comment="Snapshot time (00:00 UTC); every value uses only events before it",
    ),
    _feature("articles_30d", BigInteger, "Articles the author published in the last 30 days"),
    _feature("author_pageviews_30d", BigInteger, "Page views of the author's articles in the last 30 days"),
    _feature(
        "author_pageviews_per_article_30d",
        Float,
        "Page views per article published in the last 30 days; null without articles",
    ),
    _feature("author_engaged_minutes_30d", Float, "Engaged minutes on the author's articles, last 30 days"),
    _feature("author_shares_30d", BigInteger, "Shares of the author's articles in the last 30 days"),
)

FEATURE_TABLES = (customer_user_features, editorial_article_features, editorial_author_features)

customer_user_segments = Table(
    # Written by the segmentation model (``ownlens-ml segments write``), not by the snapshot
    # builder: a derived view later models read, hence outside FEATURE_TABLES' quality checks.
    "customer_user_segments",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column(
        "event_timestamp",
        TS,
        primary_key=True,
        comment="Snapshot time of the features the segment was assigned from (00:00 UTC)",
    ),
    Column("segment_name", String(60), nullable=False, comment="The reader's segment, e.g. 'weekend reader'"),
    Column(
        "segment_model_version",
        BigInteger,
        nullable=False,
        comment="Version of the segmentation model that assigned it",
    ),
    Index(None, "event_timestamp"),
)

# --- ML --------------------------------------------------------------------------------

ml_model_registry = Table(
    "ml_model_registry",
    metadata,
    # Rows are immutable: migration 0002 adds a trigger that refuses any UPDATE.
    Column("model_name", String(60), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", TS, nullable=False),
    Column("task", String(20), nullable=False),
    Column("feature_service", String(80), nullable=False),
    Column("feature_service_hash", String(64), nullable=False),
    Column("training_set_fingerprint", String(64), nullable=False),
    Column("window_start", TS, nullable=True),
    Column("window_end", TS, nullable=True),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("code_version", String(64), nullable=False),
    Column("artifact_format", String(20), nullable=False),
    Column("artifact", LargeBinary, nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
)

ml_model_aliases = Table(
    "ml_model_aliases",
    metadata,
    # The primary key is what makes "at most one champion per model" a database fact.
    Column("model_name", String(60), primary_key=True),
    Column("alias", String(20), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("previous_version", Integer, nullable=True),
    Column("updated_at", TS, nullable=False),
)

ml_model_training_runs = Table(
    "ml_model_training_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("model_name", String(60), nullable=False),
    Column("status", String(12), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("version", Integer, nullable=True),
    Column("params", JSON, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "model_name", "started_at"),
)

ml_model_predictions = Table(
    "ml_model_predictions",
    metadata,
    Column("prediction_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("model_name", String(60), nullable=False),
    Column("version", Integer, nullable=False),
    Column(
        "entity_key",
        String(200),
        nullable=False,
        comment='Join keys as canonical JSON text, e.g. {"user_id":7}: composite keys fit and it can be part of a unique key',
    ),
    Column(
        "entity_id",
        BigInteger,
        nullable=True,
        comment="The id when the model has one join key (for joins and the index)",
    ),
    Column(
        "as_of",
        TS,
        nullable=False,
        comment="The moment the features describe: the request time online, the as-of date in a batch",
    ),
    Column("predicted_at", TS, nullable=False),
    Column(
        "score",
        Float,
        nullable=True,
        comment="The headline number (probability, prediction); null for top-k lists and segments",
    ),
    Column("output", JSON, nullable=True, comment="The whole answer: score and flags, a top-k list, a segment name"),
    Column(
        "features",
        JSON,
        nullable=True,
        comment="Feature values served online; null in batch rows (the offline store reproduces them at as_of)",
    ),
    Column("source", String(10), nullable=False, server_default="online", comment="online or batch"),
    Column("batch_id", String(120), nullable=True, comment="Batch scoring key: model, version and as-of"),
    Column("label", Float, nullable=True),
    Index(None, "model_name", "as_of"),
    Index(None, "entity_id", "as_of"),
    UniqueConstraint("batch_id", "entity_key"),
)

ml_model_monitoring = Table(
    "ml_model_monitoring",
    metadata,
    Column("monitor_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("model_name", String(60), nullable=False),
    Column("version", Integer, nullable=True),
    Column("kind", String(30), nullable=False),
    Column("metric", String(40), nullable=False),
    Column("feature", String(120), nullable=True),
    Column("value", Float, nullable=False),
    Column("window_start", TS, nullable=False),
    Column("window_end", TS, nullable=False),
    Column("computed_at", TS, nullable=False),
    Column("details", JSON, nullable=True),
    Column(
        "threshold",
        Float,
        nullable=True,
        comment="The value the measurement is judged against (sample-size aware where a test has one)",
    ),
    Column(
        "status",
        String(16),
        nullable=True,
        comment="ok, alert, notice (significant but below the effect floor), too_few_rows or pending",
    ),
    Index(None, "model_name", "computed_at"),
)

ml_reference_profiles = Table(
    # What a version was trained on, binned: monitoring compares windows with it and never rebuilds a
    # training set. Immutable like the version (migration 0006 adds a trigger that refuses UPDATE).
    "ml_reference_profiles",
    metadata,
    Column("model_name", String(60), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", TS, nullable=False),
    Column("source", String(12), nullable=False, comment="training (written at registration) or lineage"),
    Column("rows", Integer, nullable=False),
    Column("profile", JSON, nullable=False),
)

ml_alerts = Table(
    "ml_alerts",
    metadata,
    Column("alert_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("model_name", String(60), nullable=False),
    Column("rule", String(80), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("resolved_at", TS, nullable=True),
    Column("metric", String(40), nullable=True),
    Column("feature", String(120), nullable=True),
    Column("status", String(10), nullable=True, comment="open or resolved"),
    Column("last_seen_at", TS, nullable=True, comment="The newest run that still saw the condition"),
    Column("notified_at", TS, nullable=True, comment="When the webhook accepted it; null: not yet delivered"),
    Column("notify_attempts", Integer, nullable=True, comment="Failed webhook deliveries so far"),
    Column(
        "notify_wait",
        Integer,
        nullable=True,
        comment="Monitoring runs to skip before the next delivery attempt (backoff)",
    ),
    Index(None, "model_name", "status"),
)

PLATFORM_TABLES = (
    brands,
    countries,
    device_types,
    categories,
    users,
    authors,
    articles,
    sessions,
    events,
    article_daily_performance,
    impressions,
)
"""Platform tables in load order (parents before children)."""
