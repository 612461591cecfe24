"""Reporting content (search, relations, directory area): the event_reports table.

Revision ID: 0003_reports
Revises: 0002_rooms
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0003_reports"
down_revision = "0002_rooms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=True),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("target_user_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_reports")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_event_reports_room_id_event_id"), "event_reports",
                    ["room_id", "event_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_event_reports_room_id_event_id"), table_name="event_reports")
    op.drop_table("event_reports")
