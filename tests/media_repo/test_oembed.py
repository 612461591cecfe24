"""oEmbed JSON → OpenGraph (media_repo/oembed.py) and its discovery in a page."""

import json

from twisted.trial import unittest

from media_repo.oembed import oembed_to_open_graph
from media_repo.preview_html import parse_page

PAGE = "https://video.example/watch?v=1"


def _og(data) -> tuple:
    return oembed_to_open_graph(PAGE, json.dumps(data).encode())


class OEmbedTests(unittest.TestCase):
    def test_video(self):
        """A video: title (entities unescaped), site, thumbnail, type, size, and a
        description from its html snippet."""
        og, author = _og({"version": "1.0", "type": "video", "title": "Cats &amp; dogs",
                          "provider_name": "VideoSite", "author_name": "Ann",
                          "thumbnail_url": "https://img.example/t.jpg", "width": 640,
                          "height": 360, "html": "<p>A film about pets.</p>"})
        self.assertEqual(og, {"og:url": PAGE, "og:title": "Cats & dogs",
                              "og:site_name": "VideoSite",
                              "og:image": "https://img.example/t.jpg",
                              "og:description": "A film about pets.",
                              "og:type": "video.other", "og:video:width": 640,
                              "og:video:height": 360})
        self.assertEqual(author, "Ann")

    def test_photo_uses_full_image(self):
        """A photo's own url beats its thumbnail."""
        og, _ = _og({"type": "photo", "url": "https://img.example/full.jpg",
                     "thumbnail_url": "https://img.example/t.jpg"})
        self.assertEqual(og["og:image"], "https://img.example/full.jpg")

    def test_rich_image_from_snippet(self):
        """A rich snippet without a thumbnail lends its first image."""
        og, _ = _og({"type": "rich", "html": "<img src='https://img.example/r.png'>"})
        self.assertEqual(og["og:image"], "https://img.example/r.png")

    def test_link_and_rubbish(self):
        """A link is a website; wrong versions, non-objects and bad JSON give nothing."""
        self.assertEqual(_og({"type": "link"})[0]["og:type"], "website")
        for body in (b"[1, 2]", b"{nope", b"\xff\xfe", b'{"version": "2.0"}',
                     b"[" * 100000):
            self.assertEqual(oembed_to_open_graph(PAGE, body), ({}, None))
        og, author = _og({"type": "video", "title": 5, "author_name": ["x"],
                          "width": "640", "html": None})
        self.assertEqual((og, author), ({"og:url": PAGE, "og:type": "video.other"}, None))

    def test_discovery_in_page(self):
        """parse_page finds the oEmbed JSON link (alternate or alternative), made absolute."""
        page = (b'<link rel="alternate" type="application/json+oembed" href="/oembed?u=1">'
                b"<title>T</title>")
        og, url = parse_page(page, PAGE)
        self.assertEqual((og, url), ({"og:title": "T"}, "https://video.example/oembed?u=1"))
        _, url = parse_page(b'<link rel="alternative" type="application/json+oembed" '
                            b'href="https://o.example/x">', PAGE)
        self.assertEqual(url, "https://o.example/x")
        for other in (b'<link rel="alternate" type="text/xml+oembed" href="/x">',
                      b'<link rel="alternate" type="application/json+oembed" '
                      b'href="javascript:x">', b"<p>none</p>"):
            self.assertIsNone(parse_page(other, PAGE)[1])
