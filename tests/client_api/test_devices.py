"""Device management: GET/PUT/DELETE /devices/{deviceId}, GET /devices, POST
/delete_devices, and GET /admin/whois (spec: Client-Server API "Device Management",
"Server administration")."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase, q, password_auth

V3 = "/_matrix/client/v3"


class DeviceTests(ServerTestCase):
    async def login(self, user: str, device_id: str | None = None) -> str:
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                "password": "correct horse"}
        if device_id:
            body["device_id"] = device_id
        status, resp = await self.request("POST", V3 + "/login", body)
        assert status == 200, resp
        return resp["access_token"]

    async def test_list_and_get(self):
        """GET /devices lists the user's devices only; GET /devices/{id} shows one with
        last_seen_ts; another user's device or an unknown one is 404 M_NOT_FOUND."""
        _, token = await self.register("alice", device_id="PHONE")
        await self.login("alice", "LAPTOP")
        _, bob = await self.register("bob", device_id="BOBDEV")
        status, resp = await self.request("GET", V3 + "/devices", token=token)
        self.assertEqual(status, 200)
        self.assertEqual(sorted(d["device_id"] for d in resp["devices"]), ["LAPTOP", "PHONE"])
        status, dev = await self.request("GET", V3 + "/devices/PHONE", token=token)
        self.assertEqual((status, dev["device_id"]), (200, "PHONE"))
        self.assertIsInstance(dev["last_seen_ts"], int)
        self.assertNotIn("display_name", dev)
        for device_id in ("BOBDEV", "NOPE"):
            status, err = await self.request("GET", V3 + "/devices/" + device_id,
                                             token=token)
            self.assertEqual((status, err["errcode"]), (404, "M_NOT_FOUND"))

    async def test_rename(self):
        """PUT /devices/{id} sets the display name; an absent name changes nothing; an
        unknown device is 404; a non-string name is M_BAD_JSON, a too long one
        M_INVALID_PARAM."""
        _, token = await self.register("carol", device_id="PHONE")
        status, resp = await self.request("PUT", V3 + "/devices/PHONE",
                                          {"display_name": "Carol's phone"}, token=token)
        self.assertEqual((status, resp), (200, {}))
        status, resp = await self.request("PUT", V3 + "/devices/PHONE", {}, token=token)
        self.assertEqual(status, 200)
        status, dev = await self.request("GET", V3 + "/devices/PHONE", token=token)
        self.assertEqual(dev["display_name"], "Carol's phone")
        status, err = await self.request("PUT", V3 + "/devices/NOPE",
                                         {"display_name": "x"}, token=token)
        self.assertEqual((status, err["errcode"]), (404, "M_NOT_FOUND"))
        for name, code in ((5, "M_BAD_JSON"), ("x" * 101, "M_INVALID_PARAM")):
            status, err = await self.request("PUT", V3 + "/devices/PHONE",
                                             {"display_name": name}, token=token)
            self.assertEqual((status, err["errcode"]), (400, code))

    async def test_delete_device_with_uia(self):
        """DELETE /devices/{id} needs the password (401 flows first); afterwards the
        device is gone and its token is M_UNKNOWN_TOKEN."""
        user_id, token = await self.register("dave", device_id="MAIN")
        old = await self.login("dave", "OLD")
        status, _ = await self.request("GET", V3 + "/account/whoami", token=old)
        self.assertEqual(status, 200)  # now the token sits in the Authenticator's cache
        status, resp = await self.request("DELETE", V3 + "/devices/OLD", token=token)
        self.assertEqual(status, 401)
        self.assertEqual(resp["flows"], [{"stages": ["m.login.password"]}])
        status, err = await self.request("DELETE", V3 + "/devices/OLD", {
            "auth": password_auth("dave", "wrong", resp["session"])}, token=token)
        self.assertEqual((status, err["errcode"]), (401, "M_FORBIDDEN"))
        status, ok = await self.request("DELETE", V3 + "/devices/OLD", {
            "auth": password_auth("dave", session=resp["session"])}, token=token)
        self.assertEqual((status, ok), (200, {}))
        status, err = await self.request("GET", V3 + "/account/whoami", token=old)
        self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        status, devs = await self.request("GET", V3 + "/devices", token=token)
        self.assertEqual([d["device_id"] for d in devs["devices"]], ["MAIN"])
        # already gone: still 200 ("or had been removed previously")
        status, ok = await self.request("DELETE", V3 + "/devices/OLD", {
            "auth": password_auth("dave")}, token=token)
        self.assertEqual(status, 200)

    async def test_delete_session_bound_to_device(self):
        """A session authorised for deleting one device cannot delete another."""
        _, token = await self.register("erin", device_id="MAIN")
        await self.login("erin", "A")
        await self.login("erin", "B")
        status, resp = await self.request("DELETE", V3 + "/devices/A", {
            "auth": password_auth("erin")}, token=token)
        self.assertEqual(status, 200)
        status, err = await self.request("DELETE", V3 + "/devices/B", {
            "auth": {"session": "unknown-session"}}, token=token)
        self.assertEqual(status, 400)
        status, first = await self.request("DELETE", V3 + "/devices/A", token=token)
        status, err = await self.request("DELETE", V3 + "/devices/B", {
            "auth": password_auth("erin", session=first["session"])}, token=token)
        self.assertEqual((status, err["errcode"]), (403, "M_FORBIDDEN"))

    async def test_delete_devices(self):
        """POST /delete_devices deletes several devices after UIA; unknown IDs are fine."""
        user_id, token = await self.register("frank", device_id="MAIN")
        tokens = [await self.login("frank", d) for d in ("A", "B")]
        for t in tokens:  # cached by the Authenticator from now on
            status, _ = await self.request("GET", V3 + "/account/whoami", token=t)
            self.assertEqual(status, 200)
        status, resp = await self.request("POST", V3 + "/delete_devices",
                                          {"devices": ["A", "B", "GONE"]}, token=token)
        self.assertEqual(status, 401)
        status, ok = await self.request("POST", V3 + "/delete_devices", {
            "devices": ["A", "B", "GONE"],
            "auth": password_auth("frank", session=resp["session"])}, token=token)
        self.assertEqual((status, ok), (200, {}))
        for t in tokens:
            status, err = await self.request("GET", V3 + "/account/whoami", token=t)
            self.assertEqual((status, err["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        devices = await self.c["store"].devices.get_devices(user_id)
        self.assertEqual([d.device_id for d in devices], ["MAIN"])

    async def test_delete_devices_bad_body(self):
        """devices is required and must be a list of strings."""
        _, token = await self.register("gina")
        for body, code in (({}, "M_MISSING_PARAM"), ({"devices": "A"}, "M_BAD_JSON"),
                           ({"devices": [1]}, "M_BAD_JSON")):
            status, err = await self.request("POST", V3 + "/delete_devices", body,
                                             token=token)
            self.assertEqual((status, err["errcode"]), (400, code), body)

    async def test_delete_clears_to_device_inbox(self):
        """A deleted device's pending to-device messages are dropped with it."""
        user_id, token = await self.register("hank", device_id="MAIN")
        await self.login("hank", "OTHER")
        to_device = self.c["store"].to_device
        await to_device.add_messages([(user_id, "OTHER", {
            "sender": user_id, "type": "m.test", "content": {}})])
        messages, _ = await to_device.get_messages(user_id, "OTHER", 0)
        self.assertEqual(len(messages), 1)
        status, _ = await self.request("POST", V3 + "/delete_devices", {
            "devices": ["OTHER"], "auth": password_auth("hank")}, token=token)
        self.assertEqual(status, 200)
        messages, _ = await to_device.get_messages(user_id, "OTHER", 0)
        self.assertEqual(messages, [])

    async def test_whois(self):
        """whois works on oneself; another user's needs a server admin; remote users
        are M_INVALID_PARAM."""
        user_id, token = await self.register("ivy", device_id="IVYDEV")
        other_id, other = await self.register("jack")
        status, resp = await self.request("GET", f"{V3}/admin/whois/{q(user_id)}",
                                          token=token)
        self.assertEqual((status, resp["user_id"]), (200, user_id))
        connections = resp["devices"]["IVYDEV"]["sessions"][0]["connections"]
        self.assertEqual(connections[0]["ip"], "127.0.0.1")
        status, err = await self.request("GET", f"{V3}/admin/whois/{q(user_id)}",
                                         token=other)
        self.assertEqual((status, err["errcode"]), (403, "M_FORBIDDEN"))
        await self.c["store"].accounts.set_admin(other_id, True)
        status, resp = await self.request("GET", f"{V3}/admin/whois/{q(user_id)}",
                                          token=other)
        self.assertEqual((status, list(resp["devices"])), (200, ["IVYDEV"]))
        status, err = await self.request("GET", f"{V3}/admin/whois/{q('@x:elsewhere.org')}",
                                         token=other)
        self.assertEqual((status, err["errcode"]), (400, "M_INVALID_PARAM"))


class GuestDeviceTests(ServerTestCase):
    config_overrides = {"allow_guest_access": True}

    async def test_guest_can_rename_but_not_delete(self):
        """Guests may list and rename their devices (spec guest list) but not delete."""
        status, guest = await self.request("POST", V3 + "/register?kind=guest", {})
        token, device_id = guest["access_token"], guest["device_id"]
        status, _ = await self.request("PUT", f"{V3}/devices/{device_id}",
                                       {"display_name": "g"}, token=token)
        self.assertEqual(status, 200)
        status, err = await self.request("DELETE", f"{V3}/devices/{device_id}", {},
                                         token=token)
        self.assertEqual((status, err["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))
