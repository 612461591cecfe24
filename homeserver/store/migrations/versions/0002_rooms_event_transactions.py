"""Rooms (client API): event_id → client transaction, for unsigned.transaction_id.

Revision ID: 0002_rooms
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0002_rooms"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_transactions",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("txn_id", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_transactions")),
    )
    op.create_index(op.f("ix_event_transactions_created_ts"), "event_transactions",
                    ["created_ts"])


def downgrade() -> None:
    op.drop_index(op.f("ix_event_transactions_created_ts"), table_name="event_transactions")
    op.drop_table("event_transactions")
