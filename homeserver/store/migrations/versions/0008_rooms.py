"""Erased users (rooms area): the erased_users table.

Revision ID: 0008_rooms
Revises: 0006_e2e_keys
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0008_rooms"
down_revision = "0006_e2e_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erased_users",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_erased_users")),
    )


def downgrade() -> None:
    op.drop_table("erased_users")
