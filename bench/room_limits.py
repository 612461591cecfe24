"""``python -m bench.room_limits``: what ``rooms.max_open`` / ``rooms.max_warm`` trade.

Our server alone (no Synapse), for each limit pair in ``BENCH_LIMITS`` (default
``256/256,128/128,64/64,128/32``; ``open/warm``):

* memory (``BENCH_LIMITS_PART`` has ``memory``): the rooms-at-rest workload of
  ``make bench`` (bench/workloads.py, sizes from its BENCH_MEMORY_* variables), one
  fresh server per pair, all pairs at once (RSS does not depend on the machine's
  speed, and the idle minutes overlap);
* speed (``speed``): one server and one data set; per round and per pair (the order
  turning each round so that no pair always runs first), a restart with that pair,
  then the 200-room initial sync (first after the restart, then warm, all members and
  lazy), and acknowledged sends per second by 8 senders spread over 64 and over 512
  rooms (each sender walks its own rooms in turn; ``BENCH_LIMITS_SECONDS``, 8 s).
  ``BENCH_LIMITS_ROUNDS`` (3) rounds; medians printed.

Every figure is printed with the pair that made it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

import aiohttp

from bench import workloads
from bench.client import Client, now
from bench.servers import OurServer


def _pairs() -> list[tuple[int, int]]:
    raw = os.environ.get("BENCH_LIMITS", "256/256,128/128,64/64,128/32")
    return [tuple(int(x) for x in p.split("/")) for p in raw.split(",")]  # type: ignore


def _label(pair: tuple[int, int]) -> str:
    return f"rooms.max_open: {pair[0]}, rooms.max_warm: {pair[1]}"


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))


async def _memory_one(pair: tuple[int, int]) -> dict[str, float]:
    server = OurServer(extra={"rooms": {"max_open": pair[0], "max_warm": pair[1]}})
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, server.start)
        async with _session() as session:
            return await workloads.rooms_at_rest(server, session)
    finally:
        server.cleanup()


async def memory(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, float]]:
    results = await asyncio.gather(*(_memory_one(p) for p in pairs))
    return dict(zip(pairs, results))


async def _rooms_for(senders: list[Client], n: int) -> list[list[str]]:
    per = n // len(senders)
    made = await workloads._gather_limited(
        [s.create_room() for s in senders for _ in range(per)], 8)
    return [made[i * per:(i + 1) * per] for i in range(len(senders))]


async def _throughput(senders: list[Client], rooms: list[list[str]], seconds: float
                      ) -> float:
    count = 0
    deadline = now() + seconds

    async def loop(client: Client, mine: list[str]) -> None:
        nonlocal count
        i = 0
        while now() < deadline:
            await client.send(mine[i % len(mine)], {"msgtype": "m.text", "body": f"t{i}"})
            count += 1
            i += 1

    start = now()
    await asyncio.gather(*(loop(s, r) for s, r in zip(senders, rooms)))
    return count / (now() - start)


async def _syncs(user: Client) -> dict[str, float]:
    out = {}
    for name, lazy in (("first after restart", False), ("warm, all members", False),
                       ("warm, lazy members", True)):
        flt = json.dumps({"room": {"state": {"lazy_load_members": lazy},
                                   "timeline": {"limit": 10}}})
        t0 = now()
        await user.sync(filter=flt)
        out[f"initial sync ms ({workloads._sync_rooms()} rooms, {name})"] = (now() - t0) * 1000
    return out


async def speed(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, float]]:
    rounds = int(os.environ.get("BENCH_LIMITS_ROUNDS", 3))
    seconds = float(os.environ.get("BENCH_LIMITS_SECONDS", 8))
    server = OurServer()
    loop = asyncio.get_running_loop()
    samples: dict[tuple[int, int], dict[str, list[float]]] = {p: {} for p in pairs}
    try:
        await loop.run_in_executor(None, server.start)
        async with _session() as session:
            t0 = time.monotonic()
            user = await workloads.prepare_initial_sync(server, session)
            senders = await workloads.register_users(session, server, 8, "lim")
            r64 = await _rooms_for(senders, 64)
            r512 = await _rooms_for(senders, 512)
            print(f"filled in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
        for rnd in range(rounds):
            order = pairs[rnd % len(pairs):] + pairs[:rnd % len(pairs)]
            for pair in order:
                server.configure({"rooms": {"max_open": pair[0], "max_warm": pair[1]}})
                await loop.run_in_executor(None, server.restart)
                async with _session() as session:
                    for c in [user, *senders]:
                        c.session = session
                    m = await _syncs(user)
                    m["throughput events/s (8 senders, 64 rooms)"] = \
                        await _throughput(senders, r64, seconds)
                    m["throughput events/s (8 senders, 512 rooms)"] = \
                        await _throughput(senders, r512, seconds)
                print(f"round {rnd} {_label(pair)}: {m}", file=sys.stderr, flush=True)
                for k, v in m.items():
                    samples[pair].setdefault(k, []).append(v)
    finally:
        server.cleanup()
    return {p: {k: statistics.median(v) for k, v in s.items()} for p, s in samples.items()}


def table(results: dict[tuple[int, int], dict[str, float]]) -> str:
    pairs = list(results)
    metrics: list[str] = []
    for r in results.values():
        metrics += [k for k in r if k not in metrics]
    head = "| metric | " + " | ".join(
        f"{o}/{w}" + (" (default)" if (o, w) == _default() else "") for o, w in pairs) + " |"
    lines = [head, "|---|" + "---:|" * len(pairs)]
    for k in metrics:
        lines.append(f"| {k} | " + " | ".join(_fmt(results[p].get(k)) for p in pairs)
                     + " |")
    return "\n".join(lines)


def _default() -> tuple[int, int]:
    from homeserver.config import RoomsConfig
    return RoomsConfig.max_open, RoomsConfig.max_warm


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f}"


def main() -> int:
    parts = os.environ.get("BENCH_LIMITS_PART", "memory,speed").split(",")
    pairs = _pairs()
    text = [f"room limits (max_open/max_warm), ours alone, "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
            f"load average {os.getloadavg()[0]:.1f}"]
    if "memory" in parts:
        text += ["", "memory (rooms at rest, all pairs at once):", "",
                 table(asyncio.run(memory(pairs)))]
        print("\n".join(text), flush=True)  # the speed part takes a while
        text = []
    if "speed" in parts:
        text += ["", f"speed (medians of {os.environ.get('BENCH_LIMITS_ROUNDS', 3)} rounds;"
                 f" load average at the end {os.getloadavg()[0]:.1f}):", "",
                 table(asyncio.run(speed(pairs)))]
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
