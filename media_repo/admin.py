"""Administering the media repository: what Synapse's admin API for media does
(Synapse docs: ``admin_api/media_admin_api.md``, the "User media" part of
``user_admin_api.md``, ``statistics.md``), and what ``media_retention`` runs.

Deleting goes through :class:`media_repo.repository.MediaRepository`, which drops
the row and then frees a blob only once its refcount is 0 (under the blob's lock),
so deleting one media ID never removes bytes another media ID or a thumbnail uses.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.errors import InvalidParam, MatrixError, NotFound
from homeserver.ids import InvalidId, UserID
from homeserver.store.media import LocalMedia, Media, RemoteMedia
from homeserver.store.media_admin import MediaAdminStore, MediaUsage
from media_repo.repository import MediaRepository

log = Logger()


class Accounts(Protocol):
    async def get_user(self, user_id: str) -> Any | None: ...


class AccessFlush(Protocol):
    async def flush(self) -> None: ...


class MediaAdmin:
    def __init__(self, *, repository: MediaRepository, media: Media,
                 store: MediaAdminStore, accounts: Accounts, server_name: str,
                 access: AccessFlush | None = None) -> None:
        self._repository = repository
        self._media = media
        self._store = store
        self._accounts = accounts
        self.server_name = server_name
        self._access = access

    # -- one media item ------------------------------------------------------------------
    async def media_info(self, server_name: str, media_id: str) -> LocalMedia | RemoteMedia:
        """A local media ID's row or a cached remote item's; 404 if neither."""
        if server_name == self.server_name:
            media: LocalMedia | RemoteMedia | None = await self._media.get_local(media_id)
        else:
            media = await self._media.get_remote(server_name, media_id)
        if media is None:
            raise NotFound("Unknown media")
        return media

    async def set_quarantine(self, server_name: str, media_id: str, by: str | None) -> None:
        """Quarantine local or cached remote media (``by``: the admin), or lift it
        with None; either way every item with the same bytes follows (protected
        local media is not quarantined that way). The named item is quarantined
        even if protected: protection guards against the bulk endpoints. 404 if
        unknown."""
        origin = None if server_name == self.server_name else server_name
        if await self._store.quarantine_item(origin, media_id, by) is None:
            raise NotFound("Unknown media")

    def on_upload(self, sha256: str, content_type: str, media_id: str) -> Any:
        """An upload observer: new bytes that are quarantined under another ID are
        quarantined under the new one too (Synapse ≥ 1.128 does the same)."""
        return defer.ensureDeferred(self._store.inherit_quarantine(media_id, sha256)) \
            .addErrback(lambda f: log.failure("quarantine check of an upload failed", f))

    async def set_protected(self, media_id: str, protected: bool) -> None:
        """Protect a local media ID from bulk quarantine, or lift that; 404 if unknown."""
        if not await self._store.set_protected(media_id, protected):
            raise NotFound("Unknown media")

    async def delete_local(self, server_name: str, media_id: str) -> list[str]:
        """Delete one local media ID (bytes go when nothing else references them)."""
        if server_name != self.server_name:
            raise MatrixError("Can only delete local media")
        if not await self._repository.delete_media(media_id):
            raise NotFound("Unknown media")
        return [media_id]

    # -- in bulk ---------------------------------------------------------------------------
    async def quarantine_user_media(self, user_id: str, by: str) -> int:
        """Quarantine every unprotected media ID a user uploaded; returns how many."""
        _parse_user_id(user_id)
        return await self._store.quarantine_user_media(user_id, by)

    async def delete_old_local(self, *, before_ts: int, size_gt: int = 0,
                               keep_profiles: bool = True) -> list[str]:
        """Delete local media last accessed before ``before_ts`` and larger than
        ``size_gt`` bytes, except quarantined and protected media, and (with
        ``keep_profiles``) avatars. Returns the deleted media IDs."""
        if self._access is not None:
            await self._access.flush()
        candidates = await self._store.old_local_media(
            before_ts=before_ts, size_gt=size_gt, keep_profiles=keep_profiles,
            profile_prefix=f"mxc://{self.server_name}/")
        return [m for m in candidates if await self._repository.delete_media(m)]

    async def purge_remote_cache(self, *, before_ts: int) -> int:
        """Drop cached remote media last accessed before ``before_ts`` (except
        quarantined items); returns how many. It is fetched again when next asked."""
        if self._access is not None:
            await self._access.flush()
        deleted = 0
        for origin, media_id in await self._store.old_remote_media(before_ts=before_ts):
            deleted += await self._repository.delete_remote_media(origin, media_id)
        return deleted

    # -- per user ------------------------------------------------------------------------------
    async def user_media(self, user_id: str, *, start: int, limit: int,
                         order_by: str | None, descending: bool
                         ) -> tuple[list[LocalMedia], int]:
        """A page of a local user's media IDs and their total number."""
        await self._require_local_user(user_id)
        return await self._store.user_media_page(user_id, start=start, limit=limit,
                                                 order_by=order_by, descending=descending)

    async def delete_user_media(self, user_id: str, *, start: int, limit: int,
                                order_by: str | None, descending: bool) -> list[str]:
        """Delete the page of a local user's media that :meth:`user_media` shows."""
        page, _ = await self.user_media(user_id, start=start, limit=limit,
                                        order_by=order_by, descending=descending)
        return [m.media_id for m in page if await self._repository.delete_media(m.media_id)]

    async def usage(self, **query: Any) -> tuple[list[MediaUsage], int]:
        """Per-user counts and bytes (``MediaAdminStore.usage_page``'s arguments)."""
        return await self._store.usage_page(**query)

    async def _require_local_user(self, user_id: str) -> None:
        if _parse_user_id(user_id).domain != self.server_name:
            raise MatrixError("Can only look up local users")
        if await self._accounts.get_user(user_id) is None:
            raise NotFound("Unknown user")


def _parse_user_id(user_id: str) -> UserID:
    try:
        return UserID.parse(user_id)
    except InvalidId:
        raise InvalidParam("Invalid user ID") from None
