"""The content repository's endpoints (spec: Client-Server API, "Content repository";
v1.11 authenticated media). Thin servlets: parse, one call into
:class:`media_repo.repository.MediaRepository`, answer.

- ``POST /_matrix/media/v3/upload``; async upload: ``POST /_matrix/media/v1/create``
  then ``PUT /_matrix/media/v3/upload/{serverName}/{mediaId}``
- ``GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`` and
  ``/config`` (authenticated), and the legacy ``/_matrix/media/v3/download/…`` (no
  auth; serves only media stored while ``enable_authenticated_media`` was off, as
  Synapse) and ``/_matrix/media/v3/config`` (needs auth in Synapse too)
- ``GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`` (and the legacy
  ``/_matrix/media/v3/thumbnail/…``, same rule as the legacy download)
"""

from __future__ import annotations

import re
from typing import Any

from homeserver.errors import InvalidParam, MatrixError, MissingParam
from homeserver.http.server import ApiRequest, RawResponse, Router
from homeserver.ids import is_valid_server_name
from media_repo.repository import DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, MediaRepository
from media_repo.responses import RunInThread, set_media_security_headers, write_file
from media_repo.thumbnails import ThumbnailRequest, Thumbnails

CLIENT_V1 = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/(?:v3|r0|v1)"
_MXC = r"(?P<server_name>[^/]*)/(?P<media_id>[^/]*)"
#: spec, "Matrix Content (mxc://) URIs": media IDs use only these characters
_MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_\-]+")
_CONTENT_TYPE_RE = re.compile(r"[\x20-\x7e]{1,255}")
_RAW = RawResponse()
#: larger thumbnail requests are refused rather than rendered (and stored) on demand
_MAX_DIMENSION = 4096


def register(router: Router, *, auth: Any, repository: MediaRepository,
             thumbnails: Thumbnails, run_in_thread: RunInThread) -> None:
    """Add the media routes; ``run_in_thread`` runs the blocking reads of downloads."""
    upload_limit = repository.max_upload_size

    async def upload(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        content_type, upload_name = _upload_metadata(request)
        mxc = await repository.upload_from_file(
            requester.user_id, _body(request), content_type=content_type,
            upload_name=upload_name)
        return 200, {"content_uri": str(mxc)}

    async def create(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        mxc, expires = await repository.create_pending(requester.user_id)
        return 200, {"content_uri": str(mxc), "unused_expires_at": expires}

    async def upload_to(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        server_name, media_id = parse_mxc_parts(request)
        if server_name != repository.server_name:
            raise MatrixError("Non-local server name specified", errcode="M_NOT_FOUND",
                              status=404)
        content_type, upload_name = _upload_metadata(request)
        await repository.complete_pending(requester.user_id, media_id, _body(request),
                                          content_type=content_type,
                                          upload_name=upload_name)
        return 200, {}

    async def media_config(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True)
        return 200, {"m.upload.size": upload_limit}

    def download(authenticated: bool):
        async def handler(request: ApiRequest) -> tuple[int, Any]:
            set_media_security_headers(request.raw)
            if authenticated:
                await auth.authenticate(request, allow_guest=True)
            server_name, media_id = parse_mxc_parts(request)
            content = await repository.resolve(
                server_name, media_id, timeout_ms=parse_timeout(request),
                allow_authenticated=authenticated)
            f = await repository.open_blob(content.sha256)
            write_file(request.raw, f, size=content.size,
                       content_type=content.content_type,
                       file_name=request.path.get("file_name") or content.upload_name,
                       run_in_thread=run_in_thread)
            return 200, _RAW
        return handler

    def thumbnail(authenticated: bool):
        async def handler(request: ApiRequest) -> tuple[int, Any]:
            set_media_security_headers(request.raw)
            if authenticated:
                await auth.authenticate(request, allow_guest=True)
            server_name, media_id = parse_mxc_parts(request)
            wanted = parse_thumbnail_request(request)
            content = await repository.resolve(
                server_name, media_id, timeout_ms=parse_timeout(request),
                allow_authenticated=authenticated)
            thumb = await thumbnails.thumbnail_for(content.sha256, content.content_type,
                                                   wanted)
            f = await repository.open_blob(thumb.thumbnail_sha256)
            write_file(request.raw, f, size=thumb.size, content_type=thumb.content_type,
                       file_name=None, run_in_thread=run_in_thread)
            return 200, _RAW
        return handler

    router.add("POST", LEGACY + "/upload", upload, max_body=upload_limit)
    router.add("POST", "/_matrix/media/v1/create", create)
    router.add("PUT", "/_matrix/media/v3/upload/" + _MXC, upload_to, max_body=upload_limit)
    router.add("GET", CLIENT_V1 + "/config", media_config)
    router.add("GET", LEGACY + "/config", media_config)
    download_tail = "/download/" + _MXC + "(?:/(?P<file_name>[^/]*))?"
    router.add("GET", CLIENT_V1 + download_tail, download(True))
    router.add("GET", LEGACY + download_tail, download(False))
    router.add("GET", CLIENT_V1 + "/thumbnail/" + _MXC, thumbnail(True))
    router.add("GET", LEGACY + "/thumbnail/" + _MXC, thumbnail(False))


def parse_mxc_parts(request: ApiRequest) -> tuple[str, str]:
    """``serverName`` and ``mediaId`` from the path; 400 M_INVALID_PARAM if either
    cannot be part of an ``mxc://`` URI."""
    server_name, media_id = request.path["server_name"], request.path["media_id"]
    if not is_valid_server_name(server_name):
        raise InvalidParam("Invalid server name")
    if not _MEDIA_ID_RE.fullmatch(media_id):
        raise InvalidParam("Invalid media ID")
    return server_name, media_id


def is_valid_media_id(media_id: str) -> bool:
    """Whether ``media_id`` can be the media ID of an ``mxc://`` URI."""
    return _MEDIA_ID_RE.fullmatch(media_id) is not None


def parse_timeout(request: ApiRequest) -> int:
    """``timeout_ms`` (spec default 20 s), capped at a minute as Synapse does."""
    raw = request.arg("timeout_ms")
    if raw is None:
        return DEFAULT_TIMEOUT_MS
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParam("timeout_ms must be an integer") from None
    if value < 0:
        raise InvalidParam("timeout_ms must not be negative")
    return min(value, MAX_TIMEOUT_MS)


def parse_thumbnail_request(request: ApiRequest) -> ThumbnailRequest:
    """``width``, ``height`` (required, positive), ``method`` (crop or scale; Synapse's
    default scale), ``animated`` (true/false) and whether ``Accept`` allows WebP."""
    def dimension(name: str) -> int:
        raw = request.arg(name)
        if raw is None:
            raise MissingParam(f"Missing integer query parameter {name!r}")
        try:
            value = int(raw)
        except ValueError:
            raise InvalidParam(f"Query parameter {name!r} must be an integer") from None
        if not 0 < value <= _MAX_DIMENSION:
            raise InvalidParam(f"Query parameter {name!r} is out of range")
        return value

    width, height = dimension("width"), dimension("height")
    method = request.arg("method", "scale")
    if method not in ("crop", "scale"):
        raise InvalidParam("method must be crop or scale")
    animated = request.arg("animated", "false")
    if animated not in ("true", "false"):
        raise InvalidParam("animated must be true or false")
    accept = (request.header("Accept") or "").lower()
    return ThumbnailRequest(width, height, method, animated == "true",
                            accepts_webp="image/webp" in accept)


def _upload_metadata(request: ApiRequest) -> tuple[str | None, str | None]:
    content_type = request.header("Content-Type")
    if content_type is not None:
        content_type = content_type.strip()
        if not _CONTENT_TYPE_RE.fullmatch(content_type):
            raise InvalidParam("Invalid Content-Type")
    upload_name = request.arg("filename") or None
    return content_type or None, upload_name


def _body(request: ApiRequest) -> Any:
    content = request.raw.content
    content.seek(0)
    return content
