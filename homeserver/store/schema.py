"""All tables of the global database on one :data:`metadata` (for alembic and tests).

Importing this module imports every store part, each of which declares its tables.
"""

from homeserver.store import (  # noqa: F401  (imported for their tables)
    account_data,
    accounts,
    cross_signing,
    delayed_events,
    devices,
    e2e_keys,
    erased_users,
    federation_destinations,
    federation_txns,
    filters,
    key_backups,
    login_tokens,
    media,
    outbox,
    notifications,
    openid_tokens,
    positions,
    presence,
    push_progress,
    push_rules,
    pushers,
    receipts,
    registration_tokens,
    remote_devices,
    remote_memberships,
    reports,
    rooms,
    server_keys,
    streams,
    to_device,
    transactions,
    user_directory,
)
from homeserver.store.sql import metadata

__all__ = ["metadata"]
