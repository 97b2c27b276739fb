"""customer_user_features: the reader's 90-day habits and the last week against them (conversion_v2)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (
    ("sessions_90d", sa.BigInteger(), "Sessions in the last 90 days"),
    ("pageviews_90d", sa.BigInteger(), "Page views in the last 90 days"),
    ("engaged_minutes_90d", sa.Float(), "Engaged reading minutes in the last 90 days"),
    ("active_days_90d", sa.BigInteger(), "Days with at least one session, last 90 days"),
    ("paywall_hits_90d", sa.BigInteger(), "Paywall hits in the last 90 days"),
    (
        "paywall_share_90d",
        sa.Float(),
        "Share of attempted reads (page views + paywall hits) stopped by the paywall, last 90 days; null without reads",
    ),
    (
        "visit_trend_7d",
        sa.Float(),
        "Active days in the last 7 against the 90-day rate (1 = as usual); null without a visit in 90 days",
    ),
    (
        "dwell_trend_7d",
        sa.Float(),
        "Engaged seconds per page view in the last 7 days against the 90-day mean (1 = as usual); null without page views",
    ),
    (
        "depth_trend_7d",
        sa.Float(),
        "Attempted reads per session in the last 7 days against the 90-day mean (1 = as usual); null without sessions",
    ),
)


def upgrade() -> None:
    with op.batch_alter_table("customer_user_features", schema=None) as batch_op:
        for name, type_, comment in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True, comment=comment))


def downgrade() -> None:
    with op.batch_alter_table("customer_user_features", schema=None) as batch_op:
        for name, _, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
