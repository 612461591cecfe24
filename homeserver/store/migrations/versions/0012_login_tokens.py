"""Login tokens for POST /login/get_token and m.login.token (spec v1.7, MSC3882).

Revision ID: 0012_login_tokens
Revises: 0011_fedquery
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0012_login_tokens"
down_revision = "0011_fedquery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_tokens",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("expires_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_login_tokens")),
    )
    op.create_index(op.f("ix_login_tokens_expires_ts"), "login_tokens", ["expires_ts"])


def downgrade() -> None:
    op.drop_index(op.f("ix_login_tokens_expires_ts"), table_name="login_tokens")
    op.drop_table("login_tokens")
