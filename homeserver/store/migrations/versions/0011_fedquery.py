"""Federation queries: remote users' device lists and OpenID tokens.

Revision ID: 0011_fedquery
Revises: 0010_media_admin
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0011_fedquery"
down_revision = "0010_media_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remote_device_lists",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("devices", sa.Text(), nullable=False),
        sa.Column("master_key", sa.Text(), nullable=True),
        sa.Column("self_signing_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_remote_device_lists")),
    )
    op.create_table(
        "openid_tokens",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("expires_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_openid_tokens")),
    )
    op.create_index(op.f("ix_openid_tokens_expires_ts"), "openid_tokens", ["expires_ts"])


def downgrade() -> None:
    op.drop_index(op.f("ix_openid_tokens_expires_ts"), table_name="openid_tokens")
    op.drop_table("openid_tokens")
    op.drop_table("remote_device_lists")
