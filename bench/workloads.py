"""The benchmark workloads (issue 4). Each takes a started server and returns metrics
``{name: value}``; the runner alternates servers and prints ratios.

1. fan-out: 1 sender, 20 receivers long-polling /sync in one room; 500 messages at
   50/s; p50/p99 send→delivery latency (and over our WebSocket).
2. throughput: 50 senders each in its own room, and 50 in one shared room; acknowledged
   events per second.
3. initial sync: a user in 200 rooms holding 50 events each; time and bytes of the first
   /sync, with and without lazy-loaded members; and once more after a restart of the
   server (cold caches; our rooms all hibernated).
4. memory (rooms at rest): 20 warm-up rooms and a minute idle, then 2,000 rooms with 2
   messages each and a minute idle; RSS at each step, KB per room (from the start and
   after the warm-up); then the first /messages of 200 of those rooms, one at a time
   (ours hibernated them), p50/p99.
5. room creation rate and join rate.
6. cold room: first /messages page of a hibernated room holding 10,000 events.
7. media: 8 clients uploading 1 MB files, then downloading them, for a fixed time each
   (MB/s); thumbnails of 2000×1500 JPEGs: upload then first 96×96 thumbnail (what a
   receiver waits for), sizes above the pre-made ones, and 200 repeated requests for
   a 96×96 crop (served from storage).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any, Awaitable, Callable

import aiohttp

from bench.client import Client, now, percentile

Metrics = dict[str, float]


def _scale(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


async def register_users(session, server, count: int, prefix: str) -> list[Client]:
    clients = [Client(session, server.url) for _ in range(count)]
    tag = uuid.uuid4().hex[:6]
    await _gather_limited([c.register(f"{prefix}{i}_{tag}") for i, c in enumerate(clients)], 10)
    return clients


async def _gather_limited(coros: list[Awaitable], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def run(coro):
        async with sem:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


# -- 1. fan-out ------------------------------------------------------------------------
async def send_on_schedule(send, messages: int, rate: float, done: asyncio.Event) -> None:
    """``send(i)`` for i < ``messages`` on a fixed schedule of ``rate`` per second, not one
    after the other (a server slower to acknowledge a send still gets the full rate),
    then wait until ``done`` is set: what has not arrived 20 s after the last send counts
    as not delivered."""
    start, sends = now(), []
    for i in range(messages):
        await asyncio.sleep(max(0.0, start + i / rate - now()))
        sends.append(asyncio.ensure_future(send(i)))
    await asyncio.gather(*sends)
    try:
        await asyncio.wait_for(done.wait(), 20)
    except asyncio.TimeoutError:
        pass


async def fanout(server, session, *, websocket: bool = False) -> Metrics:
    receivers_n, messages, rate = 20, _scale("BENCH_FANOUT_MESSAGES", 500), 50.0
    sender, *receivers = await register_users(session, server, receivers_n + 1, "fan")
    room = await sender.create_room(preset="public_chat")
    await _gather_limited([r.join(room) for r in receivers], 10)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    expected = messages * receivers_n

    def seen(body: dict) -> None:
        timeline = body.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
        for event in timeline.get("events", []):
            key = event.get("content", {}).get("bench_id")
            if key in sent_at:
                latencies.append(now() - sent_at[key])
        if len(latencies) >= expected:
            done.set()

    async def poll(client: Client) -> None:
        body, _ = await client.sync(filter=json.dumps({"room": {"timeline": {"limit": 1}}}))
        since = body["next_batch"]
        while not done.is_set():
            body, _ = await client.sync(since=since, timeout_ms=30000)
            since = body["next_batch"]
            seen(body)

    async def ws(client: Client) -> None:
        body, _ = await client.sync(filter=json.dumps({"room": {"timeline": {"limit": 1}}}))
        url = server.url.replace("http", "ws") + "/_matrix/client/unstable/org.roomserver.ws"
        async with session.ws_connect(url, params={"access_token": client.token,
                                                   "since": body["next_batch"]}) as conn:
            async for msg in conn:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                seen(json.loads(msg.data))
                if done.is_set():
                    break

    tasks = [asyncio.ensure_future((ws if websocket else poll)(r)) for r in receivers]
    await asyncio.sleep(1.0)  # everyone is waiting before the first message

    async def send(i: int) -> None:
        key = f"{i}-{uuid.uuid4().hex[:8]}"
        sent_at[key] = now()
        await sender.send(room, {"msgtype": "m.text", "body": f"fan {i}", "bench_id": key})

    await send_on_schedule(send, messages, rate, done)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    suffix = " (WebSocket)" if websocket else ""
    return {f"fan-out p50 latency ms{suffix}": percentile(latencies, 50) * 1000,
            f"fan-out p99 latency ms{suffix}": percentile(latencies, 99) * 1000,
            f"fan-out delivered %{suffix}": 100.0 * len(latencies) / expected}


# -- 2. throughput ---------------------------------------------------------------------
async def throughput(server, session, *, shared: bool,
                     senders: list[Client] | None = None) -> Metrics:
    """``senders``: 50 registered users to reuse (registration is slow on Synapse)."""
    senders_n, seconds = 50, _scale("BENCH_THROUGHPUT_SECONDS", 30)
    senders = senders or await register_users(session, server, senders_n, "tp")
    if shared:
        room = await senders[0].create_room(preset="public_chat")
        await _gather_limited([s.join(room) for s in senders[1:]], 10)
        rooms = [room] * senders_n
    else:
        rooms = await _gather_limited([s.create_room() for s in senders], 10)
    count = 0
    deadline = now() + seconds

    async def loop(client: Client, room: str) -> None:
        nonlocal count
        i = 0
        while now() < deadline:
            await client.send(room, {"msgtype": "m.text", "body": f"tp {i}"})
            count += 1
            i += 1

    start = now()
    await asyncio.gather(*(loop(s, r) for s, r in zip(senders, rooms)))
    label = "one shared room" if shared else "own rooms"
    return {f"throughput events/s (50 senders, {label})": count / (now() - start)}


# -- 3. initial sync -------------------------------------------------------------------
def _sync_rooms() -> int:
    return _scale("BENCH_SYNC_ROOMS", 200)


async def prepare_initial_sync(server, session) -> Client:
    """The user of the initial-sync workload, in its rooms full of history."""
    rooms_n, events_n = _sync_rooms(), 50
    user, other = await register_users(session, server, 2, "is")
    room_ids = await _gather_limited([user.create_room(preset="public_chat")
                                      for _ in range(rooms_n)], 8)
    await _gather_limited([other.join(r) for r in room_ids], 8)

    async def fill(room: str) -> None:
        for i in range(events_n):
            await (user if i % 2 else other).send(room, {"msgtype": "m.text",
                                                         "body": f"history {i}"})
    await _gather_limited([fill(r) for r in room_ids], 16)
    return user


async def initial_sync(server, session, *, prepared: Client | None = None,
                       restart: Callable[[], Awaitable[None]] | None = None) -> Metrics:
    rooms_n = _sync_rooms()
    user = prepared or await prepare_initial_sync(server, session)
    metrics: Metrics = {}
    for lazy in (False, True):
        flt = json.dumps({"room": {"state": {"lazy_load_members": lazy},
                                   "timeline": {"limit": 10}}})
        start = now()
        _, size = await user.sync(filter=flt)
        label = "lazy members" if lazy else "all members"
        metrics[f"initial sync ms ({rooms_n} rooms, {label})"] = (now() - start) * 1000
        metrics[f"initial sync KB ({label})"] = size / 1024
    if restart is not None:
        # cold: every cache empty (and here every room hibernated) after a restart
        await restart()
        flt = json.dumps({"room": {"timeline": {"limit": 10}}})
        start = now()
        await user.sync(filter=flt)
        metrics[f"initial sync ms ({rooms_n} rooms, all members, after restart)"] = \
            (now() - start) * 1000
    return metrics


# -- 4. memory: rooms at rest ---------------------------------------------------------
def memory_sizes() -> tuple[int, int, int, int]:
    """(rooms, idle seconds, cold rooms asked, warm-up rooms): BENCH_MEMORY_ROOMS
    (2000), BENCH_MEMORY_IDLE (60), BENCH_MEMORY_COLD (200), BENCH_MEMORY_WARMUP (20)."""
    return (_scale("BENCH_MEMORY_ROOMS", 2000), _scale("BENCH_MEMORY_IDLE", 60),
            _scale("BENCH_MEMORY_COLD", 200), _scale("BENCH_MEMORY_WARMUP", 20))


async def rooms_at_rest(server, session) -> Metrics:
    """What a user sees who made many small rooms and left them alone for a minute: RSS
    before, after creating them, after the idle minute; then the first request to each
    of some rooms nobody touched since (ours hibernated them: the wake is in it).

    KB per room from the start counts what the first requests load once (modules,
    caches, allocator pools); a few warm-up rooms, left idle as long, put that in a
    second baseline, so the figure after warm-up is what each further room costs."""
    rooms_n, idle_s, cold_n, warm_n = memory_sizes()
    rss_start = server.rss_kb()
    (user,) = await register_users(session, server, 1, "rest")

    async def make() -> str:
        room = await user.create_room()
        await user.send(room, {"msgtype": "m.text", "body": "one"})
        await user.send(room, {"msgtype": "m.text", "body": "two"})
        return room

    await _gather_limited([make() for _ in range(warm_n)], 16)
    await asyncio.sleep(idle_s)
    rss_warm = server.rss_kb()
    start = now()
    rooms = await _gather_limited([make() for _ in range(rooms_n)], 16)
    created = now() - start
    rss_created = server.rss_kb()
    await asyncio.sleep(idle_s)
    rss_idle = server.rss_kb()
    # one at a time, oldest first: each is a first request, none waits behind another
    firsts = []
    for room in rooms[:cold_n]:
        t0 = now()
        await user.messages(room, limit=10)
        firsts.append((now() - t0) * 1000)
    return {
        "RSS just after start MB": rss_start / 1024,
        f"RSS after {warm_n} warm-up rooms and {idle_s} s idle MB": rss_warm / 1024,
        f"RSS after creating {rooms_n} rooms MB": rss_created / 1024,
        f"RSS after {idle_s} s idle MB": rss_idle / 1024,
        f"KB per room after {idle_s} s idle (from start)":
            max(0, rss_idle - rss_start) / (rooms_n + warm_n),
        f"KB per room after {idle_s} s idle (after warm-up)":
            max(0, rss_idle - rss_warm) / rooms_n,
        "room creation (with 2 messages) rooms/s": rooms_n / created,
        f"first /messages of an idle room p50 ms ({cold_n} rooms)": percentile(firsts, 50),
        f"first /messages of an idle room p99 ms ({cold_n} rooms)": percentile(firsts, 99),
    }


# -- 5. creation and join rate ---------------------------------------------------------
async def creation_and_join(server, session) -> Metrics:
    rooms_n = _scale("BENCH_CREATE_ROOMS", 200)
    owner, joiner = await register_users(session, server, 2, "cj")
    start = now()
    rooms = await _gather_limited([owner.create_room(preset="public_chat")
                                   for _ in range(rooms_n)], 8)
    create_rate = rooms_n / (now() - start)
    start = now()
    await _gather_limited([joiner.join(r) for r in rooms], 8)
    return {"createRoom per second": create_rate,
            "joins per second": rooms_n / (now() - start)}


# -- 6. cold room ----------------------------------------------------------------------
def _cold_events() -> int:
    return _scale("BENCH_COLD_EVENTS", 10000)


async def prepare_cold_room(server, session) -> tuple[Client, str]:
    """A user and their room holding the cold-room workload's events."""
    (user,) = await register_users(session, server, 1, "cold")
    room = await user.create_room()
    await _gather_limited([user.send(room, {"msgtype": "m.text", "body": f"cold {i}"})
                           for i in range(_cold_events())], 16)
    return user, room


async def cold_room(server, session, *, make_cold: Callable[[], Awaitable[None]],
                    prepared: tuple[Client, str] | None = None) -> Metrics:
    events_n = _cold_events()
    user, room = prepared or await prepare_cold_room(server, session)
    await make_cold()
    start = now()
    page = await user.messages(room, limit=20)
    elapsed = (now() - start) * 1000
    assert page["chunk"], "no events in the first page"
    return {f"cold room first /messages ms ({events_n} events)": elapsed}


# -- 7. media ---------------------------------------------------------------------------
def _photo_jpeg(variant: int = 0) -> bytes:
    """A 2000×1500 JPEG with detail everywhere (so it compresses like a photo); each
    variant has other bytes, so neither server can reuse another's thumbnails."""
    import io

    from PIL import Image

    shift = variant * 0.01
    image = Image.effect_mandelbrot((2000, 1500), (-2.2 + shift, -1.2, 1.0 + shift, 1.2),
                                    100).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


async def media(server, session) -> Metrics:
    clients_n, seconds = 8, _scale("BENCH_MEDIA_SECONDS", 10)
    size = 1024 * 1024
    clients = await register_users(session, server, clients_n, "media")
    uploaded: list[str] = []

    async def upload_loop(client: Client, deadline: float) -> None:
        while now() < deadline:
            uploaded.append(await client.upload(os.urandom(size), "application/octet-stream",
                                                "blob.bin"))

    start = now()
    await asyncio.gather(*(upload_loop(c, start + seconds) for c in clients))
    upload_s = now() - start

    downloaded = 0

    async def download_loop(client: Client, deadline: float) -> None:
        nonlocal downloaded
        i = 0
        while now() < deadline:
            mxc = uploaded[i % len(uploaded)]
            downloaded += len(await client.media_get("download/" + mxc[len("mxc://"):]))
            i += 1

    start = now()
    await asyncio.gather(*(download_loop(c, start + seconds) for c in clients))
    download_s = now() - start

    # what a receiver waits for: the sender's upload, then the first thumbnail of it
    photos = [_photo_jpeg(i) for i in range(6)]
    first: list[float] = []
    mxc = ""
    for photo in photos:
        t0 = now()
        mxc = await clients[0].upload(photo, "image/jpeg", "photo.jpg")
        await clients[1].media_get("thumbnail/" + mxc[len("mxc://"):],
                                   {"width": "96", "height": "96", "method": "crop"})
        first.append((now() - t0) * 1000)
    path = "thumbnail/" + mxc[len("mxc://"):]
    # sizes no default covers (both servers' defaults end at 800×600)
    larger: list[float] = []
    for width, height in ((1000, 750), (1200, 900), (1100, 1100), (1600, 1200)):
        t0 = now()
        await clients[0].media_get(path, {"width": str(width), "height": str(height),
                                          "method": "scale"})
        larger.append((now() - t0) * 1000)
    repeat: list[float] = []
    for _ in range(200):
        t0 = now()
        await clients[1].media_get(path, {"width": "96", "height": "96", "method": "crop"})
        repeat.append((now() - t0) * 1000)
    return {
        "media upload MB/s (8 clients, 1 MiB files)": len(uploaded) * size / upload_s / 1e6,
        "media download MB/s (8 clients, 1 MiB files)": downloaded / download_s / 1e6,
        "upload + first 96×96 thumbnail p50 ms (2000×1500 JPEG)": percentile(first, 50),
        "thumbnail larger than the defaults p50 ms (scale)": percentile(larger, 50),
        "thumbnail repeated p50 ms (96×96 crop)": percentile(repeat, 50),
        "thumbnail repeated p99 ms": percentile(repeat, 99),
    }
