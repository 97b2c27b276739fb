"""Reader feature views over the daily snapshot table and the real-time activity push source.

TTLs: snapshots are written once a day, so a daily view's TTL is 2 days: one day of cadence
plus one of grace. A value older than that means the pipeline stopped, and a model should
see a null rather than silently stale behaviour. Real-time activity lives for one day: it
describes the current visit, not the reader.
"""

from datetime import timedelta

from data_sources import customer_user_features_source, reader_activity_push_source
from entities import user
from feast import FeatureView, Field
from feast.types import Int64
from fields import USER_SNAPSHOT, fields

OWNER = "customer-analytics@ownlens.example"
DAILY_TTL = timedelta(days=2)


def _daily_view(name: str, topic: str, description: str, *names: str) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[user],
        ttl=DAILY_TTL,
        schema=fields(USER_SNAPSHOT, *names),
        source=customer_user_features_source,
        online=True,
        description=description,
        owner=OWNER,
        tags={"domain": "customer", "topic": topic, "grain": "daily"},
    )


user_daily_engagement_fv = _daily_view(
    "user_daily_engagement",
    "engagement",
    "How much a reader reads: sessions, page views, minutes, active days",
    "sessions_1d",
    "sessions_7d",
    "sessions_30d",
    "pageviews_1d",
    "pageviews_7d",
    "pageviews_30d",
    "engaged_minutes_1d",
    "engaged_minutes_7d",
    "engaged_minutes_30d",
    "active_days_7d",
    "active_days_30d",
)
user_daily_behaviour_fv = _daily_view(
    "user_daily_behaviour",
    "behaviour",
    "How a reader reads: sharing, commenting, scrolling, breadth, device",
    "shares_30d",
    "comments_30d",
    "ad_clicks_30d",
    "avg_scroll_depth_30d",
    "category_diversity_30d",
    "mobile_share_30d",
)
user_daily_recency_fv = _daily_view(
    "user_daily_recency",
    "recency",
    "When a reader reads: recency, tenure, habits and the weekly trend",
    "days_since_last_visit",
    "days_since_signup",
    "sessions_prev_7d",
    "session_trend_7d",
    "weekend_share_30d",
    "morning_share_30d",
)
user_daily_subscription_fv = _daily_view(
    "user_daily_subscription",
    "subscription",
    "Subscription state, paywall pressure and newsletter",
    "is_subscriber",
    "paywall_hits_7d",
    "paywall_hits_30d",
    "newsletter_subscriber",
)
user_daily_habits_fv = _daily_view(
    "user_daily_habits",
    "habits",
    "A reader's long-run habits: 90-day totals, the paywall's share, and the last week against them",
    "sessions_90d",
    "pageviews_90d",
    "engaged_minutes_90d",
    "active_days_90d",
    "paywall_hits_90d",
    "paywall_share_90d",
    "visit_trend_7d",
    "dwell_trend_7d",
    "depth_trend_7d",
)
user_daily_geography_fv = _daily_view(
    "user_daily_geography",
    "geography",
    "Where and on what a reader reads",
    "country_code",
    "primary_device",
    "brand_id",
)

user_realtime_activity_fv = FeatureView(
    name="user_realtime_activity",
    entities=[user],
    ttl=timedelta(days=1),
    schema=[
        Field(name="last_article_id", dtype=Int64, description="Article of the reader's latest page view"),
        Field(name="last_engaged_seconds", dtype=Int64, description="Engaged seconds of that page view"),
    ],
    source=reader_activity_push_source,
    online=True,
    description="The reader's latest page view, pushed in real time by the tracking pipeline",
    owner=OWNER,
    tags={"domain": "customer", "topic": "activity", "grain": "event"},
)
