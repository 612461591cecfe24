"""MSC4140 delayed events (unstable prefix ``org.matrix.msc4140``).

- ``PUT …/rooms/{roomId}/send/{type}/{txnId}?org.matrix.msc4140.delay=<ms>`` and
  ``PUT …/rooms/{roomId}/state/{type}/{stateKey}?org.matrix.msc4140.delay=<ms>``
  answer ``{"delay_id"}`` instead of sending (what matrix-js-sdk and Synapse 1.163
  speak; see :func:`delay_of`, used by the send and state servlets);
- ``PUT /unstable/org.matrix.msc4140/rooms/{roomId}/delayed_event/{type}/{txnId}``
  with ``{delay_ms, state_key?, content}`` (the MSC's newest form);
- ``GET /unstable/org.matrix.msc4140/delayed_events`` (the user's scheduled events;
  ``?status=finalised`` for ended ones) and ``GET …/delayed_events/{delay_id}``;
- ``POST …/delayed_events/{delay_id}`` with ``{"action"}`` and
  ``POST …/delayed_events/{delay_id}/{cancel|restart|send}``.

Thin: each calls :class:`homeserver.delayed_events.scheduler.DelayedEventScheduler`.
"""

from __future__ import annotations

from typing import Any

from homeserver.delayed_events import rules
from homeserver.delayed_events.scheduler import DelayedEventScheduler
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import optional, require
from homeserver.ids import parse_room_id
from homeserver.rooms.rules.transactions import scope_of, txn_key

_UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140"
_ONE = _UNSTABLE + "/delayed_events/(?P<delay_id>[^/]+)"
DELAY_PARAM = "org.matrix.msc4140.delay"


def delay_of(request: ApiRequest) -> int | None:
    """The requested delay of a send or state PUT, or None for a normal send."""
    return rules.parse_delay(request.arg(DELAY_PARAM))


async def schedule_from_request(scheduler: DelayedEventScheduler, request: ApiRequest,
                                requester: Any, *, delay_ms: int, event_type: str,
                                state_key: str | None, content: Any,
                                endpoint: str | None = None) -> tuple[int, Any]:
    """Schedule what a send/state PUT carries; a transaction ID (``endpoint`` names
    the path without it) makes a retry return the first ``delay_id``."""
    txn_id = request.path.get("txn_id")
    key = None if txn_id is None or endpoint is None else txn_key(
        requester.user_id, scope_of(requester), endpoint, txn_id)
    delay_id = await scheduler.schedule(
        user_id=requester.user_id, device_id=requester.device_id,
        room_id=parse_room_id(request.path["room_id"]), event_type=event_type,
        state_key=state_key, content=content, delay_ms=delay_ms, txn_key=key)
    return 200, {"delay_id": delay_id}


def register(router: Router, *, auth: Any, scheduler: DelayedEventScheduler) -> None:
    async def put_delayed_event(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body = request.json()
        delay_ms = require(body, "delay_ms", int)
        event_type = request.path["event_type"]
        return await schedule_from_request(
            scheduler, request, requester, delay_ms=delay_ms, event_type=event_type,
            state_key=optional(body, "state_key", str), content=require(body, "content", dict),
            endpoint=f"delayed_event/{request.path['room_id']}/{event_type}")

    async def list_events(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await scheduler.list_for_user(requester.user_id, request.arg("status"))

    async def get_event(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await scheduler.get(requester.user_id, request.path["delay_id"])

    async def act(request: ApiRequest, action: Any) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True, optional=True)
        await scheduler.act(request.path["delay_id"], action,
                            user_id=None if requester is None else requester.user_id,
                            client_ip=request.client_ip)
        return 200, {}

    async def act_from_body(request: ApiRequest) -> tuple[int, Any]:
        return await act(request, require(request.json(), "action", str))

    async def act_from_path(request: ApiRequest) -> tuple[int, Any]:
        request.json(allow_empty=True)  # the MSC sends {}; anything else must be JSON
        return await act(request, request.path["action"])

    router.add("PUT", _UNSTABLE + "/rooms/(?P<room_id>[^/]+)/delayed_event"
               "/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)", put_delayed_event)
    router.add("GET", _UNSTABLE + "/delayed_events", list_events)
    router.add("GET", _ONE, get_event)
    router.add("POST", _ONE, act_from_body)
    router.add("POST", _ONE + "/(?P<action>cancel|restart|send)", act_from_path)
