"""Article and author feature views.

TTLs: an article's content never changes after publish, so its view keeps a value for a
year (older articles are not scored). Early performance is final 24 hours after publish and
is used for a month of predictions. Author track records are daily snapshots: 2 days, one
of cadence and one of grace, as for readers.
"""

from datetime import timedelta

from data_sources import editorial_article_features_source, editorial_author_features_source
from entities import article, author
from feast import FeatureView
from fields import ARTICLE_SNAPSHOT, AUTHOR_SNAPSHOT, fields

OWNER = "editorial-analytics@ownlens.example"

article_publish_content_fv = FeatureView(
    name="article_publish_content",
    entities=[article],
    ttl=timedelta(days=365),
    schema=fields(
        ARTICLE_SNAPSHOT,
        "brand_id",
        "author_id",
        "category_id",
        "word_count",
        "is_premium",
        "has_video",
        "image_count",
        "publish_hour",
        "published_at_epoch",
    ),
    source=editorial_article_features_source,
    description="What an article is: brand, author, category, length, premium, media, publish time",
    owner=OWNER,
    tags={"domain": "editorial", "topic": "content", "grain": "publish"},
)

article_early_performance_fv = FeatureView(
    name="article_early_performance",
    entities=[article],
    ttl=timedelta(days=30),
    schema=fields(
        ARTICLE_SNAPSHOT,
        "pageviews_1h",
        "pageviews_6h",
        "pageviews_24h",
        "engaged_minutes_24h",
        "shares_24h",
        "early_hours_observed",
    ),
    source=editorial_article_features_source,
    description="Page views, minutes and shares in an article's first hour, 6 hours and day",
    owner=OWNER,
    tags={"domain": "editorial", "topic": "performance", "grain": "early-hours"},
)

author_daily_track_record_fv = FeatureView(
    name="author_daily_track_record",
    entities=[author],
    ttl=timedelta(days=2),
    schema=fields(
        AUTHOR_SNAPSHOT,
        "articles_30d",
        "author_pageviews_30d",
        "author_pageviews_per_article_30d",
        "author_engaged_minutes_30d",
        "author_shares_30d",
    ),
    source=editorial_author_features_source,
    description="An author's output and audience over the trailing 30 days",
    owner=OWNER,
    tags={"domain": "editorial", "topic": "track-record", "grain": "daily"},
)
