"""Composition of the sync & live-data part of the service tree (called from
``homeserver.app.build_service``, the composition root, which owns the lifecycle).

Components published (``components[...]``): ``typing``, ``presence``,
``account_data_service``, ``receipts``, ``to_device``, ``sync_builder``,
``sync_service``, ``sync_stream`` (the WebSocket endpoint), ``legacy_sync``
(``/events``, ``/initialSync``), ``push_rules`` (whose ruleset an initial sync sends as
account data) and ``push_evaluation`` (the push rules' outcome for each event feeds the
unread counts).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.push.room_evaluation import RoomPushEvaluator
from homeserver.push.rules_service import PushRulesService
from homeserver.sync.account_data import AccountDataService
from homeserver.sync.builder import SyncBuilder
from homeserver.sync.lazy_members import LazyMemberCache
from homeserver.sync.legacy import LegacySync
from homeserver.sync.presence import PresenceService
from homeserver.sync.receipts import ReceiptService
from homeserver.sync.room_sections import RoomSections
from homeserver.sync.serialize import EventSerializer
from homeserver.sync.service import SyncService
from homeserver.sync.to_device import ToDeviceService
from homeserver.sync.typing_notifications import TypingNotifications
from homeserver.sync.unread import UnreadCounter
from homeserver.sync.websocket import SyncStream

log = Logger()


@dataclasses.dataclass
class LiveData:
    components: dict[str, Any]
    start: Callable[[], None]
    stop: Callable[[], Any]


def build_live_data(*, reactor: Any, config: Any, store: Any, rooms: Any, notifier: Any,
                    auth: Any, room_service: Any, now_ms: Callable[[], int]) -> LiveData:
    typing = TypingNotifications(reactor, notifier.notify_room,
                                 membership=room_service.membership_of)
    notifier.add_event_observer(typing.on_room_event)
    presence = PresenceService(
        reactor, store.presence, users_sharing=store.streams.users_sharing_a_room_with,
        notify_users=notifier.notify_users, server_name=config.server_name,
        enabled=config.presence_enabled)
    notifier.add_event_observer(presence.on_room_event)
    account_data = AccountDataService(store.account_data, notifier.notify_user)
    receipts = ReceiptService(rooms=rooms, receipts=store.receipts,
                              account_data=account_data, notify_room=notifier.notify_room,
                              notify_user=notifier.notify_user, now_ms=now_ms)
    to_device = ToDeviceService(store=store, server_name=config.server_name,
                                notify_user=notifier.notify_user)
    push_rules = PushRulesService(store.push_rules, notifier.notify_user)
    # every committed event is evaluated against its recipients' push rules, per room
    # in order, off the room's write path (see homeserver/push/room_evaluation.py)
    push_evaluation = RoomPushEvaluator(
        rooms=rooms, push_rules=push_rules, notifications=store.notifications,
        server_name=config.server_name, now_ms=now_ms, progress=store.push_progress,
        clock=reactor)
    notifier.add_event_observer(push_evaluation.on_room_event)
    rooms.add_hibernation_observer(push_evaluation.room_hibernated)
    rooms.add_memory_releaser(push_evaluation.compact)
    unread = UnreadCounter(store.notifications, store.receipts, push_evaluation)
    push_evaluation.add_observer(evaluated=unread.note, stored=unread.stored,
                                 redacted=unread.redacted)
    sections = RoomSections(
        rooms=rooms, serializer=EventSerializer(now_ms),
        visibility=room_service.visibility, receipts=store.receipts,
        unread=unread, lazy=LazyMemberCache(),
        out_of_room=getattr(store, "remote_memberships", None))
    builder = SyncBuilder(store=store, rooms=rooms, sections=sections, typing=typing,
                          presence=presence, now_ms=now_ms, push_rules=push_rules)
    sync_service = SyncService(builder=builder, notifier=notifier, presence=presence,
                               store=store, clock=reactor)
    legacy = LegacySync(sync_service=sync_service, store=store, rooms=rooms,
                        room_service=room_service, typing=typing, presence=presence,
                        notifier=notifier, now_ms=now_ms)
    stream = SyncStream(auth=auth, sync_service=sync_service, builder=builder,
                        notifier=notifier, presence=presence, store=store, reactor=reactor)

    def start() -> None:
        defer.ensureDeferred(presence.restore()).addErrback(
            lambda f: log.failure("restoring presence timers", f))

    def stop() -> Any:
        sync_service.stop()
        stream.stop()
        typing.stop()
        presence.stop()
        return push_evaluation.stop()  # flushes its progress to the DB

    return LiveData({
        "typing": typing, "presence": presence, "account_data_service": account_data,
        "receipts": receipts, "to_device": to_device, "sync_builder": builder,
        "sync_service": sync_service, "sync_stream": stream, "legacy_sync": legacy,
        "push_rules": push_rules, "push_evaluation": push_evaluation,
        "unread_counter": unread,
    }, start, stop)


def register_servlets(router: Any, c: dict[str, Any]) -> None:
    from homeserver.client_api import (
        account_data, filters, legacy_sync, presence, receipts, sync, to_device, typing)

    auth = c["auth"]
    sync.register(router, auth=auth, sync_service=c["sync_service"])
    filters.register(router, auth=auth, filters=c["store"].filters)
    typing.register(router, auth=auth, typing=c["typing"])
    receipts.register(router, auth=auth, receipts=c["receipts"])
    presence.register(router, auth=auth, presence=c["presence"],
                      ratelimiter=c["ratelimiter"])
    account_data.register(router, auth=auth, account_data=c["account_data_service"])
    to_device.register(router, auth=auth, to_device=c["to_device"])
    legacy_sync.register(router, auth=auth, legacy=c["legacy_sync"])
