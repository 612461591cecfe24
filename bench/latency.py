"""The send path at issue 16's sizes (see bench/README.md for what was found in it).

* ``fanout_small``: 10 receivers long-polling ``/sync`` in one room, 1 sender at
  10 messages/s; p50/p99 send→delivery latency and the p50/p99 of the PUT itself.
* ``scaling``: 8 senders for a fixed time; their sends spread over 1, 8, 64 or 512
  rooms (every sender is in every room; sender *i* sends its *k*-th message to room
  ``(i + k) mod rooms``, so each send goes to another room than the last); acknowledged
  events per second for each room count. ``BENCH_SCALING_ROOMS`` (e.g. ``8``) picks the
  counts; Synapse is run with the 8-room case only unless ``BENCH_SCALING_ALL=1``
  (creating 512 rooms on it takes minutes).

Run alone: ``BENCH_ONLY=fanout_small,scaling python -m bench``; ours only, without
Synapse: ``python -m bench.latency``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

from bench.client import Client, now, percentile
from bench.servers import cpu_seconds
from bench.workloads import _gather_limited, _scale, register_users, send_on_schedule

Metrics = dict[str, float]


def _room_counts(server_name: str) -> list[int]:
    counts = [int(c) for c in os.environ.get("BENCH_SCALING_ROOMS", "1,8,64,512").split(",")]
    if server_name != "ours" and not os.environ.get("BENCH_SCALING_ALL"):
        counts = [c for c in counts if c == 8]
    return counts


async def fanout_small(server, session, *, measuring=lambda: None) -> Metrics:
    """``measuring()`` is called when the measured part begins (to start a profiler)."""
    receivers_n, messages, rate = 10, _scale("BENCH_FANOUT_SMALL_MESSAGES", 300), 10.0
    sender, *receivers = await register_users(session, server, receivers_n + 1, "fs")
    room = await sender.create_room(preset="public_chat")
    await _gather_limited([r.join(room) for r in receivers], 10)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    puts: list[float] = []
    done = asyncio.Event()
    expected = messages * receivers_n

    async def poll(client: Client) -> None:
        body, _ = await client.sync(filter=json.dumps({"room": {"timeline": {"limit": 1}}}))
        since = body["next_batch"]
        while not done.is_set():
            body, _ = await client.sync(since=since, timeout_ms=30000)
            arrived = now()
            since = body["next_batch"]
            timeline = body.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
            for event in timeline.get("events", []):
                key = event.get("content", {}).get("bench_id")
                if key in sent_at:
                    latencies.append(arrived - sent_at[key])
            if len(latencies) >= expected:
                done.set()

    tasks = [asyncio.ensure_future(poll(r)) for r in receivers]
    await asyncio.sleep(1.0)
    measuring()
    cpu = cpu_seconds(server.pid)

    async def send(i: int) -> None:
        key = f"{i}-{uuid.uuid4().hex[:8]}"
        sent_at[key] = t0 = now()
        await sender.send(room, {"msgtype": "m.text", "body": f"fan {i}", "bench_id": key})
        puts.append(now() - t0)

    await send_on_schedule(send, messages, rate, done)
    cpu = cpu_seconds(server.pid) - cpu
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"fan-out 10×10/s p50 latency ms": percentile(latencies, 50) * 1000,
            "fan-out 10×10/s p99 latency ms": percentile(latencies, 99) * 1000,
            "fan-out 10×10/s PUT p50 ms": percentile(puts, 50) * 1000,
            "fan-out 10×10/s PUT p99 ms": percentile(puts, 99) * 1000,
            "fan-out 10×10/s delivered %": 100.0 * len(latencies) / expected,
            # the send and its 10 deliveries (and the re-polls), whatever else ran
            "fan-out 10×10/s server CPU ms per message": cpu * 1000 / messages}


async def scaling(server, session, *, measuring=lambda: None) -> Metrics:
    senders_n, seconds = 8, _scale("BENCH_SCALING_SECONDS", 10)
    senders = await register_users(session, server, senders_n, "sc")
    metrics: Metrics = {}
    for rooms_n in _room_counts(server.name):
        rooms = await _gather_limited(
            [senders[i % senders_n].create_room(preset="public_chat") for i in range(rooms_n)],
            8)
        await _gather_limited([s.join(r) for i, r in enumerate(rooms)
                               for j, s in enumerate(senders) if j != i % senders_n], 16)
        count = 0
        deadline = now() + seconds

        async def loop(i: int, client: Client) -> None:
            nonlocal count
            k = 0
            while now() < deadline:
                await client.send(rooms[(i + k) % rooms_n], {"msgtype": "m.text",
                                                             "body": f"sc {k}"})
                count += 1
                k += 1

        measuring()
        start, cpu = now(), cpu_seconds(server.pid)
        await asyncio.gather(*(loop(i, s) for i, s in enumerate(senders)))
        metrics[f"throughput events/s (8 senders, {rooms_n} rooms)"] = count / (now() - start)
        # what each event cost the server, whatever else ran on the machine
        metrics[f"server CPU ms per event (8 senders, {rooms_n} rooms)"] = \
            (cpu_seconds(server.pid) - cpu) * 1000 / max(count, 1)
    return metrics


async def _ours_only(names: list[str]) -> None:
    from bench.__main__ import new_session
    from bench.servers import OurServer

    server = OurServer()
    try:
        await asyncio.get_running_loop().run_in_executor(None, server.start)
        for name in names:
            async with new_session() as session:
                result = await {"fanout_small": fanout_small, "scaling": scaling}[name](
                    server, session)
            for k, v in result.items():
                print(f"{k}: {v:,.1f}", flush=True)
    finally:
        server.cleanup()


if __name__ == "__main__":
    asyncio.run(_ours_only(sys.argv[1:] or ["fanout_small", "scaling"]))
