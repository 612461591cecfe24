"""Outbound federation sender: reader positions and per-destination progress.

Revision ID: 0014_federation_sender
Revises: 0013_remote_memberships
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0014_federation_sender"
down_revision = "0013_remote_memberships"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_sender_positions",
        sa.Column("stream_name", sa.Text(), nullable=False),
        sa.Column("pos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream_name", name=op.f("pk_federation_sender_positions")),
    )
    op.create_table(
        "federation_destinations",
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("room_stream_pos", sa.BigInteger(), nullable=False),
        sa.Column("outbox_pos", sa.BigInteger(), nullable=False),
        sa.Column("retry_last_ts", sa.BigInteger(), nullable=False),
        sa.Column("retry_interval_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("destination", name=op.f("pk_federation_destinations")),
    )


def downgrade() -> None:
    op.drop_table("federation_destinations")
    op.drop_table("federation_sender_positions")
