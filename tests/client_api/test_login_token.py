"""``POST /login/get_token`` and ``m.login.token`` logins (spec v1.7: Client-Server
API, "Login"; MSC3882), under Synapse's ``login_via_existing_session`` settings."""

from __future__ import annotations

from twisted.internet import reactor, task

from tests.client_api.harness import ServerTestCase, password_auth

LOGIN = "/_matrix/client/v3/login"
GET_TOKEN = "/_matrix/client/v1/login/get_token"
WHOAMI = "/_matrix/client/v3/account/whoami"
CAPABILITIES = "/_matrix/client/v3/capabilities"


def token_login(token: str, **extra) -> dict:
    return {"type": "m.login.token", "token": token, **extra}


class LoginTokenTests(ServerTestCase):
    config_overrides = {"login_via_existing_session": {"enabled": True}}

    async def get_token(self, user: str, access_token: str) -> dict:
        """A login token, through the password UIA stage."""
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access_token)
        self.assertEqual(status, 401, resp)
        status, resp = await self.request("POST", GET_TOKEN, {
            "auth": password_auth(user, session=resp["session"])}, token=access_token)
        self.assertEqual(status, 200, resp)
        return resp

    async def test_token_logs_in_a_new_device(self):
        """A token from get_token (after UIA) logs the same user in on a new device."""
        user_id, access = await self.register("alice")
        _, who = await self.request("GET", WHOAMI, token=access)
        resp = await self.get_token("alice", access)
        self.assertEqual(resp["expires_in_ms"], 5 * 60 * 1000)
        self.assertIsInstance(resp["login_token"], str)
        status, login = await self.request("POST", LOGIN, token_login(
            resp["login_token"], initial_device_display_name="phone"))
        self.assertEqual(status, 200, login)
        self.assertEqual(login["user_id"], user_id)
        self.assertNotEqual(login["device_id"], who["device_id"])
        status, new_who = await self.request("GET", WHOAMI, token=login["access_token"])
        self.assertEqual((status, new_who["user_id"], new_who["device_id"]),
                         (200, user_id, login["device_id"]))
        _, devices = await self.request("GET", "/_matrix/client/v3/devices", token=access)
        names = {d["device_id"]: d.get("display_name") for d in devices["devices"]}
        self.assertEqual(names[login["device_id"]], "phone")

    async def test_token_is_single_use(self):
        """A spent token is 403 M_FORBIDDEN the second time."""
        _, access = await self.register("bob")
        token = (await self.get_token("bob", access))["login_token"]
        status, _ = await self.request("POST", LOGIN, token_login(token))
        self.assertEqual(status, 200)
        status, resp = await self.request("POST", LOGIN, token_login(token))
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))

    async def test_bad_tokens_are_forbidden(self):
        """Unknown or empty tokens are 403 M_FORBIDDEN; a missing one 400 M_MISSING_PARAM;
        a non-string 400 M_BAD_JSON."""
        for body, status, errcode in ((token_login("nope"), 403, "M_FORBIDDEN"),
                                      (token_login(""), 403, "M_FORBIDDEN"),
                                      ({"type": "m.login.token"}, 400, "M_MISSING_PARAM"),
                                      (token_login(5), 400, "M_BAD_JSON")):
            got, resp = await self.request("POST", LOGIN, body)
            self.assertEqual((got, resp["errcode"]), (status, errcode), body)

    async def test_uia_required(self):
        """Without ``auth`` get_token is 401 with the password flow; a wrong password
        fails the stage; a missing access token is 401 M_MISSING_TOKEN."""
        _, access = await self.register("carol")
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access)
        self.assertEqual(status, 401)
        self.assertEqual(resp["flows"], [{"stages": ["m.login.password"]}])
        self.assertIn("session", resp)
        self.assertNotIn("login_token", resp)
        status, resp = await self.request("POST", GET_TOKEN, {
            "auth": password_auth("carol", "wrong", session=resp["session"])}, token=access)
        self.assertEqual((status, resp["errcode"]), (401, "M_FORBIDDEN"))
        status, resp = await self.request("POST", GET_TOKEN, {})
        self.assertEqual((status, resp["errcode"]), (401, "M_MISSING_TOKEN"))

    async def test_every_token_needs_fresh_uia(self):
        """A completed UIA session is spent by the token it authorised: replaying it
        starts over (spec: servers MUST re-prompt for each token)."""
        _, access = await self.register("cy")
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access)
        body = {"auth": password_auth("cy", session=resp["session"])}
        status, resp = await self.request("POST", GET_TOKEN, body, token=access)
        self.assertEqual(status, 200, resp)
        status, resp = await self.request("POST", GET_TOKEN, body, token=access)
        self.assertEqual(status, 400, resp)
        self.assertNotIn("login_token", resp)

    async def test_uia_session_not_reusable_by_another_user(self):
        """A UIA session one user completed cannot mint a token for another."""
        _, access_a = await self.register("dora")
        _, access_b = await self.register("ed")
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access_a)
        status, resp = await self.request("POST", GET_TOKEN, {
            "auth": password_auth("ed", session=resp["session"])}, token=access_b)
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))

    async def test_flows_and_capability(self):
        """GET /login offers m.login.token with get_login_token; the capability is on."""
        _, access = await self.register("fay")
        status, resp = await self.request("GET", LOGIN)
        self.assertIn({"type": "m.login.token", "get_login_token": True}, resp["flows"])
        status, resp = await self.request("GET", CAPABILITIES, token=access)
        self.assertEqual(resp["capabilities"]["m.get_login_token"], {"enabled": True})

    async def test_deactivated_user_cannot_use_token(self):
        """A token minted before deactivation does not log in afterwards."""
        _, access = await self.register("gus")
        token = (await self.get_token("gus", access))["login_token"]
        status, resp = await self.request("POST", "/_matrix/client/v3/account/deactivate",
                                          {}, token=access)
        status, resp = await self.request("POST", "/_matrix/client/v3/account/deactivate", {
            "auth": password_auth("gus", session=resp["session"])}, token=access)
        self.assertEqual(status, 200, resp)
        status, resp = await self.request("POST", LOGIN, token_login(token))
        self.assertEqual(status, 403, resp)
        self.assertIn(resp["errcode"], ("M_FORBIDDEN", "M_USER_DEACTIVATED"))


class DeactivatedOwnerTests(ServerTestCase):
    config_overrides = {"login_via_existing_session": {"enabled": True,
                                                       "require_ui_auth": False}}

    async def test_deactivated_owner_refused(self):
        """Even a live token (still stored) of a deactivated account is refused with
        403 M_USER_DEACTIVATED."""
        user_id, access = await self.register("hal")
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access)
        self.assertEqual(status, 200, resp)
        await self.c["store"].accounts.set_deactivated(user_id, True)
        status, resp = await self.request("POST", LOGIN, token_login(resp["login_token"]))
        self.assertEqual((status, resp["errcode"]), (403, "M_USER_DEACTIVATED"))

    async def test_without_ui_auth(self):
        """With require_ui_auth false the token comes at once, without a body."""
        user_id, access = await self.register("ida")
        status, resp = await self.request("POST", GET_TOKEN, None, token=access)
        self.assertEqual(status, 200, resp)
        status, login = await self.request("POST", LOGIN, token_login(resp["login_token"]))
        self.assertEqual((status, login["user_id"]), (200, user_id))


class ExpiryTests(ServerTestCase):
    config_overrides = {"login_via_existing_session": {
        "enabled": True, "require_ui_auth": False, "token_timeout": "50ms"}}

    async def test_expired_token_forbidden(self):
        """A token past token_timeout is 403 M_FORBIDDEN; expires_in_ms says when."""
        _, access = await self.register("jo")
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access)
        self.assertEqual((status, resp["expires_in_ms"]), (200, 50))
        await task.deferLater(reactor, 0.2, lambda: None)
        status, resp = await self.request("POST", LOGIN, token_login(resp["login_token"]))
        self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))


class RateLimitTests(ServerTestCase):
    config_overrides = {
        "login_via_existing_session": {"enabled": True, "require_ui_auth": False}}

    async def test_one_token_a_minute(self):
        """By default (the spec's suggestion, as Synapse) a user gets one token a
        minute: the second is 429 M_LIMIT_EXCEEDED with retry_after_ms; others are not
        held back."""
        _, access = await self.register("kim")
        _, other = await self.register("kit")
        status, _ = await self.request("POST", GET_TOKEN, {}, token=access)
        self.assertEqual(status, 200)
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access)
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(resp["retry_after_ms"], 50_000)
        status, _ = await self.request("POST", GET_TOKEN, {}, token=other)
        self.assertEqual(status, 200)


class AccountLimitTests(ServerTestCase):
    config_overrides = {
        "login_via_existing_session": {"enabled": True, "require_ui_auth": False},
        "rc_login_token_request": {"per_second": 1000, "burst_count": 1000},
        "rc_login": {"address": {"per_second": 1000, "burst_count": 1000},
                     "account": {"per_second": 0.001, "burst_count": 2},
                     "failed_attempts": {"per_second": 1000, "burst_count": 1000}}}

    async def test_counts_against_account_logins(self):
        """Minting tokens also counts against rc_login.account: past its burst, 429."""
        _, access = await self.register("kip")
        for _ in range(2):
            status, _ = await self.request("POST", GET_TOKEN, {}, token=access)
            self.assertEqual(status, 200)
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access)
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))


class DisabledTests(ServerTestCase):
    async def test_disabled_by_default(self):
        """Off by default (as in Synapse): get_token is 404 M_UNRECOGNIZED, even before
        UIA; m.login.token is neither offered nor accepted; the capability is off; yet
        /versions still lists v1.7 (the route exists)."""
        _, access = await self.register("lee")
        status, resp = await self.request("POST", GET_TOKEN, {}, token=access)
        self.assertEqual((status, resp["errcode"]), (404, "M_UNRECOGNIZED"))
        status, resp = await self.request("GET", LOGIN)
        self.assertEqual(resp["flows"], [{"type": "m.login.password"}])
        status, resp = await self.request("POST", LOGIN, token_login("anything"))
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))
        status, resp = await self.request("GET", CAPABILITIES, token=access)
        self.assertEqual(resp["capabilities"]["m.get_login_token"], {"enabled": False})
        status, resp = await self.request("GET", "/_matrix/client/versions")
        self.assertIn("v1.7", resp["versions"])
