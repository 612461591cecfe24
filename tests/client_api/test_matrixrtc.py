"""MatrixRTC signalling over the client API: call memberships members post without
being given power (rooms/rules/owned_state.py), MSC4143 transport discovery
(client_api/rtc.py) and the well-known ``org.matrix.msc4143.rtc_foci``."""

from __future__ import annotations

from tests.client_api.room_helpers import RoomsTestCase, q

MEMBER = "org.matrix.msc3401.call.member"
TRANSPORTS = "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports"
LIVEKIT = {"type": "livekit", "livekit_service_url": "https://lk-jwt.example.org"}
JOIN = {"application": "m.call", "call_id": "", "scope": "m.room", "device_id": "DEV",
        "focus_active": {"type": "livekit", "focus_selection": "oldest_membership"},
        "foci_preferred": [LIVEKIT], "expires": 14400000}


class CallMembership(RoomsTestCase):
    async def test_member_posts_and_clears_own_membership(self):
        """A member with no power posts their _@user_DEVICE call membership, and
        clears it with empty content (a leave); everyone reads both."""
        (alice_id, alice), (bob_id, bob) = await self.users("alice", "bob")
        room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room)
        key = f"_{bob_id}_DEV"
        await self.put_state(bob, room, MEMBER, JOIN, key)
        _, seen = await self.get_state(alice, room, MEMBER, key)
        self.assertEqual(seen["focus_active"]["type"], "livekit")
        await self.put_state(bob, room, MEMBER, {}, key)
        self.assertEqual(await self.get_state(alice, room, MEMBER, key), (200, {}))
        # the newer event type, as Element Call may send it as state too
        await self.put_state(bob, room, "m.rtc.member", {"member": {"id": "x"}}, key)

    async def test_others_keys_are_theirs(self):
        """A member cannot write someone else's call membership; the room creator
        (more power) can clear a stale one; "@user_DEVICE" keys stay the sender's
        own only in room versions that know MSC3757, so here they are refused."""
        (alice_id, alice), (bob_id, bob) = await self.users("alice", "bob")
        room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room)
        self.assertError(await self.request(
            "PUT", self.room(room, f"/state/{MEMBER}/{q(f'_{alice_id}_DEV')}"), JOIN,
            token=bob), 403, "M_FORBIDDEN")
        await self.put_state(bob, room, MEMBER, JOIN, f"_{bob_id}_DEV")
        await self.put_state(alice, room, MEMBER, {}, f"_{bob_id}_DEV")
        self.assertError(await self.request(
            "PUT", self.room(room, f"/state/{MEMBER}/{q(f'{bob_id}_DEV')}"), JOIN,
            token=bob), 403, "M_FORBIDDEN")


class Transports(RoomsTestCase):
    # our SFU off: the list is then the operator's alone (with it: test_sfu_comes_first)
    config_overrides = {"matrix_rtc": {"transports": [LIVEKIT]},
                        "public_baseurl": "https://matrix.example.org/",
                        "voip": {"sfu": {"enabled": False}}}

    async def test_transports_and_well_known(self):
        """The transports endpoint needs a token and lists the operator's LiveKit;
        the well-known file carries the same list as rtc_foci; /versions says
        org.matrix.msc4143. (Our SFU joins the list once its API is mounted:
        tests/voip/test_rtc_transports.py.)"""
        (_, tok), = await self.users("alice")
        self.assertError(await self.request("GET", TRANSPORTS), 401, "M_MISSING_TOKEN")
        body = await self.ok("GET", TRANSPORTS, token=tok)
        self.assertEqual(body, {"rtc_transports": [LIVEKIT]})
        well_known = await self.ok("GET", "/.well-known/matrix/client")
        self.assertEqual(well_known["org.matrix.msc4143.rtc_foci"], [LIVEKIT])
        self.assertEqual(well_known["m.homeserver"]["base_url"], "https://matrix.example.org/")
        versions = await self.ok("GET", "/_matrix/client/versions")
        self.assertIs(versions["unstable_features"]["org.matrix.msc4143"], True)


class SfuTransport(RoomsTestCase):
    config_overrides = {"matrix_rtc": {"transports": [LIVEKIT]},
                        "public_baseurl": "https://matrix.example.org/"}

    async def test_sfu_comes_first(self):
        """With the built-in SFU on (the default) it is the first transport, its
        sfu_url the SFU API base on our public base URL, then the operator's."""
        (_, tok), = await self.users("alice")
        body = await self.ok("GET", TRANSPORTS, token=tok)
        self.assertEqual(body["rtc_transports"], [
            {"type": "org.roomserver.sfu",
             "sfu_url": "https://matrix.example.org/_matrix/client/unstable/org.roomserver.sfu"},
            LIVEKIT])


class NoTransports(RoomsTestCase):
    config_overrides = {"voip": {"sfu": {"enabled": False}}}

    async def test_empty_list(self):
        """Without operator transports (and no SFU mounted) the list is empty and an
        unconfigured well-known file stays 404."""
        (_, tok), = await self.users("alice")
        self.assertEqual(await self.ok("GET", TRANSPORTS, token=tok), {"rtc_transports": []})
        self.assertEqual((await self.request("GET", "/.well-known/matrix/client"))[0], 404)
