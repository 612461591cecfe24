"""What the outbound federation sender costs (issue 14): one room on our server with
members on N remote destinations, flooded with messages by local users; how fast the
destinations get them, how many transactions carry them, and how much of our server's
CPU each delivered PDU takes. One run measures ours → ours and ours → Synapse.

    .venv/bin/python -m bench.federation_sender [--events 500] [--senders 4] [--rounds 3]
                                                [--version 12]

(also run by ``python -m bench.federation --sender``). Servers: the interop fixture's
Synapse and our server S (``tests/interop/synapse.py``) plus a second instance of ours,
B, trusting the same loopback CA, so one room can have members on both. Cases, each a
fresh public room on S:

* **N=0**: local members only: the baseline (S's cost of accepting the messages);
* **N=1 ours**: one member on B; **N=1 Synapse**: one member on Synapse;
* **N=2**: one member on each.

Each case: the remote members join, five warm-up messages are delivered, then
``--senders`` client threads send ``--events`` messages as fast as S takes them, and
then one marker message. The sender delivers each destination's PDUs in stream order,
so the marker's arrival (a client long-polling ``/sync`` on each destination) means
every message was delivered; every case also checks that the destination acknowledged
every PDU without error (from its own record of the transactions:
``federation_inbound_txns`` on ours, ``received_transactions`` on Synapse) and counts
how many its clients can read (``/messages``). Reported per destination: delivered
events/s (from the first send to the marker's arrival), the lag after the last send
was acknowledged, transactions, transactions/s and PDUs per transaction, and S's CPU
time (``/proc/<pid>/stat``,
user + system, over the case) per event; the sender's share is the case's CPU per
event minus N=0's, per destination.

Then a **catch-up**: B is stopped while ``--events`` messages are sent, then started;
S's CPU over the catch-up is the sender's alone (nothing else happens on S), and the
span of B's recorded transactions gives PDUs/s (bounded by B's inbound processing as
much as by the sender: one transaction is in flight at a time).

The cases run ``--rounds`` times in turn and each number is the median of its rounds.
On the shared 2-core machines the numbers are noisy (other work runs beside them): the
ratios between cases of one run mean more than the absolute values, and S's CPU per
event is shown with its min–max over the rounds.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.federation import Arrivals, Side
from tests.interop.common import call, create_room, join, say, q
from tests.interop.synapse import Federation, Synapse, our_federating_server

WARM_UP = 5


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def received(side: Side, origin: str) -> tuple[int, int] | None:
    """``(transactions, PDUs acknowledged without error)`` from ``origin``, as the
    receiving server recorded them; None if it keeps no record we can read."""
    if isinstance(side.server, Synapse):
        paths, table = (glob.glob(os.path.join(side.server.dir, "**", "*.db"),
                                  recursive=True), "received_transactions")
    else:
        paths, table = (glob.glob(os.path.join(side.server.data_dir, "**", "homeserver.db"),
                                  recursive=True), "federation_inbound_txns")
    for path in paths:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                rows = db.execute(f"SELECT response_json FROM {table} WHERE origin = ?",
                                  (origin,)).fetchall()
        except sqlite3.Error:
            continue
        pdus = 0
        for (response,) in rows:
            answers = json.loads(response).get("pdus", {})
            pdus += sum(1 for answer in answers.values() if not answer)
        return len(rows), pdus
    return None


def inbound_span(side: Side, origin: str, since_ms: int) -> tuple[int, int, int] | None:
    """``(transactions, first, last received_ts)`` from ``origin`` recorded by one of
    our servers at or after ``since_ms``."""
    for path in glob.glob(os.path.join(side.server.data_dir, "**", "homeserver.db"),
                          recursive=True):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            n, first, last = db.execute(
                "SELECT count(*), min(received_ts), max(received_ts) FROM "
                "federation_inbound_txns WHERE origin = ? AND received_ts >= ?",
                (origin, since_ms)).fetchone()
            return (n, first, last) if n else None
    return None


def message_count(side: Side, token: str, room_id: str, prefix: str) -> int:
    """How many of the run's messages the destination's /messages holds."""
    seen, since = 0, None
    while True:
        path = f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit=1000"
        if since:
            path += f"&from={q(since)}"
        page = call(side.server, "GET", path, None, token)
        seen += sum(1 for e in page.get("chunk", [])
                    if str(e.get("content", {}).get("body", "")).startswith(prefix))
        since = page.get("end")
        if not page.get("chunk") or not since:
            return seen


def fan_out(origin: Side, pid: int, receivers: list[Side], events: int, senders: int,
            version: str) -> dict:
    """One case (module docstring): its measurements."""
    tokens = [origin.user("fan") for _ in range(senders)]
    room_id = create_room(origin.server, tokens[0], version, preset="public_chat")
    for token in tokens[1:]:
        join(origin.server, token, room_id)
    watchers: list[tuple[Side, str, Arrivals]] = []
    for side in receivers:
        token = side.user("recv")
        join(side.server, token, room_id, via=origin.server_name)
        watchers.append((side, token, Arrivals(side.server, token, room_id)))
    for _, _, arrivals in watchers:
        arrivals.start()
    try:
        for i in range(WARM_UP):
            text = f"warm{i} {uuid.uuid4().hex[:6]}"
            say(origin.server, tokens[0], room_id, text)
            for _, _, arrivals in watchers:
                arrivals.wait_for(text)
        prefix = f"run{uuid.uuid4().hex[:6]}"
        before = {s.label: received(s, origin.server_name) for s in receivers}
        cpu_before, began = cpu_seconds(pid), time.perf_counter()
        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(lambda i: say(origin.server, tokens[i % senders], room_id,
                                        f"{prefix} {i}"), range(events)))
        marker = f"{prefix} marker"
        say(origin.server, tokens[0], room_id, marker)
        acked = time.perf_counter()
        arrived = {s.label: arrivals.wait_for(marker, timeout=600)
                   for s, _, arrivals in watchers}
        cpu = cpu_seconds(pid) - cpu_before
    finally:
        for _, _, arrivals in watchers:
            arrivals.stop()
    result = {"receivers": [s.label for s in receivers], "events": events + 1,
              "send_rate": (events + 1) / (acked - began), "cpu": cpu, "per_dest": {}}
    for side, token, _ in watchers:
        after, was = received(side, origin.server_name), before[side.label]
        txns = pdus = None
        if after is not None and was is not None:
            txns, pdus = after[0] - was[0], after[1] - was[1]
            if pdus < events + 1:
                raise RuntimeError(f"{side.label} acknowledged {pdus} of {events + 1} PDUs")
        result["per_dest"][side.label] = {
            "rate": (events + 1) / (arrived[side.label] - began),
            "lag": arrived[side.label] - acked,
            "seconds": arrived[side.label] - began,
            "txns": txns,
            # what its clients can read now: Synapse prunes its inbound staging area
            # above 100 events per room and leaves the rest to backfill
            "kept": message_count(side, token, room_id, prefix)}
    return result


def catch_up(origin: Side, pid: int, receiver: Side, events: int, senders: int,
             version: str) -> dict:
    """The sender alone: ``receiver`` (one of ours) is stopped while ``events``
    messages are sent, then started; the catch-up rate is the events over the span
    of the receiver's recorded transactions, and S's CPU over the catch-up is all the
    sender's (nothing else happens on S meanwhile)."""
    tokens = [origin.user("cu") for _ in range(senders)]
    room_id = create_room(origin.server, tokens[0], version, preset="public_chat")
    for token in tokens[1:]:
        join(origin.server, token, room_id)
    token = receiver.user("recv")
    join(receiver.server, token, room_id, via=origin.server_name)
    arrivals = Arrivals(receiver.server, token, room_id)
    arrivals.start()
    try:
        for i in range(WARM_UP):
            text = f"warm{i} {uuid.uuid4().hex[:6]}"
            say(origin.server, tokens[0], room_id, text)
            arrivals.wait_for(text)
    finally:
        arrivals.stop()
    receiver.server.stop()
    prefix = f"cu{uuid.uuid4().hex[:6]}"
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(lambda i: say(origin.server, tokens[i % senders], room_id,
                                    f"{prefix} {i}"), range(events)))
    since_ms = int(time.time() * 1000)
    cpu_before = cpu_seconds(pid)
    receiver.server.start()
    deadline = time.monotonic() + 600
    while message_count(receiver, token, room_id, prefix) < events:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{receiver.label} did not catch up within 600 s")
        time.sleep(0.5)
    cpu = cpu_seconds(pid) - cpu_before
    span = inbound_span(receiver, origin.server_name, since_ms)
    if span is None:
        raise RuntimeError(f"{receiver.label} recorded no transactions from S")
    txns, first, last = span
    seconds = max(last - first, 1) / 1000
    return {"events": events, "txns": txns, "seconds": seconds, "cpu": cpu}


def _median(values: list[float]) -> float:
    return statistics.median(values)


def merged(runs: list[dict]) -> dict:
    """One case's rounds as one: the median of each measurement, and the spread of
    S's CPU per event (the noisiest number on a shared machine)."""
    per_event = [r["cpu"] / r["events"] for r in runs]
    case = {"receivers": runs[0]["receivers"], "events": runs[0]["events"],
            "send_rate": _median([r["send_rate"] for r in runs]),
            "per_event": _median(per_event), "spread": (min(per_event), max(per_event)),
            "per_dest": {}}
    for dest in runs[0]["per_dest"]:
        values = [r["per_dest"][dest] for r in runs]
        case["per_dest"][dest] = {
            key: (None if any(v[key] is None for v in values)
                  else _median([v[key] for v in values]))
            for key in values[0]}
    return case


def report(cases: list[dict], args, caught_up: dict | None = None) -> str:
    base = cases[0]["per_event"]
    lines = ["| case | sent ev/s | destination | delivered ev/s | lag after last send s | "
             "transactions | txn/s | PDUs/txn | kept | S CPU ms/event | sender CPU ms/PDU |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in cases:
        n = len(case["receivers"])
        per_event = case["per_event"]
        sender_share = (per_event - base) / n if n else None
        label = "N=0 (local only)" if not n else f"N={n} ({' + '.join(case['receivers'])})"
        rows = list(case["per_dest"].items()) or [("—", None)]
        for i, (dest, m) in enumerate(rows):
            first = i == 0
            txns = m["txns"] if m else None
            lines.append(" | ".join([
                f"| {label if first else ''}",
                f"{case['send_rate']:,.0f}" if first else "", dest,
                f"{m['rate']:,.0f}" if m else "—", f"{m['lag']:.2f}" if m else "—",
                "n/a" if txns is None else f"{txns:.0f}",
                "n/a" if not txns else f"{txns / m['seconds']:.1f}",
                "n/a" if not txns else f"{case['events'] / txns:.1f}",
                f"{m['kept']:.0f}" if m else "—",
                f"{per_event * 1000:.2f} ({case['spread'][0] * 1000:.2f}–"
                f"{case['spread'][1] * 1000:.2f})" if first else "",
                (f"{sender_share * 1000:.2f}" if sender_share is not None else "—")
                if first else ""]) + " |")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"Federation sender benchmark {when} on {platform.machine()}, {os.cpu_count()} "
        f"cores, Python {sys.version.split()[0]}; every server and client on this machine "
        "(loopback TLS, SQLite, rate limits off).", "",
        f"Settings: room version {args.version}; {args.rounds} rounds of the cases in "
        "turn, each number the median of its rounds (S's CPU also min–max); "
        f"per case {args.events} messages + 1 "
        f"marker from {args.senders} local senders in parallel as fast as S accepts them, "
        f"after {WARM_UP} delivered warm-up messages; one member per destination. "
        "'sender CPU ms/PDU' = (S's CPU per event in the case − in N=0) / N; every "
        "destination acknowledged every PDU without error; 'kept' = of the case's "
        "messages, those its clients can read (/messages) once the marker arrived "
        "(Synapse prunes its inbound staging area above 100 events per room and "
        "leaves the rest to backfill).", "",
        "\n".join(lines)] + ([] if caught_up is None else [
            "", f"Catch-up (the sender alone): ours B stopped while {caught_up['events']} "
            "messages were sent, then started: it received them in "
            f"{caught_up['txns']:.0f} transactions "
            f"({caught_up['events'] / caught_up['txns']:.1f} PDUs each) over "
            f"{caught_up['seconds']:.2f} s between its first and last, "
            f"**{caught_up['events'] / caught_up['seconds']:,.0f} PDUs/s, "
            f"{caught_up['txns'] / caught_up['seconds']:,.1f} transactions/s**; S's CPU "
            f"over the catch-up {caught_up['cpu'] * 1000 / caught_up['events']:.2f} "
            "ms per PDU (backoff waits included, idle)."]))


def run(args) -> str:
    fed = Federation.get()
    cert_dir = tempfile.mkdtemp(prefix="roomserver-bench-b-")
    second, _ = our_federating_server(fed.ca_path, cert_dir)
    second.start()
    try:
        origin = Side("S", fed.ours, fed.our_name)
        ours_b = Side("ours B", second, second.server_name)
        synapse = Side("Synapse", fed.synapse, fed.synapse.server_name)
        pid = fed.ours.proc.pid
        layouts = ([], [ours_b], [synapse], [ours_b, synapse])
        rounds: list[list[dict]] = [[] for _ in layouts]
        catch_ups = []
        for _ in range(args.rounds):   # in turn, so a busy spell spreads over all cases
            for runs, receivers in zip(rounds, layouts):
                runs.append(fan_out(origin, pid, receivers, args.events, args.senders,
                                    args.version))
            catch_ups.append(catch_up(origin, pid, ours_b, args.events, args.senders,
                                      args.version))
        cases = [merged(runs) for runs in rounds]
        caught_up = {key: _median([c[key] for c in catch_ups]) for key in catch_ups[0]}
    finally:
        second.stop()
        shutil.rmtree(second.data_dir, ignore_errors=True)
        shutil.rmtree(cert_dir, ignore_errors=True)
    return report(cases, args, caught_up)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=500,
                        help="messages per case (plus one marker)")
    parser.add_argument("--senders", type=int, default=4,
                        help="local client threads sending in parallel")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of all cases (medians are reported)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.federation_sender",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--version", default="12", help="room version")
    args = parser.parse_args(argv)
    text = run(args)
    print(text)
    with open(os.path.join(os.path.dirname(__file__), "results",
                           "federation-sender-latest.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
