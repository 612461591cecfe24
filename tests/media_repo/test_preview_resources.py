"""``GET /_matrix/client/v1/media/preview_url`` and the legacy media path, over HTTP
against the real service tree (tests/client_api/harness.py)."""

from __future__ import annotations

from urllib.parse import quote

from twisted.internet import reactor
from twisted.web import resource, server, static

from tests.client_api.harness import ServerTestCase

CLIENT = "/_matrix/client/v1/media/preview_url"
LEGACY = "/_matrix/media/v3/preview_url"


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (200, 100), (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


def _site() -> resource.Resource:
    root = resource.Resource()
    root.putChild(b"pic.png", static.Data(_png(), "image/png"))
    root.putChild(b"illustrated", static.Data(
        b'<meta property="og:title" content="With a picture">'
        b'<meta property="og:image" content="/pic.png">', "text/html; charset=utf-8"))
    root.putChild(b"page", static.Data(
        b'<meta property="og:title" content="Served page"><p>Body.</p>',
        "text/html; charset=utf-8"))
    return root


class _WithSite(ServerTestCase):
    def setUp(self):
        super().setUp()
        port = reactor.listenTCP(0, server.Site(_site()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.page = f"http://127.0.0.1:{port.getHost().port}/page"


class DisabledTests(_WithSite):
    async def test_disabled_is_404_unrecognized(self):
        """Without url_preview_enabled both paths answer 404 M_UNRECOGNIZED (Synapse)."""
        _, token = await self.register("alice")
        for path in (CLIENT, LEGACY):
            status, body = await self.request("GET", f"{path}?url={quote(self.page)}",
                                              token=token)
            self.assertEqual((status, body["errcode"]), (404, "M_UNRECOGNIZED"), path)

    async def test_needs_access_token(self):
        """Both paths need an access token, enabled or not."""
        for path in (CLIENT, LEGACY):
            status, body = await self.request("GET", f"{path}?url={quote(self.page)}")
            self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"))


class EnabledTests(_WithSite):
    config_overrides = {"url_preview_enabled": True,
                        "url_preview_ip_range_whitelist": ["127.0.0.1"],
                        "url_preview_url_blacklist": [{"path": "/private*"}]}

    async def test_preview_on_both_paths(self):
        """An allowed page's OpenGraph data comes back on the client and legacy paths."""
        _, token = await self.register("alice")
        for path in (CLIENT, LEGACY, "/_matrix/media/r0/preview_url",
                     "/_matrix/media/v1/preview_url"):
            status, body = await self.request(
                "GET", f"{path}?url={quote(self.page)}&ts=1700000000000", token=token)
            self.assertEqual(status, 200, body)
            self.assertEqual(body, {"og:title": "Served page", "og:description": "Body."})

    async def test_image_stored_in_media_repository(self):
        """A page's og:image is fetched into the media repository: og:image is an mxc
        URI that downloads the same bytes, with its type, size and dimensions."""
        _, token = await self.register("alice")
        url = self.page.replace("/page", "/illustrated")
        status, body = await self.request("GET", f"{CLIENT}?url={quote(url)}", token=token)
        self.assertEqual(status, 200, body)
        mxc = body["og:image"]
        self.assertTrue(mxc.startswith("mxc://test.local/"), body)
        self.assertEqual((body["og:image:type"], body["matrix:image:size"]),
                         ("image/png", len(_png())))
        self.assertEqual((body["og:image:width"], body["og:image:height"]), (200, 100))
        response = await self.http.get(
            f"{self.base}/_matrix/client/v1/media/download/{mxc[len('mxc://'):]}",
            headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), _png())

    async def test_bad_parameters(self):
        """Missing url → M_MISSING_PARAM; bad url or ts → M_INVALID_PARAM."""
        _, token = await self.register("alice")
        cases = [("", "M_MISSING_PARAM"), ("?url=", "M_MISSING_PARAM"),
                 ("?url=" + quote("file:///etc/passwd"), "M_INVALID_PARAM"),
                 (f"?url={quote(self.page)}&ts=yesterday", "M_INVALID_PARAM")]
        for query, errcode in cases:
            status, body = await self.request("GET", CLIENT + query, token=token)
            self.assertEqual((status, body["errcode"]), (400, errcode), query)

    async def test_blocked_targets(self):
        """A non-whitelisted private address and a blacklisted URL are 403 M_UNKNOWN."""
        _, token = await self.register("alice")
        for url in ("http://10.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest/",
                    self.page.replace("/page", "/private/x")):
            status, body = await self.request("GET", f"{CLIENT}?url={quote(url)}",
                                              token=token)
            self.assertEqual((status, body["errcode"]), (403, "M_UNKNOWN"), url)

    async def test_unreachable_is_502(self):
        """A page that cannot be fetched is 502, not 500."""
        _, token = await self.register("alice")
        missing = self.page.replace("/page", "/nothing-here")
        status, body = await self.request("GET", f"{CLIENT}?url={quote(missing)}",
                                          token=token)
        self.assertEqual((status, body["errcode"]), (502, "M_UNKNOWN"))
