"""One feature service per model version: a model names exactly the features it was trained
on. A change of a model's inputs is a new ``_vN``; old versions stay reproducible."""

from customer_features import (
    user_daily_behaviour_fv,
    user_daily_engagement_fv,
    user_daily_geography_fv,
    user_daily_habits_fv,
    user_daily_recency_fv,
    user_daily_subscription_fv,
    user_realtime_activity_fv,
)
from editorial_features import article_early_performance_fv, article_publish_content_fv, author_daily_track_record_fv
from feast import FeatureService
from on_demand_features import article_request_context, user_engagement_ratios

churn_v1 = FeatureService(
    name="churn_v1",
    features=[
        user_daily_engagement_fv,
        user_daily_behaviour_fv,
        user_daily_recency_fv,
        user_daily_subscription_fv,
        user_engagement_ratios,
    ],
    description="Will an active reader stop visiting for 30 days?",
    owner="customer-analytics@ownlens.example",
    tags={"model": "churn"},
)


def _conversion_inputs(*extra) -> list:
    """conversion_v1's views, with ``extra`` views before the on-demand ratios (the column order models saw)."""
    return [
        user_daily_engagement_fv,
        user_daily_recency_fv,
        user_daily_subscription_fv,
        user_daily_behaviour_fv[["shares_30d", "comments_30d", "category_diversity_30d"]],
        *extra,
        user_engagement_ratios,
    ]


conversion_v1 = FeatureService(
    name="conversion_v1",
    features=_conversion_inputs(),
    description="Will a free reader subscribe within 14 days?",
    owner="customer-analytics@ownlens.example",
    tags={"model": "conversion"},
)

conversion_v2 = FeatureService(
    name="conversion_v2",
    features=_conversion_inputs(user_daily_habits_fv),
    description="Will a free reader subscribe within 14 days? conversion_v1 and the reader's 90-day habits",
    owner="customer-analytics@ownlens.example",
    tags={"model": "conversion"},
)

engagement_v1 = FeatureService(
    name="engagement_v1",
    features=[
        user_daily_engagement_fv,
        user_daily_behaviour_fv,
        user_daily_recency_fv,
        user_daily_subscription_fv,
        user_daily_habits_fv,
        user_engagement_ratios,
    ],
    description="How many engaged minutes will an active reader read in the next 7 days?",
    owner="customer-analytics@ownlens.example",
    tags={"model": "engagement"},
)

segmentation_v1 = FeatureService(
    name="segmentation_v1",
    features=[
        user_daily_engagement_fv[["sessions_30d", "pageviews_30d", "engaged_minutes_30d", "active_days_30d"]],
        user_daily_behaviour_fv,
        user_daily_recency_fv[["weekend_share_30d", "morning_share_30d"]],
        user_daily_subscription_fv[["newsletter_subscriber"]],
        user_engagement_ratios,
    ],
    description="Reader habits that define interpretable segments",
    owner="customer-analytics@ownlens.example",
    tags={"model": "segmentation"},
)

recommendation_v1 = FeatureService(
    name="recommendation_v1",
    features=[
        user_realtime_activity_fv,
        user_daily_geography_fv[["brand_id"]],
        user_daily_engagement_fv[["pageviews_30d"]],
    ],
    description="What the recommender needs at request time: the latest read, the brand, activity level",
    owner="customer-analytics@ownlens.example",
    tags={"model": "recommendation"},
)

article_performance_v1 = FeatureService(
    name="article_performance_v1",
    # author_id is the author entity's join key and so already a column of the entity frame;
    # requested as a feature too, Feast's PostgreSQL store fails with AmbiguousColumn.
    features=[
        article_publish_content_fv[[f.name for f in article_publish_content_fv.features if f.name != "author_id"]],
        article_early_performance_fv,
        author_daily_track_record_fv,
        article_request_context,
    ],
    description="How many readers will an article reach in its first week, from its first day?",
    owner="editorial-analytics@ownlens.example",
    tags={"model": "article_performance"},
)

recommendation_articles_v1 = FeatureService(
    name="recommendation_articles_v1",
    features=[article_publish_content_fv[["brand_id", "category_id", "is_premium", "published_at_epoch"]]],
    description="What the recommender knows of an article when it trains: brand (the brand filter), category, "
    "premium, publish time (the age filter and the recency prior)",
    owner="customer-analytics@ownlens.example",
    tags={"model": "recommendation"},
)
