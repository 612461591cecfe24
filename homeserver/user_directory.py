"""The user directory (spec: Client-Server API, "User directory").

Search is ``store.user_directory.search``: users who share a joined room with the
searcher or are joined to a public or world-readable room, matched case-insensitively
on user ID and display name.

Keeping it current: profile changes write the entry directly (``ProfileService``);
every join seen in a room refreshes the joiner's entry — a local user's from their
global profile (a per-room nickname is not their directory name), a remote user's
from the join event, the only profile we have of them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.errors import InvalidParam
from homeserver.events.pdu import PDU

log = Logger()

#: the most results one search returns, whatever the client asks
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
#: a search term longer than this is refused (it can only be a mistake or abuse)
MAX_TERM_LEN = 512


class UserDirectoryService:
    def __init__(self, *, server_name: str, store: Any, search_all_users: bool = False
                 ) -> None:
        self._server_name = server_name
        self._directory = store.user_directory
        self._entries = store.directory_entries
        self._accounts = store.accounts
        self._search_all_users = search_all_users
        #: refreshes in flight (``stop`` waits for them before the database closes)
        self._pending: set[defer.Deferred] = set()
        self._stopping = False

    async def search(self, searcher: str, term: str, limit: int = DEFAULT_LIMIT
                     ) -> dict[str, Any]:
        """The response body of ``POST /user_directory/search``."""
        if len(term) > MAX_TERM_LEN:
            raise InvalidParam(f"search_term is longer than {MAX_TERM_LEN} characters")
        limit = max(0, min(limit, MAX_LIMIT))
        users, limited = await self._directory.search(
            searcher, term, limit, search_all_users=self._search_all_users)
        results = []
        for user in users:
            entry: dict[str, Any] = {"user_id": user.user_id}
            if user.display_name is not None:
                entry["display_name"] = user.display_name
            if user.avatar_url is not None:
                entry["avatar_url"] = user.avatar_url
            results.append(entry)
        return {"results": results, "limited": limited}

    async def update_user(self, user_id: str, displayname: str | None,
                          avatar_url: str | None) -> None:
        await self._directory.update_user(user_id, displayname, avatar_url)

    async def get_entry(self, user_id: str):
        """The directory's entry for a user (a remote user's last known profile)."""
        return await self._entries.get(user_id)

    # -- keeping it current -------------------------------------------------------------
    def on_room_event(self, event: PDU, stream_pos: int) -> None:
        """Notifier observer: refresh the entry of a user who joined a room."""
        if event.type != "m.room.member" or not event.state_key \
                or event.membership != "join" or self._stopping:
            return
        d = defer.ensureDeferred(self._refresh(event))
        d.addErrback(self._failed, event.state_key)
        if not d.called:
            self._pending.add(d)
            d.addBoth(lambda result: (self._pending.discard(d), result)[1])

    def _failed(self, failure, user_id: str) -> None:
        if self._stopping:
            return  # the database is closing with the server: the refresh is moot
        log.failure("user directory update for {user}", failure, user=user_id)

    def stop(self) -> defer.Deferred:
        """Stop taking updates and wait for those in flight (service shutdown)."""
        self._stopping = True
        return defer.DeferredList(list(self._pending))

    async def _refresh(self, event: PDU) -> None:
        user_id = event.state_key
        if user_id.partition(":")[2] == self._server_name:
            user = await self._accounts.get_user(user_id)
            if user is None or user.deactivated:
                return  # deactivation removed them from the directory for good
            profile = await self._accounts.get_profile(user_id)
            if profile is None:
                return
            await self._directory.update_user(user_id, profile.displayname,
                                              profile.avatar_url)
            return
        content = event.content
        name, avatar = content.get("displayname"), content.get("avatar_url")
        await self._directory.update_user(
            user_id, name if isinstance(name, str) else None,
            avatar if isinstance(avatar, str) else None)
