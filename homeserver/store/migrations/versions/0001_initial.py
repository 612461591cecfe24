"""Initial schema of the global database.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Frozen: later changes go in new revisions. JSON columns are plain TEXT here (the
application's JsonText type stores compact JSON text). Position columns are BIGSERIAL
on PostgreSQL and INTEGER PRIMARY KEY AUTOINCREMENT on SQLite.
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STREAMS = ("room", "account_data", "receipts", "presence", "to_device", "device_lists")


def _position() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # -- stream positions -----------------------------------------------------------
    positions = op.create_table(
        "stream_positions",
        sa.Column("stream_name", sa.Text(), nullable=False),
        sa.Column("pos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream_name", name=op.f("pk_stream_positions")),
    )
    op.bulk_insert(positions, [{"stream_name": s, "pos": 0} for s in STREAMS])

    # -- accounts -------------------------------------------------------------------
    op.create_table(
        "users",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("is_guest", sa.Boolean(), nullable=False),
        sa.Column("deactivated", sa.Boolean(), nullable=False),
        sa.Column("user_type", sa.Text(), nullable=True),
        sa.Column("consent_version", sa.Text(), nullable=True),
        sa.Column("consent_ts", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    op.create_table(
        "profiles",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("displayname", sa.Text(), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"],
                                name=op.f("fk_profiles_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_profiles")),
    )

    # -- devices and tokens ---------------------------------------------------------
    op.create_table(
        "user_devices",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ts", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_ip", sa.Text(), nullable=True),
        sa.Column("last_seen_user_agent", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"],
                                name=op.f("fk_user_devices_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "device_id", name=op.f("pk_user_devices")),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_id", _position(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("next_token_id", _position(), nullable=True),
        sa.Column("expiry_ts", sa.BigInteger(), nullable=True),
        sa.Column("ultimate_session_expiry_ts", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["next_token_id"], ["refresh_tokens.token_id"],
                                name=op.f("fk_refresh_tokens_next_token_id_refresh_tokens"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"],
                                name=op.f("fk_refresh_tokens_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_refresh_tokens_user_id_device_id"), "refresh_tokens",
                    ["user_id", "device_id"])
    op.create_table(
        "access_tokens",
        sa.Column("token_id", _position(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("valid_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("refresh_token_id", _position(), nullable=True),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["refresh_token_id"], ["refresh_tokens.token_id"],
                                name=op.f("fk_access_tokens_refresh_token_id_refresh_tokens"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"],
                                name=op.f("fk_access_tokens_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_access_tokens_token_hash")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_access_tokens_user_id_device_id"), "access_tokens",
                    ["user_id", "device_id"])
    op.create_table(
        "device_list_changes",
        sa.Column("pos", _position(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pos", name=op.f("pk_device_list_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_device_list_changes_user_id_pos"), "device_list_changes",
                    ["user_id", "pos"])

    # -- rooms, aliases, directory --------------------------------------------------
    op.create_table(
        "rooms",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("room_version", sa.Text(), nullable=False),
        sa.Column("creator", sa.Text(), nullable=True),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_rooms")),
    )
    op.create_table(
        "room_aliases",
        sa.Column("room_alias", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("creator", sa.Text(), nullable=True),
        sa.Column("servers", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("room_alias", name=op.f("pk_room_aliases")),
    )
    op.create_index(op.f("ix_room_aliases_room_id"), "room_aliases", ["room_id"])
    op.create_table(
        "room_stats",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("canonical_alias", sa.Text(), nullable=True),
        sa.Column("avatar", sa.Text(), nullable=True),
        sa.Column("join_rule", sa.Text(), nullable=True),
        sa.Column("guest_access", sa.Text(), nullable=True),
        sa.Column("world_readable", sa.Boolean(), nullable=False),
        sa.Column("room_type", sa.Text(), nullable=True),
        sa.Column("joined_members", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.room_id"],
                                name=op.f("fk_room_stats_room_id_rooms"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_room_stats")),
    )

    # -- room stream and memberships index ------------------------------------------
    op.create_table(
        "room_stream",
        sa.Column("pos", _position(), autoincrement=True, nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("room_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("state_key", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pos", name=op.f("pk_room_stream")),
        sa.UniqueConstraint("room_id", "room_seq",
                            name=op.f("uq_room_stream_room_id_room_seq")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_room_stream_room_id_pos"), "room_stream", ["room_id", "pos"])
    op.create_table(
        "room_memberships",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("membership", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("stream_pos", sa.BigInteger(), nullable=False),
        sa.Column("forgotten", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", name=op.f("pk_room_memberships")),
    )
    op.create_index(op.f("ix_room_memberships_room_id_membership"), "room_memberships",
                    ["room_id", "membership"])

    # -- account data, receipts, presence -------------------------------------------
    op.create_table(
        "account_data",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("data_type", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("stream_pos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", "data_type",
                                name=op.f("pk_account_data")),
    )
    op.create_index(op.f("ix_account_data_user_id_stream_pos"), "account_data",
                    ["user_id", "stream_pos"])
    op.create_table(
        "room_tags",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", "tag", name=op.f("pk_room_tags")),
    )
    op.create_table(
        "room_tags_revisions",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("stream_pos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", name=op.f("pk_room_tags_revisions")),
    )
    op.create_table(
        "receipts",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("receipt_type", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("stream_pos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "receipt_type", "user_id", "thread_id",
                                name=op.f("pk_receipts")),
    )
    op.create_index(op.f("ix_receipts_stream_pos"), "receipts", ["stream_pos"])
    op.create_table(
        "presence",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("last_active_ts", sa.BigInteger(), nullable=True),
        sa.Column("status_msg", sa.Text(), nullable=True),
        sa.Column("currently_active", sa.Boolean(), nullable=False),
        sa.Column("stream_pos", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_presence")),
    )
    op.create_index(op.f("ix_presence_stream_pos"), "presence", ["stream_pos"])

    # -- to-device ------------------------------------------------------------------
    op.create_table(
        "device_inbox",
        sa.Column("stream_id", _position(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_device_inbox")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_device_inbox_user_id_device_id_stream_id"), "device_inbox",
                    ["user_id", "device_id", "stream_id"])
    op.create_table(
        "device_federation_inbox",
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "message_id",
                                name=op.f("pk_device_federation_inbox")),
    )
    op.create_index(op.f("ix_device_federation_inbox_received_ts"),
                    "device_federation_inbox", ["received_ts"])

    # -- filters, client transactions, registration tokens --------------------------
    op.create_table(
        "user_filters",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("filter_id", sa.BigInteger(), nullable=False),
        sa.Column("filter_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "filter_id", name=op.f("pk_user_filters")),
    )
    op.create_table(
        "client_txn_ids",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("txn_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "scope", "txn_id", name=op.f("pk_client_txn_ids")),
    )
    op.create_index(op.f("ix_client_txn_ids_created_ts"), "client_txn_ids", ["created_ts"])
    op.create_table(
        "registration_tokens",
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("uses_allowed", sa.Integer(), nullable=True),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("expiry_time", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_registration_tokens")),
    )

    # -- server keys ----------------------------------------------------------------
    op.create_table(
        "server_keys",
        sa.Column("server_name", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("verify_key", sa.Text(), nullable=False),
        sa.Column("valid_until_ts", sa.BigInteger(), nullable=False),
        sa.Column("expired_ts", sa.BigInteger(), nullable=True),
        sa.Column("fetched_ts", sa.BigInteger(), nullable=False),
        sa.Column("key_json", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("server_name", "key_id", name=op.f("pk_server_keys")),
    )
    op.create_table(
        "local_old_keys",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("verify_key", sa.Text(), nullable=False),
        sa.Column("expired_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_local_old_keys")),
    )

    # -- user directory -------------------------------------------------------------
    op.create_table(
        "user_directory",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("displayname", sa.Text(), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_directory")),
    )


def downgrade() -> None:
    # children before parents (foreign keys); indexes go with their tables
    for table in ("user_directory", "local_old_keys", "server_keys",
                  "registration_tokens", "client_txn_ids", "user_filters",
                  "device_federation_inbox", "device_inbox", "presence", "receipts",
                  "room_tags_revisions", "room_tags", "account_data",
                  "room_memberships", "room_stream", "room_stats", "room_aliases",
                  "rooms", "device_list_changes", "access_tokens", "refresh_tokens",
                  "user_devices", "profiles", "users", "stream_positions"):
        op.drop_table(table)
