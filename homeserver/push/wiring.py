"""Composition of the push part of the service tree (called from ``homeserver.app``,
the composition root). The rules service, the per-room evaluation and the unread
counter are built with /sync (``homeserver.sync.wiring``), which needs them; this adds
the pushers, their delivery and the listing of notifications."""

from __future__ import annotations

from typing import Any, Callable

from homeserver.errors import NotFound
from homeserver.events.pdu import PDU
from homeserver.http.outbound import AddressPolicy
from homeserver.push.delivery import PushDelivery, treq_post
from homeserver.push.notification_list import NotificationList
from homeserver.push.pushers import PusherService
from homeserver.sync.timeline import seq_of

_READ_TYPES = ("m.read", "m.read.private")


def build_push(*, reactor: Any, store: Any, rooms: Any, components: dict[str, Any],
               now_ms: Callable[[], int], address_policy: AddressPolicy) -> dict[str, Any]:
    unread = components["unread_counter"]

    async def unread_count(user_id: str) -> int:
        """The badge: the user's unread notifications over all their rooms."""
        total = 0
        for room_id in await store.notifications.latest_per_room(user_id):
            try:
                actor = await rooms.get(room_id)
            except NotFound:
                continue
            if await actor.membership(user_id) != "join":
                continue
            read_seq = 0
            for receipt_type in _READ_TYPES:
                receipt = await store.receipts.get_receipt(room_id, receipt_type, user_id)
                event = await actor.get_event(receipt.event_id) if receipt else None
                if event is not None:
                    read_seq = max(read_seq, seq_of(event))
            counts = await unread.counts(actor, user_id, read_seq, 2 ** 62, wait=False)
            total += counts.room["notification_count"]
        return total

    async def describe(event: PDU) -> tuple[str | None, str | None]:
        actor = await rooms.get(event.room_id)
        state = await actor.current_state([("m.room.name", ""),
                                           ("m.room.canonical_alias", ""),
                                           ("m.room.member", event.sender)])
        member = state.get(("m.room.member", event.sender))
        name = member.content.get("displayname") if member is not None else None
        room = state.get(("m.room.name", ""))
        alias = state.get(("m.room.canonical_alias", ""))
        room_name = (room.content.get("name") if room is not None else None) or \
            (alias.content.get("alias") if alias is not None else None)
        return (name if isinstance(name, str) else None,
                room_name if isinstance(room_name, str) else None)

    delivery = PushDelivery(pushers=store.pushers, clock=reactor, post=treq_post(reactor, address_policy),
                            unread_count=unread_count, describe=describe)
    components["push_evaluation"].add_observer(stored=delivery.on_notified)
    # a user's rules about an upgraded room follow them to its replacement
    components["room_service"].membership.add_settings_copier(
        components["push_rules"].copy_room_rules)
    pusher_service = PusherService(store.pushers, now_ms)
    # a deactivated account gets no pushes and keeps no rules
    components["deactivator"].add_hook(pusher_service.delete_all)
    components["deactivator"].add_hook(components["push_rules"].forget_user)
    return {
        "pushers": pusher_service,
        "push_delivery": delivery,
        "notification_list": NotificationList(
            rooms=rooms, notifications=store.notifications, receipts=store.receipts,
            room_service=components["room_service"]),
    }


def register_servlets(router: Any, c: dict[str, Any]) -> None:
    from homeserver.client_api import notifications, push_rules, pushers

    push_rules.register(router, auth=c["auth"], push_rules=c["push_rules"])
    pushers.register(router, auth=c["auth"], pushers=c["pushers"])
    notifications.register(router, auth=c["auth"], notifications=c["notification_list"])
