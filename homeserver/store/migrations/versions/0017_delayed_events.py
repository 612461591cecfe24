"""Delayed events (helper rtcsig, MSC4140): delayed_events.

Revision ID: 0017_delayed_events
Revises: 0016_room_stream_event_id
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0017_delayed_events"
down_revision = "0016_room_stream_event_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delayed_events",
        sa.Column("delay_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("state_key", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("delay_ms", sa.BigInteger(), nullable=False),
        sa.Column("scheduled_at", sa.BigInteger(), nullable=False),
        sa.Column("send_ts", sa.BigInteger(), nullable=False),
        sa.Column("txn_key", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("finalised_ts", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("delay_id", name=op.f("pk_delayed_events")),
        sa.UniqueConstraint("user_id", "txn_key", name=op.f("uq_delayed_events_user_id_txn_key")),
    )
    op.create_index(op.f("ix_delayed_events_outcome_send_ts"), "delayed_events",
                    ["outcome", "send_ts"], unique=False)
    op.create_index(op.f("ix_delayed_events_user_id_outcome_send_ts"), "delayed_events",
                    ["user_id", "outcome", "send_ts"], unique=False)
    op.create_index(op.f("ix_delayed_events_room_id_event_type_state_key"), "delayed_events",
                    ["room_id", "event_type", "state_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_delayed_events_room_id_event_type_state_key"),
                  table_name="delayed_events")
    op.drop_index(op.f("ix_delayed_events_user_id_outcome_send_ts"), table_name="delayed_events")
    op.drop_index(op.f("ix_delayed_events_outcome_send_ts"), table_name="delayed_events")
    op.drop_table("delayed_events")
