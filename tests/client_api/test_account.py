"""GET /account/whoami, POST /account/password, POST /account/deactivate and the
User-Interactive Authentication they use (spec: Client-Server API "Account
management", "User-Interactive Authentication API")."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.client_api.uia import AuthRequired, UiaSessions, UserInteractiveAuth, dummy_stage
from homeserver.errors import MatrixError
from tests.client_api.e2e_helpers import cross_signing_key, device_keys
from tests.client_api.harness import ServerTestCase, q, password_auth
from tests.client_api.sync_helpers import SyncTestCase
from tests.client_api.test_notifications import pusher

V3 = "/_matrix/client/v3"
_FAST = {"per_second": 100000, "burst_count": 1000000}


class WhoamiTests(ServerTestCase):
    async def test_whoami(self):
        """whoami names the token's user and device; is_guest is false for users."""
        user_id, token = await self.register("alice", device_id="ALICEDEV")
        status, resp = await self.request("GET", V3 + "/account/whoami", token=token)
        self.assertEqual((status, resp), (200, {"user_id": user_id, "device_id": "ALICEDEV",
                                                "is_guest": False}))

    async def test_whoami_token_in_query(self):
        """The deprecated access_token query parameter still authenticates."""
        user_id, token = await self.register("bob")
        status, resp = await self.request("GET", V3 + "/account/whoami?access_token=" + token)
        self.assertEqual((status, resp["user_id"]), (200, user_id))


class PasswordChangeTests(ServerTestCase):
    async def test_change_password_with_uia(self):
        """401 with the m.login.password flow first; then the old password changes it,
        other devices are logged out and the requesting token keeps working."""
        user_id, token = await self.register("carol", device_id="KEEP")
        status, other = await self.request("POST", V3 + "/login", {
            "type": "m.login.password", "user": "carol", "password": "correct horse"})
        status, _ = await self.request("GET", V3 + "/account/whoami",
                                       token=other["access_token"])
        self.assertEqual(status, 200)  # cached by the Authenticator from now on
        body = {"new_password": "battery staple"}
        status, resp = await self.request("POST", V3 + "/account/password", body,
                                          token=token)
        self.assertEqual(status, 401)
        self.assertEqual(resp["flows"], [{"stages": ["m.login.password"]}])
        body["auth"] = password_auth("carol", session=resp["session"])
        status, resp = await self.request("POST", V3 + "/account/password", body,
                                          token=token)
        self.assertEqual((status, resp), (200, {}))

        status, _ = await self.request("GET", V3 + "/account/whoami", token=token)
        self.assertEqual(status, 200)
        status, err = await self.request("GET", V3 + "/account/whoami",
                                         token=other["access_token"])
        self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        devices = await self.c["store"].devices.get_devices(user_id)
        self.assertEqual([d.device_id for d in devices], ["KEEP"])

        for password, want in (("correct horse", 403), ("battery staple", 200)):
            status, _ = await self.request("POST", V3 + "/login", {
                "type": "m.login.password", "user": "carol", "password": password})
            self.assertEqual(status, want)

    async def test_keep_devices(self):
        """logout_devices: false keeps the other sessions."""
        await self.register("dave")
        status, other = await self.request("POST", V3 + "/login", {
            "type": "m.login.password", "user": "dave", "password": "correct horse"})
        status, _ = await self.request("POST", V3 + "/account/password", {
            "new_password": "new one", "logout_devices": False,
            "auth": password_auth("dave")}, token=other["access_token"])
        self.assertEqual(status, 200)
        status, devs = await self.request("GET", V3 + "/devices",
                                          token=other["access_token"])
        self.assertEqual(len(devs["devices"]), 2)

    async def test_wrong_password_is_uia_error(self):
        """A wrong password is 401 with M_FORBIDDEN inside the UIA body (retry allowed)."""
        _, token = await self.register("erin")
        body = {"new_password": "x1"}
        status, first = await self.request("POST", V3 + "/account/password", body,
                                           token=token)
        body["auth"] = password_auth("erin", "wrong", session=first["session"])
        status, resp = await self.request("POST", V3 + "/account/password", body,
                                          token=token)
        self.assertEqual(status, 401)
        self.assertEqual(resp["errcode"], "M_FORBIDDEN")
        self.assertEqual(resp["session"], first["session"])
        self.assertEqual(resp["flows"], [{"stages": ["m.login.password"]}])
        self.assertEqual(resp["completed"], [])
        body["auth"] = password_auth("erin", session=first["session"])
        status, resp = await self.request("POST", V3 + "/account/password", body,
                                          token=token)
        self.assertEqual(status, 200, resp)

    async def test_cannot_authenticate_as_someone_else(self):
        """The password stage must be passed as the requesting user."""
        await self.register("frank")
        _, token = await self.register("gina")
        status, resp = await self.request("POST", V3 + "/account/password", {
            "new_password": "mine now", "auth": password_auth("frank")}, token=token)
        self.assertEqual((status, resp["errcode"]), (401, "M_FORBIDDEN"))

    async def test_session_bound_to_request(self):
        """A session started for one new password cannot set a different one, nor be
        used by another user."""
        _, token = await self.register("hank")
        _, other = await self.register("ivy")
        status, first = await self.request("POST", V3 + "/account/password",
                                           {"new_password": "one"}, token=token)
        status, resp = await self.request("POST", V3 + "/account/password", {
            "new_password": "two", "auth": password_auth("hank", session=first["session"])},
            token=token)
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))
        status, resp = await self.request("POST", V3 + "/account/password", {
            "new_password": "one", "auth": password_auth("ivy", session=first["session"])},
            token=other)
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))

    async def test_bad_requests(self):
        """No token: M_MISSING_TOKEN; no new_password: M_MISSING_PARAM (before UIA)."""
        status, resp = await self.request("POST", V3 + "/account/password",
                                          {"new_password": "x"})
        self.assertEqual((status, resp["errcode"]), (401, "M_MISSING_TOKEN"))
        _, token = await self.register("jack")
        status, resp = await self.request("POST", V3 + "/account/password", {}, token=token)
        self.assertEqual((status, resp["errcode"]), (400, "M_MISSING_PARAM"))
        status, resp = await self.request("POST", V3 + "/account/password", {
            "new_password": "x", "logout_devices": "yes"}, token=token)
        self.assertEqual((status, resp["errcode"]), (400, "M_BAD_JSON"))


class UiaFailedAttemptsTests(ServerTestCase):
    config_overrides = {"rc_login": {"address": _FAST, "account": _FAST,
                                     "failed_attempts": {"per_second": 0.001,
                                                         "burst_count": 1}}}

    async def test_uia_password_guessing_is_limited(self):
        """Wrong passwords in the UIA password stage count against
        rc_login.failed_attempts too: guessing ends in 429."""
        _, token = await self.register("kate")
        codes = []
        for _ in range(3):
            status, resp = await self.request("POST", V3 + "/account/password", {
                "new_password": "x", "auth": password_auth("kate", "guess")}, token=token)
            codes.append((status, resp["errcode"]))
        self.assertEqual(codes[0], (401, "M_FORBIDDEN"))
        self.assertEqual(codes[-1], (429, "M_LIMIT_EXCEEDED"))


class DeactivateTests(ServerTestCase):
    async def test_deactivate(self):
        """After UIA the account is deactivated: its tokens die, it cannot log in
        (M_USER_DEACTIVATED), it left its rooms and rejected its invites, and its
        user ID stays taken."""
        user_id, token = await self.register("liam")
        owner_id, owner = await self.register("mia")
        joined = await self.create_room(owner, preset="public_chat")
        status, _ = await self.request("POST", f"{V3}/rooms/{q(joined)}/join", {},
                                       token=token)
        self.assertEqual(status, 200)
        invited = await self.create_room(owner, invite=[user_id])

        status, resp = await self.request("POST", V3 + "/account/deactivate", {},
                                          token=token)
        self.assertEqual((status, resp["flows"]), (401, [{"stages": ["m.login.password"]}]))
        status, resp = await self.request("POST", V3 + "/account/deactivate", {
            "auth": password_auth("liam", session=resp["session"])}, token=token)
        self.assertEqual((status, resp), (200, {"id_server_unbind_result": "success"}))

        status, err = await self.request("GET", V3 + "/account/whoami", token=token)
        self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        status, err = await self.request("POST", V3 + "/login", {
            "type": "m.login.password", "user": "liam", "password": "correct horse"})
        self.assertEqual((status, err["errcode"]), (403, "M_USER_DEACTIVATED"))
        info = await self.c["store"].accounts.get_user(user_id)
        self.assertTrue(info.deactivated)
        self.assertFalse(info.has_password)
        self.assertEqual(await self.c["store"].devices.get_devices(user_id), [])
        for room_id in (joined, invited):
            room = await self.c["rooms"].get(room_id)
            self.assertEqual(await room.membership(user_id), "leave", room_id)
        status, err = await self.request("POST", V3 + "/register", {
            "username": "liam", "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertEqual((status, err["errcode"]), (400, "M_USER_IN_USE"))

    async def test_erase_clears_profile(self):
        """erase: true also removes the displayname."""
        user_id, token = await self.register("nina")
        status, _ = await self.request("POST", V3 + "/account/deactivate", {
            "erase": True, "auth": password_auth("nina")}, token=token)
        self.assertEqual(status, 200)
        profile = await self.c["store"].accounts.get_profile(user_id)
        self.assertIsNone(profile.displayname)

    async def test_wrong_password(self):
        """A wrong password leaves the account alone (401 M_FORBIDDEN in UIA)."""
        user_id, token = await self.register("olga")
        status, resp = await self.request("POST", V3 + "/account/deactivate", {
            "auth": password_auth("olga", "nope")}, token=token)
        self.assertEqual((status, resp["errcode"]), (401, "M_FORBIDDEN"))
        self.assertFalse((await self.c["store"].accounts.get_user(user_id)).deactivated)


class UiaSessionTests(unittest.TestCase):
    """The UIA engine on its own, with a fake clock (no server)."""

    def setUp(self):
        self.clock = Clock()
        self.sessions = UiaSessions(lambda: int(self.clock.seconds() * 1000),
                                    lifetime_ms=60_000, max_sessions=3)
        self.uia = UserInteractiveAuth(self.sessions, {"m.login.dummy": dummy_stage})
        self.flows = [["m.login.dummy"]]

    async def start(self) -> str:
        with self.assertRaises(AuthRequired) as cm:
            await self.uia.authenticate({}, operation="op", flows=self.flows, user_id="@u:h")
        return cm.exception.to_json()["session"]

    async def test_sessions_expire(self):
        """A session is usable within its lifetime and unknown (400) after it."""
        sid = await self.start()
        body = {"auth": {"type": "m.login.dummy", "session": sid}}
        session = await self.uia.authenticate(body, operation="op", flows=self.flows,
                                              user_id="@u:h")
        self.assertEqual(session.completed, ["m.login.dummy"])
        self.clock.advance(61)
        with self.assertRaises(MatrixError) as cm:
            await self.uia.authenticate(body, operation="op", flows=self.flows,
                                        user_id="@u:h")
        self.assertEqual((cm.exception.status, cm.exception.errcode), (400, "M_UNKNOWN"))
        self.assertEqual(len(self.sessions), 0)

    async def test_forget_spends_session(self):
        """A forgotten completed session authorises nothing more (400 M_UNKNOWN)."""
        sid = await self.start()
        body = {"auth": {"type": "m.login.dummy", "session": sid}}
        session = await self.uia.authenticate(body, operation="op", flows=self.flows,
                                              user_id="@u:h")
        self.uia.forget(session)
        with self.assertRaises(MatrixError) as cm:
            await self.uia.authenticate(body, operation="op", flows=self.flows,
                                        user_id="@u:h")
        self.assertEqual((cm.exception.status, cm.exception.errcode), (400, "M_UNKNOWN"))

    async def test_size_cap_evicts_oldest(self):
        """Past max_sessions the oldest session is forgotten first."""
        sids = [await self.start() for _ in range(4)]
        self.assertEqual(len(self.sessions), 3)
        self.assertIsNone(self.sessions.get(sids[0]))
        self.assertIsNotNone(self.sessions.get(sids[3]))


class DeactivationDataTests(SyncTestCase):
    """What deactivation removes besides the account's devices (as Synapse's
    DeactivateAccountHandler): end-to-end keys, cross-signing keys, key backups,
    pushers, push rules."""

    async def test_keys_pushers_and_rules_go(self):
        """After deactivation a room mate's key query finds no device or master key
        of the user, the room mate's sync lists the user's device list, and the
        backups, pushers and push rules are gone from the stores."""
        alice_id, alice = await self.register("alice", device_id="A1")
        _, bob = await self.register("bob")
        room_id = await self.create_room(bob, preset="public_chat")
        await self.join(alice, room_id)
        keys, _ = device_keys(alice_id, "A1")
        await self.ok("POST", V3 + "/keys/upload", {
            "device_keys": keys, "one_time_keys": {"signed_curve25519:K": {"key": "k"}}},
            token=alice)
        master, master_key = cross_signing_key(alice_id, "master")
        ssk, _ = cross_signing_key(alice_id, "self_signing", master_key)
        await self.ok("POST", V3 + "/keys/device_signing/upload",
                      {"master_key": master, "self_signing_key": ssk,
                       "auth": password_auth("alice")}, token=alice)
        await self.ok("POST", V3 + "/room_keys/version",
                      {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
                       "auth_data": {"public_key": "pk"}}, token=alice)
        await self.ok("POST", V3 + "/pushers/set", pusher(), token=alice)
        await self.ok("PUT", f"{V3}/pushrules/global/room/{q(room_id)}",
                      {"actions": ["dont_notify"]}, token=alice)
        query = {"device_keys": {alice_id: []}}
        before = await self.ok("POST", V3 + "/keys/query", query, token=bob)
        self.assertIn("A1", before["device_keys"][alice_id])
        self.assertIn(alice_id, before["master_keys"])
        since = (await self.sync_ok(bob))["next_batch"]

        await self.ok("POST", V3 + "/account/deactivate",
                      {"auth": password_auth("alice")}, token=alice)

        after = await self.ok("POST", V3 + "/keys/query", query, token=bob)
        self.assertEqual(after["device_keys"].get(alice_id, {}), {})
        self.assertNotIn(alice_id, after.get("master_keys", {}))
        self.assertNotIn(alice_id, after.get("self_signing_keys", {}))
        lists = (await self.sync_ok(bob, since=since))["device_lists"]
        self.assertIn(alice_id, lists["changed"] + lists["left"])
        store = self.c["store"]
        counts = await store.e2e_keys.key_counts(alice_id, "A1")
        self.assertEqual(sum(counts.one_time_keys.values()), 0)
        self.assertIsNone(await store.key_backups.get_version(alice_id))
        self.assertEqual(await store.pushers.for_users([alice_id]), [])
        self.assertIsNone(await store.push_rules.get_changes(alice_id))
        self.assertIsNone(await store.account_data.get_account_data(alice_id,
                                                                    "m.push_rules"))
        self.assertEqual(await store.cross_signing.get_keys([alice_id]), {})
