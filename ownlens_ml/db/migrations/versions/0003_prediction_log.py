"""predictions: composite entity keys, whole outputs (top-k lists, segments), served features, batch ids

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COMMENTS = {
    "entity_key": 'Join keys as canonical JSON text, e.g. {"user_id":7}: composite keys fit and it can be part of a unique key',
    "entity_id": "The id when the model has one join key (for joins and the index)",
    "as_of": "The moment the features describe: the request time online, the as-of date in a batch",
    "score": "The headline number (probability, prediction); null for top-k lists and segments",
    "output": "The whole answer: score and flags, a top-k list, a segment name",
    "features": "Feature values served online; null in batch rows (the offline store reproduces them at as_of)",
    "source": "online or batch",
    "batch_id": "Batch scoring key: model, version and as-of",
}


def upgrade() -> None:
    with op.batch_alter_table("ml_model_predictions", schema=None) as batch_op:
        # Rows written before this revision had one join key; their name is unknown here.
        batch_op.add_column(
            sa.Column("entity_key", sa.String(length=200), nullable=True, comment=COMMENTS["entity_key"])
        )
        batch_op.add_column(sa.Column("output", sa.JSON(), nullable=True, comment=COMMENTS["output"]))
        batch_op.add_column(sa.Column("features", sa.JSON(), nullable=True, comment=COMMENTS["features"]))
        batch_op.add_column(
            sa.Column(
                "source", sa.String(length=10), server_default="online", nullable=False, comment=COMMENTS["source"]
            )
        )
        batch_op.add_column(sa.Column("batch_id", sa.String(length=120), nullable=True, comment=COMMENTS["batch_id"]))
    op.execute("UPDATE ml_model_predictions SET entity_key = '{\"entity_id\":' || entity_id || '}'")
    with op.batch_alter_table("ml_model_predictions", schema=None) as batch_op:
        batch_op.alter_column(
            "entity_key", existing_type=sa.String(length=200), nullable=False, existing_comment=COMMENTS["entity_key"]
        )
        batch_op.alter_column("entity_id", existing_type=sa.BigInteger(), nullable=True, comment=COMMENTS["entity_id"])
        batch_op.alter_column("score", existing_type=sa.Float(), nullable=True, comment=COMMENTS["score"])
        batch_op.alter_column("as_of", existing_type=sa.DateTime(timezone=True), comment=COMMENTS["as_of"])
        batch_op.create_unique_constraint(
            batch_op.f("uq_ml_model_predictions_batch_id_entity_key"), ["batch_id", "entity_key"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM ml_model_predictions WHERE entity_id IS NULL OR score IS NULL")
    with op.batch_alter_table("ml_model_predictions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_ml_model_predictions_batch_id_entity_key"), type_="unique")
        batch_op.alter_column("score", existing_type=sa.Float(), nullable=False, comment=None)
        batch_op.alter_column("entity_id", existing_type=sa.BigInteger(), nullable=False, comment=None)
        batch_op.alter_column("as_of", existing_type=sa.DateTime(timezone=True), comment=None)
        batch_op.drop_column("batch_id")
        batch_op.drop_column("source")
        batch_op.drop_column("features")
        batch_op.drop_column("output")
        batch_op.drop_column("entity_key")
