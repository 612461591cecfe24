"""Media repository: local media, remote media cache, blobs and thumbnails.

Revision ID: 0009_media
Revises: 0008_rooms
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0009_media"
down_revision = "0008_rooms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "local_media",
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("upload_name", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.Text(), nullable=True),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("last_access_ts", sa.BigInteger(), nullable=True),
        sa.Column("quarantined_by", sa.Text(), nullable=True),
        sa.Column("unused_expires_ts", sa.BigInteger(), nullable=True),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("media_id", name=op.f("pk_local_media")),
    )
    op.create_index(op.f("ix_local_media_user_id_created_ts"), "local_media",
                    ["user_id", "created_ts"])
    op.create_index(op.f("ix_local_media_sha256"), "local_media", ["sha256"])
    op.create_index(op.f("ix_local_media_unused_expires_ts"), "local_media",
                    ["unused_expires_ts"])
    op.create_table(
        "remote_media_cache",
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("upload_name", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("last_access_ts", sa.BigInteger(), nullable=True),
        sa.Column("quarantined_by", sa.Text(), nullable=True),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "media_id", name=op.f("pk_remote_media_cache")),
    )
    op.create_index(op.f("ix_remote_media_cache_sha256"), "remote_media_cache", ["sha256"])
    op.create_table(
        "media_blobs",
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("refcount", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_media_blobs")),
    )
    op.create_table(
        "media_thumbnails",
        sa.Column("source_sha256", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("animated", sa.Boolean(), nullable=False),
        sa.Column("thumbnail_sha256", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("thumbnail_width", sa.Integer(), nullable=False),
        sa.Column("thumbnail_height", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source_sha256", "width", "height", "method",
                                "content_type", "animated",
                                name=op.f("pk_media_thumbnails")),
    )


def downgrade() -> None:
    op.drop_table("media_thumbnails")
    op.drop_table("media_blobs")
    op.drop_index(op.f("ix_remote_media_cache_sha256"), table_name="remote_media_cache")
    op.drop_table("remote_media_cache")
    op.drop_index(op.f("ix_local_media_unused_expires_ts"), table_name="local_media")
    op.drop_index(op.f("ix_local_media_sha256"), table_name="local_media")
    op.drop_index(op.f("ix_local_media_user_id_created_ts"), table_name="local_media")
    op.drop_table("local_media")
