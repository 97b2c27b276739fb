"""Every snapshot column a feature view reads, typed and described once, per snapshot table.

The repository is imported by Feast, so it declares its fields itself rather than reading
the package's schema; tests/test_feature_repo.py checks that each type still matches the
column of the same name in ``ownlens_ml/db/schema.py``.
"""

from feast import Field
from feast.types import Float64, Int64, String

USER_SNAPSHOT = {  # table customer_user_features
    "sessions_1d": (Int64, "Sessions in the last day"),
    "sessions_7d": (Int64, "Sessions in the last 7 days"),
    "sessions_30d": (Int64, "Sessions in the last 30 days"),
    "pageviews_1d": (Int64, "Page views in the last day"),
    "pageviews_7d": (Int64, "Page views in the last 7 days"),
    "pageviews_30d": (Int64, "Page views in the last 30 days"),
    "engaged_minutes_1d": (Float64, "Engaged reading minutes in the last day"),
    "engaged_minutes_7d": (Float64, "Engaged reading minutes in the last 7 days"),
    "engaged_minutes_30d": (Float64, "Engaged reading minutes in the last 30 days"),
    "active_days_7d": (Int64, "Days with at least one session, last 7 days"),
    "active_days_30d": (Int64, "Days with at least one session, last 30 days"),
    "shares_30d": (Int64, "Article shares in the last 30 days"),
    "comments_30d": (Int64, "Comments in the last 30 days"),
    "ad_clicks_30d": (Int64, "Ad clicks in the last 30 days"),
    "avg_scroll_depth_30d": (Float64, "Mean scroll depth (0-1) of scroll events, last 30 days; null without scrolls"),
    "category_diversity_30d": (Int64, "Distinct categories read in the last 30 days"),
    "mobile_share_30d": (Float64, "Share of sessions on mobile, last 30 days; null without sessions"),
    "weekend_share_30d": (Float64, "Share of sessions on Saturday or Sunday, last 30 days; null without sessions"),
    "morning_share_30d": (Float64, "Share of sessions starting 05:00-11:59 UTC, last 30 days; null without sessions"),
    "days_since_last_visit": (Float64, "Days from the last session start to the snapshot; null if never visited"),
    "days_since_signup": (Float64, "Days from signup to the snapshot"),
    "sessions_prev_7d": (Int64, "Sessions 8-14 days before the snapshot"),
    "session_trend_7d": (Float64, "(sessions_7d - sessions_prev_7d) / max(sum, 1): -1 falling to +1 rising"),
    "is_subscriber": (Int64, "1 if a paid subscriber at the snapshot"),
    "paywall_hits_7d": (Int64, "Paywall hits in the last 7 days"),
    "paywall_hits_30d": (Int64, "Paywall hits in the last 30 days"),
    "sessions_90d": (Int64, "Sessions in the last 90 days"),
    "pageviews_90d": (Int64, "Page views in the last 90 days"),
    "engaged_minutes_90d": (Float64, "Engaged reading minutes in the last 90 days"),
    "active_days_90d": (Int64, "Days with at least one session, last 90 days"),
    "paywall_hits_90d": (Int64, "Paywall hits in the last 90 days"),
    "paywall_share_90d": (
        Float64,
        "Share of attempted reads (page views + paywall hits) stopped by the paywall, last 90 days; null without reads",
    ),
    "visit_trend_7d": (
        Float64,
        "Active days in the last 7 against the 90-day rate (1 = as usual); null without a visit in 90 days",
    ),
    "dwell_trend_7d": (
        Float64,
        "Engaged seconds per page view in the last 7 days against the 90-day mean (1 = as usual); null without page views",
    ),
    "depth_trend_7d": (
        Float64,
        "Attempted reads per session in the last 7 days against the 90-day mean (1 = as usual); null without sessions",
    ),
    "newsletter_subscriber": (Int64, "1 if opted in to the newsletter at the snapshot"),
    "country_code": (String, "Country of the reader (ISO 3166 alpha-2)"),
    "primary_device": (String, "Device type the reader signed up with"),
    "brand_id": (Int64, "Brand the reader belongs to"),
}

ARTICLE_SNAPSHOT = {  # table editorial_article_features
    "brand_id": (Int64, "Brand that published the article"),
    "author_id": (Int64, "Author of the article"),
    "category_id": (Int64, "Category of the article"),
    "word_count": (Int64, "Length of the article in words"),
    "is_premium": (Int64, "1 if behind the paywall"),
    "has_video": (Int64, "1 if the article embeds a video"),
    "image_count": (Int64, "Number of images in the article"),
    "publish_hour": (Int64, "Hour of day (UTC) the article was published"),
    "published_at_epoch": (Int64, "Publish time as seconds since 1970-01-01 UTC"),
    "pageviews_1h": (Int64, "Page views in the first hour; null until an hour has passed"),
    "pageviews_6h": (Int64, "Page views in the first 6 hours; null until 6 hours have passed"),
    "pageviews_24h": (Int64, "Page views in the first 24 hours; null until a day has passed"),
    "engaged_minutes_24h": (Float64, "Engaged minutes in the first 24 hours; null until a day has passed"),
    "shares_24h": (Int64, "Shares in the first 24 hours; null until a day has passed"),
    "early_hours_observed": (Int64, "How many hours after publish this row was stamped (0, 1, 6, 24)"),
}

AUTHOR_SNAPSHOT = {  # table editorial_author_features
    "articles_30d": (Int64, "Articles the author published in the last 30 days"),
    "author_pageviews_30d": (Int64, "Page views of the author's articles in the last 30 days"),
    "author_pageviews_per_article_30d": (
        Float64,
        "Page views per article published in the last 30 days; null without articles",
    ),
    "author_engaged_minutes_30d": (Float64, "Engaged minutes on the author's articles, last 30 days"),
    "author_shares_30d": (Int64, "Shares of the author's articles in the last 30 days"),
}


def fields(table: dict, *names: str) -> list[Field]:
    """Fields for the named columns of one snapshot table (e.g. ``USER_SNAPSHOT``), in the order given."""
    return [Field(name=name, dtype=table[name][0], description=table[name][1]) for name in names]
