"""``m.typing`` and ``m.receipt`` EDUs from other servers, into the live layer.

Spec: Server-Server API, "Typing Notifications" and "Receipts"; "Server Access
Control Lists (ACLs)" (EDUs about a room are ignored when the room's ACL denies the
origin). A server speaks only for its own users, and only for users joined to the
room; anything else is ignored (EDUs have no error channel).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Protocol

from federation.acl import server_allowed
from federation.edus import EduHandlers
from federation.transactions import room_acl

#: the only receipt type that crosses servers (private receipts never leave)
FEDERATED_RECEIPT_TYPES = ("m.read",)


class Typing(Protocol):
    def started_typing(self, room_id: str, user_id: str, timeout_ms: int) -> None: ...
    def stopped_typing(self, room_id: str, user_id: str) -> None: ...


class ReceiptStore(Protocol):
    async def set_receipt(self, room_id: str, receipt_type: str, user_id: str,
                          event_id: str, data: Mapping[str, Any], *,
                          thread_id: str | None = None) -> int: ...


class Rooms(Protocol):
    def known(self, room_id: str) -> bool: ...
    def get(self, room_id: str) -> Awaitable[Any]: ...


class LiveEdus:
    def __init__(self, *, rooms: Rooms, typing: Typing, receipts: ReceiptStore,
                 notify_room: Callable[[str], None]) -> None:
        self._rooms = rooms
        self._typing = typing
        self._receipts = receipts
        self._notify_room = notify_room

    def register(self, edus: EduHandlers) -> None:
        edus.register("m.typing", self.on_typing)
        edus.register("m.receipt", self.on_receipt)

    async def _member_room(self, origin: str, room_id: Any, user_id: Any) -> Any | None:
        """The room's actor if ``user_id`` is ``origin``'s, joined, and the ACL lets
        ``origin`` in; else None."""
        if not isinstance(room_id, str) or not room_id.startswith("!") \
                or not isinstance(user_id, str) or user_id.split(":", 1)[-1] != origin \
                or not self._rooms.known(room_id):
            return None
        actor = await self._rooms.get(room_id)
        if not server_allowed(origin, await room_acl(actor)):
            return None
        return actor if await actor.membership(user_id) == "join" else None

    async def on_typing(self, origin: str, content: Mapping[str, Any]) -> None:
        """``{room_id, user_id, typing, timeout?}``."""
        room_id, user_id = content.get("room_id"), content.get("user_id")
        if await self._member_room(origin, room_id, user_id) is None:
            return
        if content.get("typing") is True:
            timeout = content.get("timeout", 30_000)
            if not isinstance(timeout, int) or isinstance(timeout, bool):
                timeout = 30_000
            self._typing.started_typing(room_id, user_id, timeout)
        else:
            self._typing.stopped_typing(room_id, user_id)

    async def on_receipt(self, origin: str, content: Mapping[str, Any]) -> None:
        """``{room_id: {receipt_type: {user_id: {event_ids: [...], data: {...}}}}}``."""
        for room_id, by_type in content.items():
            if not isinstance(by_type, Mapping):
                continue
            changed = False
            for receipt_type in FEDERATED_RECEIPT_TYPES:
                users = by_type.get(receipt_type)
                if not isinstance(users, Mapping):
                    continue
                for user_id, receipt in users.items():
                    changed |= await self._receipt(origin, room_id, receipt_type,
                                                   user_id, receipt)
            if changed:
                self._notify_room(room_id)

    async def _receipt(self, origin: str, room_id: str, receipt_type: str, user_id: Any,
                       receipt: Any) -> bool:
        if not isinstance(receipt, Mapping):
            return False
        event_ids, data = receipt.get("event_ids"), receipt.get("data", {})
        if not isinstance(event_ids, list) or not event_ids \
                or not isinstance(event_ids[-1], str) or not isinstance(data, Mapping):
            return False
        actor = await self._member_room(origin, room_id, user_id)
        if actor is None or await actor.get_event(event_ids[-1]) is None:
            return False
        thread_id = data.get("thread_id")
        kept = {"ts": data["ts"]} if isinstance(data.get("ts"), int) else {}
        if isinstance(thread_id, str) and thread_id:
            kept["thread_id"] = thread_id
        else:
            thread_id = None
        await self._receipts.set_receipt(room_id, receipt_type, user_id, event_ids[-1],
                                         kept, thread_id=thread_id)
        return True
