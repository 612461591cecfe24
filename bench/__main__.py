"""``make bench``: the same workloads against this server and a stock Synapse, in one
run, alternating; prints a Markdown table (metric, ours, Synapse, ratio) and writes it
to bench/results/latest.md.

Both servers run their default configuration, except what a benchmark needs of both
(open registration, rate limits off): the output says so. A setting of ours that a
workload changes is printed next to the figures it produced.

Environment: ``BENCH_PG=1`` also runs both on PostgreSQL (``BENCH_PG=only``: only
there); ``BENCH_ONLY=fanout,…`` picks workloads (``BENCH_ONLY=memory``: rooms at rest
only); sizes via BENCH_* variables (see bench/workloads.py).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import re
import sys
import time

import aiohttp

from bench import latency, workloads
from bench.servers import OurServer, SynapseServer, wait_quiet

ALL = ("memory", "fanout", "fanout_ws", "throughput", "initial_sync", "create_join", "cold",
       "media", "matrixrtc", "fanout_small", "scaling")
# lower is better for metrics in these units; the ratio column is always ours / Synapse
_LOWER_IS_BETTER = re.compile(r"\b(ms|KB)\b|\bMB\b(?!/s)")


#: workloads whose filling (not measured) runs for both servers at once, then the
#: measurement for each in turn: the run takes the longer fill, not the sum
PREPARE = {"initial_sync": workloads.prepare_initial_sync,
           "cold": workloads.prepare_cold_room}


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))


async def run_workload(name: str, server, session: aiohttp.ClientSession,
                       prepared=None) -> dict[str, float]:
    if name == "memory":
        return await workloads.rooms_at_rest(server, session)
    if name == "fanout":
        return await workloads.fanout(server, session)
    if name == "fanout_ws":
        if server.name != "ours":
            return {}
        return await workloads.fanout(server, session, websocket=True)
    if name == "throughput":
        senders = await workloads.register_users(session, server, 50, "tp")
        m = await workloads.throughput(server, session, shared=False, senders=senders)
        m.update(await workloads.throughput(server, session, shared=True, senders=senders))
        return m
    if name == "initial_sync":
        async def restart() -> None:
            await asyncio.get_running_loop().run_in_executor(None, server.restart)
        return await workloads.initial_sync(server, session, restart=restart,
                                            prepared=prepared)
    if name == "create_join":
        return await workloads.creation_and_join(server, session)
    if name == "cold":
        async def make_cold() -> None:
            await asyncio.get_running_loop().run_in_executor(None, server.restart)
        return await workloads.cold_room(server, session, make_cold=make_cold,
                                         prepared=prepared)
    if name == "media":
        return await workloads.media(server, session)
    if name == "matrixrtc":
        from bench import matrixrtc

        return await matrixrtc.call(server, session, workloads.register_users)
    if name == "fanout_small":
        return await latency.fanout_small(server, session)
    if name == "scaling":
        return await latency.scaling(server, session)
    raise ValueError(name)


def ratio_cell(metric: str, ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "–"
    r = ours / theirs
    if abs(r - 1) < 0.005:
        return "1.00× (same)"
    better = r < 1 if _LOWER_IS_BETTER.search(metric) else r > 1
    return f"{r:.2f}× ({'better' if better else 'worse'})"


def fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.1f}" if abs(v) < 10000 else f"{v:,.0f}"


async def main_async(selected: list[str], postgres: bool) -> str:
    label = "PostgreSQL" if postgres else "SQLite"
    began = time.monotonic()
    ours = OurServer(postgres=postgres)
    synapse = SynapseServer(postgres=postgres)
    results: dict[str, dict[str, float]] = {"ours": {}, "synapse": {}}
    changed: dict[str, str] = {}
    order: list[str] = []
    try:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, server.start)
                               for server in (ours, synapse)))
        for name in selected:
            sessions = {server.name: new_session() for server in (ours, synapse)}
            prepared: dict[str, object] = {}
            if name in PREPARE:
                t0 = time.monotonic()
                print(f"[{label}] {name}: filling both …", file=sys.stderr, flush=True)
                fills = await asyncio.gather(
                    *(PREPARE[name](server, sessions[server.name])
                      for server in (ours, synapse)), return_exceptions=True)
                for server, fill in zip((ours, synapse), fills):
                    if isinstance(fill, Exception):
                        print(f"  fill failed on {server.name}: {fill!r}", file=sys.stderr)
                    else:
                        prepared[server.name] = fill
                print(f"  filled in {time.monotonic() - t0:.0f}s", file=sys.stderr)
            for server in (ours, synapse):
                # the other server may still be working off its last workload (a
                # Synapse that fell behind in fan-out keeps going for a while)
                waited = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: wait_quiet((ours, synapse)))
                t0 = time.monotonic()
                print(f"[{label}] {name} on {server.name} (after {waited:.0f}s quiet-wait) …",
                      file=sys.stderr, flush=True)
                try:
                    if name in PREPARE and server.name not in prepared:
                        raise RuntimeError("its fill failed")
                    metrics = await run_workload(name, server, sessions[server.name],
                                                 prepared.get(server.name))
                except Exception as e:  # report and go on: one broken workload ≠ no table
                    print(f"  failed: {e!r}", file=sys.stderr)
                    metrics = {}
                finally:
                    await sessions[server.name].close()
                print(f"  done in {time.monotonic() - t0:.0f}s: {metrics}", file=sys.stderr)
                for k, v in metrics.items():
                    if k not in order:
                        order.append(k)
                    results[server.name][k] = v
                    if server is ours and ours.changed:
                        # a setting other than the default: next to the figure it made
                        changed[k] = ours.changed
        described = f"Configuration: ours — {ours.described}; Synapse — {synapse.described}."
    finally:
        ours.cleanup()
        synapse.cleanup()
    minutes = (time.monotonic() - began) / 60
    lines = [f"### {label}", "", f"(this round, servers' start to finish: {minutes:.1f} min)",
             "", described,
             "", "| metric | ours | Synapse | ratio (ours/Synapse) |",
             "|---|---:|---:|---|"]
    for k in order:
        o, s = results["ours"].get(k), results["synapse"].get(k)
        note = f" ({changed[k]})" if k in changed else ""
        lines.append(f"| {k} | {fmt(o)}{note} | {fmt(s)} | {ratio_cell(k, o, s)} |")
    return "\n".join(lines)


def main() -> int:
    only = os.environ.get("BENCH_ONLY")
    selected = [w for w in ALL if not only or w in only.split(",")]
    header = (f"Benchmark run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
              f" on {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}; client and both servers on one machine.")
    pg = os.environ.get("BENCH_PG", "")
    tables = [] if pg == "only" else [asyncio.run(main_async(selected, postgres=False))]
    if pg in ("1", "only"):
        tables.append(asyncio.run(main_async(selected, postgres=True)))
    text = header + "\n\n" + "\n\n".join(tables) + "\n"
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "latest.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
