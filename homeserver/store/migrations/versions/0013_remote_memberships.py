"""Memberships of local users in rooms this server does not hold (federation joins
lane): the remote_memberships table.

Revision ID: 0013_remote_memberships
Revises: 0012_login_tokens
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0013_remote_memberships"
down_revision = "0012_login_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remote_memberships",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("membership", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("room_version", sa.Text(), nullable=False),
        sa.Column("event_json", sa.Text(), nullable=False),
        sa.Column("stripped_state_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_memberships")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_remote_memberships_user_id_room_id"), "remote_memberships",
                    ["user_id", "room_id"])
    op.create_index(op.f("ix_remote_memberships_event_id"), "remote_memberships",
                    ["event_id"])


def downgrade() -> None:
    op.drop_table("remote_memberships")
