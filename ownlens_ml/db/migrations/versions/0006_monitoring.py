"""monitoring: reference profiles beside each version; threshold and status on measurements; alert dedup

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 20:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MESSAGE = "reference profiles are immutable, like the version they describe"
MONITORING = (
    ("threshold", sa.Float(), "The value the measurement is judged against (sample-size aware where a test has one)"),
    ("status", sa.String(16), "ok, alert, notice (significant but below the effect floor), too_few_rows or pending"),
)
ALERTS = (
    ("metric", sa.String(40), None),
    ("feature", sa.String(120), None),
    ("status", sa.String(10), "open or resolved"),
    ("last_seen_at", sa.DateTime(timezone=True), "The newest run that still saw the condition"),
    ("notified_at", sa.DateTime(timezone=True), "When the webhook accepted it; null: not yet delivered"),
    ("notify_attempts", sa.Integer(), "Failed webhook deliveries so far"),
    ("notify_wait", sa.Integer(), "Monitoring runs to skip before the next delivery attempt (backoff)"),
)


def upgrade() -> None:
    op.create_table(
        "ml_reference_profiles",
        sa.Column("model_name", sa.String(60), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(12), nullable=False, comment="training (written at registration) or lineage"),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", name="pk_ml_reference_profiles"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE OR REPLACE FUNCTION ml_reference_profiles_immutable() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% (% v%)', '{MESSAGE}', OLD.model_name, OLD.version
                    USING ERRCODE = 'restrict_violation';
            END
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER ml_reference_profiles_immutable BEFORE UPDATE ON ml_reference_profiles
            FOR EACH ROW EXECUTE FUNCTION ml_reference_profiles_immutable()
        """)
    else:
        op.execute(f"""
            CREATE TRIGGER ml_reference_profiles_immutable BEFORE UPDATE ON ml_reference_profiles
            BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
        """)
    with op.batch_alter_table("ml_model_monitoring", schema=None) as batch_op:
        for name, type_, comment in MONITORING:
            batch_op.add_column(sa.Column(name, type_, nullable=True, comment=comment))
    with op.batch_alter_table("ml_alerts", schema=None) as batch_op:
        for name, type_, comment in ALERTS:
            batch_op.add_column(sa.Column(name, type_, nullable=True, comment=comment))
        # one run raises several alerts of one rule (a feature each) at the same moment
        batch_op.drop_constraint("uq_ml_alerts_model_name_rule_created_at", type_="unique")
        batch_op.create_index("ix_ml_alerts_model_name_status", ["model_name", "status"])


def downgrade() -> None:
    with op.batch_alter_table("ml_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_ml_alerts_model_name_status")
        batch_op.create_unique_constraint(
            "uq_ml_alerts_model_name_rule_created_at", ["model_name", "rule", "created_at"]
        )
        for name, _, _ in reversed(ALERTS):
            batch_op.drop_column(name)
    with op.batch_alter_table("ml_model_monitoring", schema=None) as batch_op:
        for name, _, _ in reversed(MONITORING):
            batch_op.drop_column(name)
    op.execute(
        "DROP TRIGGER IF EXISTS ml_reference_profiles_immutable"
        + (" ON ml_reference_profiles" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ml_reference_profiles_immutable()")
    op.drop_table("ml_reference_profiles")
