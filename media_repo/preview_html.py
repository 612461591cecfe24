"""HTML bytes → an OpenGraph dict for URL previews (pure: no twisted, no I/O).

Spec: Client-Server API, "Content repository", ``GET /_matrix/client/v1/media/preview_url``
answers "the OpenGraph data for the URL" (https://ogp.me/). Pages often lack OpenGraph
tags, so like Synapse we fill the gaps from what any page has:

- ``og:*``, ``article:*`` and ``profile:*`` meta tags as they are; ``twitter:*`` card
  tags fill keys OpenGraph left unset (``twitter:site`` is the ``og:site_name``);
- ``og:title`` ← the first of ``<title>``, ``<h1>``, ``<h2>``, ``<h3>`` in the page;
- ``og:image`` ← ``<meta itemprop="image">``, else the largest ``<img>`` declared over
  10×10 px, else the first ``<img>``, else the first ``<link rel="…icon…">``;
- ``og:description`` ← ``<meta name="description">``, else the page's body text without
  navigation, scripts and the like, summarised to at most ~500 characters.

The image URL is made absolute against the page URL and kept only if it is http(s).
Work is bounded: only the first ``MAX_HTML_CHARS`` characters are parsed, a ``<`` that
starts no tag of sane length is read as text (html.parser rescans such an unfinished
tag to the end of the input each time, quadratic on ``<div<div<div…``), at most
``MAX_META_TAGS`` tags per prefix are read, and body text stops being collected once a
summary has enough.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser
from typing import Iterable
from urllib.parse import urljoin, urlsplit

#: characters of a page that are parsed at all (the head, where OpenGraph lives, and
#: the start of the body are all a preview needs)
MAX_HTML_CHARS = 500_000
#: a "<" with no ">" within this many characters is text, not a tag (see _defang)
MAX_TAG_CHARS = 2048
#: a page with more tags of one prefix than this is taking the piss (Synapse's words)
MAX_META_TAGS = 50
#: Synapse drops keys and values longer than these from the answer
OG_TAG_NAME_MAXLEN = 50
OG_TAG_VALUE_MAXLEN = 1000

_SUMMARY_MIN, _SUMMARY_MAX = 200, 500
# text in these elements is not what the page says (scripts, chrome, embedded media)
_SKIPPED_TEXT_TAGS = frozenset({
    "header", "nav", "aside", "footer", "script", "noscript", "style", "svg", "iframe",
    "video", "canvas", "img", "picture", "template", "head", "title",
})
_SKIPPED_ROLES = frozenset({"directory", "menu", "menubar", "toolbar"})
_VOID_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
})
_MAX_OPEN_TAGS = 512  # a deeper (or never closed) nesting is not tracked further
_TEXT_BUDGET = 4 * _SUMMARY_MAX

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_META_CHARSET = re.compile(rb"<\s*meta[^>]*charset\s*=\s*[\"']?\s*([a-z0-9_.:-]+)", re.I)
_XML_ENCODING = re.compile(rb"\s*<\s*\?\s*xml[^>]*encoding\s*=\s*[\"']([a-z0-9_.:-]+)", re.I)
_HEADER_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([^\"';\s]+)", re.I)


def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def candidate_encodings(body: bytes, content_type: str | None) -> list[str]:
    """Encodings to try, in the HTML standard's order of authority: a byte order
    mark, the Content-Type header's charset, a ``<meta>`` charset (or an XML
    declaration) in the first 1024 bytes, then UTF-8 and finally windows-1252."""
    out: list[str] = []

    def add(name: str | None) -> None:
        codec = _codec(name) if name else None
        if codec and codec not in out:
            out.append(codec)

    for bom, name in _BOMS:
        if body.startswith(bom):
            add(name)
    if content_type:
        m = _HEADER_CHARSET.search(content_type)
        add(m.group(1) if m else None)
    head = body[:1024]
    for pattern in (_META_CHARSET, _XML_ENCODING):
        m = pattern.search(head)
        add(m.group(1).decode("ascii") if m else None)
    add("utf-8")
    add("cp1252")
    return out


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """The page as text: the first candidate encoding that decodes it cleanly, else
    windows-1252 with replacement characters (never an exception)."""
    for encoding in candidate_encodings(body, content_type):
        try:
            text = body.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        return text.lstrip("\ufeff")
    return body.decode("cp1252", errors="replace")


def _map_twitter(key: str) -> str | None:
    if key in ("twitter:card", "twitter:creator"):
        return None  # no OpenGraph counterpart
    if key == "twitter:site":
        return "og:site_name"
    return "og:" + key[len("twitter:"):]


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _defang(text: str) -> str:
    """Escape each ``<`` whose next ``>`` is missing or over MAX_TAG_CHARS away, in
    linear time (the next ``>`` only moves forward). html.parser then never rescans a
    long unfinished construct, so its work stays near-linear in the input."""
    parts: list[str] = []
    start, end = 0, len(text)
    gt = -1
    lt = text.find("<")
    while lt != -1:
        if gt < lt and gt != end:
            gt = text.find(">", lt)
            if gt == -1:
                gt = end  # no ">" anywhere after: every later "<" is text too
        if gt - lt > MAX_TAG_CHARS:
            parts.append(text[start:lt])
            parts.append("&lt;")
            start = lt + 1
        lt = text.find("<", lt + 1)
    parts.append(text[start:])
    return "".join(parts)


class _PageScanner(HTMLParser):
    """Collects what :func:`parse_open_graph` needs in one pass over the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, dict[str, str]] = {"og": {}, "article": {}, "profile": {},
                                                "twitter": {}}
        self.itemprop_image: str | None = None
        self.meta_description: str | None = None
        self.headings: dict[str, str] = {}  # first title/h1/h2/h3 text, in page order
        self.images: list[tuple[str, float | None, float | None]] = []
        self.icon: str | None = None
        self.oembed: str | None = None
        self.texts: list[str] = []
        self._text_size = 0
        self._open: list[tuple[str, bool]] = []  # (tag, hides its text)
        self._hidden = 0
        self._heading: str | None = None
        self._heading_text: list[str] = []

    # -- tags -------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "meta":
            self._meta(a)
        elif tag == "img" and a.get("src"):
            if len(self.images) < 1000:
                self.images.append((a["src"], _number(a.get("width")),
                                    _number(a.get("height"))))
        elif tag == "link" and a.get("href"):
            rel = a.get("rel", "").lower()
            if self.icon is None and "icon" in rel:
                self.icon = a["href"]
            # oEmbed discovery (oembed.com §4; Flickr spells it "alternative")
            if self.oembed is None and rel in ("alternate", "alternative") and \
                    a.get("type", "").lower() == "application/json+oembed":
                self.oembed = a["href"]
        elif tag == "body":
            # a <head> left open ends where the body starts (its text stays hidden)
            self._close_all("head")
        if tag in ("title", "h1", "h2", "h3") and tag not in self.headings \
                and self._heading is None:
            self._heading, self._heading_text = tag, []
        if tag in _VOID_TAGS:
            return
        hides = tag in _SKIPPED_TEXT_TAGS or a.get("role", "").lower() in _SKIPPED_ROLES
        if len(self._open) < _MAX_OPEN_TAGS:
            self._open.append((tag, hides))
            self._hidden += hides

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._heading:
            text = " ".join("".join(self._heading_text).split())
            if text:
                self.headings[tag] = text
            self._heading = None
        # close up to the matching open tag; an end tag with none open is ignored
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                self._hidden -= sum(h for _, h in self._open[i:])
                del self._open[i:]
                break

    def _close_all(self, tag: str) -> None:
        while any(t == tag for t, _ in self._open):
            self.handle_endtag(tag)

    def _meta(self, a: dict[str, str]) -> None:
        content = a.get("content", "")
        for attr in ("property", "name"):
            key = a.get(attr, "")
            prefix = key.split(":", 1)[0].lower() if ":" in key else ""
            if prefix in self.meta and content:
                tags = self.meta[prefix]
                if len(tags) < MAX_META_TAGS and key not in tags:
                    tags[key] = content
                return
        if a.get("itemprop", "").lower() == "image" and content and self.itemprop_image is None:
            self.itemprop_image = content
        if a.get("name", "").lower() == "description" and content \
                and self.meta_description is None:
            self.meta_description = content

    # -- text -------------------------------------------------------------------------
    def handle_data(self, data: str) -> None:
        if self._heading is not None and len(self._heading_text) < 100:
            self._heading_text.append(data[:OG_TAG_VALUE_MAXLEN])
        if not self._hidden and self._text_size < _TEXT_BUDGET:
            text = " ".join(data.split())
            if text:
                self.texts.append(text)
                self._text_size += len(text)

    def title(self) -> str | None:
        if self._heading is not None:  # never closed: what it held so far
            self.handle_endtag(self._heading)
        return next(iter(self.headings.values()), None)


def summarize_paragraphs(paragraphs: Iterable[str], min_size: int = _SUMMARY_MIN,
                         max_size: int = _SUMMARY_MAX) -> str | None:
    """Whole paragraphs until ``min_size`` characters; past ``max_size``, cut at a
    word boundary and end with an ellipsis. None if there is no text."""
    parts: list[str] = []
    size = 0
    for paragraph in paragraphs:
        if size >= min_size:
            break
        paragraph = " ".join(paragraph.split())
        if paragraph:
            parts.append(paragraph)
            size += len(paragraph) + 2
    description = "\n\n".join(parts)
    if len(description) <= max_size:
        return description or None
    cut = ""
    for m in re.finditer(r"\s*\S+", description):
        if len(cut) + len(m.group()) < max_size:
            cut += m.group()
        else:
            if len(cut) < min_size:  # one huge word: take it, truncated below
                cut += m.group()
            break
    return cut[:max_size].strip() + "…"


def _absolute_http(url: str | None, base: str) -> str | None:
    if not url:
        return None
    try:
        absolute = urljoin(base, url.strip())
        parts = urlsplit(absolute)
    except ValueError:
        return None
    return absolute if parts.scheme in ("http", "https") and parts.netloc else None


def _pick_image(page: _PageScanner) -> str | None:
    if page.itemprop_image:
        return page.itemprop_image
    sized = [(w * h, src) for src, w, h in page.images
             if w is not None and h is not None and w > 10 and h > 10]
    if sized:
        return max(sized, key=lambda x: x[0])[1]  # max keeps the first of equals
    if page.images:
        return page.images[0][0]
    return page.icon


def parse_open_graph(body: bytes | str, page_url: str,
                     content_type: str | None = None) -> dict[str, str]:
    """The OpenGraph dict of a page (see the module docstring). ``body`` is the raw
    response (decoded by :func:`decode_html`) or already text. Never raises on bad
    HTML; a page with nothing usable gives ``{}``."""
    return parse_page(body, page_url, content_type)[0]


def parse_page(body: bytes | str, page_url: str,
               content_type: str | None = None) -> tuple[dict[str, str], str | None]:
    """:func:`parse_open_graph`'s dict and the page's oEmbed JSON URL (absolute
    http(s)) if it advertises one."""
    text = body if isinstance(body, str) else decode_html(body, content_type)
    page = _PageScanner()
    try:
        page.feed(_defang(text[:MAX_HTML_CHARS]))
        page.close()
    except Exception:  # html.parser is lenient, but what it has seen so far still counts
        pass
    og: dict[str, str] = {}
    for prefix in ("og", "article", "profile"):
        og.update(page.meta[prefix])
    for key, value in page.meta["twitter"].items():
        mapped = _map_twitter(key)
        if mapped is not None:
            og.setdefault(mapped, value)
    if "og:title" not in og and page.title():
        og["og:title"] = page.title()
    if "og:description" in og:
        og["og:description"] = summarize_paragraphs([og["og:description"]]) or ""
    else:
        description = (summarize_paragraphs([page.meta_description])
                       if page.meta_description else summarize_paragraphs(page.texts))
        if description:
            og["og:description"] = description
    image = og.pop("og:image", None) or _pick_image(page)
    image = _absolute_http(image, page_url)
    if image:
        og["og:image"] = image
    return {k: v for k, v in og.items() if v}, _absolute_http(page.oembed, page_url)


def prune_overlong(og: dict) -> dict:
    """Drop keys and values too long for a preview (Synapse's limits), so a page
    cannot make every client that shows it carry kilobytes of junk."""
    return {k: v for k, v in og.items()
            if len(k) <= OG_TAG_NAME_MAXLEN and len(str(v)) <= OG_TAG_VALUE_MAXLEN}
