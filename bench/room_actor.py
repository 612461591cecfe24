"""Room actor benchmark: write throughput, wake time, memory of sleeping vs awake rooms.

    python -m bench.room_actor [--quick] [--data-dir DIR]

Runs the real RoomRegistry/RoomActor/RoomStore (real SQLite files, real signing and
auth) on a ``task.Clock`` with the in-memory fake room stream, so the numbers are the
room layer's own cost without HTTP or the global DB. Reports:

- events created and persisted per second in one room: one request per turn (a commit
  per event) and 100 concurrent requests per turn (group commit);
- the same spread over 100 rooms (each turn, one request to each room);
- wake time of a hibernated room holding 10,000 events (median of repeated wakes);
- RSS with 10,000 hibernated rooms versus the same rooms all awake.

Populating the rooms for the RSS figure happens in child processes (one per core, up
to four), so that the parent's RSS is not inflated by the allocations of creating them.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from twisted.internet import defer, task

from homeserver.crypto.signing import generate_signing_key
from homeserver.events.room_versions import get_room_version
from homeserver.rooms.actor.registry import RoomRegistry
from homeserver.rooms.rules.creation import initial_room_events
from tests.fakes.room_stream import FakeRoomStreamWriter, RecordingListener

ALICE = "@alice:bench"
FULL = dict(one_room=3000, spread_rounds=30, spread_rooms=100, wake_events=10_000,
            wakes=20, rss_rooms=10_000)
QUICK = dict(one_room=500, spread_rounds=5, spread_rooms=100, wake_events=2_000,
             wakes=10, rss_rooms=1_000)
IDLE = 60.0


class Bench:
    def __init__(self, data_dir: str, max_open: int = 100_000) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.stream = FakeRoomStreamWriter()
        # hibernating rooms close their files on threads, as the server does
        self.closer = ThreadPoolExecutor(2)
        self.registry = RoomRegistry(
            data_dir=data_dir, server_name="bench", signing_key=generate_signing_key(),
            clock=self.clock, stream_writer=self.stream, listener=RecordingListener(),
            idle_seconds=IDLE, max_open=max_open,
            close_in_thread=self._close_later)
        self._closing: list = []

    def _close_later(self, fn) -> None:
        self._closing.append(self.closer.submit(fn))

    def settle(self) -> None:
        """Wait until every hibernated room's file is really closed."""
        for future in self._closing:
            future.result()
        self._closing.clear()

    def stop(self) -> None:
        self.drive(self.registry.stop())
        self.closer.shutdown(wait=True)

    def drive(self, awaitable):
        d = awaitable if isinstance(awaitable, defer.Deferred) \
            else defer.ensureDeferred(awaitable)
        while not d.called:
            self.clock.advance(0)
        result = []
        d.addBoth(result.append)
        if isinstance(result[0], Exception) or hasattr(result[0], "raiseException"):
            result[0].raiseException()
        return result[0]

    def create_room(self, creator: str = ALICE) -> str:
        partials = initial_room_events(get_room_version("12"), creator,
                                       {"preset": "public_chat", "name": "bench"})
        room_id, _ = self.drive(self.registry.create_room(creator, "12", partials))
        return room_id

    def send_batch(self, actors, per_actor: int, text: str = "hello") -> None:
        """One reactor turn: ``per_actor`` requests to each actor, then run them."""
        ds = [defer.ensureDeferred(actor.create_event(
            {"type": "m.room.message", "sender": ALICE,
             "content": {"msgtype": "m.text", "body": text}}))
              for actor in actors for _ in range(per_actor)]
        self.drive(defer.gatherResults(ds, consumeErrors=True))

    def hibernate_all(self) -> None:
        self.clock.advance(IDLE + 1)


class Timer:
    """Wall and CPU time of a block; the machine may be shared, so both are shown."""

    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, events: int) -> str:
        return (f"{events / self.wall:6.0f} events/s wall,"
                f" {self.cpu / events * 1e3:.2f} ms CPU per event")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def throughput(data_dir: str, sizes: dict) -> None:
    bench = Bench(data_dir)
    actor = bench.drive(bench.registry.get(bench.create_room()))
    n = sizes["one_room"]

    with Timer() as t:
        for _ in range(n // 10):
            bench.send_batch([actor], 1)
    print(f"one room, 1 request per turn:       {t.rate(n // 10)}  (a commit per event)")

    with Timer() as t:
        for _ in range(n // 100):
            bench.send_batch([actor], 100)
    print(f"one room, 100 requests per turn:    {t.rate(n // 100 * 100)}"
          f"  (group commit: {n // 100} commits)")

    rooms = [bench.drive(bench.registry.get(bench.create_room()))
             for _ in range(sizes["spread_rooms"])]
    rounds = sizes["spread_rounds"]
    with Timer() as t:
        for _ in range(rounds):
            bench.send_batch(rooms, 1)
    total = rounds * len(rooms)
    print(f"{len(rooms)} rooms, 1 request each per turn: {t.rate(total)}"
          f"  (one commit per room per turn)")
    bench.stop()


def wake_time(data_dir: str, sizes: dict) -> None:
    bench = Bench(data_dir)
    room_id = bench.create_room()
    actor = bench.drive(bench.registry.get(room_id))
    for _ in range(sizes["wake_events"] // 500):
        bench.send_batch([actor], 500)
    events = bench.drive(actor.last_seq())
    wakes, first_writes = [], []
    for _ in range(sizes["wakes"]):
        bench.hibernate_all()
        bench.settle()  # a hibernated room: its file closed long ago
        assert not bench.registry.is_awake(room_id)
        size_mb = os.path.getsize(bench.registry.path_for(room_id)) / 2**20
        start = time.perf_counter()
        actor = bench.drive(bench.registry.get(room_id))
        woke = time.perf_counter()
        bench.send_batch([actor], 1)
        wakes.append(woke - start)
        first_writes.append(time.perf_counter() - woke)
    print(f"wake of a hibernated room with {events} events ({size_mb:.1f} MB):"
          f" median {statistics.median(wakes) * 1e3:.2f} ms"
          f" (max {max(wakes) * 1e3:.2f} ms); first write after wake"
          f" {statistics.median(first_writes) * 1e3:.2f} ms")
    bench.stop()


def populate(data_dir: str, count: int, worker: int) -> None:
    """Child process: create ``count`` rooms, then let them all hibernate."""
    bench = Bench(data_dir, max_open=200)
    # one creator per worker: v12 room IDs hash the create event, and the workers'
    # clocks all start at the same instant
    creator = f"@alice{worker}:bench"
    with open(os.path.join(data_dir, f"room_ids.{worker}.txt"), "w") as out:
        for _ in range(count):
            out.write(bench.create_room(creator) + "\n")
    bench.stop()


def memory(data_dir: str, sizes: dict) -> None:
    count = sizes["rss_rooms"]
    start = time.perf_counter()
    workers = max(1, min(4, os.cpu_count() or 1))
    children = [subprocess.Popen([sys.executable, "-m", "bench.room_actor", "--populate",
                                  data_dir, str(count // workers + (i < count % workers)),
                                  str(i)]) for i in range(workers)]
    for child in children:
        if child.wait() != 0:
            raise SystemExit("populating rooms failed")
    room_ids = []
    for i in range(workers):
        with open(os.path.join(data_dir, f"room_ids.{i}.txt")) as f:
            room_ids += f.read().split()
    print(f"(created {len(room_ids)} rooms in {workers} child processes"
          f" in {time.perf_counter() - start:.1f} s)")
    # three file handles per open room DB (db, -wal, -shm)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * count + 1000
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    awake_target = min(count, (limit - 1000) // 3)

    bench = Bench(data_dir, max_open=100)
    gc.collect()
    base = rss_mb()
    # cycle every room through wake and hibernation (at most 100 awake at once)
    for room_id in room_ids:
        bench.drive(bench.registry.get(room_id))
    bench.hibernate_all()
    gc.collect()
    asleep = rss_mb()
    print(f"RSS with {count} hibernated rooms: {asleep:.0f} MB"
          f" (process before any room: {base:.0f} MB; {bench.registry.awake_count} awake)")
    bench.stop()

    bench = Bench(data_dir, max_open=count)
    for room_id in room_ids[:awake_target]:
        bench.drive(bench.registry.get(room_id))
    gc.collect()
    awake = rss_mb()
    note = "" if awake_target == count else f" (fd limit {limit}: only {awake_target} woken)"
    print(f"RSS with {bench.registry.awake_count} awake rooms: {awake:.0f} MB"
          f" = {(awake - asleep) * 1024 / max(awake_target, 1):.1f} KB per awake room"
          f"{note}")
    bench.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    parser.add_argument("--data-dir", help="where to put room DBs (default: a temp dir)")
    parser.add_argument("--populate", nargs=3, metavar=("DIR", "N", "WORKER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.populate:
        populate(args.populate[0], int(args.populate[1]), int(args.populate[2]))
        return
    sizes = QUICK if args.quick else FULL
    root = args.data_dir or tempfile.mkdtemp(prefix="bench-rooms-")
    try:
        print(f"room actor benchmark ({'quick' if args.quick else 'full'}), data in {root}")
        throughput(os.path.join(root, "throughput"), sizes)
        wake_time(os.path.join(root, "wake"), sizes)
        os.makedirs(os.path.join(root, "memory"), exist_ok=True)
        memory(os.path.join(root, "memory"), sizes)
    finally:
        if not args.data_dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
