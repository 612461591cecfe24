"""Forwarded Opus streams per core, and the latency the SFU adds (issue 15).

``python -m bench.voip [--publishers P] [--subscribers S] [--seconds N]``

Starts the real server (bench/servers.py OurServer) and, in this process, P publishing
and S subscribing WebRTC clients on aiortc; every subscriber pulls every publisher, so
the server forwards P×S streams of 50 packets/s. Clients send a pre-made 80-byte
payload (32 kbit/s Opus-sized) stamped with its send time, through the same
encode-free sender the SFU uses, so the clients stay cheap and the payload is never
decoded anywhere. Reported:

- the server process's CPU over the measured window (from /proc), per packet the
  server forwarded in it (its own count, ``GET …/call``), per stream at 50 packets/s,
  and streams per core = 1 / (CPU per stream);
- one-way latency publisher → SFU → subscriber, p50/p99, and the same for one direct
  client → client pair measured at the same time in the same process: the difference
  is what the SFU adds (both include the two clients' aiortc stacks), scheduling of
  the extra process included;
- what the server itself reports (``GET …/call``, ``forwarding``): how long packets
  waited between arriving (decrypted) and their subscriber's sender taking them.

The machine's 2 cores are shared: run it twice and compare; the number of interest is
the CPU per stream, which load elsewhere inflates rather than deflates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import time
from urllib.parse import quote

import aiohttp
from aiortc import RTCSessionDescription

from bench.servers import OurServer, cpu_seconds
from voip.sfu.forwarding import ForwardedPacket, PacketTrack, SfuPeerConnection

PREFIX = "/_matrix/client/unstable/org.roomserver.sfu/rooms/"
PAYLOAD_BYTES = 80


def stamped_payload() -> bytes:
    # 0xfc: an Opus TOC byte (CELT FB 20 ms); then the send time, then padding
    return b"\xfc" + struct.pack("!d", time.time()) + bytes(PAYLOAD_BYTES - 9)


def latency_of(payload: bytes, now: float) -> float:
    return now - struct.unpack("!d", payload[1:9])[0]


class Metronome:
    """Pushes one stamped packet every 20 ms into each of its tracks."""

    def __init__(self) -> None:
        self.tracks: list[PacketTrack] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick, timestamp = loop.time(), 0
        while True:
            for track in self.tracks:
                track.push(ForwardedPacket(stamped_payload(), timestamp, 30, 0.0))
            timestamp += 960
            tick += 0.02
            await asyncio.sleep(max(0.0, tick - loop.time()))

    def stop(self) -> None:
        if self._task:
            self._task.cancel()


class Client:
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token
        self.pc = SfuPeerConnection()
        self.session_id: str | None = None

    async def call(self, method: str, path: str, body=None):
        async with self.http.request(method, self.url + path, json=body, headers={
                "Authorization": f"Bearer {self.token}"}) as r:
            data = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{method} {path}: {r.status} {data}")
            return data

    async def join(self) -> None:
        self.session_id = (await self.call("POST", "/sessions/new"))["sessionId"]

    async def publish(self, metronome: Metronome) -> None:
        track = PacketTrack()
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.call("POST", f"/sessions/{self.session_id}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": self.pc.localDescription.sdp},
            "tracks": [{"location": "local", "trackName": "mic", "mid": transceiver.mid}]})
        await self.pc.setRemoteDescription(RTCSessionDescription(**answer["sessionDescription"]))
        metronome.tracks.append(track)

    async def pull_all(self, session_ids: list[str], sink) -> None:
        response = await self.call("POST", f"/sessions/{self.session_id}/tracks/new", {
            "tracks": [{"location": "remote", "sessionId": s, "trackName": "mic"}
                       for s in session_ids]})
        await self.pc.setRemoteDescription(RTCSessionDescription(**response["sessionDescription"]))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.call("PUT", f"/sessions/{self.session_id}/renegotiate", {
            "sessionDescription": {"type": "answer", "sdp": self.pc.localDescription.sdp}})
        for transceiver in self.pc.getTransceivers():
            transceiver.receiver.sink = sink


async def direct_pair(metronome: Metronome, sink):
    """One publisher → subscriber pair with no SFU between (the baseline)."""
    sender, receiver = SfuPeerConnection(), SfuPeerConnection()
    track = PacketTrack()
    sender.addTransceiver(track, direction="sendonly")
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    receiver.getTransceivers()[0].receiver.sink = sink
    metronome.tracks.append(track)
    return sender, receiver


def percentiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return float("nan"), float("nan")
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[98] * 1000


async def run(server: OurServer, publishers: int, subscribers: int, seconds: float,
              warmup: float) -> dict:
    async with aiohttp.ClientSession() as http:
        async def register(name):
            async with http.post(server.url + "/_matrix/client/v3/register", json={
                    "username": name, "password": "bench-password",
                    "auth": {"type": "m.login.dummy"}}) as r:
                return (await r.json())["access_token"]
        owner = await register("owner")
        async with http.post(server.url + "/_matrix/client/v3/createRoom",
                             json={"preset": "public_chat"},
                             headers={"Authorization": f"Bearer {owner}"}) as r:
            room_id = (await r.json())["room_id"]
        url = server.url + PREFIX + quote(room_id, safe="")
        metronome = Metronome()
        pubs = [Client(http, url, owner) for _ in range(publishers)]
        for c in pubs:
            await c.join()
            await c.publish(metronome)
        through_sfu: list[float] = []
        direct: list[float] = []
        measuring = False

        def sfu_sink(packet):
            if measuring:
                through_sfu.append(latency_of(packet.payload, time.time()))

        def direct_sink(packet):
            if measuring:
                direct.append(latency_of(packet.payload, time.time()))
        subs = [Client(http, url, owner) for _ in range(subscribers)]
        for c in subs:
            await c.join()
            await c.pull_all([p.session_id for p in pubs], sfu_sink)
        pair = await direct_pair(metronome, direct_sink)
        metronome.start()
        await asyncio.sleep(warmup)
        measuring = True
        sent0 = (await pubs[0].call("GET", "/call"))["forwarding"]["packets"]
        cpu0, me0, t0 = cpu_seconds(server.pid), cpu_seconds(os.getpid()), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, me1, t1 = cpu_seconds(server.pid), cpu_seconds(os.getpid()), time.monotonic()
        sent1 = (await pubs[0].call("GET", "/call"))["forwarding"]["packets"]
        measuring = False
        metronome.stop()
        inside = (await pubs[0].call("GET", "/call"))["forwarding"]
        for c in pubs + subs:
            await c.pc.close()
        for pc in pair:
            await pc.close()
    streams = publishers * subscribers
    window = t1 - t0
    server_cores = (cpu1 - cpu0) / window
    # normalised by what the server forwarded in the window (its own count): a
    # CPU-starved server forwards less than offered, a starved client receives less
    forwarded_pps = (sent1 - sent0) / window
    sfu_p50, sfu_p99 = percentiles(through_sfu)
    direct_p50, direct_p99 = percentiles(direct)
    return {
        "streams": streams, "window_s": window,
        "packets_expected": int(streams * 50 * window),
        "packets_received": len(through_sfu),
        "server_cores": server_cores, "client_cores": (me1 - me0) / window,
        "packets_forwarded": sent1 - sent0,
        "us_per_packet": 1e6 * server_cores / forwarded_pps,
        "cpu_per_stream_pct": 100 * server_cores / (forwarded_pps / 50),
        "streams_per_core": (forwarded_pps / 50) / server_cores,
        "sfu_p50_ms": sfu_p50, "sfu_p99_ms": sfu_p99,
        "direct_p50_ms": direct_p50, "direct_p99_ms": direct_p99,
        "added_p50_ms": sfu_p50 - direct_p50, "added_p99_ms": sfu_p99 - direct_p99,
        "inside_p50_ms": inside["delayP50Ms"], "inside_p99_ms": inside["delayP99Ms"],
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishers", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    server = OurServer(extra={"voip": {"sfu": {"max_participants_per_call": 1000}}})
    server.start()
    try:
        result = asyncio.run(run(server, args.publishers, args.subscribers, args.seconds,
                                 args.warmup))
    finally:
        server.cleanup()
    inside = [("%.1f" % v) if v is not None else "> 100" for v in
              (result["inside_p50_ms"], result["inside_p99_ms"])]
    rows = [
        ("forwarded Opus streams (50 packets/s)", f"{result['streams']}"),
        ("packets offered / forwarded by the SFU / received by clients",
         f"{result['packets_expected']} / {result['packets_forwarded']} / "
         f"{result['packets_received']}"),
        ("server CPU", f"{result['server_cores']:.3f} cores, {result['us_per_packet']:.0f} µs "
                       f"per forwarded packet ({result['cpu_per_stream_pct']:.3f}% of a core "
                       "per stream)"),
        ("streams per core", f"{result['streams_per_core']:.0f}"),
        ("one-way latency through the SFU p50 / p99",
         f"{result['sfu_p50_ms']:.1f} / {result['sfu_p99_ms']:.1f} ms"),
        ("direct client → client p50 / p99",
         f"{result['direct_p50_ms']:.1f} / {result['direct_p99_ms']:.1f} ms"),
        ("added by the SFU p50 / p99",
         f"{result['added_p50_ms']:.1f} / {result['added_p99_ms']:.1f} ms"),
        ("held inside the SFU (arrival → its sender) p50 / p99",
         f"{inside[0]} / {inside[1]} ms"),
        ("bench client CPU", f"{result['client_cores']:.2f} cores"),
        ("machine load average (1 min)", f"{result['load']:.1f} on {os.cpu_count()} cores"),
    ]
    table = "| metric | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(table, end="")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                        "voip-latest.md")
    with open(path, "w") as f:
        f.write(f"# bench.voip, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                f"{args.publishers} publishers × {args.subscribers} subscribers, "
                f"{args.seconds:.0f} s measured\n\n{table}")

if __name__ == "__main__":
    main()
