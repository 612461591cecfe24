"""Inbound federation transactions (helper fedin): federation_inbound_txns.

Revision ID: 0015_federation_inbound_txns
Revises: 0014_federation_sender
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0015_federation_inbound_txns"
down_revision = "0014_federation_sender"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_inbound_txns",
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("txn_id", sa.Text(), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "txn_id", name=op.f("pk_federation_inbound_txns")),
    )
    op.create_index(op.f("ix_federation_inbound_txns_received_ts"),
                    "federation_inbound_txns", ["received_ts"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_federation_inbound_txns_received_ts"),
                  table_name="federation_inbound_txns")
    op.drop_table("federation_inbound_txns")
