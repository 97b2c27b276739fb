"""registry: model versions are immutable (a trigger refuses UPDATE of ml_model_registry)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:00:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MESSAGE = "model versions are immutable; register a new version instead of updating one"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE OR REPLACE FUNCTION ml_model_registry_immutable() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% (% v%)', '{MESSAGE}', OLD.model_name, OLD.version
                    USING ERRCODE = 'restrict_violation';
            END
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER ml_model_registry_immutable BEFORE UPDATE ON ml_model_registry
            FOR EACH ROW EXECUTE FUNCTION ml_model_registry_immutable()
        """)
    else:
        op.execute(f"""
            CREATE TRIGGER ml_model_registry_immutable BEFORE UPDATE ON ml_model_registry
            BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
        """)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS ml_model_registry_immutable"
        + (" ON ml_model_registry" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ml_model_registry_immutable()")
