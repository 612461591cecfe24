"""MatrixRTC signalling workload (issue 15): a 50-member call in one room, as Element
Call's membership manager drives it.

1. join: each member schedules its empty ``org.matrix.msc3401.call.member`` as a
   delayed event (MSC4140 ``?org.matrix.msc4140.delay=``) and posts its membership;
   p50/p99 of the pair.
2. keep-alive: every member restarts its delayed leave in a loop for a fixed time;
   restarts per second and p50/p99 latency.
3. crash: all members stop restarting at once; an observer long-polling /sync notes
   when each empty membership arrives; lateness = arrival − the time the server said
   it was due (``running_since`` + delay), p50/p99 (the MSC allows up to 30 s).

Both servers get ``max_event_delay_duration`` and unlimited ``rc_delayed_event_mgmt``
(bench/servers.py); rooms are created with the call-member power level 0, as Element
Web does, so the comparison does not depend on our default for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote

from bench.client import Client, now, percentile

MEMBER = "org.matrix.msc3401.call.member"
UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140"
MEMBERS = 50
DELAY_MS = 8000  # matrix-js-sdk's default membershipServerSideExpiryTimeout
KEEPALIVE_SECONDS = 15


def _state_path(room: str, key: str) -> str:
    return (f"/_matrix/client/v3/rooms/{quote(room, safe='')}/state/{MEMBER}/"
            f"{quote(key, safe='')}")


async def call(server, session, register) -> dict[str, float]:
    """``register(session, server, n, prefix)`` makes the users (bench.workloads)."""
    users: list[Client] = await register(session, server, MEMBERS + 1, "rtc")
    observer, members = users[0], users[1:]
    room = await observer.create_room(preset="public_chat", power_level_content_override={
        "events": {MEMBER: 0}})
    for member in members:
        await member.join(room)
    keys = {m.user_id: f"_{m.user_id}_BENCH" for m in members}
    delay_ids: dict[str, str] = {}
    join_ms: list[float] = []

    async def join(member: Client) -> None:
        t0 = now()
        body, _ = await member.call(
            "PUT", _state_path(room, keys[member.user_id]),
            {}, params={"org.matrix.msc4140.delay": str(DELAY_MS)})
        delay_ids[member.user_id] = body["delay_id"]
        await member.call("PUT", _state_path(room, keys[member.user_id]), {
            "application": "m.call", "call_id": "", "scope": "m.room",
            "device_id": "BENCH", "focus_active": {"type": "livekit"},
            "foci_preferred": [], "expires": 14400000})
        join_ms.append((now() - t0) * 1000)

    await asyncio.gather(*(join(m) for m in members))
    since = (await observer.sync(timeout_ms=0))[0]["next_batch"]

    restart_ms: list[float] = []
    deadline = now() + KEEPALIVE_SECONDS

    async def keep_alive(member: Client) -> None:
        path = f"{UNSTABLE}/delayed_events/{delay_ids[member.user_id]}"
        while now() < deadline:
            t0 = now()
            await member.call("POST", path, {"action": "restart"})
            restart_ms.append((now() - t0) * 1000)

    start = now()
    await asyncio.gather(*(keep_alive(m) for m in members))
    elapsed = now() - start

    # the crash: nobody restarts any more. Each leave is due at the server's own
    # running_since + delay (wall clock, same machine); the observer waits for them all
    due_at: dict[str, float] = {}
    for member in members:
        listed, _ = await member.call("GET", f"{UNSTABLE}/delayed_events")
        event, = [e for e in listed["delayed_events"]
                  if e["delay_id"] == delay_ids[member.user_id]]
        due_at[member.user_id] = (event["running_since"] + DELAY_MS) / 1000
    lateness_ms: list[float] = []
    pending = set(keys.values())
    give_up = now() + DELAY_MS / 1000 + 60
    filter_json = json.dumps({"room": {"timeline": {"limit": 100}}})
    while pending and now() < give_up:
        body, _ = await observer.sync(since=since, timeout_ms=5000, filter=filter_json)
        arrived = time.time()
        since = body["next_batch"]
        timeline = body.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
        for event in timeline.get("events", []):
            key = event.get("state_key")
            if event.get("type") == MEMBER and key in pending and event.get("content") == {}:
                pending.discard(key)
                lateness_ms.append((arrived - due_at[event["sender"]]) * 1000)
    if pending:
        raise RuntimeError(f"{len(pending)} delayed leaves never arrived")
    return {
        f"rtc call join ms p50 ({MEMBERS} members)": percentile(join_ms, 50),
        f"rtc call join ms p99 ({MEMBERS} members)": percentile(join_ms, 99),
        f"rtc keep-alive restarts/s ({MEMBERS} members)": len(restart_ms) / elapsed,
        "rtc keep-alive restart ms p50": percentile(restart_ms, 50),
        "rtc keep-alive restart ms p99": percentile(restart_ms, 99),
        "rtc delayed leave lateness ms p50": percentile(lateness_ms, 50),
        "rtc delayed leave lateness ms p99": percentile(lateness_ms, 99),
    }
