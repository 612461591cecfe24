"""Drop event_transactions: a sync's ``unsigned.transaction_id`` now comes from the
room's own DB (its ``event_txns``, written with each event), not a global reverse table.

Revision ID: 0004_no_event_transactions
Revises: 0003_reports
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0004_no_event_transactions"
down_revision = "0003_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_event_transactions_created_ts"), table_name="event_transactions")
    op.drop_table("event_transactions")


def downgrade() -> None:
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
