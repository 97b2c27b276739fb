"""On-demand views: values computed at request time from stored features (and the request).

Python mode, so online requests pay no pandas conversion; inputs are lists, one per value.
Output fields are described in the view's description: Feast 0.67 checks declared fields
against fields inferred from a sample run, and the inferred ones carry no description.
"""

from typing import Any

from customer_features import user_daily_engagement_fv, user_daily_subscription_fv
from editorial_features import article_early_performance_fv, article_publish_content_fv
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

prediction_request = RequestSource(
    name="prediction_request",
    schema=[
        Field(
            name="request_time_epoch",
            dtype=Int64,
            description="When the prediction is asked for, seconds since 1970-01-01 UTC",
        )
    ],
    description="Values the caller sends with each request",
)


@on_demand_feature_view(
    sources=[user_daily_engagement_fv, user_daily_subscription_fv],
    schema=[
        Field(name="pageviews_per_session_30d", dtype=Float64),
        Field(name="minutes_per_session_30d", dtype=Float64),
        Field(name="paywall_hits_per_pageview_30d", dtype=Float64),
        Field(name="sessions_7d_share_of_30d", dtype=Float64),
    ],
    mode="python",
    description=(
        "Per-session intensity and paywall pressure, last 30 days: page views and engaged minutes "
        "per session, paywall hits per page view, and the share of the month's sessions in the last week"
    ),
    owner="customer-analytics@ownlens.example",
    tags={"domain": "customer", "topic": "ratios"},
)
def user_engagement_ratios(inputs: dict[str, Any]) -> dict[str, Any]:
    # Feast runs the function from its source text, so helpers must live inside it.
    def _ratio(num, den, scale=1.0):
        return [None if n is None or not d else scale * n / d for n, d in zip(num, den)]

    sessions = inputs["sessions_30d"]
    return {
        "pageviews_per_session_30d": _ratio(inputs["pageviews_30d"], sessions),
        "minutes_per_session_30d": _ratio(inputs["engaged_minutes_30d"], sessions),
        "paywall_hits_per_pageview_30d": _ratio(inputs["paywall_hits_30d"], inputs["pageviews_30d"]),
        "sessions_7d_share_of_30d": _ratio(inputs["sessions_7d"], sessions),
    }


@on_demand_feature_view(
    # Only the publish time of the content view: Feast fetches every source feature for an
    # on-demand view, and the view's author_id would collide with the author join key.
    sources=[article_publish_content_fv[["published_at_epoch"]], article_early_performance_fv, prediction_request],
    schema=[
        Field(name="hours_since_publish", dtype=Float64),
        Field(name="shares_per_1k_pageviews_24h", dtype=Float64),
        Field(name="pageview_growth_6h_to_24h", dtype=Float64),
    ],
    mode="python",
    description=(
        "Hours from publish to the request, shares per 1,000 page views in the first day, "
        "and page views at 24h over page views at 6h"
    ),
    owner="editorial-analytics@ownlens.example",
    tags={"domain": "editorial", "topic": "ratios"},
)
def article_request_context(inputs: dict[str, Any]) -> dict[str, Any]:
    def _ratio(num, den, scale=1.0):
        return [None if n is None or not d else scale * n / d for n, d in zip(num, den)]

    return {
        "hours_since_publish": [
            None if p is None or r is None else (r - p) / 3600.0
            for r, p in zip(inputs["request_time_epoch"], inputs["published_at_epoch"])
        ],
        "shares_per_1k_pageviews_24h": _ratio(inputs["shares_24h"], inputs["pageviews_24h"], 1000.0),
        "pageview_growth_6h_to_24h": _ratio(inputs["pageviews_24h"], inputs["pageviews_6h"]),
    }
