"""Push: users' push rule changes, notifications (event_push_actions), pushers and
the evaluation's progress per room.

Revision ID: 0005_push
Revises: 0004_no_event_transactions
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0005_push"
down_revision = "0004_no_event_transactions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_push_rules",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_push_rules")),
    )
    op.create_table(
        "event_push_actions",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("room_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("stream_pos", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("highlight", sa.Boolean(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", "room_seq",
                                name=op.f("pk_event_push_actions")),
    )
    op.create_index(op.f("ix_event_push_actions_user_id_stream_pos"), "event_push_actions",
                    ["user_id", "stream_pos"])
    op.create_table(
        "pushers",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("pushkey", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("app_display_name", sa.Text(), nullable=False),
        sa.Column("device_display_name", sa.Text(), nullable=False),
        sa.Column("profile_tag", sa.Text(), nullable=True),
        sa.Column("lang", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("pushkey_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "app_id", "pushkey", name=op.f("pk_pushers")),
    )
    op.create_index(op.f("ix_pushers_app_id_pushkey"), "pushers", ["app_id", "pushkey"])
    op.create_table(
        "push_progress",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("room_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_push_progress")),
    )


def downgrade() -> None:
    op.drop_table("push_progress")
    op.drop_index(op.f("ix_pushers_app_id_pushkey"), table_name="pushers")
    op.drop_table("pushers")
    op.drop_index(op.f("ix_event_push_actions_user_id_stream_pos"),
                  table_name="event_push_actions")
    op.drop_table("event_push_actions")
    op.drop_table("user_push_rules")
