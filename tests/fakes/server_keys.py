"""An in-memory ``server_keys`` cache with the store's contract (a key is only
replaced by a copy valid at least as long)."""

from __future__ import annotations

from typing import Iterable

from homeserver.store.server_keys import ServerKey


class MemoryServerKeys:
    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], ServerKey] = {}

    async def store_server_keys(self, keys: Iterable[ServerKey]) -> int:
        written = 0
        for key in keys:
            old = self.keys.get((key.server_name, key.key_id))
            if old is None or key.valid_until_ts >= old.valid_until_ts:
                self.keys[(key.server_name, key.key_id)] = key
                written += 1
        return written

    async def get_server_key(self, server_name: str, key_id: str) -> ServerKey | None:
        return self.keys.get((server_name, key_id))

    async def get_server_keys(self, server_name: str,
                              key_ids: Iterable[str] | None = None) -> list[ServerKey]:
        wanted = None if key_ids is None else set(key_ids)
        return sorted((k for (s, i), k in self.keys.items()
                       if s == server_name and (wanted is None or i in wanted)),
                      key=lambda k: k.key_id)
