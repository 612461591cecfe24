"""The URL previewer and its spider against a real HTTP site on 127.0.0.1.

The site is allowed through ``url_preview_ip_range_whitelist: ["127.0.0.1"]`` (an
AddressPolicy with that whitelist), exactly as an operator would allow a local service.
"""

from __future__ import annotations

import io

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web import resource, server

from homeserver.errors import MatrixError
from homeserver.http.outbound import AddressPolicy
from media_repo.spider import Spider, blocked_by_url_rules, filename_from_disposition
from media_repo.url_preview import UrlPreviewer, image_dimensions


def png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


IMAGE = png(30, 20)
PAGE = b"""<html><head><title>Fallback</title>
<meta property="og:title" content="A test page">
<meta property="og:image" content="/img.png">
<meta property="og:image:width" content="999">
</head><body><p>Hello from the test site.</p></body></html>"""


class _Site(resource.Resource):
    """Paths the tests ask for; ``hits`` counts requests per path."""

    isLeaf = True

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}
        self.port = 0
        self.max_size = max_size
        self.slow: list[server.Request] = []

    def render_GET(self, request: server.Request):
        path = request.path.decode()
        self.hits[path] = self.hits.get(path, 0) + 1
        if path in ("/page", "/count"):
            request.setHeader("Content-Type", "text/html; charset=utf-8")
            return PAGE
        if path == "/bare":
            request.setHeader("Content-Type", "text/html")
            return b"<title>No image here</title><p>Just text.</p>"
        if path == "/missing-image":
            request.setHeader("Content-Type", "text/html")
            return b'<meta property="og:image" content="/nope.png"><title>T</title>'
        if path == "/with-oembed":
            request.setHeader("Content-Type", "text/html")
            return (b'<link rel="alternate" type="application/json+oembed" '
                    b'href="/oembed.json?url=x"><meta property="og:description" '
                    b'content="From the page">')
        if path == "/oembed.json":
            request.setHeader("Content-Type", "application/json")
            return (b'{"version": "1.0", "type": "photo", "title": "From oEmbed", '
                    b'"provider_name": "Test Site", "url": "/img.png", '
                    b'"author_name": "Ann"}')
        if path == "/broken-oembed":
            request.setHeader("Content-Type", "text/html")
            return (b'<link rel="alternate" type="application/json+oembed" '
                    b'href="/error"><h1>Page title</h1>')
        if path == "/img.png":
            request.setHeader("Content-Type", "image/png")
            request.setHeader("Content-Disposition", 'inline; filename="red.png"')
            return IMAGE
        if path == "/big-declared":
            request.setHeader("Content-Type", "text/html")
            return b"x" * (self.max_size + 1)
        if path == "/big-streamed":
            # no Content-Length: chunked, so only counting the body can stop it
            request.setHeader("Content-Type", "text/html")
            for _ in range(self.max_size // 1000 + 2):
                request.write(b"y" * 1000)
            request.finish()
            return server.NOT_DONE_YET
        if path == "/to-page":
            request.redirect(b"/page")
            return b""
        if path == "/to-blocked":
            request.redirect(f"http://127.0.0.2:{self.port}/page".encode())
            return b""
        if path == "/loop":
            request.redirect(b"/loop")
            return b""
        if path == "/to-ftp":
            request.redirect(b"ftp://127.0.0.1/x")
            return b""
        if path == "/slow":
            self.slow.append(request)
            return server.NOT_DONE_YET
        if path == "/slow-body":
            request.setHeader("Content-Type", "text/html")
            request.write(b"<title>started")  # then nothing more, ever
            self.slow.append(request)
            return server.NOT_DONE_YET
        if path == "/archive.zip":
            request.setHeader("Content-Type", "application/zip")
            return b"PK\x03\x04"
        if path == "/data.json":
            request.setHeader("Content-Type", "application/json")
            return b"{}"
        request.setResponseCode(500)
        return b"oops"


class FakeSink:
    """A MediaSink keeping what it was given in a list."""

    def __init__(self) -> None:
        self.stored: list[tuple[bytes, str, str | None, str]] = []

    async def store(self, data, content_type, filename, user_id) -> str:
        self.stored.append((data, content_type, filename, user_id))
        return f"mxc://test.local/preview{len(self.stored)}"


class _SiteTestCase(unittest.TestCase):
    max_size = 64 * 1024
    whitelist = ["127.0.0.1"]
    timeout_seconds = 10.0

    def setUp(self):
        self.site = _Site(self.max_size)
        self.listening = reactor.listenTCP(0, server.Site(self.site), interface="127.0.0.1")
        self.addCleanup(self.listening.stopListening)
        self.site.port = self.listening.getHost().port
        self.base = f"http://127.0.0.1:{self.site.port}"
        self.spider = Spider(reactor, AddressPolicy(whitelist=self.whitelist),
                             max_size=self.max_size, timeout=self.timeout_seconds,
                             url_rules=[{"path": "/forbidden*"}])
        self.sink = FakeSink()
        self.previewer = UrlPreviewer(fetcher=self.spider, sink=self.sink, clock=reactor)

    async def error_of(self, url: str) -> MatrixError:
        try:
            await self.previewer.preview(url, "@alice:test.local")
        except MatrixError as e:
            return e
        self.fail(f"previewing {url} did not fail")


class PreviewTests(_SiteTestCase):
    @defer.inlineCallbacks
    def test_page_with_og_tags_and_stored_image(self):
        """A page's og tags are answered, its image fetched, stored and measured."""
        og = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/page", "@alice:test.local", 1))
        self.assertEqual(og["og:title"], "A test page")
        self.assertEqual(og["og:description"], "Hello from the test site.")
        self.assertEqual(og["og:image"], "mxc://test.local/preview1")
        self.assertEqual(og["og:image:type"], "image/png")
        self.assertEqual((og["og:image:width"], og["og:image:height"]), (30, 20))
        self.assertEqual(og["matrix:image:size"], len(IMAGE))
        self.assertEqual(self.sink.stored, [(IMAGE, "image/png", "red.png",
                                             "@alice:test.local")])

    @defer.inlineCallbacks
    def test_image_url_is_its_own_preview(self):
        """Previewing an image stores it: og:image is its mxc URI, its name the description."""
        og = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/img.png", "@bob:test.local"))
        self.assertEqual(og, {"og:description": "red.png",
                              "og:image": "mxc://test.local/preview1",
                              "og:image:type": "image/png", "og:image:width": 30,
                              "og:image:height": 20, "matrix:image:size": len(IMAGE)})
        self.assertEqual(self.sink.stored[0][3], "@bob:test.local")

    @defer.inlineCallbacks
    def test_oembed_fills_what_the_page_lacks(self):
        """A page's advertised oEmbed JSON gives title, site name and (a photo's) image;
        the page's own tags win where both speak."""
        og = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/with-oembed", "@a:test.local"))
        self.assertEqual(og["og:title"], "From oEmbed")
        self.assertEqual(og["og:site_name"], "Test Site")
        self.assertEqual(og["og:description"], "From the page")
        self.assertEqual(og["og:image"], "mxc://test.local/preview1")
        self.assertEqual(self.site.hits["/oembed.json"], 1)

    @defer.inlineCallbacks
    def test_failing_oembed_is_skipped(self):
        """An oEmbed URL that fails leaves the page's own preview."""
        og = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/broken-oembed", "@a:test.local"))
        self.assertEqual(og, {"og:title": "Page title", "og:description": "Page title"})

    @defer.inlineCallbacks
    def test_broken_image_leaves_preview_without_image(self):
        """An og:image that cannot be fetched is dropped; the rest of the preview stays."""
        og = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/missing-image", "@a:test.local"))
        self.assertEqual(og, {"og:title": "T"})
        self.assertEqual(self.sink.stored, [])

    @defer.inlineCallbacks
    def test_redirect_followed(self):
        """A redirect to an allowed address is followed; the image resolves against it."""
        og = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/to-page", "@a:test.local"))
        self.assertEqual(og["og:title"], "A test page")
        self.assertEqual(self.site.hits["/page"], 1)
        self.assertEqual(self.site.hits["/img.png"], 1)

    @defer.inlineCallbacks
    def test_json_is_empty_and_other_types_refused(self):
        """JSON previews as {}; a zip file is refused with 502 (Synapse's answers)."""
        og = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/data.json", "@a:test.local"))
        self.assertEqual(og, {})
        e = yield defer.ensureDeferred(self.error_of(self.base + "/archive.zip"))
        self.assertEqual((e.status, e.errcode), (502, "M_UNKNOWN"))

    @defer.inlineCallbacks
    def test_error_status_is_502(self):
        """A 500 from the site is a 502 for the client, never passed through."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/error"))
        self.assertEqual((e.status, e.errcode), (502, "M_UNKNOWN"))

    @defer.inlineCallbacks
    def test_invalid_urls_are_400(self):
        """Non-http(s) or host-less URLs are M_INVALID_PARAM before anything is fetched."""
        for url in ("ftp://127.0.0.1/", "javascript:alert(1)", "http://", "/relative",
                    "http://[::1", "https://" + "a" * 5000 + ".com/"):
            e = yield defer.ensureDeferred(self.error_of(url))
            self.assertEqual((e.status, e.errcode), (400, "M_INVALID_PARAM"), url)
        self.assertEqual(self.site.hits, {})


class LimitTests(_SiteTestCase):
    @defer.inlineCallbacks
    def test_body_over_max_spider_size(self):
        """A body over max_spider_size fails with 502 M_TOO_LARGE, declared or streamed."""
        for path in ("/big-declared", "/big-streamed"):
            e = yield defer.ensureDeferred(self.error_of(self.base + path))
            self.assertEqual((e.status, e.errcode), (502, "M_TOO_LARGE"), path)

    @defer.inlineCallbacks
    def test_redirect_loop_stops(self):
        """Redirects are followed a few times only."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/loop"))
        self.assertEqual(e.status, 502)
        self.assertEqual(self.site.hits["/loop"], 6)

    @defer.inlineCallbacks
    def test_redirect_to_other_scheme_refused(self):
        """A redirect to ftp: is not followed."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/to-ftp"))
        self.assertEqual(e.status, 502)

    @defer.inlineCallbacks
    def test_url_blacklist(self):
        """url_preview_url_blacklist entries refuse matching URLs with 403."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/forbidden/x"))
        self.assertEqual((e.status, e.errcode), (403, "M_UNKNOWN"))
        self.assertEqual(self.site.hits, {})


class SlowServerTests(_SiteTestCase):
    timeout_seconds = 0.5

    @defer.inlineCallbacks
    def test_slow_server_times_out(self):
        """A server that never answers fails with a timeout (504, as Synapse)."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/slow"))
        self.assertEqual(e.status, 504)
        self.assertEqual(len(self.site.slow), 1)
        yield task.deferLater(reactor, 0.05, lambda: None)  # the abort reaches the server
        self.assertTrue(self.site.slow[0]._disconnected)

    @defer.inlineCallbacks
    def test_builds_at_once_are_bounded(self):
        """With max_concurrent=1 a second URL waits until the first preview is done."""
        previewer = UrlPreviewer(fetcher=self.spider, sink=self.sink, clock=reactor,
                                 max_concurrent=1)
        slow = defer.ensureDeferred(previewer.preview(self.base + "/slow", "@a:t"))
        slow.addErrback(lambda f: f.trap(MatrixError))
        bare = defer.ensureDeferred(previewer.preview(self.base + "/bare", "@a:t"))
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual((len(self.site.slow), self.site.hits.get("/bare")), (1, None))
        og = yield bare
        self.assertEqual(og["og:title"], "No image here")
        self.assertTrue(slow.called)

    @defer.inlineCallbacks
    def test_stalled_body_times_out(self):
        """A body that stops arriving fails like Synapse's: 502 M_TOO_LARGE."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/slow-body"))
        self.assertEqual((e.status, e.errcode), (502, "M_TOO_LARGE"))
        self.assertIn("too long", e.message)


class BlockedTests(_SiteTestCase):
    whitelist = []

    @defer.inlineCallbacks
    def test_loopback_blocked_without_whitelist(self):
        """Without the whitelist, 127.0.0.1 is refused with 403 "IP address blocked"."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/page"))
        self.assertEqual((e.status, e.errcode, e.message), (403, "M_UNKNOWN",
                                                             "IP address blocked"))
        self.assertEqual(self.site.hits, {})

    @defer.inlineCallbacks
    def test_name_resolving_to_loopback_blocked(self):
        """A host name that resolves only to blocked addresses is never connected to."""
        e = yield defer.ensureDeferred(
            self.error_of(f"http://localhost:{self.site.port}/page"))
        self.assertEqual((e.status, e.errcode), (502, "M_UNKNOWN"))
        self.assertIn("DNS", e.message)
        self.assertEqual(self.site.hits, {})

    @defer.inlineCallbacks
    def test_odd_ip_spellings_blocked(self):
        """127.0.0.1 spelt as one decimal number or in hex still never gets through."""
        for host in ("2130706433", "0x7f.0.0.1", "127.1"):
            e = yield defer.ensureDeferred(
                self.error_of(f"http://{host}:{self.site.port}/page"))
            self.assertIn(e.status, (403, 502), host)
        self.assertEqual(self.site.hits, {})


class RedirectToBlockedTests(_SiteTestCase):
    @defer.inlineCallbacks
    def test_redirect_to_blocked_address(self):
        """A redirect from an allowed site to a blocked address (127.0.0.2, loopback
        but not whitelisted, which would answer) is refused with 403."""
        e = yield defer.ensureDeferred(self.error_of(self.base + "/to-blocked"))
        self.assertEqual((e.status, e.message), (403, "IP address blocked"))
        self.assertEqual(self.site.hits, {"/to-blocked": 1})


class CacheTests(_SiteTestCase):
    @defer.inlineCallbacks
    def test_two_calls_one_fetch(self):
        """A second preview of a URL comes from the cache; the site is asked once."""
        first = yield defer.ensureDeferred(self.previewer.preview(self.base + "/count", "@a:t"))
        second = yield defer.ensureDeferred(
            self.previewer.preview(self.base + "/count", "@b:t", 12345))
        self.assertEqual(first, second)
        self.assertEqual(self.site.hits["/count"], 1)
        self.assertEqual(self.previewer.built, 1)

    @defer.inlineCallbacks
    def test_concurrent_calls_share_one_fetch(self):
        """Previews asked for at once share one fetch and get equal answers."""
        ds = [defer.ensureDeferred(self.previewer.preview(self.base + "/count", f"@u{i}:t"))
              for i in range(5)]
        results = yield defer.gatherResults(ds)
        self.assertEqual(len({repr(sorted(r.items())) for r in results}), 1)
        self.assertEqual(self.site.hits["/count"], 1)
        self.assertEqual(len(self.sink.stored), 1)

    @defer.inlineCallbacks
    def test_answers_are_copies(self):
        """A caller changing its answer does not change the cached one."""
        first = yield defer.ensureDeferred(self.previewer.preview(self.base + "/bare", "@a:t"))
        first["og:title"] = "changed"
        second = yield defer.ensureDeferred(self.previewer.preview(self.base + "/bare", "@a:t"))
        self.assertEqual(second["og:title"], "No image here")

    @defer.inlineCallbacks
    def test_failures_cached_briefly_and_entries_expire(self):
        """A failure is remembered for a minute, a success for an hour; then refetched."""
        clock = task.Clock()
        previewer = UrlPreviewer(fetcher=self.spider, sink=self.sink, clock=clock,
                                 in_thread=lambda fn, *a: defer.maybeDeferred(fn, *a))
        for _ in range(2):
            with self.assertRaises(MatrixError):
                yield defer.ensureDeferred(previewer.preview(self.base + "/error", "@a:t"))
        self.assertEqual(self.site.hits["/error"], 1)
        clock.advance(61)
        with self.assertRaises(MatrixError):
            yield defer.ensureDeferred(previewer.preview(self.base + "/error", "@a:t"))
        self.assertEqual(self.site.hits["/error"], 2)
        yield defer.ensureDeferred(previewer.preview(self.base + "/bare", "@a:t"))
        clock.advance(3599)
        yield defer.ensureDeferred(previewer.preview(self.base + "/bare", "@a:t"))
        self.assertEqual(self.site.hits["/bare"], 1)
        clock.advance(2)
        yield defer.ensureDeferred(previewer.preview(self.base + "/bare", "@a:t"))
        self.assertEqual(self.site.hits["/bare"], 2)

    @defer.inlineCallbacks
    def test_cache_is_bounded(self):
        """Past max_entries URLs, the least recently used one is forgotten."""
        previewer = UrlPreviewer(fetcher=self.spider, sink=self.sink, clock=reactor,
                                 max_entries=2)
        for path in ("/bare", "/count", "/page"):
            yield defer.ensureDeferred(previewer.preview(self.base + path, "@a:t"))
        yield defer.ensureDeferred(previewer.preview(self.base + "/page", "@a:t"))
        yield defer.ensureDeferred(previewer.preview(self.base + "/bare", "@a:t"))
        self.assertEqual(self.site.hits["/page"], 1)
        self.assertEqual(self.site.hits["/bare"], 2)


class PureHelperTests(unittest.TestCase):
    def test_url_rules_synapse_semantics(self):
        """All attributes of one entry must match; ^ means regex, anything else a glob."""
        rules = [{"netloc": "*.evil.example"},
                 {"scheme": "http", "netloc": "plain.example"},
                 {"netloc": "^(www\\.)?regex\\.example$"},
                 {"port": "8080"}]
        self.assertTrue(blocked_by_url_rules("https://a.evil.example/x", rules))
        self.assertTrue(blocked_by_url_rules("http://plain.example/", rules))
        self.assertFalse(blocked_by_url_rules("https://plain.example/", rules))
        self.assertTrue(blocked_by_url_rules("http://www.regex.example/", rules))
        self.assertFalse(blocked_by_url_rules("http://www.regex.example.org/", rules))
        self.assertTrue(blocked_by_url_rules("http://ok.example:8080/", rules))
        self.assertFalse(blocked_by_url_rules("http://ok.example/", rules))

    def test_filename_from_disposition(self):
        """Content-Disposition names: quoted, bare and RFC 5987 UTF-8."""
        self.assertEqual(filename_from_disposition('inline; filename="a b.png"'), "a b.png")
        self.assertEqual(filename_from_disposition("attachment; filename=x.jpg"), "x.jpg")
        self.assertEqual(filename_from_disposition(
            "attachment; filename*=UTF-8''%C3%BC.png; filename=u.png"), "ü.png")
        self.assertIsNone(filename_from_disposition("inline"))
        self.assertIsNone(filename_from_disposition(None))

    def test_image_dimensions(self):
        """Pillow reads the size from the header; junk gives None."""
        self.assertEqual(image_dimensions(png(7, 3)), (7, 3))
        self.assertIsNone(image_dimensions(b"not an image"))
