"""GET/POST /login, /logout, /logout/all and /refresh (spec: Client-Server API
"Login", "Refreshing access tokens", "Soft logout")."""

from __future__ import annotations

from twisted.internet import reactor, task

from tests.client_api.harness import ServerTestCase

LOGIN = "/_matrix/client/v3/login"
WHOAMI = "/_matrix/client/v3/account/whoami"
_FAST = {"per_second": 100000, "burst_count": 1000000}


def password_login(user: str, password: str = "correct horse", **extra) -> dict:
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password, **extra}


class LoginTests(ServerTestCase):
    async def test_flows(self):
        """GET /login offers m.login.password."""
        status, resp = await self.request("GET", LOGIN)
        self.assertEqual((status, resp), (200, {"flows": [{"type": "m.login.password"}]}))

    async def test_login_localpart_and_full_id(self):
        """Login with a localpart, a full user ID, other letter case, or legacy ``user``."""
        user_id, _ = await self.register("alice")
        for body in (password_login("alice"), password_login("@alice:test.local"),
                     password_login("ALICE"), password_login("@Alice:test.local"),
                     {"type": "m.login.password", "user": "alice",
                      "password": "correct horse"}):
            status, resp = await self.request("POST", LOGIN, body)
            self.assertEqual(status, 200, (body, resp))
            self.assertEqual(resp["user_id"], user_id)
            self.assertEqual(resp["home_server"], "test.local")
            self.assertNotIn("well_known", resp)
            status, who = await self.request("GET", WHOAMI, token=resp["access_token"])
            self.assertEqual((who["user_id"], who["device_id"]),
                             (user_id, resp["device_id"]))

    async def test_wrong_password_and_unknown_user(self):
        """A wrong password or an unknown user is 403 M_FORBIDDEN, the same answer."""
        await self.register("bob")
        for body in (password_login("bob", "wrong"), password_login("nobody"),
                     password_login("@bob:elsewhere.example")):
            status, resp = await self.request("POST", LOGIN, body)
            self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"), body)

    async def test_bad_requests(self):
        """Unknown login type, missing fields, third-party IDs: the spec's errors."""
        cases = [
            ({"type": "m.login.token", "token": "x"}, 400, "M_UNKNOWN"),
            ({"type": "m.login.password", "password": "x"}, 400, "M_MISSING_PARAM"),
            ({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "x"}},
             400, "M_MISSING_PARAM"),
            ({"password": "x", "user": "x"}, 400, "M_MISSING_PARAM"),
            ({"type": "m.login.password", "identifier": "x", "password": "x"},
             400, "M_BAD_JSON"),
            ({"type": "m.login.password", "password": "x",
              "identifier": {"type": "m.id.thirdparty", "medium": "email",
                             "address": "a@b.c"}}, 403, "M_FORBIDDEN"),
            ({"type": "m.login.password", "password": "x", "medium": "email",
              "address": "a@b.c"}, 403, "M_FORBIDDEN"),
            (password_login("x", device_id=5), 400, "M_BAD_JSON"),
            (password_login("x", device_id=""), 400, "M_INVALID_PARAM"),
        ]
        for body, want_status, want_code in cases:
            status, resp = await self.request("POST", LOGIN, body)
            self.assertEqual((status, resp["errcode"]), (want_status, want_code), body)

    async def test_device_id_reuse(self):
        """Logging in again with the same device_id keeps one device and revokes the
        device's earlier token; display names apply to new devices only."""
        user_id, first = await self.register("carol", device_id="CAROLDEV")
        status, _ = await self.request("GET", WHOAMI, token=first)
        self.assertEqual(status, 200)  # cached by the Authenticator from now on
        status, resp = await self.request("POST", LOGIN, password_login(
            "carol", device_id="CAROLDEV", initial_device_display_name="ignored"))
        self.assertEqual((status, resp["device_id"]), (200, "CAROLDEV"))
        status, err = await self.request("GET", WHOAMI, token=first)
        self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        status, devs = await self.request("GET", "/_matrix/client/v3/devices",
                                          token=resp["access_token"])
        self.assertEqual([d["device_id"] for d in devs["devices"]], ["CAROLDEV"])
        self.assertNotIn("display_name", devs["devices"][0])

        status, other = await self.request("POST", LOGIN, password_login(
            "carol", initial_device_display_name="Laptop"))
        status, dev = await self.request(
            "GET", "/_matrix/client/v3/devices/" + other["device_id"],
            token=other["access_token"])
        self.assertEqual(dev["display_name"], "Laptop")

    async def test_logout(self):
        """/logout revokes the token (M_UNKNOWN_TOKEN afterwards) and deletes the device."""
        user_id, token = await self.register("dave", device_id="DAVE1")
        status, other = await self.request("POST", LOGIN, password_login("dave"))
        status, resp = await self.request("POST", "/_matrix/client/v3/logout", {},
                                          token=token)
        self.assertEqual((status, resp), (200, {}))
        status, err = await self.request("GET", WHOAMI, token=token)
        self.assertEqual((status, err["errcode"], err.get("soft_logout")),
                         (401, "M_UNKNOWN_TOKEN", False))
        status, devs = await self.request("GET", "/_matrix/client/v3/devices",
                                          token=other["access_token"])
        self.assertEqual([d["device_id"] for d in devs["devices"]], [other["device_id"]])

    async def test_logout_all(self):
        """/logout/all revokes every token of the user and deletes every device."""
        user_id, token = await self.register("erin")
        status, other = await self.request("POST", LOGIN, password_login("erin"))
        status, _ = await self.request("GET", WHOAMI, token=other["access_token"])
        self.assertEqual(status, 200)  # cached by the Authenticator from now on
        status, resp = await self.request("POST", "/_matrix/client/v3/logout/all", {},
                                          token=token)
        self.assertEqual(status, 200)
        for t in (token, other["access_token"]):
            status, err = await self.request("GET", WHOAMI, token=t)
            self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        self.assertEqual(await self.c["store"].devices.get_devices(user_id), [])

    async def test_missing_and_unknown_token(self):
        """No token is M_MISSING_TOKEN; a made-up one M_UNKNOWN_TOKEN (both 401)."""
        status, err = await self.request("GET", WHOAMI)
        self.assertEqual((status, err["errcode"]), (401, "M_MISSING_TOKEN"))
        status, err = await self.request("POST", "/_matrix/client/v3/logout", {},
                                         token="nonsense")
        self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_refresh_rotation(self):
        """Login with refresh_token: true, then /refresh hands out a new pair; the old
        refresh token is dead once the new access token has been used."""
        await self.register("frank")
        status, resp = await self.request("POST", LOGIN,
                                          password_login("frank", refresh_token=True))
        self.assertEqual(status, 200, resp)
        self.assertGreater(resp["expires_in_ms"], 0)
        old_refresh = resp["refresh_token"]

        status, new = await self.request("POST", "/_matrix/client/v3/refresh",
                                         {"refresh_token": old_refresh})
        self.assertEqual(status, 200, new)
        self.assertNotEqual(new["access_token"], resp["access_token"])
        self.assertNotEqual(new["refresh_token"], old_refresh)
        self.assertGreater(new["expires_in_ms"], 0)

        status, who = await self.request("GET", WHOAMI, token=new["access_token"])
        self.assertEqual((status, who["device_id"]), (200, resp["device_id"]))
        status, err = await self.request("POST", "/_matrix/client/v3/refresh",
                                         {"refresh_token": old_refresh})
        self.assertEqual((status, err["errcode"], err["soft_logout"]),
                         (401, "M_UNKNOWN_TOKEN", False))
        status, again = await self.request("POST", "/_matrix/client/v3/refresh",
                                           {"refresh_token": new["refresh_token"]})
        self.assertEqual(status, 200, again)

    async def test_refresh_retry_before_use(self):
        """Until the new access token is used, the old refresh token still works (a
        client that lost the response may retry)."""
        await self.register("gina")
        status, resp = await self.request("POST", LOGIN,
                                          password_login("gina", refresh_token=True))
        for _ in range(2):
            status, new = await self.request("POST", "/_matrix/client/v3/refresh",
                                             {"refresh_token": resp["refresh_token"]})
            self.assertEqual(status, 200, new)

    async def test_refresh_bad_requests(self):
        """/refresh needs a refresh_token string; an unknown one is M_UNKNOWN_TOKEN."""
        status, err = await self.request("POST", "/_matrix/client/v3/refresh", {})
        self.assertEqual((status, err["errcode"]), (400, "M_MISSING_PARAM"))
        status, err = await self.request("POST", "/_matrix/client/v3/refresh",
                                         {"refresh_token": "made-up"})
        self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_expired_access_token_is_soft_logout(self):
        """An expired refreshable access token is M_UNKNOWN_TOKEN with soft_logout: true;
        refreshing then gives a working token for the same device."""
        self.c["sessions"].refreshable_lifetime_ms = 300
        await self.register("hank")
        status, resp = await self.request("POST", LOGIN,
                                          password_login("hank", refresh_token=True))
        status, who = await self.request("GET", WHOAMI, token=resp["access_token"])
        self.assertEqual(status, 200)
        await task.deferLater(reactor, 0.4, lambda: None)
        status, err = await self.request("GET", WHOAMI, token=resp["access_token"])
        self.assertEqual((status, err["errcode"], err["soft_logout"]),
                         (401, "M_UNKNOWN_TOKEN", True))
        self.c["sessions"].refreshable_lifetime_ms = 60_000
        status, new = await self.request("POST", "/_matrix/client/v3/refresh",
                                         {"refresh_token": resp["refresh_token"]})
        self.assertEqual(status, 200, new)
        status, who = await self.request("GET", WHOAMI, token=new["access_token"])
        self.assertEqual((status, who["device_id"]), (200, resp["device_id"]))

    async def test_expired_token_never_cached_is_soft_logout(self):
        """A token that expired before its first use is also a soft logout, not a
        hard one (it was never in the Authenticator's cache)."""
        user_id, _ = await self.register("hope", device_id="HOPE")
        now = self.c["now_ms"]()
        pair = await self.c["store"].devices.create_token_pair(
            user_id, "HOPE", access_valid_until_ms=now - 1)
        status, err = await self.request("GET", WHOAMI, token=pair.access_token)
        self.assertEqual((status, err["errcode"], err["soft_logout"]),
                         (401, "M_UNKNOWN_TOKEN", True))
        status, new = await self.request("POST", "/_matrix/client/v3/refresh",
                                         {"refresh_token": pair.refresh_token})
        self.assertEqual(status, 200, new)


class WellKnownLoginTests(ServerTestCase):
    config_overrides = {"public_baseurl": "https://matrix.test.local/"}

    async def test_well_known(self):
        """With public_baseurl set, the login response carries well_known."""
        await self.register("ivy")
        status, resp = await self.request("POST", LOGIN, password_login("ivy"))
        self.assertEqual(resp["well_known"],
                         {"m.homeserver": {"base_url": "https://matrix.test.local/"}})


class FailedAttemptsRateLimitTests(ServerTestCase):
    config_overrides = {"rc_login": {"address": _FAST, "account": _FAST,
                                     "failed_attempts": {"per_second": 0.001,
                                                         "burst_count": 2}}}

    async def test_failed_attempts_lock_the_account(self):
        """rc_login.failed_attempts: after the burst of wrong passwords, even the right
        password gets 429 with retry_after_ms; other accounts are unaffected."""
        await self.register("jack")
        await self.register("kate")
        for _ in range(2):
            status, resp = await self.request("POST", LOGIN, password_login("jack", "bad"))
            self.assertEqual((status, resp["errcode"]), (403, "M_FORBIDDEN"))
        status, resp = await self.request("POST", LOGIN, password_login("jack", "bad"))
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        status, resp = await self.request("POST", LOGIN, password_login("jack"))
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(resp["retry_after_ms"], 0)
        status, resp = await self.request("POST", LOGIN, password_login("kate"))
        self.assertEqual(status, 200)


class AddressRateLimitTests(ServerTestCase):
    config_overrides = {"rc_login": {"address": {"per_second": 0.001, "burst_count": 2},
                                     "account": _FAST, "failed_attempts": _FAST}}

    async def test_address_limit(self):
        """rc_login.address limits every attempt from one IP."""
        await self.register("liam")
        for _ in range(2):
            status, _ = await self.request("POST", LOGIN, password_login("liam"))
            self.assertEqual(status, 200)
        status, resp = await self.request("POST", LOGIN, password_login("liam"))
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(resp["retry_after_ms"], 0)


class AccountRateLimitTests(ServerTestCase):
    config_overrides = {"rc_login": {"address": _FAST, "failed_attempts": _FAST,
                                     "account": {"per_second": 0.001, "burst_count": 1}}}

    async def test_account_limit(self):
        """rc_login.account limits successful logins per account, not failures."""
        await self.register("mia")
        status, resp = await self.request("POST", LOGIN, password_login("mia", "bad"))
        self.assertEqual(status, 403)
        status, _ = await self.request("POST", LOGIN, password_login("mia"))
        self.assertEqual(status, 200)
        status, resp = await self.request("POST", LOGIN, password_login("mia"))
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))
