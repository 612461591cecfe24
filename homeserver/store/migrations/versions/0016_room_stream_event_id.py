"""Index room_stream by event_id (helper fed14b): federation's GET /event names no
room, and the room of an event we hold in a timeline is found by this index.

Revision ID: 0016_room_stream_event_id
Revises: 0015_federation_inbound_txns
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016_room_stream_event_id"
down_revision = "0015_federation_inbound_txns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_room_stream_event_id"), "room_stream", ["event_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_room_stream_event_id"), table_name="room_stream")
