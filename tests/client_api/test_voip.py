"""GET /voip/turnServer against the real server (spec: voip.yaml)."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase

V3 = "/_matrix/client/v3"
TURN = {"turn_uris": ["turn:turn.test.local:3478?transport=udp"],
        "turn_shared_secret": "s3cret", "turn_user_lifetime": "2h"}


async def _guest(case: ServerTestCase) -> str:
    status, body = await case.request("POST", V3 + "/register?kind=guest", {})
    assert status == 200, (status, body)
    return body["access_token"]


class TurnUnconfiguredTests(ServerTestCase):
    async def test_empty_without_config(self):
        """With no TURN configured the answer is {} (as Synapse)."""
        _, token = await self.register("alice")
        status, body = await self.request("GET", V3 + "/voip/turnServer", token=token)
        self.assertEqual((status, body), (200, {}))

    async def test_needs_token(self):
        """Without an access token: 401 M_MISSING_TOKEN."""
        status, body = await self.request("GET", V3 + "/voip/turnServer")
        self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"))


class TurnSharedSecretTests(ServerTestCase):
    config_overrides = {**TURN, "allow_guest_access": True}

    async def test_time_limited_credentials(self):
        """A user gets an "expiry:user_id" username, the URIs and the configured TTL."""
        user_id, token = await self.register("alice")
        status, body = await self.request("GET", V3 + "/voip/turnServer", token=token)
        self.assertEqual(status, 200)
        expiry, _, who = body["username"].partition(":")
        self.assertEqual(who, user_id)
        self.assertGreater(int(expiry), 0)
        self.assertEqual(body["ttl"], 7200)
        self.assertEqual(body["uris"], TURN["turn_uris"])
        self.assertTrue(body["password"])

    async def test_guests_allowed_by_default(self):
        """turn_allow_guests defaults to true: a guest gets credentials too."""
        status, body = await self.request("GET", V3 + "/voip/turnServer",
                                          token=await _guest(self))
        self.assertEqual(status, 200)
        self.assertIn("username", body)


class TurnNoGuestsTests(ServerTestCase):
    config_overrides = {**TURN, "allow_guest_access": True, "turn_allow_guests": False}

    async def test_guests_refused(self):
        """turn_allow_guests: false refuses guests with M_GUEST_ACCESS_FORBIDDEN."""
        status, body = await self.request("GET", V3 + "/voip/turnServer",
                                          token=await _guest(self))
        self.assertEqual((status, body["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))
