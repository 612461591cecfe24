"""Federation workload (issue 14): remote join time and message delivery latency between
our server and a stock Synapse on loopback, both directions measured in one run; with
``--pair`` also between two instances of our server.

    .venv/bin/python -m bench.federation [--rooms 10] [--messages 100] [--version 12] [--pair]
                                         [--sender [--events 500] [--senders 4]]

Starts Synapse (``../shared/anchors/synapse.sh``, rate limits off) and our server,
federating over TLS with the loopback CA (``tests/interop/synapse.py``; ``--pair``:
``tests/interop/pair.py``), both SQLite. Measures:

* remote join time: the client's ``POST /join/{roomId}?server_name=`` (make_join,
  send_join, the joined room's state and auth chain checked and stored) into a fresh
  public room of the other server, one room at a time, ``--rooms`` of them each way;
* delivery latency: a sender on one server sends ``--messages`` messages one after
  another (the next once the previous arrived); a client on the other server is
  already long-polling ``/sync``; latency = from the start of the ``PUT /send`` to the
  ``/sync`` answer that holds it. Five warm-up messages are not counted.

Prints a Markdown table (p50/p99 ms per direction) and the settings used. ``--sender``
adds, in the same run, what the outbound sender costs (``bench/federation_sender.py``:
events/s a room with members on N destinations sustains, transactions, CPU per PDU,
ours → ours and ours → Synapse, and a catch-up).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import threading
import time
import uuid

from bench.client import percentile
from tests.interop.common import SyncCursor, bodies, call, create_room, join, register, say
from tests.interop.synapse import Synapse

WARM_UP = 5


class Side:
    """One server as the benchmark sees it: a name for the table, how to make a user."""

    def __init__(self, label: str, server, server_name: str) -> None:
        self.label, self.server, self.server_name = label, server, server_name

    def user(self, prefix: str) -> str:
        """A fresh user's access token."""
        if isinstance(self.server, Synapse):
            name = f"{prefix}{uuid.uuid4().hex[:8]}"
            self.server.register(name, "pw-" + name)
            return self.server.login(name, "pw-" + name)
        return register(self.server, prefix)[1]


def join_times(host: Side, joiner: Side, rooms: int, version: str) -> list[float]:
    """Seconds for ``joiner``'s user to join each of ``rooms`` public rooms of ``host``."""
    host_token, joiner_token = host.user("host"), joiner.user("joiner")
    times = []
    for _ in range(rooms):
        room_id = create_room(host.server, host_token, version, preset="public_chat")
        began = time.perf_counter()
        join(joiner.server, joiner_token, room_id, via=host.server_name)
        times.append(time.perf_counter() - began)
    return times


class Arrivals(threading.Thread):
    """A client long-polling ``/sync`` in a loop, noting when each message body arrived."""

    def __init__(self, server, token: str, room_id: str) -> None:
        super().__init__(daemon=True)
        self.cursor = SyncCursor(server, token)
        self.cursor.once()
        self.room_id = room_id
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        self.stopping = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping:
                sync = self.cursor.once(timeout_ms=5_000)
                at = time.perf_counter()
                with self.changed:
                    for body in bodies(sync, self.room_id):
                        self.seen.setdefault(body, at)
                    self.changed.notify_all()
        except BaseException as e:  # reported to the waiting sender, not lost in a thread
            with self.changed:
                self.error = e
                self.changed.notify_all()

    def wait_for(self, body: str, timeout: float = 60.0) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: body in self.seen or self.error, timeout):
                raise RuntimeError(f"message {body!r} not delivered within {timeout:g}s")
            if body not in self.seen:
                raise RuntimeError(f"the receiver's /sync failed: {self.error}")
            return self.seen[body]

    def stop(self) -> None:
        self.stopping = True
        self.join(10)


def delivery(sender: Side, receiver: Side, messages: int, version: str) -> list[float]:
    """Seconds from send to the receiver's /sync answer, for each counted message."""
    s_token, r_token = sender.user("sender"), receiver.user("receiver")
    room_id = create_room(sender.server, s_token, version, preset="public_chat")
    join(receiver.server, r_token, room_id, via=sender.server_name)
    arrivals = Arrivals(receiver.server, r_token, room_id)
    arrivals.start()
    latencies = []
    try:
        for i in range(WARM_UP + messages):
            text = f"m{i} {uuid.uuid4().hex[:6]}"
            began = time.perf_counter()
            say(sender.server, s_token, room_id, text)
            arrived = arrivals.wait_for(text)
            if i >= WARM_UP:
                latencies.append(arrived - began)
    finally:
        arrivals.stop()
    return latencies


def measure(x: Side, y: Side, args) -> list[tuple[str, list[float]]]:
    """Every metric between two servers, both directions."""
    return [
        (f"remote join: user on {y.label} joins room on {x.label}",
         join_times(x, y, args.rooms, args.version)),
        (f"remote join: user on {x.label} joins room on {y.label}",
         join_times(y, x, args.rooms, args.version)),
        (f"delivery {x.label} → {y.label}", delivery(x, y, args.messages, args.version)),
        (f"delivery {y.label} → {x.label}", delivery(y, x, args.messages, args.version)),
    ]


def table(rows: list[tuple[str, list[float]]]) -> str:
    out = ["| metric | n | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for name, values in rows:
        ms = [v * 1000 for v in values]
        out.append(f"| {name} | {len(ms)} | {percentile(ms, 50):,.1f} | "
                   f"{percentile(ms, 99):,.1f} | {max(ms):,.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.federation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=10, help="rooms joined each way")
    parser.add_argument("--messages", type=int, default=100,
                        help="messages each way (after 5 warm-up ones)")
    parser.add_argument("--version", default="12", help="room version")
    parser.add_argument("--pair", action="store_true",
                        help="also measure two instances of our server")
    parser.add_argument("--sender", action="store_true",
                        help="also measure the outbound sender's cost")
    from bench import federation_sender

    federation_sender.add_arguments(parser)
    args = parser.parse_args(argv)

    from tests.interop.synapse import Federation

    began = time.monotonic()
    fed = Federation.get()
    rows = measure(Side("ours", fed.ours, fed.our_name),
                   Side("Synapse", fed.synapse, fed.synapse.server_name), args)
    if args.pair:
        from tests.interop.pair import OurPair

        pair = OurPair.get()
        rows += measure(Side("ours A", pair.a, pair.a.server_name),
                        Side("ours B", pair.b, pair.b.server_name), args)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join([
        f"Federation benchmark {when} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}; all servers and the client on one machine, "
        "loopback TLS, SQLite, rate limits off.", "",
        f"Settings: room version {args.version}, {args.rooms} rooms joined each way, "
        f"{args.messages} messages each way ({WARM_UP} warm-up not counted), one message "
        "in flight at a time, the receiver already long-polling /sync (run took "
        f"{time.monotonic() - began:.0f} s).", "",
        table(rows)])
    if args.sender:
        report += "\n\n" + federation_sender.run(args)
    print(report)
    with open(os.path.join(os.path.dirname(__file__), "results", "federation-latest.md"),
              "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
