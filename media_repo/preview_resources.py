"""``GET /_matrix/client/v1/media/preview_url`` and the deprecated
``GET /_matrix/media/v3/preview_url`` (spec: Client-Server API, "Content repository";
both need an access token). The work is :class:`media_repo.url_preview.UrlPreviewer`'s.

With previews disabled the routes still exist, answering 404 ``M_UNRECOGNIZED`` after
authentication, as Synapse does, so a client learns nothing more than "not here".
"""

from __future__ import annotations

import re
from typing import Any

from homeserver.errors import InvalidParam, MissingParam, Unrecognized
from homeserver.http.server import ApiRequest, Router
from media_repo.url_preview import UrlPreviewer

CLIENT_PATH = "/_matrix/client/v1/media/preview_url"
# the deprecated unauthenticated-media path, under each version Synapse answers on
LEGACY_PATHS = ("/_matrix/media/(?:v3|r0)/preview_url", "/_matrix/media/v1/preview_url")
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def register(router: Router, *, auth: Any, previewer: UrlPreviewer | None,
             client: bool = True, legacy_media: bool = True) -> None:
    """Add the routes: the authenticated-media one on ``client`` listeners, the
    legacy one on listeners serving the ``media`` resource."""
    async def preview_url(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        if previewer is None:
            raise Unrecognized("Unrecognized request")
        url = request.arg("url")
        if not url:
            raise MissingParam("Missing string query parameter 'url'")
        ts_arg = request.arg("ts")
        ts = None
        if ts_arg is not None:
            if not _INTEGER.fullmatch(ts_arg):
                raise InvalidParam("ts must be an integer")
            ts = int(ts_arg)
        return 200, await previewer.preview(url, requester.user_id, ts)

    if client:
        router.add("GET", CLIENT_PATH, preview_url)
    if legacy_media:
        for path in LEGACY_PATHS:
            router.add("GET", path, preview_url)
