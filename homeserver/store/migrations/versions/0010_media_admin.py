"""Media administration: local media an admin protected from quarantine (Synapse's
``safe_from_quarantine``).

Revision ID: 0010_media_admin
Revises: 0009_media
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0010_media_admin"
down_revision = "0009_media"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("local_media") as batch:
        batch.add_column(sa.Column("safe_from_quarantine", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_index(op.f("ix_local_media_last_access_ts"), "local_media",
                    ["last_access_ts"])
    op.create_index(op.f("ix_remote_media_cache_last_access_ts"), "remote_media_cache",
                    ["last_access_ts"])


def downgrade() -> None:
    op.drop_index(op.f("ix_remote_media_cache_last_access_ts"),
                  table_name="remote_media_cache")
    op.drop_index(op.f("ix_local_media_last_access_ts"), table_name="local_media")
    with op.batch_alter_table("local_media") as batch:
        batch.drop_column("safe_from_quarantine")
