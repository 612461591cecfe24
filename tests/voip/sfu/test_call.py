"""Real aiortc clients in a call on the real server process (tests/e2e/harness.py):
Opus forwarded undecoded, sequence numbers continuous, audio levels carried, a
participant leaving and one killed cleaned up while the others keep hearing; the
server stopping with a call up exits cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from urllib.parse import quote

import aiohttp
import av
from aiortc.rtp import compute_audio_level_dbov

from tests.e2e.harness import ROOT, as_deferred
from tests.voip.sfu.call_case import V3, SfuServerCase, continuous, wait_for
from tests.voip.sfu.peer import ApiError, Peer, tone_frame

#: one amplitude per publisher, so each subscriber can tell whose level it received
AMPLITUDES = {"alice": 0.5, "bob": 0.1, "carol": 0.02, "dave": 0.3}


def expected_levels(amplitude: float) -> set[int]:
    """The RFC 6464 levels (-dBov) aiortc's sender writes for our tone: one per frame,
    which differ by rounding with the tone's phase."""
    return {-compute_audio_level_dbov(tone_frame(amplitude, 960 * i)) for i in range(50)}


class CallTest(SfuServerCase):
    overrides = {"voip": {"sfu": {"media_timeout": "2s"}}}

    def test_participants_hear_each_other_and_the_gone_are_cleaned_up(self):
        """Three publish and each hears the other two (Opus, continuous sequence
        numbers, right levels); one leaves the room, one is killed; the two left keep
        hearing each other and the gone sessions disappear from the call."""
        tokens = {name: self.register(name) for name in AMPLITUDES}
        room_id = self.room_with(tokens["alice"], tokens["bob"], tokens["carol"],
                                 tokens["dave"])
        return as_deferred(self._scenario(tokens, room_id))

    async def _scenario(self, tokens: dict, room_id: str) -> None:
        dave = subprocess.Popen(
            [sys.executable, "-m", "tests.voip.sfu.peer", self.server.base_url,
             tokens["dave"], room_id, str(AMPLITUDES["dave"])],
            cwd=ROOT, stdout=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.addCleanup(lambda: dave.poll() is None and (dave.kill(), dave.wait()))
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, dave.stdout.readline)
        dave_session = json.loads(line)["sessionId"]

        async with aiohttp.ClientSession() as http:
            peers = {name: Peer(http, self.server.base_url, tokens[name], room_id)
                     for name in ("alice", "bob", "carol")}
            try:
                for name, peer in peers.items():
                    await peer.join()
                    await peer.publish(AMPLITUDES[name])
                sessions = {name: p.session_id for name, p in peers.items()}
                sessions["dave"] = dave_session
                name_of = {sid: name for name, sid in sessions.items()}
                for name, peer in peers.items():
                    for other in sessions:
                        if other != name:
                            await peer.pull(sessions[other])

                def heard_all(minimum: int) -> bool:
                    return all(len(log) >= minimum for p in peers.values()
                               for log in p.received.values())
                self.assertTrue(await wait_for(lambda: heard_all(50)), self._counts(peers))

                decoder = av.CodecContext.create("opus", "r")
                for name, peer in peers.items():
                    self.assertEqual(len(peer.received), 3)
                    for mid, log in peer.received.items():
                        source = name_of[peer.sources[mid]]
                        self.assertTrue(continuous([seq for seq, _, _ in log]),
                                        f"{name} from {source}")
                        levels = {level for _, level, _ in log[5:]}
                        self.assertLessEqual(levels, expected_levels(AMPLITUDES[source]),
                                             f"{name} from {source}")
                        frames = decoder.decode(av.Packet(log[-1][2]))
                        self.assertEqual(sum(f.samples for f in frames), 960)

                # the SFU counts each packet its senders took: at least what arrived
                arrived = sum(len(log) for p in peers.values() for log in p.received.values())
                forwarding = (await peers["alice"].call("GET", "/call"))["forwarding"]
                self.assertGreaterEqual(forwarding["packets"], arrived)

                # carol leaves the room; dave's process dies without a word
                status, _ = self.server.request(
                    "POST", f"{V3}/rooms/{quote(room_id)}/leave", {}, token=tokens["carol"])
                self.assertEqual(status, 200)
                dave.kill()
                dave.wait()

                async def participants() -> set[str]:
                    body = await peers["alice"].call("GET", "/call")
                    return {name_of[p["sessionId"]] for p in body["participants"]}

                deadline = time.monotonic() + 30
                while await participants() != {"alice", "bob"} \
                        and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                self.assertEqual(await participants(), {"alice", "bob"})
                with self.assertRaises(ApiError) as gone:
                    await peers["carol"].call("GET", f"/sessions/{sessions['carol']}")
                self.assertEqual(gone.exception.status, 403)  # no longer in the room

                # alice and bob still hear each other, without a gap
                before = {n: len(peers[n].received[m]) for n in ("alice", "bob")
                          for m, s in peers[n].sources.items()
                          if name_of[s] in ("alice", "bob")}
                self.assertTrue(await wait_for(lambda: all(
                    len(peers[n].received[m]) >= before[n] + 50
                    for n in ("alice", "bob") for m, s in peers[n].sources.items()
                    if name_of[s] in ("alice", "bob"))), self._counts(peers))
                for n in ("alice", "bob"):
                    for mid, source in peers[n].sources.items():
                        if name_of[source] in ("alice", "bob"):
                            self.assertTrue(continuous(
                                [seq for seq, _, _ in peers[n].received[mid]]))

                # stopping the server with the call still up closes it cleanly
                self.assertEqual(self.server.stop(), 0)
            finally:
                for peer in peers.values():
                    await peer.close()

    @staticmethod
    def _counts(peers) -> str:
        return repr({n: {m: len(log) for m, log in p.received.items()}
                     for n, p in peers.items()})
