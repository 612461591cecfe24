"""/thirdparty/* and /account/3pid on a server with no bridges and no 3PIDs."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase

V3 = "/_matrix/client/v3"


class ThirdPartyTests(ServerTestCase):
    async def test_protocols_empty(self):
        """GET /thirdparty/protocols is {} with no application services."""
        _, token = await self.register("alice")
        status, body = await self.request("GET", V3 + "/thirdparty/protocols", token=token)
        self.assertEqual((status, body), (200, {}))

    async def test_unknown_protocol(self):
        """An unknown protocol is 404 M_NOT_FOUND; lookups find nothing."""
        _, token = await self.register("alice")
        status, body = await self.request("GET", V3 + "/thirdparty/protocol/irc",
                                          token=token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.request("GET", V3 + "/thirdparty/user/irc?nick=x",
                                          token=token)
        self.assertEqual((status, body), (200, []))

    async def test_account_threepids(self):
        """GET /account/3pid lists none; adding one is refused; deleting is a no-op."""
        _, token = await self.register("alice")
        status, body = await self.request("GET", V3 + "/account/3pid", token=token)
        self.assertEqual((status, body), (200, {"threepids": []}))
        status, body = await self.request("POST", V3 + "/account/3pid/add", {
            "client_secret": "x", "sid": "1"}, token=token)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, body = await self.request("POST", V3 + "/account/3pid/delete", {
            "medium": "email", "address": "a@example.org"}, token=token)
        self.assertEqual((status, body), (200, {"id_server_unbind_result": "no-support"}))
        status, body = await self.request("POST", V3 + "/account/3pid/delete", {
            "medium": 3}, token=token)
        self.assertEqual((status, body["errcode"]), (400, "M_BAD_JSON"))

    async def test_request_token_denied(self):
        """requestToken: M_THREEPID_DENIED, or M_THREEPID_NOT_FOUND for a reset."""
        body = {"client_secret": "x", "email": "a@example.org", "send_attempt": 1}
        status, resp = await self.request(
            "POST", V3 + "/register/email/requestToken", body)
        self.assertEqual((status, resp["errcode"]), (403, "M_THREEPID_DENIED"))
        status, resp = await self.request(
            "POST", V3 + "/account/password/email/requestToken", body)
        self.assertEqual((status, resp["errcode"]), (400, "M_THREEPID_NOT_FOUND"))
