"""An oEmbed response (https://oembed.com/, §2.3) as OpenGraph data (pure).

A page may advertise an oEmbed JSON URL (:func:`media_repo.preview_html.parse_page`
finds it). Like Synapse, the preview then merges what oEmbed says under what the page's
own tags say, since many sites give complete OpenGraph tags but only stubs in oEmbed:

- ``title`` → ``og:title``, ``provider_name`` → ``og:site_name``,
  ``thumbnail_url`` → ``og:image`` (a ``photo``'s own ``url`` instead);
- ``rich`` and ``video`` types: their ``html`` snippet gives ``og:description`` (and an
  image if there was none); ``video`` is ``og:type: video.other`` with its size;
- ``author_name`` is a title of last resort.
"""

from __future__ import annotations

import html
import json
from typing import Any

from media_repo.preview_html import parse_open_graph


def oembed_to_open_graph(page_url: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    """The OpenGraph dict and the author's name; ``({}, None)`` for anything that is
    not an oEmbed 1.0 JSON object."""
    try:
        data = json.loads(body.decode("utf-8"))  # oEmbed JSON is UTF-8 (§2.3.4)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}, None
    if not isinstance(data, dict) or data.get("version", "1.0") not in ("1.0", 1, 1.0):
        return {}, None

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    og: dict[str, Any] = {"og:url": page_url}
    if text("title"):
        # some WordPress plugins escape entities in a field that is plain text
        og["og:title"] = html.unescape(text("title"))
    if text("provider_name"):
        og["og:site_name"] = text("provider_name")
    if text("thumbnail_url"):
        og["og:image"] = text("thumbnail_url")
    kind = data.get("type")
    if kind == "photo" and text("url"):
        og["og:image"] = text("url")
    elif kind in ("rich", "video") and text("html"):
        snippet = parse_open_graph(text("html"), page_url)
        if snippet.get("og:description"):
            og["og:description"] = snippet["og:description"]
        if "og:image" not in og and snippet.get("og:image"):
            og["og:image"] = snippet["og:image"]
    if kind == "video":
        og["og:type"] = "video.other"
        for size in ("width", "height"):
            if type(data.get(size)) is int:
                og[f"og:video:{size}"] = data[size]
    elif kind == "link":
        og["og:type"] = "website"
    return og, text("author_name")
