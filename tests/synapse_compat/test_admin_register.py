"""Synapse-compatible shared-secret registration (``/_synapse/admin/v1/register``),
checked against the MAC that Synapse's ``register_new_matrix_user`` script sends."""

from __future__ import annotations

import hashlib
import hmac

from twisted.internet.task import Clock
from twisted.trial import unittest

from synapse_compat.admin_register import Nonces, registration_mac
from tests.client_api.harness import ServerTestCase

PATH = "/_synapse/admin/v1/register"
SECRET = "s3cret"  # the harness's registration_shared_secret


def script_mac(shared_secret: str, nonce: str, user: str, password: str, admin: bool,
               user_type: str | None) -> str:
    """The MAC exactly as ``register_new_matrix_user`` computes it: HMAC-SHA1 keyed with
    the UTF-8 secret, fed nonce, NUL, user, NUL, password, NUL, "admin"/"notadmin" and,
    only when a user type is given, NUL and the user type; sent as hex."""
    mac = hmac.new(key=shared_secret.encode("utf8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf8"))
    mac.update(b"\x00")
    mac.update(user.encode("utf8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00")
        mac.update(user_type.encode("utf8"))
    return mac.hexdigest()


class MacTests(unittest.TestCase):
    def test_mac_matches_the_script(self):
        """Our MAC equals the script's for admins, non-admins, user types and UTF-8."""
        for args in (("n1", "alice", "pw", True, None), ("n2", "bob", "pw", False, None),
                     ("n3", "bot", "pässwörd", False, "bot"),
                     ("n4", "sup", "x", True, "support")):
            self.assertEqual(registration_mac("k€y", *args), script_mac("k€y", *args))


class NonceTests(unittest.TestCase):
    def test_single_use_and_expiry(self):
        """A nonce works once, and not after 60 seconds."""
        clock = Clock()
        nonces = Nonces(clock.seconds)
        first = nonces.issue()
        self.assertEqual(len(first), 128)
        self.assertTrue(nonces.spend(first))
        self.assertFalse(nonces.spend(first))
        late = nonces.issue()
        clock.advance(61)
        self.assertFalse(nonces.spend(late))
        self.assertFalse(nonces.spend("never issued"))


class AdminRegisterTests(ServerTestCase):
    async def script_register(self, user: str, password: str, admin: bool,
                              user_type: str | None = None, **extra) -> tuple[int, dict]:
        """What ``register_new_matrix_user`` does: GET a nonce, POST the registration
        (the script always sends ``user_type``, null when not given)."""
        status, resp = await self.request("GET", PATH)
        self.assertEqual(status, 200)
        nonce = resp["nonce"]
        body = {"nonce": nonce, "username": user, "password": password,
                "mac": script_mac(SECRET, nonce, user, password, admin, user_type),
                "admin": admin, "user_type": user_type, **extra}
        return await self.request("POST", PATH, body)

    async def test_register_admin(self):
        """An admin registered the script's way can log in and is a server admin."""
        status, resp = await self.script_register("root", "hunter2hunter2", True)
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["user_id"], "@root:test.local")
        self.assertEqual(resp["home_server"], "test.local")
        status, who = await self.request("GET", "/_matrix/client/v3/account/whoami",
                                         token=resp["access_token"])
        self.assertEqual((status, who["device_id"]), (200, resp["device_id"]))
        info = await self.c["store"].accounts.get_user("@root:test.local")
        self.assertTrue(info.is_admin)
        status, _ = await self.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "user": "root", "password": "hunter2hunter2"})
        self.assertEqual(status, 200)

    async def test_register_bot_with_displayname(self):
        """user_type and displayname are applied; a non-admin stays one."""
        status, resp = await self.script_register("Helper", "pw", False, "bot",
                                                  displayname="Helpful Bot")
        self.assertEqual((status, resp["user_id"]), (200, "@helper:test.local"))
        info = await self.c["store"].accounts.get_user("@helper:test.local")
        self.assertEqual((info.is_admin, info.user_type), (False, "bot"))
        profile = await self.c["store"].accounts.get_profile("@helper:test.local")
        self.assertEqual(profile.displayname, "Helpful Bot")

    async def test_bad_mac(self):
        """A MAC made with another secret is 403 M_UNKNOWN (Synapse's "HMAC incorrect")."""
        status, resp = await self.request("GET", PATH)
        nonce = resp["nonce"]
        status, resp = await self.request("POST", PATH, {
            "nonce": nonce, "username": "eve", "password": "pw", "admin": True,
            "mac": script_mac("guess", nonce, "eve", "pw", True, None)})
        self.assertEqual((status, resp["errcode"]), (403, "M_UNKNOWN"))
        # the admin flag is covered by the MAC: flipping it breaks the MAC
        status, resp = await self.request("GET", PATH)
        nonce = resp["nonce"]
        status, resp = await self.request("POST", PATH, {
            "nonce": nonce, "username": "eve", "password": "pw", "admin": True,
            "mac": script_mac(SECRET, nonce, "eve", "pw", False, None)})
        self.assertEqual((status, resp["errcode"]), (403, "M_UNKNOWN"))
        self.assertIsNone(await self.c["store"].accounts.get_user("@eve:test.local"))

    async def test_nonce_reuse(self):
        """A nonce is single use: the second POST is 400 M_UNKNOWN, even after a
        failed first attempt."""
        status, resp = await self.request("GET", PATH)
        nonce = resp["nonce"]
        body = {"nonce": nonce, "username": "frank", "password": "pw", "admin": False,
                "mac": script_mac(SECRET, nonce, "frank", "pw", False, None)}
        status, _ = await self.request("POST", PATH, body)
        self.assertEqual(status, 200)
        status, resp = await self.request("POST", PATH, dict(body, username="frank2"))
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))
        status, resp = await self.request("POST", PATH, dict(body, nonce="made-up"))
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))

    async def test_missing_and_invalid_fields(self):
        """Missing fields are 400 M_BAD_JSON; bad values 400; a taken name M_USER_IN_USE."""
        await self.register("gina")
        for field in ("nonce", "username", "password", "mac"):
            status, resp = await self.request("GET", PATH)
            nonce = resp["nonce"]
            body = {"nonce": nonce, "username": "hank", "password": "pw",
                    "mac": script_mac(SECRET, nonce, "hank", "pw", False, None)}
            del body[field]
            status, resp = await self.request("POST", PATH, body)
            self.assertEqual((status, resp["errcode"]), (400, "M_BAD_JSON"), field)
        status, resp = await self.script_register("ivy", "pw", False, "wizard")
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))
        status, resp = await self.script_register("bad name", "pw", False)
        self.assertEqual((status, resp["errcode"]), (400, "M_INVALID_USERNAME"))
        status, resp = await self.script_register("gina", "pw", False)
        self.assertEqual((status, resp["errcode"]), (400, "M_USER_IN_USE"))


class AdminRegisterDisabledTests(ServerTestCase):
    config_overrides = {"registration_shared_secret": None}

    async def test_disabled(self):
        """Without registration_shared_secret the endpoint refuses (400)."""
        status, resp = await self.request("GET", PATH)
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))
        status, resp = await self.request("POST", PATH, {"nonce": "x"})
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))
