"""Our media for other servers (spec: Server-Server API, "Content Repository", v1.11,
MSC3916):

- ``GET /_matrix/federation/v1/media/download/{mediaId}``
- ``GET /_matrix/federation/v1/media/thumbnail/{mediaId}`` (``width``, ``height``,
  ``method``, ``animated``, ``timeout_ms`` as for the client endpoint)

Both are X-Matrix authenticated and answer ``multipart/mixed``: the JSON metadata
part (``{}``) and then the bytes (``media_repo.responses.write_multipart``). Only our
own media is served: a media ID is looked up as ``mxc://<us>/<mediaId>``, so media we
cached from others is never passed on. Unknown, quarantined or expired media is 404
M_NOT_FOUND; a thumbnail of something that is not an image gets the client
endpoint's error (``thumbnails.CannotThumbnail``).
"""

from __future__ import annotations

from typing import Any

from federation.server import FederationAuthenticator, authenticated
from homeserver.errors import InvalidParam
from homeserver.http.server import ApiRequest, RawResponse, Router
from media_repo.repository import MediaRepository
from media_repo.resources import is_valid_media_id, parse_thumbnail_request, parse_timeout
from media_repo.responses import RunInThread, write_multipart
from media_repo.thumbnails import Thumbnails

PREFIX = "/_matrix/federation/v1/media"
_RAW = RawResponse()


def register(router: Router, *, authenticator: FederationAuthenticator,
             repository: MediaRepository, thumbnails: Thumbnails,
             run_in_thread: RunInThread) -> None:
    async def download(request: ApiRequest) -> tuple[int, Any]:
        content = await repository.resolve(
            repository.server_name, _media_id(request), timeout_ms=parse_timeout(request),
            allow_authenticated=True)
        f = await repository.open_blob(content.sha256)
        write_multipart(request.raw, f, size=content.size, content_type=content.content_type,
                        file_name=content.upload_name, run_in_thread=run_in_thread)
        return 200, _RAW

    async def thumbnail(request: ApiRequest) -> tuple[int, Any]:
        media_id = _media_id(request)
        wanted = parse_thumbnail_request(request)
        content = await repository.resolve(
            repository.server_name, media_id, timeout_ms=parse_timeout(request),
            allow_authenticated=True)
        thumb = await thumbnails.thumbnail_for(content.sha256, content.content_type, wanted)
        f = await repository.open_blob(thumb.thumbnail_sha256)
        write_multipart(request.raw, f, size=thumb.size, content_type=thumb.content_type,
                        file_name=None, run_in_thread=run_in_thread)
        return 200, _RAW

    router.add("GET", PREFIX + "/download/(?P<media_id>[^/]*)",
               authenticated(authenticator, download))
    router.add("GET", PREFIX + "/thumbnail/(?P<media_id>[^/]*)",
               authenticated(authenticator, thumbnail))


def _media_id(request: ApiRequest) -> str:
    media_id = request.path["media_id"]
    if not is_valid_media_id(media_id):
        raise InvalidParam("Invalid media ID")
    return media_id
