"""POST /register, GET /register/available, registration tokens and guests
(spec: Client-Server API "Account registration", "Token-authenticated registration",
"Guest Access", "User-Interactive Authentication API")."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase

REGISTER = "/_matrix/client/v3/register"
VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"
WHOAMI = "/_matrix/client/v3/account/whoami"


class RegisterTests(ServerTestCase):
    async def test_uia_flow_then_register(self):
        """Without auth the server answers 401 with flows and a session; completing
        m.login.dummy in that session registers the user and logs in."""
        body = {"username": "alice", "password": "pw-alice-1"}
        status, resp = await self.request("POST", REGISTER, body)
        self.assertEqual(status, 401)
        self.assertEqual(resp["flows"], [{"stages": ["m.login.dummy"]}])
        self.assertEqual(resp["params"], {})
        self.assertEqual(resp["completed"], [])
        self.assertNotIn("errcode", resp)
        session = resp["session"]

        body["auth"] = {"type": "m.login.dummy", "session": session}
        status, resp = await self.request("POST", REGISTER, body)
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["user_id"], "@alice:test.local")
        self.assertEqual(resp["home_server"], "test.local")
        self.assertTrue(resp["device_id"])
        status, who = await self.request("GET", WHOAMI, token=resp["access_token"])
        self.assertEqual((status, who["user_id"], who["device_id"], who["is_guest"]),
                         (200, "@alice:test.local", resp["device_id"], False))

    async def test_session_remembers_username_and_password(self):
        """Username and password given in the first request need not be repeated."""
        status, resp = await self.request("POST", REGISTER,
                                          {"username": "bob", "password": "pw-bob-1"})
        self.assertEqual(status, 401)
        status, resp = await self.request("POST", REGISTER, {
            "auth": {"type": "m.login.dummy", "session": resp["session"]}})
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["user_id"], "@bob:test.local")
        status, resp = await self.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
            "password": "pw-bob-1"})
        self.assertEqual(status, 200, resp)

    async def test_retry_of_completed_registration_logs_in_again(self):
        """Retrying a finished session returns the same account (a lost response)."""
        status, first = await self.request("POST", REGISTER, {"username": "carol",
                                                              "password": "pw"})
        auth = {"type": "m.login.dummy", "session": first["session"]}
        status, one = await self.request("POST", REGISTER, {"username": "carol",
                                                            "password": "pw", "auth": auth})
        self.assertEqual(status, 200, one)
        status, two = await self.request("POST", REGISTER, {"username": "carol",
                                                            "password": "pw", "auth": auth})
        self.assertEqual(status, 200, two)
        self.assertEqual(two["user_id"], one["user_id"])
        self.assertNotEqual(two["access_token"], one["access_token"])

    async def test_device_id_display_name_and_inhibit_login(self):
        """A chosen device_id is kept with its display name; inhibit_login gives no token."""
        status, resp = await self.request("POST", REGISTER, {
            "username": "dave", "password": "pw", "device_id": "DAVEPHONE",
            "initial_device_display_name": "Dave's phone",
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["device_id"], "DAVEPHONE")
        status, dev = await self.request("GET", "/_matrix/client/v3/devices/DAVEPHONE",
                                         token=resp["access_token"])
        self.assertEqual((status, dev["display_name"]), (200, "Dave's phone"))

        status, resp = await self.request("POST", REGISTER, {
            "username": "erin", "password": "pw", "inhibit_login": True,
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["user_id"], "@erin:test.local")
        self.assertNotIn("access_token", resp)
        self.assertNotIn("device_id", resp)
        self.assertEqual(await self.c["store"].devices.get_devices("@erin:test.local"), [])

    async def test_refresh_token_on_register(self):
        """refresh_token: true gives a refresh token and an expiring access token."""
        status, resp = await self.request("POST", REGISTER, {
            "username": "frank", "password": "pw", "refresh_token": True,
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, resp)
        self.assertTrue(resp["refresh_token"])
        self.assertGreater(resp["expires_in_ms"], 0)

    async def test_user_in_use_before_uia(self):
        """A taken username (in any case) is M_USER_IN_USE, even before UIA."""
        await self.register("grace")
        for name in ("grace", "GRACE"):
            status, resp = await self.request("POST", REGISTER,
                                              {"username": name, "password": "pw"})
            self.assertEqual((status, resp["errcode"]), (400, "M_USER_IN_USE"))

    async def test_invalid_usernames(self):
        """Bad characters, a leading underscore, digits only, or too long: M_INVALID_USERNAME."""
        for name in ("bad name", "a:b", "_hidden", "12345", "x" * 300, "é",
                     "trailing-newline\n", "quote'"):
            status, resp = await self.request("POST", REGISTER, {
                "username": name, "password": "pw", "auth": {"type": "m.login.dummy"}})
            self.assertEqual((status, resp["errcode"]), (400, "M_INVALID_USERNAME"), name)

    async def test_sytest_odd_characters(self):
        """As sytest's "rejects registration of usernames with '…'": each of these
        characters (a trailing newline too) is refused; each of 'q3._=-/' allowed."""
        for i, char in enumerate('!":?\\@[]{|}£é\n\''):
            name = f"chrtestuser-{i}-"
            await self.register(name)
            status, resp = await self.request("POST", REGISTER, {
                "username": name + char, "password": "pw",
                "auth": {"type": "m.login.dummy"}})
            self.assertEqual((status, resp["errcode"]), (400, "M_INVALID_USERNAME"), char)
        for char in "q3._=-/":
            await self.register("chrtestuser" + char)

    async def test_upper_case_username_is_lowered(self):
        """The username is mapped onto a lower-case localpart (spec allows mapping)."""
        status, resp = await self.request("POST", REGISTER, {
            "username": "Heidi", "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertEqual((status, resp["user_id"]), (200, "@heidi:test.local"))

    async def test_generated_localpart(self):
        """Without a username the server picks a numeric localpart, as Synapse does."""
        status, resp = await self.request("POST", REGISTER, {
            "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, resp)
        localpart = resp["user_id"][1:].split(":")[0]
        self.assertTrue(localpart.isdigit(), resp["user_id"])
        status, again = await self.request("POST", REGISTER, {
            "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertNotEqual(again["user_id"], resp["user_id"])

    async def test_password_required(self):
        """Finishing registration without any password is M_MISSING_PARAM."""
        status, resp = await self.request("POST", REGISTER, {
            "username": "ivan", "auth": {"type": "m.login.dummy"}})
        self.assertEqual((status, resp["errcode"]), (400, "M_MISSING_PARAM"))

    async def test_bad_bodies(self):
        """Wrongly typed fields are M_BAD_JSON / M_INVALID_PARAM; non-JSON is M_NOT_JSON."""
        status, resp = await self.request("POST", REGISTER, {"username": 5, "password": "x"})
        self.assertEqual((status, resp["errcode"]), (400, "M_BAD_JSON"))
        status, resp = await self.request("POST", REGISTER, {"username": "judy",
                                                             "password": 5})
        self.assertEqual((status, resp["errcode"]), (400, "M_BAD_JSON"))
        status, resp = await self.request("POST", REGISTER, {"username": "judy",
                                                             "password": ""})
        self.assertEqual((status, resp["errcode"]), (400, "M_INVALID_PARAM"))
        status, resp = await self.request("POST", REGISTER, {
            "username": "judy", "password": "pw", "auth": "dummy"})
        self.assertEqual((status, resp["errcode"]), (400, "M_BAD_JSON"))
        status, resp = await self.request("POST", REGISTER, raw=b"not json")
        self.assertEqual((status, resp["errcode"]), (400, "M_NOT_JSON"))
        status, resp = await self.request("POST", REGISTER + "?kind=admin", {})
        self.assertEqual((status, resp["errcode"]), (400, "M_INVALID_PARAM"))

    async def test_unknown_session_and_unknown_stage(self):
        """An unknown session is 400; an unknown stage type is a 401 with an errcode."""
        status, resp = await self.request("POST", REGISTER, {
            "username": "kim", "password": "pw",
            "auth": {"type": "m.login.dummy", "session": "nope"}})
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))
        status, resp = await self.request("POST", REGISTER, {
            "username": "kim", "password": "pw", "auth": {"type": "m.login.recaptcha"}})
        self.assertEqual(status, 401)
        self.assertEqual(resp["errcode"], "M_UNRECOGNIZED")
        self.assertIn("flows", resp)

    async def test_available(self):
        """/register/available: true for a free name, M_USER_IN_USE / M_INVALID_USERNAME."""
        path = "/_matrix/client/v3/register/available?username="
        status, resp = await self.request("GET", path + "lena")
        self.assertEqual((status, resp), (200, {"available": True}))
        await self.register("lena")
        status, resp = await self.request("GET", path + "lena")
        self.assertEqual((status, resp["errcode"]), (400, "M_USER_IN_USE"))
        status, resp = await self.request("GET", path + "_lena")
        self.assertEqual((status, resp["errcode"]), (400, "M_INVALID_USERNAME"))
        status, resp = await self.request("GET", "/_matrix/client/v3/register/available")
        self.assertEqual((status, resp["errcode"]), (400, "M_MISSING_PARAM"))

    async def test_guest_refused(self):
        """kind=guest is M_GUEST_ACCESS_FORBIDDEN (403) unless allow_guest_access."""
        status, resp = await self.request("POST", REGISTER + "?kind=guest", {})
        self.assertEqual((status, resp["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))

    async def test_r0_prefix(self):
        """The legacy r0 prefix reaches the same endpoint."""
        status, resp = await self.request("POST", "/_matrix/client/r0/register", {
            "username": "mallory", "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, resp)


class RegistrationDisabledTests(ServerTestCase):
    config_overrides = {"enable_registration": False}

    async def test_disabled(self):
        """With registration off, /register and /register/available are 403 M_FORBIDDEN."""
        status, resp = await self.request("POST", REGISTER, {
            "username": "nina", "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))
        status, resp = await self.request(
            "GET", "/_matrix/client/v3/register/available?username=nina")
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))
        status, resp = await self.request("GET", VALIDITY + "?token=abc")
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))


class GuestTests(ServerTestCase):
    config_overrides = {"allow_guest_access": True}

    async def test_guest_account(self):
        """A guest gets a numeric ID, a token, is_guest in whoami, and cannot use
        non-guest endpoints."""
        status, resp = await self.request("POST", REGISTER + "?kind=guest", {
            "username": "ignored", "initial_device_display_name": "guest phone"})
        self.assertEqual(status, 200, resp)
        self.assertTrue(resp["user_id"][1:].split(":")[0].isdigit())
        token = resp["access_token"]
        status, who = await self.request("GET", WHOAMI, token=token)
        self.assertEqual((status, who["is_guest"]), (200, True))
        status, devs = await self.request("GET", "/_matrix/client/v3/devices", token=token)
        self.assertEqual(devs["devices"][0]["display_name"], "guest phone")
        status, err = await self.request("POST", "/_matrix/client/v3/account/deactivate",
                                         {}, token=token)
        self.assertEqual((status, err["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))

    async def test_guest_upgrade(self):
        """A guest registers its own localpart with guest_access_token and becomes a user."""
        status, guest = await self.request("POST", REGISTER + "?kind=guest", {})
        localpart = guest["user_id"][1:].split(":")[0]
        status, resp = await self.request("POST", REGISTER, {
            "username": localpart, "password": "pw-upgraded",
            "guest_access_token": guest["access_token"], "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["user_id"], guest["user_id"])
        status, who = await self.request("GET", WHOAMI, token=resp["access_token"])
        self.assertEqual(who["is_guest"], False)
        status, _ = await self.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "user": localpart, "password": "pw-upgraded"})
        self.assertEqual(status, 200)

    async def test_guest_token_for_other_name(self):
        """A guest token does not let anyone take a different user ID."""
        status, guest = await self.request("POST", REGISTER + "?kind=guest", {})
        status, resp = await self.request("POST", REGISTER, {
            "username": "olga", "password": "pw",
            "guest_access_token": guest["access_token"], "auth": {"type": "m.login.dummy"}})
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))


class RegistrationTokenTests(ServerTestCase):
    config_overrides = {"registration_requires_token": True}

    async def test_token_flow(self):
        """With tokens required the flow is token then dummy; a bad token is a 401 with
        M_FORBIDDEN, a good one registers and uses the token up."""
        tokens = self.c["store"].registration_tokens
        await tokens.create("letmein", uses_allowed=1)
        body = {"username": "pat", "password": "pw"}
        status, resp = await self.request("POST", REGISTER, body)
        self.assertEqual(status, 401)
        self.assertEqual(resp["flows"],
                         [{"stages": ["m.login.registration_token", "m.login.dummy"]}])
        session = resp["session"]

        body["auth"] = {"type": "m.login.dummy", "session": session}
        status, resp = await self.request("POST", REGISTER, body)
        self.assertEqual(status, 401, "dummy before the token is out of order")
        self.assertEqual(resp["completed"], [])

        body["auth"] = {"type": "m.login.registration_token", "token": "wrong",
                        "session": session}
        status, resp = await self.request("POST", REGISTER, body)
        self.assertEqual((status, resp["errcode"]), (401, "M_FORBIDDEN"))
        self.assertEqual(resp["session"], session)

        body["auth"] = {"type": "m.login.registration_token", "token": "letmein",
                        "session": session}
        status, resp = await self.request("POST", REGISTER, body)
        self.assertEqual(status, 401)
        self.assertEqual(resp["completed"], ["m.login.registration_token"])
        self.assertNotIn("errcode", resp)

        body["auth"] = {"type": "m.login.dummy", "session": session}
        status, resp = await self.request("POST", REGISTER, body)
        self.assertEqual(status, 200, resp)
        info = await tokens.get("letmein")
        self.assertEqual((info.completed, info.pending), (1, 0))

        status, resp = await self.request("GET", VALIDITY + "?token=letmein")
        self.assertEqual((status, resp), (200, {"valid": False}))

    async def test_validity(self):
        """/validity says whether a token can be used now; a token is required."""
        await self.c["store"].registration_tokens.create("fresh")
        status, resp = await self.request("GET", VALIDITY + "?token=fresh")
        self.assertEqual((status, resp), (200, {"valid": True}))
        status, resp = await self.request("GET", VALIDITY + "?token=unknown")
        self.assertEqual((status, resp), (200, {"valid": False}))
        status, resp = await self.request("GET", VALIDITY)
        self.assertEqual((status, resp["errcode"]), (400, "M_MISSING_PARAM"))

    async def test_token_used_up_meanwhile(self):
        """A token used up between its stage and the end is refused, stage undone."""
        tokens = self.c["store"].registration_tokens
        await tokens.create("once", uses_allowed=1)
        sessions = []
        for name in ("quinn", "rita"):
            status, resp = await self.request("POST", REGISTER, {
                "username": name, "password": "pw",
                "auth": {"type": "m.login.registration_token", "token": "once"}})
            self.assertEqual(resp["completed"], ["m.login.registration_token"])
            sessions.append(resp["session"])
        status, resp = await self.request("POST", REGISTER, {
            "username": "quinn", "password": "pw",
            "auth": {"type": "m.login.dummy", "session": sessions[0]}})
        self.assertEqual(status, 200, resp)
        status, resp = await self.request("POST", REGISTER, {
            "username": "rita", "password": "pw",
            "auth": {"type": "m.login.dummy", "session": sessions[1]}})
        self.assertEqual((status, resp["errcode"]), (401, "M_FORBIDDEN"))
        self.assertEqual(resp["completed"], [])
        self.assertIsNone(await self.c["store"].accounts.get_user("@rita:test.local"))


class RegistrationRateLimitTests(ServerTestCase):
    config_overrides = {"rc_registration": {"per_second": 0.001, "burst_count": 2}}

    async def test_rate_limited(self):
        """rc_registration per IP: after the burst, 429 M_LIMIT_EXCEEDED with retry_after_ms."""
        for name in ("sam", "tina"):
            await self.register(name)
        status, resp = await self.request("POST", REGISTER, {
            "username": "uma", "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(resp["retry_after_ms"], 0)
