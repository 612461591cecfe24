"""End-to-end encryption plumbing: device, one-time and fallback keys, cross-signing
keys and signatures, server-side key backups, and the federation outbox (with its
stream position).

Revision ID: 0006_e2e_keys
Revises: 0005_push
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = "0006_e2e_keys"
down_revision = "0005_push"
branch_labels = None
depends_on = None

OUTBOX_STREAM = "federation_outbox"
_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "e2e_device_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", name=op.f("pk_e2e_device_keys")),
    )
    op.create_table(
        "e2e_one_time_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", "algorithm", "key_id",
                                name=op.f("pk_e2e_one_time_keys")),
    )
    op.create_table(
        "e2e_fallback_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", "algorithm",
                                name=op.f("pk_e2e_fallback_keys")),
    )
    op.create_table(
        "e2e_cross_signing_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key_type", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "key_type",
                                name=op.f("pk_e2e_cross_signing_keys")),
    )
    op.create_table(
        "e2e_cross_signing_signatures",
        sa.Column("signer_user_id", sa.Text(), nullable=False),
        sa.Column("signer_key_id", sa.Text(), nullable=False),
        sa.Column("target_user_id", sa.Text(), nullable=False),
        sa.Column("target_key_id", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("signer_user_id", "signer_key_id", "target_user_id",
                                "target_key_id",
                                name=op.f("pk_e2e_cross_signing_signatures")),
    )
    op.create_index(op.f("ix_e2e_cross_signing_signatures_target_user_id_target_key_id"),
                    "e2e_cross_signing_signatures", ["target_user_id", "target_key_id"])
    op.create_table(
        "room_key_backup_versions",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("auth_data", sa.Text(), nullable=False),
        sa.Column("etag", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "version",
                                name=op.f("pk_room_key_backup_versions")),
    )
    op.create_table(
        "room_key_backup_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("first_message_index", sa.BigInteger(), nullable=False),
        sa.Column("forwarded_count", sa.BigInteger(), nullable=False),
        sa.Column("is_verified", sa.Boolean(), nullable=False),
        sa.Column("session_data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "version", "room_id", "session_id",
                                name=op.f("pk_room_key_backup_keys")),
    )
    op.create_table(
        "federation_outbox",
        sa.Column("pos", _POSITION, autoincrement=True, nullable=False),
        sa.Column("edu_type", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pos", name=op.f("pk_federation_outbox")),
        sqlite_autoincrement=True,
    )
    positions = sa.table("stream_positions", sa.column("stream_name", sa.Text),
                         sa.column("pos", sa.BigInteger))
    op.bulk_insert(positions, [{"stream_name": OUTBOX_STREAM, "pos": 0}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM stream_positions WHERE stream_name = :s")
               .bindparams(s=OUTBOX_STREAM))
    op.drop_table("federation_outbox")
    op.drop_table("room_key_backup_keys")
    op.drop_table("room_key_backup_versions")
    op.drop_index(op.f("ix_e2e_cross_signing_signatures_target_user_id_target_key_id"),
                  table_name="e2e_cross_signing_signatures")
    op.drop_table("e2e_cross_signing_signatures")
    op.drop_table("e2e_cross_signing_keys")
    op.drop_table("e2e_fallback_keys")
    op.drop_table("e2e_one_time_keys")
    op.drop_table("e2e_device_keys")
