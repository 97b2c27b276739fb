"""impressions: what each reader was shown (slate, position, surface, time) and whether it was clicked

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "impressions",
        sa.Column(
            "impression_id",
            sa.BigInteger(),
            autoincrement=False,
            nullable=False,
            comment="The slate: every article shown to one reader at once shares it",
        ),
        sa.Column(
            "position", sa.SmallInteger(), autoincrement=False, nullable=False, comment="Slot in the slate, 1 = first"
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("article_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "surface", sa.String(20), nullable=False, comment="homepage, recommendation, section, newsletter or search"
        ),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clicked", sa.Boolean(), nullable=False, comment="The reader opened the article from this slate"),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"], name="fk_impressions_user_id_users"),
        sa.ForeignKeyConstraint(["article_id"], ["articles.article_id"], name="fk_impressions_article_id_articles"),
        sa.PrimaryKeyConstraint("impression_id", "position", name="pk_impressions"),
    )
    op.create_index("ix_impressions_user_id_shown_at", "impressions", ["user_id", "shown_at"])
    op.create_index("ix_impressions_article_id_shown_at", "impressions", ["article_id", "shown_at"])
    op.create_index("ix_impressions_shown_at", "impressions", ["shown_at"])


def downgrade() -> None:
    op.drop_table("impressions")
