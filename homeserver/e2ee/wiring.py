"""Composition of the E2EE part of the service tree (called from
``homeserver.app.build_service``, the composition root).

Components published: ``keys``, ``cross_signing``, ``key_backups``.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from homeserver.e2ee.backups import KeyBackupService
from homeserver.e2ee.cross_signing import CrossSigningService
from homeserver.e2ee.keys import KeyService


def build(*, store: Any, uia: Any, device_lists_changed: Callable[[str], Awaitable[None]],
          device_manager: Any, deactivator: Any, server_name: str,
          remote_keys: Any = None) -> dict[str, Any]:
    """``device_lists_changed``: ``homeserver.e2ee.device_lists.device_list_waker``;
    ``remote_keys``: ``federation.remote_keys.RemoteKeys`` (None: no federation)."""
    keys = KeyService(store=store, server_name=server_name,
                      device_lists_changed=device_lists_changed, remote=remote_keys)
    device_manager.add_deletion_hook(keys.devices_deleted)
    deactivator.add_hook(keys.account_deactivated)
    return {
        "keys": keys,
        "cross_signing": CrossSigningService(store=store, uia=uia, server_name=server_name,
                                             device_lists_changed=device_lists_changed),
        "key_backups": KeyBackupService(store=store),
    }


def register_servlets(router: Any, c: dict[str, Any]) -> None:
    from homeserver.client_api import keys, room_keys

    keys.register(router, auth=c["auth"], keys=c["keys"], cross_signing=c["cross_signing"])
    room_keys.register(router, auth=c["auth"], backups=c["key_backups"])
