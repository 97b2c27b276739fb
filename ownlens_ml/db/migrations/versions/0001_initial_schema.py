"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 18:25:01.743598
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "brands",
        sa.Column("brand_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("domain", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("brand_id", name=op.f("pk_brands")),
        sa.UniqueConstraint("name", name=op.f("uq_brands_name")),
    )
    op.create_table(
        "categories",
        sa.Column("category_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("category_id", name=op.f("pk_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_categories_name")),
    )
    op.create_table(
        "countries",
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("country_code", name=op.f("pk_countries")),
    )
    op.create_table(
        "customer_user_features",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "event_timestamp",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Snapshot time (00:00 UTC); every value uses only events before it",
        ),
        sa.Column("sessions_1d", sa.BigInteger(), nullable=True, comment="Sessions in the last day"),
        sa.Column("sessions_7d", sa.BigInteger(), nullable=True, comment="Sessions in the last 7 days"),
        sa.Column("sessions_30d", sa.BigInteger(), nullable=True, comment="Sessions in the last 30 days"),
        sa.Column("pageviews_1d", sa.BigInteger(), nullable=True, comment="Page views in the last day"),
        sa.Column("pageviews_7d", sa.BigInteger(), nullable=True, comment="Page views in the last 7 days"),
        sa.Column("pageviews_30d", sa.BigInteger(), nullable=True, comment="Page views in the last 30 days"),
        sa.Column("engaged_minutes_1d", sa.Float(), nullable=True, comment="Engaged reading minutes in the last day"),
        sa.Column(
            "engaged_minutes_7d", sa.Float(), nullable=True, comment="Engaged reading minutes in the last 7 days"
        ),
        sa.Column(
            "engaged_minutes_30d", sa.Float(), nullable=True, comment="Engaged reading minutes in the last 30 days"
        ),
        sa.Column(
            "active_days_7d", sa.BigInteger(), nullable=True, comment="Days with at least one session, last 7 days"
        ),
        sa.Column(
            "active_days_30d", sa.BigInteger(), nullable=True, comment="Days with at least one session, last 30 days"
        ),
        sa.Column("shares_30d", sa.BigInteger(), nullable=True, comment="Article shares in the last 30 days"),
        sa.Column("comments_30d", sa.BigInteger(), nullable=True, comment="Comments in the last 30 days"),
        sa.Column("ad_clicks_30d", sa.BigInteger(), nullable=True, comment="Ad clicks in the last 30 days"),
        sa.Column(
            "avg_scroll_depth_30d",
            sa.Float(),
            nullable=True,
            comment="Mean scroll depth (0-1) of scroll events, last 30 days; null without scrolls",
        ),
        sa.Column(
            "category_diversity_30d",
            sa.BigInteger(),
            nullable=True,
            comment="Distinct categories read in the last 30 days",
        ),
        sa.Column(
            "mobile_share_30d",
            sa.Float(),
            nullable=True,
            comment="Share of sessions on mobile, last 30 days; null without sessions",
        ),
        sa.Column(
            "weekend_share_30d",
            sa.Float(),
            nullable=True,
            comment="Share of sessions on Saturday or Sunday, last 30 days; null without sessions",
        ),
        sa.Column(
            "morning_share_30d",
            sa.Float(),
            nullable=True,
            comment="Share of sessions starting 05:00-11:59 UTC, last 30 days; null without sessions",
        ),
        sa.Column(
            "days_since_last_visit",
            sa.Float(),
            nullable=True,
            comment="Days from the last session start to the snapshot; null if never visited",
        ),
        sa.Column("days_since_signup", sa.Float(), nullable=True, comment="Days from signup to the snapshot"),
        sa.Column("sessions_prev_7d", sa.BigInteger(), nullable=True, comment="Sessions 8-14 days before the snapshot"),
        sa.Column(
            "session_trend_7d",
            sa.Float(),
            nullable=True,
            comment="(sessions_7d - sessions_prev_7d) / max(sum, 1): -1 falling to +1 rising",
        ),
        sa.Column("is_subscriber", sa.BigInteger(), nullable=True, comment="1 if a paid subscriber at the snapshot"),
        sa.Column("paywall_hits_7d", sa.BigInteger(), nullable=True, comment="Paywall hits in the last 7 days"),
        sa.Column("paywall_hits_30d", sa.BigInteger(), nullable=True, comment="Paywall hits in the last 30 days"),
        sa.Column(
            "newsletter_subscriber",
            sa.BigInteger(),
            nullable=True,
            comment="1 if opted in to the newsletter at the snapshot",
        ),
        sa.Column(
            "country_code", sa.String(length=2), nullable=True, comment="Country of the reader (ISO 3166 alpha-2)"
        ),
        sa.Column(
            "primary_device", sa.String(length=20), nullable=True, comment="Device type the reader signed up with"
        ),
        sa.Column("brand_id", sa.BigInteger(), nullable=True, comment="Brand the reader belongs to"),
        sa.PrimaryKeyConstraint("user_id", "event_timestamp", name=op.f("pk_customer_user_features")),
    )
    with op.batch_alter_table("customer_user_features", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_user_features_event_timestamp"), ["event_timestamp"], unique=False
        )

    op.create_table(
        "device_types",
        sa.Column("device_type_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("device_type_id", name=op.f("pk_device_types")),
        sa.UniqueConstraint("name", name=op.f("uq_device_types_name")),
    )
    op.create_table(
        "editorial_article_features",
        sa.Column("article_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "event_timestamp",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="published_at, then published_at + 1h, 6h, 24h: each row holds what was known then",
        ),
        sa.Column("brand_id", sa.BigInteger(), nullable=True, comment="Brand that published the article"),
        sa.Column("author_id", sa.BigInteger(), nullable=True, comment="Author of the article"),
        sa.Column("category_id", sa.BigInteger(), nullable=True, comment="Category of the article"),
        sa.Column("word_count", sa.BigInteger(), nullable=True, comment="Length of the article in words"),
        sa.Column("is_premium", sa.BigInteger(), nullable=True, comment="1 if behind the paywall"),
        sa.Column("has_video", sa.BigInteger(), nullable=True, comment="1 if the article embeds a video"),
        sa.Column("image_count", sa.BigInteger(), nullable=True, comment="Number of images in the article"),
        sa.Column(
            "publish_hour", sa.BigInteger(), nullable=True, comment="Hour of day (UTC) the article was published"
        ),
        sa.Column(
            "published_at_epoch", sa.BigInteger(), nullable=True, comment="Publish time as seconds since 1970-01-01 UTC"
        ),
        sa.Column(
            "pageviews_1h",
            sa.BigInteger(),
            nullable=True,
            comment="Page views in the first hour; null until an hour has passed",
        ),
        sa.Column(
            "pageviews_6h",
            sa.BigInteger(),
            nullable=True,
            comment="Page views in the first 6 hours; null until 6 hours have passed",
        ),
        sa.Column(
            "pageviews_24h",
            sa.BigInteger(),
            nullable=True,
            comment="Page views in the first 24 hours; null until a day has passed",
        ),
        sa.Column(
            "engaged_minutes_24h",
            sa.Float(),
            nullable=True,
            comment="Engaged minutes in the first 24 hours; null until a day has passed",
        ),
        sa.Column(
            "shares_24h",
            sa.BigInteger(),
            nullable=True,
            comment="Shares in the first 24 hours; null until a day has passed",
        ),
        sa.Column(
            "early_hours_observed",
            sa.BigInteger(),
            nullable=True,
            comment="How many hours after publish this row was stamped (0, 1, 6, 24)",
        ),
        sa.PrimaryKeyConstraint("article_id", "event_timestamp", name=op.f("pk_editorial_article_features")),
    )
    op.create_table(
        "editorial_author_features",
        sa.Column("author_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "event_timestamp",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Snapshot time (00:00 UTC); every value uses only events before it",
        ),
        sa.Column(
            "articles_30d", sa.BigInteger(), nullable=True, comment="Articles the author published in the last 30 days"
        ),
        sa.Column(
            "author_pageviews_30d",
            sa.BigInteger(),
            nullable=True,
            comment="Page views of the author's articles in the last 30 days",
        ),
        sa.Column(
            "author_pageviews_per_article_30d",
            sa.Float(),
            nullable=True,
            comment="Page views per article published in the last 30 days; null without articles",
        ),
        sa.Column(
            "author_engaged_minutes_30d",
            sa.Float(),
            nullable=True,
            comment="Engaged minutes on the author's articles, last 30 days",
        ),
        sa.Column(
            "author_shares_30d",
            sa.BigInteger(),
            nullable=True,
            comment="Shares of the author's articles in the last 30 days",
        ),
        sa.PrimaryKeyConstraint("author_id", "event_timestamp", name=op.f("pk_editorial_author_features")),
    )
    op.create_table(
        "ml_alerts",
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=60), nullable=False),
        sa.Column("rule", sa.String(length=80), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_ml_alerts")),
        sa.UniqueConstraint("model_name", "rule", "created_at", name=op.f("uq_ml_alerts_model_name_rule_created_at")),
    )
    op.create_table(
        "ml_model_aliases",
        sa.Column("model_name", sa.String(length=60), nullable=False),
        sa.Column("alias", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "alias", name=op.f("pk_ml_model_aliases")),
    )
    op.create_table(
        "ml_model_monitoring",
        sa.Column(
            "monitor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_name", sa.String(length=60), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("feature", sa.String(length=120), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("monitor_id", name=op.f("pk_ml_model_monitoring")),
    )
    with op.batch_alter_table("ml_model_monitoring", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ml_model_monitoring_model_name_computed_at"), ["model_name", "computed_at"], unique=False
        )

    op.create_table(
        "ml_model_predictions",
        sa.Column(
            "prediction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_name", sa.String(length=60), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("label", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_ml_model_predictions")),
    )
    with op.batch_alter_table("ml_model_predictions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ml_model_predictions_entity_id_as_of"), ["entity_id", "as_of"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ml_model_predictions_model_name_as_of"), ["model_name", "as_of"], unique=False
        )

    op.create_table(
        "ml_model_registry",
        sa.Column("model_name", sa.String(length=60), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("feature_service", sa.String(length=80), nullable=False),
        sa.Column("feature_service_hash", sa.String(length=64), nullable=False),
        sa.Column("training_set_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(length=64), nullable=False),
        sa.Column("artifact_format", sa.String(length=20), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", name=op.f("pk_ml_model_registry")),
    )
    op.create_table(
        "ml_model_training_runs",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("model_name", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_ml_model_training_runs")),
    )
    with op.batch_alter_table("ml_model_training_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ml_model_training_runs_model_name_started_at"), ["model_name", "started_at"], unique=False
        )

    op.create_table(
        "authors",
        sa.Column("author_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("brand_id", sa.SmallInteger(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.brand_id"], name=op.f("fk_authors_brand_id_brands")),
        sa.PrimaryKeyConstraint("author_id", name=op.f("pk_authors")),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("brand_id", sa.SmallInteger(), nullable=False),
        sa.Column("signup_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("device_type_id", sa.SmallInteger(), nullable=False),
        sa.Column("subscription_tier", sa.String(length=10), server_default="free", nullable=False),
        sa.Column("subscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("newsletter_opt_in", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.brand_id"], name=op.f("fk_users_brand_id_brands")),
        sa.ForeignKeyConstraint(
            ["country_code"], ["countries.country_code"], name=op.f("fk_users_country_code_countries")
        ),
        sa.ForeignKeyConstraint(
            ["device_type_id"], ["device_types.device_type_id"], name=op.f("fk_users_device_type_id_device_types")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_brand_id_signup_at"), ["brand_id", "signup_at"], unique=False)

    op.create_table(
        "articles",
        sa.Column("article_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("brand_id", sa.SmallInteger(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.SmallInteger(), nullable=False),
        sa.Column("topic", sa.String(length=60), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("word_count", sa.Integer(), nullable=False),
        sa.Column("is_premium", sa.Boolean(), nullable=False),
        sa.Column("has_video", sa.Boolean(), nullable=False),
        sa.Column("image_count", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["authors.author_id"], name=op.f("fk_articles_author_id_authors")),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.brand_id"], name=op.f("fk_articles_brand_id_brands")),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.category_id"], name=op.f("fk_articles_category_id_categories")
        ),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_articles")),
    )
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_articles_author_id_published_at"), ["author_id", "published_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_articles_published_at"), ["published_at"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("session_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("brand_id", sa.SmallInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_type_id", sa.SmallInteger(), nullable=False),
        sa.Column("referrer", sa.String(length=20), nullable=False),
        sa.Column("page_views", sa.Integer(), nullable=False),
        sa.Column("engaged_seconds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.brand_id"], name=op.f("fk_sessions_brand_id_brands")),
        sa.ForeignKeyConstraint(
            ["device_type_id"], ["device_types.device_type_id"], name=op.f("fk_sessions_device_type_id_device_types")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_user_id_started_at"), ["user_id", "started_at"], unique=False)

    op.create_table(
        "article_daily_performance",
        sa.Column("article_id", sa.BigInteger(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("page_views", sa.Integer(), nullable=False),
        sa.Column("unique_readers", sa.Integer(), nullable=False),
        sa.Column("engaged_seconds", sa.BigInteger(), nullable=False),
        sa.Column("shares", sa.Integer(), nullable=False),
        sa.Column("comments", sa.Integer(), nullable=False),
        sa.Column("paywall_hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.article_id"], name=op.f("fk_article_daily_performance_article_id_articles")
        ),
        sa.PrimaryKeyConstraint("article_id", "date", name=op.f("pk_article_daily_performance")),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("article_id", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scroll_depth", sa.Float(), nullable=True),
        sa.Column("engaged_seconds", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["article_id"], ["articles.article_id"], name=op.f("fk_events_article_id_articles")),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.session_id"], name=op.f("fk_events_session_id_sessions")),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"], name=op.f("fk_events_user_id_users")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_article_id_event_at"), ["article_id", "event_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_event_at"), ["event_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_user_id_event_at"), ["user_id", "event_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_user_id_event_at"))
        batch_op.drop_index(batch_op.f("ix_events_event_at"))
        batch_op.drop_index(batch_op.f("ix_events_article_id_event_at"))

    op.drop_table("events")
    op.drop_table("article_daily_performance")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_user_id_started_at"))
        batch_op.drop_index(batch_op.f("ix_sessions_started_at"))

    op.drop_table("sessions")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_published_at"))
        batch_op.drop_index(batch_op.f("ix_articles_author_id_published_at"))

    op.drop_table("articles")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_brand_id_signup_at"))

    op.drop_table("users")
    op.drop_table("authors")
    with op.batch_alter_table("ml_model_training_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ml_model_training_runs_model_name_started_at"))

    op.drop_table("ml_model_training_runs")
    op.drop_table("ml_model_registry")
    with op.batch_alter_table("ml_model_predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ml_model_predictions_model_name_as_of"))
        batch_op.drop_index(batch_op.f("ix_ml_model_predictions_entity_id_as_of"))

    op.drop_table("ml_model_predictions")
    with op.batch_alter_table("ml_model_monitoring", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ml_model_monitoring_model_name_computed_at"))

    op.drop_table("ml_model_monitoring")
    op.drop_table("ml_model_aliases")
    op.drop_table("ml_alerts")
    op.drop_table("editorial_author_features")
    op.drop_table("editorial_article_features")
    op.drop_table("device_types")
    with op.batch_alter_table("customer_user_features", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_user_features_event_timestamp"))

    op.drop_table("customer_user_features")
    op.drop_table("countries")
    op.drop_table("categories")
    op.drop_table("brands")
