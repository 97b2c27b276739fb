"""customer_user_segments: the segment each reader was assigned, for the user_segment feature view

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_user_segments",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "event_timestamp",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Snapshot time of the features the segment was assigned from (00:00 UTC)",
        ),
        sa.Column(
            "segment_name", sa.String(length=60), nullable=False, comment="The reader's segment, e.g. 'weekend reader'"
        ),
        sa.Column(
            "segment_model_version",
            sa.BigInteger(),
            nullable=False,
            comment="Version of the segmentation model that assigned it",
        ),
        sa.PrimaryKeyConstraint("user_id", "event_timestamp", name=op.f("pk_customer_user_segments")),
    )
    with op.batch_alter_table("customer_user_segments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_user_segments_event_timestamp"), ["event_timestamp"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_user_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_user_segments_event_timestamp"))
    op.drop_table("customer_user_segments")
