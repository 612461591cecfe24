"""/versions advertises only served versions; /.well-known/matrix/client only when
configured (issue 12)."""

from __future__ import annotations

from homeserver.client_api.versions import (
    BASE_VERSIONS, VERSION_ENDPOINTS, supported_versions, unstable_flags)
from homeserver.http.server import Router
from tests.client_api.harness import ServerTestCase
from twisted.trial import unittest


async def _handler(request):
    return 200, {}


def _router_serving(upto: str) -> Router:
    """A router with the endpoints of every version up to ``upto``."""
    router = Router()
    for version, endpoints in VERSION_ENDPOINTS:
        for method, path in endpoints:
            router.add(method, path.replace("$", r"\$"), _handler)
        if version == upto:
            break
    return router


class SupportedVersionsTests(unittest.TestCase):
    def test_base_only_without_endpoints(self):
        """With none of the later versions' endpoints only the base is listed."""
        self.assertEqual(supported_versions(Router()), list(BASE_VERSIONS))

    def test_versions_up_to_the_first_gap(self):
        """Every version up to the last one whose endpoints are all served is listed."""
        versions = supported_versions(_router_serving("v1.6"))
        self.assertEqual(versions[-1], "v1.6")
        self.assertIn("v1.5", versions)
        self.assertNotIn("v1.7", versions)

    def test_later_version_needs_earlier_ones(self):
        """A served later endpoint does not make up for a missing earlier one."""
        router = _router_serving("v1.6")
        router2 = Router()
        for version, endpoints in VERSION_ENDPOINTS:
            if version == "v1.2":
                continue
            for method, path in endpoints:
                router2.add(method, path.replace("$", r"\$"), _handler)
        self.assertIn("v1.4", supported_versions(router))
        self.assertEqual(supported_versions(router2), list(BASE_VERSIONS) + ["v1.1"])

    def test_unstable_flags_follow_routes(self):
        """Thread flags are true only when the threads route is served."""
        self.assertFalse(unstable_flags(Router(), {})["org.matrix.msc3440.stable"])
        router = Router()
        router.add("GET", r"/_matrix/client/v1/rooms/[^/]+/threads", _handler)
        flags = unstable_flags(router, {"own.flag": True})
        self.assertTrue(flags["org.matrix.msc3440.stable"])
        self.assertTrue(flags["own.flag"])
        self.assertFalse(flags["org.matrix.msc3952_intentional_mentions"])
        router.add("GET", r"/_matrix/client/(?:v3|r0)/pushrules/", _handler)
        self.assertTrue(unstable_flags(router, {})["org.matrix.msc3952_intentional_mentions"])


class VersionsEndpointTests(ServerTestCase):
    async def test_versions_match_served_endpoints(self):
        """The running server lists v1.3/v1.4 features only if it serves their routes."""
        status, body = await self.request("GET", "/_matrix/client/versions")
        self.assertEqual(status, 200)
        self.assertIn("r0.6.1", body["versions"])
        flags = body["unstable_features"]
        self.assertTrue(flags["org.matrix.msc3440.stable"])  # /threads is served
        self.assertTrue(flags["org.matrix.msc3771"])
        self.assertTrue(flags["org.roomserver.ws"])
        # authenticated media is served, so Element fetches media from /client/v1/media
        self.assertTrue(flags["org.matrix.msc3916.stable"])

    async def test_served_endpoints_reach_v1_11(self):
        """The server serves every endpoint v1.2 to v1.11 introduced: with v1.1's
        (E2EE) routes it advertises up to v1.11, the last version in the table (v1.7
        needs async upload and /login/get_token, whose route exists even while
        login_via_existing_session is off, as in Synapse; v1.11 authenticated media)."""
        from tests.client_api.test_bad_input import routes

        router = Router()
        for method, pattern in routes(self.hs):
            router.add(method, pattern.pattern[1:-1], _handler)
        for method, path in dict(VERSION_ENDPOINTS)["v1.1"]:
            router.add(method, path, _handler)
        self.assertEqual(supported_versions(router)[-1], "v1.11")

    async def test_e2ee_server_advertises_v1_11(self):
        """Once the E2EE endpoints are served (issue 12), /versions reaches v1.6, which
        matrix-js-sdk needs (it refuses a server listing none of v1.1+ and warns below
        v1.5), and with async upload, /login/get_token (v1.7) and authenticated media
        (v1.11) it reaches v1.11. Skipped on a tree without /keys/upload."""
        from tests.client_api.test_bad_input import routes

        if not any(m == "POST" and p.match("/_matrix/client/v3/keys/upload")
                   for m, p in routes(self.hs)):
            raise unittest.SkipTest("no E2EE endpoints in this tree")
        _, body = await self.request("GET", "/_matrix/client/versions")
        self.assertEqual(body["versions"][-1], "v1.11", body)

    async def test_well_known_not_served_by_default(self):
        """Without serve_client_wellknown or public_baseurl the file is 404 M_NOT_FOUND."""
        status, body = await self.request("GET", "/.well-known/matrix/client")
        self.assertEqual(status, 404)
        self.assertEqual(body["errcode"], "M_NOT_FOUND")

    async def test_login_without_well_known(self):
        """Nor does the login response advertise a base URL nobody configured."""
        await self.register("wk")
        status, body = await self.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "wk"},
            "password": "correct horse"})
        self.assertEqual(status, 200)
        self.assertNotIn("well_known", body)


class WellKnownBaseUrlTests(ServerTestCase):
    config_overrides = {"public_baseurl": "https://matrix.example.org"}

    async def test_well_known_advertises_public_baseurl(self):
        """A configured public_baseurl is served (with its trailing slash), and with it
        our SFU as a MatrixRTC focus (it is on by default)."""
        status, body = await self.request("GET", "/.well-known/matrix/client")
        self.assertEqual(status, 200)
        self.assertEqual(body, {
            "m.homeserver": {"base_url": "https://matrix.example.org/"},
            "org.matrix.msc4143.rtc_foci": [{
                "type": "org.roomserver.sfu",
                "sfu_url": "https://matrix.example.org/_matrix/client/unstable/org.roomserver.sfu"}]})


class WellKnownServeTests(ServerTestCase):
    config_overrides = {"serve_client_wellknown": True}

    async def test_well_known_defaults_to_server_name(self):
        """serve_client_wellknown without public_baseurl uses https://server_name/."""
        status, body = await self.request("GET", "/.well-known/matrix/client")
        self.assertEqual(status, 200)
        self.assertEqual(body["m.homeserver"]["base_url"], "https://test.local/")
