"""Real aiortc clients sending and receiving video through the real server process:
VP8 and H.264 forwarded undecoded and decoded by the subscribers at the right size,
sequence numbers continuous, a late subscriber given a keyframe (a PLI reaches the
publisher, whose encoder otherwise makes one every 3000 frames), and a subscriber
moved to another publisher's video with its timestamps continuing."""

from __future__ import annotations

import aiohttp

from tests.e2e.harness import as_deferred
from tests.voip.sfu.call_case import SfuServerCase, continuous, wait_for
from tests.voip.sfu.peer import ApiError, Peer


class VideoCallTest(SfuServerCase):
    def test_vp8_reaches_subscribers_and_a_late_one_gets_a_keyframe(self):
        """bob decodes alice's VP8 at 320×240 with continuous sequence numbers; carol,
        pulling later, makes the SFU ask alice for a keyframe and decodes too."""
        return as_deferred(self._late_subscriber("video/VP8"))

    def test_h264_reaches_subscribers_and_a_late_one_gets_a_keyframe(self):
        """The same with H.264 (packetization-mode 1, aiortc's libx264 encoder)."""
        return as_deferred(self._late_subscriber("video/H264"))

    async def _late_subscriber(self, codec: str) -> None:
        tokens = {name: self.register(name) for name in ("alice", "bob", "carol")}
        room_id = self.room_with(tokens["alice"], tokens["bob"], tokens["carol"])
        async with aiohttp.ClientSession() as http:
            peers = {n: Peer(http, self.server.base_url, tokens[n], room_id) for n in tokens}
            try:
                for peer in peers.values():
                    await peer.join()
                alice, bob, carol = peers["alice"], peers["bob"], peers["carol"]
                await alice.publish_video(codec)
                mid = await bob.pull(alice.session_id, "camera")
                bob_frames = bob.watch(mid)
                self.assertTrue(await wait_for(lambda: len(bob_frames) >= 30), bob_frames)
                self.assertEqual(set(bob_frames), {(320, 240)})
                self.assertTrue(continuous([seq for seq, _, _ in bob.received[mid]]))

                requests_before = alice.pli
                late = await carol.pull(alice.session_id, "camera")
                carol_frames = carol.watch(late)
                self.assertTrue(await wait_for(lambda: len(carol_frames) >= 10),
                                (alice.pli, len(carol.received.get(late, []))))
                self.assertEqual(set(carol_frames), {(320, 240)})
                self.assertGreater(alice.pli, requests_before)
                self.assertTrue(continuous([seq for seq, _, _ in carol.received[late]]))
            finally:
                for peer in peers.values():
                    await peer.close()

    def test_switching_source_keeps_the_clock_and_waits_for_a_keyframe(self):
        """bob, publishing his own camera too, pulls alice's; tracks/update moves it to
        dave's: frames of dave decode after the switch, sequence numbers and
        timestamps continue (no jump back)."""
        return as_deferred(self._switch("video/VP8"))

    def test_switching_h264_sources(self):
        """The same with H.264 publishers."""
        return as_deferred(self._switch("video/H264"))

    async def _switch(self, codec: str) -> None:
        tokens = {name: self.register(name) for name in ("alice", "bob", "dave")}
        room_id = self.room_with(tokens["alice"], tokens["bob"], tokens["dave"])
        async with aiohttp.ClientSession() as http:
            peers = {n: Peer(http, self.server.base_url, tokens[n], room_id) for n in tokens}
            try:
                for peer in peers.values():
                    await peer.join()
                alice, bob, dave = peers["alice"], peers["bob"], peers["dave"]
                await alice.publish_video(codec)
                await dave.publish_video(codec)
                await bob.publish_video(codec)  # his session has negotiated video already
                mid = await bob.pull(alice.session_id, "camera")
                frames = bob.watch(mid)
                self.assertTrue(await wait_for(lambda: len(frames) >= 15))
                dave_requests = dave.pli
                body = await bob.call("PUT", f"/sessions/{bob.session_id}/tracks/update", {
                    "tracks": [{"location": "remote", "mid": mid,
                                "sessionId": dave.session_id, "trackName": "camera"}]})
                self.assertEqual(body["tracks"][0]["sessionId"], dave.session_id)
                switched_at = len(frames)
                self.assertTrue(await wait_for(lambda: len(frames) >= switched_at + 15))
                self.assertGreater(dave.pli, dave_requests)
                self.assertTrue(continuous([seq for seq, _, _ in bob.received[mid]]))
                stamps = bob.timestamps[mid]
                steps = [(b - a) % 2**32 for a, b in zip(stamps, stamps[1:])]
                # each step is 0 (same frame) or forward by less than a few seconds
                self.assertTrue(all(step < 90000 * 5 for step in steps), max(steps))
            finally:
                for peer in peers.values():
                    await peer.close()

    def test_a_vp8_publisher_pulls_h264(self):
        """bob publishes VP8 and pulls alice's H.264 in the same session: the pulled
        transceiver is offered H.264 although bob's session negotiated VP8 first, and
        bob decodes it."""
        return as_deferred(self._mixed())

    async def _mixed(self) -> None:
        tokens = {name: self.register(name) for name in ("alice", "bob")}
        room_id = self.room_with(tokens["alice"], tokens["bob"])
        async with aiohttp.ClientSession() as http:
            peers = {n: Peer(http, self.server.base_url, tokens[n], room_id) for n in tokens}
            try:
                for peer in peers.values():
                    await peer.join()
                alice, bob = peers["alice"], peers["bob"]
                await alice.publish_video("video/H264")
                await bob.publish_video("video/VP8")
                mid = await bob.pull(alice.session_id, "camera")
                frames = bob.watch(mid)
                self.assertTrue(await wait_for(lambda: len(frames) >= 15))
                self.assertEqual(set(frames), {(320, 240)})
                transceiver = next(t for t in bob.pc.getTransceivers() if t.mid == mid)
                self.assertEqual({c.mimeType for c in transceiver._codecs},
                                 {"video/H264", "video/rtx"})
            finally:
                for peer in peers.values():
                    await peer.close()

    def test_update_errors_and_simulcast_echo(self):
        """tracks/update: a simulcast choice on an audio mid, a video mid pointed at an
        audio track and a malformed simulcast object are 400 M_BAD_JSON; a simulcast
        choice on a video mid is taken and echoed, the source kept."""
        return as_deferred(self._update_errors())

    async def _update_errors(self) -> None:
        tokens = {name: self.register(name) for name in ("alice", "bob")}
        room_id = self.room_with(tokens["alice"], tokens["bob"])
        async with aiohttp.ClientSession() as http:
            alice, bob = (Peer(http, self.server.base_url, tokens[n], room_id)
                          for n in ("alice", "bob"))
            try:
                await alice.join()
                await bob.join()
                await alice.publish(0.3)
                await alice.publish_video()
                audio = await bob.pull(alice.session_id, "mic")
                video = await bob.pull(alice.session_id, "camera")
                path = f"/sessions/{bob.session_id}/tracks/update"
                for entry in ({"mid": audio, "simulcast": {"preferredRid": "h"}},
                              {"mid": video, "sessionId": alice.session_id,
                               "trackName": "mic"},
                              {"mid": video, "simulcast": "h"},
                              {"mid": video, "simulcast": {"ridNotAvailable": "maybe"}}):
                    with self.assertRaises(ApiError) as bad:
                        await bob.call("PUT", path, {"tracks": [entry]})
                    self.assertEqual((bad.exception.status, bad.exception.body["errcode"]),
                                     (400, "M_BAD_JSON"), entry)
                body = await bob.call("PUT", path, {"tracks": [
                    {"mid": video, "simulcast": {"preferredRid": "h",
                                                 "ridNotAvailable": "none"}}]})
                self.assertEqual(body["tracks"], [{
                    "mid": video, "sessionId": alice.session_id, "trackName": "camera",
                    "simulcast": {"preferredRid": "h", "ridNotAvailable": "none"}}])
            finally:
                await alice.close()
                await bob.close()
