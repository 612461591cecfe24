"""HTML → OpenGraph (media_repo/preview_html.py): tags, fallbacks, charsets, garbage."""

from twisted.trial import unittest

from media_repo.preview_html import (
    MAX_META_TAGS, candidate_encodings, decode_html, parse_open_graph, prune_overlong,
    summarize_paragraphs,
)

PAGE = "https://news.example.com/2026/12/story.html"

ARTICLE = b"""<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Fallback title | Example News</title>
<meta property="og:title" content="Rooms are servers now">
<meta property="og:type" content="article">
<meta property="og:image" content="/img/lead.jpg">
<meta property="og:image:width" content="1200">
<meta property="og:site_name" content="Example News">
<meta property="article:published_time" content="2026-12-07T04:00:00Z">
<meta name="twitter:card" content="summary_large_image">
<meta name="twitter:site" content="@examplenews">
<meta name="twitter:title" content="Twitter's own title">
<meta name="twitter:creator" content="@someone">
<meta name="description" content="A short description.">
</head><body><p>Body text that is not needed.</p></body></html>"""


class OpenGraphTagsTests(unittest.TestCase):
    def test_og_tags_taken_as_they_are(self):
        """og:*, article:* tags are kept; the page's own title beats <title>."""
        og = parse_open_graph(ARTICLE, PAGE)
        self.assertEqual(og["og:title"], "Rooms are servers now")
        self.assertEqual(og["og:type"], "article")
        self.assertEqual(og["og:image:width"], "1200")
        self.assertEqual(og["article:published_time"], "2026-12-07T04:00:00Z")
        self.assertEqual(og["og:description"], "A short description.")

    def test_twitter_tags_fill_gaps_only(self):
        """twitter:site becomes og:site_name only if unset; card and creator are dropped."""
        og = parse_open_graph(ARTICLE, PAGE)
        self.assertEqual(og["og:site_name"], "Example News")
        self.assertEqual(og["og:title"], "Rooms are servers now")
        self.assertNotIn("og:card", og)
        self.assertNotIn("og:creator", og)
        bare = parse_open_graph(b'<meta name="twitter:site" content="@n">'
                                b'<meta name="twitter:image" content="https://i.example/x.png">',
                                PAGE)
        self.assertEqual(bare["og:site_name"], "@n")
        self.assertEqual(bare["og:image"], "https://i.example/x.png")

    def test_relative_image_resolved_against_page(self):
        """A relative og:image becomes absolute against the page URL."""
        og = parse_open_graph(ARTICLE, PAGE)
        self.assertEqual(og["og:image"], "https://news.example.com/img/lead.jpg")
        og = parse_open_graph(b'<meta property="og:image" content="pic.png">', PAGE)
        self.assertEqual(og["og:image"], "https://news.example.com/2026/12/pic.png")
        og = parse_open_graph(b'<meta property="og:image" content="//cdn.example/p.png">',
                              PAGE)
        self.assertEqual(og["og:image"], "https://cdn.example/p.png")

    def test_non_http_image_dropped(self):
        """data:, javascript: and ftp: images are not kept."""
        for src in (b"data:image/png;base64,AAAA", b"javascript:alert(1)",
                    b"ftp://example.com/a.png"):
            og = parse_open_graph(b'<meta property="og:image" content="' + src + b'">'
                                  b"<title>t</title>", PAGE)
            self.assertNotIn("og:image", og)
            self.assertEqual(og["og:title"], "t")

    def test_too_many_tags_bounded(self):
        """Past MAX_META_TAGS tags of one prefix, further ones are ignored."""
        tags = b"".join(b'<meta property="og:k%d" content="v">' % i for i in range(500))
        og = parse_open_graph(tags, PAGE)
        self.assertEqual(sum(1 for k in og if k.startswith("og:k")), MAX_META_TAGS)

    def test_empty_content_ignored(self):
        """A tag with an empty content attribute does not count (and so falls back)."""
        og = parse_open_graph(b'<meta property="og:title" content=""><title>Real</title>',
                              PAGE)
        self.assertEqual(og["og:title"], "Real")


class FallbackTests(unittest.TestCase):
    def test_title_from_title_tag_then_headings(self):
        """Without og:title: <title>, else the first h1/h2/h3, whitespace collapsed."""
        self.assertEqual(parse_open_graph(b"<title>\n  My   page </title><h1>H</h1>",
                                          PAGE)["og:title"], "My page")
        self.assertEqual(parse_open_graph(b"<body><h2>Second</h2><h1>First</h1></body>",
                                          PAGE)["og:title"], "Second")

    def test_description_from_meta_then_body_text(self):
        """Without og:description: meta description, else visible body text."""
        page = (b"<html><head><title>T</title><style>p{}</style></head><body>"
                b"<nav>Home | About</nav><header>Site header</header>"
                b"<p>First paragraph.</p><script>var secret = 1;</script>"
                b"<div role='menu'>menu item</div><p>Second paragraph.</p>"
                b"<footer>copyright</footer></body></html>")
        og = parse_open_graph(page, PAGE)
        self.assertEqual(og["og:description"], "First paragraph.\n\nSecond paragraph.")

    def test_long_description_trimmed_at_word(self):
        """A long text is cut at a word boundary near 500 characters, with an ellipsis."""
        words = " ".join(f"word{i}" for i in range(400))
        og = parse_open_graph(f"<p>{words}</p>".encode(), PAGE)
        description = og["og:description"]
        self.assertLessEqual(len(description), 501)
        self.assertTrue(description.endswith("…"))
        self.assertTrue(description[:-1].split()[-1].startswith("word"))
        og = parse_open_graph(f'<meta property="og:description" content="{words}">'.encode(),
                              PAGE)
        self.assertLessEqual(len(og["og:description"]), 501)

    def test_image_fallbacks(self):
        """itemprop=image, else the largest sized <img> over 10×10, else the first <img>,
        else the favicon."""
        self.assertEqual(parse_open_graph(
            b'<meta itemprop="image" content="/i.png"><img src="/big.png" width=900 height=900>',
            PAGE)["og:image"], "https://news.example.com/i.png")
        self.assertEqual(parse_open_graph(
            b'<img src="/pixel.gif" width=1 height=1><img src="/small.png" width=50 height=50>'
            b'<img src="/big.png" width="300" height="200"><img src="/nosize.png">',
            PAGE)["og:image"], "https://news.example.com/big.png")
        self.assertEqual(parse_open_graph(
            b'<img src="/a.png"><img src="/b.png">', PAGE)["og:image"],
            "https://news.example.com/a.png")
        self.assertEqual(parse_open_graph(
            b'<link rel="shortcut icon" href="/favicon.ico"><p>x</p>', PAGE)["og:image"],
            "https://news.example.com/favicon.ico")

    def test_nothing_usable_is_empty(self):
        """A page with no title, text or image gives an empty preview."""
        self.assertEqual(parse_open_graph(b"", PAGE), {})
        self.assertEqual(parse_open_graph(b"<html><body><script>x()</script></body></html>",
                                          PAGE), {})


class CharsetTests(unittest.TestCase):
    def test_content_type_charset(self):
        """The Content-Type header's charset decodes the page."""
        body = "<title>Grüße aus Köln</title>".encode("iso-8859-1")
        og = parse_open_graph(body, PAGE, "text/html; charset=ISO-8859-1")
        self.assertEqual(og["og:title"], "Grüße aus Köln")

    def test_meta_charset(self):
        """A <meta charset> or http-equiv charset decodes the page."""
        body = '<meta charset="windows-1251"><title>Привет</title>'.encode("cp1251")
        self.assertEqual(parse_open_graph(body, PAGE, "text/html")["og:title"], "Привет")
        body = ('<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">'
                "<title>こんにちは</title>").encode("shift_jis")
        self.assertEqual(parse_open_graph(body, PAGE)["og:title"], "こんにちは")

    def test_bom_wins(self):
        """A byte order mark beats a contradicting header."""
        body = "\ufeff<title>Ünïcödé</title>".encode("utf-16-le")
        self.assertEqual(candidate_encodings(body, "text/html; charset=latin-1")[0],
                         "utf-16-le")
        self.assertEqual(parse_open_graph(body, PAGE, "text/html; charset=latin-1")
                         ["og:title"], "Ünïcödé")

    def test_wrong_or_unknown_charset_falls_back(self):
        """An unknown charset is skipped; bytes invalid in UTF-8 fall back to cp1252."""
        self.assertEqual(decode_html("é".encode(), "text/html; charset=no-such-thing"), "é")
        self.assertEqual(decode_html(b"caf\xe9"), "café")


class GarbageTests(unittest.TestCase):
    def test_malformed_html(self):
        """Unclosed tags, stray end tags and broken attributes do not raise."""
        samples = [
            b"<title>Unclosed title", b"</p></div></body>", b"<<<>>>&&&;", b"<meta",
            b"<a href='x>broken", b"<div" * 10000, b"<p>" * 100000 + b"deep",
            bytes(range(256)) * 100, b"<script>never closed",
            b"<![CDATA[ x ]]><!-- unclosed comment", b"\x00\x00<title>nul</title>",
        ]
        for sample in samples:
            og = parse_open_graph(sample, PAGE)
            self.assertIsInstance(og, dict)
        self.assertEqual(parse_open_graph(b"<title>Unclosed title", PAGE)["og:title"],
                         "Unclosed title")
        self.assertEqual(parse_open_graph(b"<p>" * 100000 + b"deep", PAGE)["og:description"],
                         "deep")

    def test_unfinished_tags_do_not_blow_up(self):
        """Hundreds of kilobytes of never-finished tags (quadratic for html.parser as
        such) parse promptly, and a real tag after them is still seen."""
        for unit in (b"<div", b"</", b"<?", b"< "):
            og = parse_open_graph(b"<title>T</title>" + unit * (400_000 // len(unit)), PAGE)
            self.assertEqual(og["og:title"], "T")
        og = parse_open_graph(b"<div" * 1000 + b"><title>After</title>", PAGE)
        self.assertEqual(og["og:title"], "After")
        self.assertTrue(og["og:description"].startswith("<div<div"))  # read as text

    def test_unclosed_head_still_reaches_body(self):
        """A <head> never closed ends where <body> begins."""
        og = parse_open_graph(b"<html><head><title>T</title><body><p>Said.</p>", PAGE)
        self.assertEqual(og["og:description"], "Said.")

    def test_huge_page_bounded(self):
        """Megabytes of text are parsed only up to the bound, and the answer is small."""
        body = b"<title>Big</title><p>" + b"lorem ipsum " * 1_000_000 + b"</p>"
        og = parse_open_graph(body, PAGE)
        self.assertEqual(og["og:title"], "Big")
        self.assertLessEqual(len(og["og:description"]), 501)


class SummaryAndPruneTests(unittest.TestCase):
    def test_summary_paragraphs_until_min_size(self):
        """Paragraphs are added until 200 characters; short text stays whole."""
        self.assertEqual(summarize_paragraphs(["a", "b"]), "a\n\nb")
        self.assertIsNone(summarize_paragraphs(["   ", ""]))
        long = ["x" * 250, "never"]
        self.assertEqual(summarize_paragraphs(long), "x" * 250)

    def test_prune_overlong(self):
        """Keys over 50 and values over 1000 characters are dropped; numbers are kept."""
        og = prune_overlong({"og:title": "ok", "k" * 51: "v", "og:x": "v" * 1001,
                             "matrix:image:size": 12})
        self.assertEqual(og, {"og:title": "ok", "matrix:image:size": 12})
