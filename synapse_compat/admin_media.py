"""Synapse's admin API for media, on the client listener (paths, parameters and
response shapes of Synapse's docs: ``admin_api/media_admin_api.md``, "User media"
in ``admin_api/user_admin_api.md``, ``admin_api/statistics.md``). Thin servlets:
admin check, parsed query, one call into :class:`media_repo.admin.MediaAdmin`.

Where Synapse answers 200 for media it does not know (quarantine, protect), this
answers 404 ``M_NOT_FOUND`` "Unknown media", as its other media endpoints do.
"""

from __future__ import annotations

import re
from typing import Any

from homeserver.errors import InvalidParam, MatrixError
from homeserver.http.server import ApiRequest, Router
from homeserver.store.media import LocalMedia, RemoteMedia
from homeserver.store.media_admin import USAGE_ORDER, USER_MEDIA_ORDER
from media_repo.admin import MediaAdmin
from media_repo.resources import parse_mxc_parts
from synapse_compat import admin_params as params
from synapse_compat.admin_auth import require_admin

V1 = "/_synapse/admin/v1"
_MXC = r"(?P<server_name>[^/]*)/(?P<media_id>[^/]*)"
_MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_\-]+")
DEFAULT_LIMIT = 100


def register(router: Router, *, auth: Any, accounts: Any, admin: MediaAdmin) -> None:
    async def admin_user(request: ApiRequest) -> str:
        return (await require_admin(request, auth=auth, accounts=accounts)).user_id

    async def media_info(request: ApiRequest) -> tuple[int, Any]:
        await admin_user(request)
        media = await admin.media_info(*parse_mxc_parts(request))
        return 200, {"media_info": media_info_json(media)}

    async def delete_media(request: ApiRequest) -> tuple[int, Any]:
        await admin_user(request)
        deleted = await admin.delete_local(*parse_mxc_parts(request))
        return 200, {"deleted_media": deleted, "total": len(deleted)}

    def quarantine(on: bool):
        async def handler(request: ApiRequest) -> tuple[int, Any]:
            by = await admin_user(request)
            await admin.set_quarantine(*parse_mxc_parts(request), by if on else None)
            return 200, {}
        return handler

    def protect(on: bool):
        async def handler(request: ApiRequest) -> tuple[int, Any]:
            await admin_user(request)
            await admin.set_protected(_media_id(request), on)
            return 200, {}
        return handler

    async def quarantine_user(request: ApiRequest) -> tuple[int, Any]:
        by = await admin_user(request)
        n = await admin.quarantine_user_media(request.path["user_id"], by)
        return 200, {"num_quarantined": n}

    async def delete_by_date_size(request: ApiRequest) -> tuple[int, Any]:
        await admin_user(request)
        before_ts = params.timestamp(request, "before_ts")
        size_gt = params.integer(request, "size_gt", 0)
        keep_profiles = params.boolean(request, "keep_profiles", True)
        legacy_server = request.path.get("server_name")
        if legacy_server is not None and legacy_server != admin.server_name:
            # the deprecated /media/{serverName}/delete path
            raise MatrixError("Can only delete local media")
        deleted = await admin.delete_old_local(before_ts=before_ts, size_gt=size_gt or 0,
                                               keep_profiles=keep_profiles)
        return 200, {"deleted_media": deleted, "total": len(deleted)}

    async def user_media(request: ApiRequest) -> tuple[int, Any]:
        await admin_user(request)
        user_id = request.path["user_id"]
        start, limit, order_by, descending = _user_media_query(request)
        media, total = await admin.user_media(user_id, start=start, limit=limit,
                                              order_by=order_by, descending=descending)
        body: dict[str, Any] = {"media": [user_media_json(m) for m in media],
                                "total": total}
        if start + limit < total:
            body["next_token"] = start + len(media)
        return 200, body

    async def delete_user_media(request: ApiRequest) -> tuple[int, Any]:
        await admin_user(request)
        start, limit, order_by, descending = _user_media_query(request)
        deleted = await admin.delete_user_media(
            request.path["user_id"], start=start, limit=limit, order_by=order_by,
            descending=descending)
        return 200, {"deleted_media": deleted, "total": len(deleted)}

    async def usage(request: ApiRequest) -> tuple[int, Any]:
        await admin_user(request)
        query = _usage_query(request)
        users, total = await admin.usage(**query)
        body: dict[str, Any] = {
            "users": [{"user_id": u.user_id, "displayname": u.displayname,
                       "media_count": u.media_count, "media_length": u.media_length}
                      for u in users],
            "total": total}
        if query["start"] + query["limit"] < total:
            body["next_token"] = query["start"] + len(users)
        return 200, body

    async def purge_media_cache(request: ApiRequest) -> tuple[int, Any]:
        await admin_user(request)
        before_ts = params.timestamp(request, "before_ts")
        return 200, {"deleted": await admin.purge_remote_cache(before_ts=before_ts)}

    router.add("POST", V1 + "/media/quarantine/" + _MXC, quarantine(True))
    router.add("POST", V1 + "/media/unquarantine/" + _MXC, quarantine(False))
    router.add("POST", V1 + "/media/protect/(?P<media_id>[^/]*)", protect(True))
    router.add("POST", V1 + "/media/unprotect/(?P<media_id>[^/]*)", protect(False))
    router.add("POST", V1 + "/user/(?P<user_id>[^/]*)/media/quarantine", quarantine_user)
    router.add("POST", V1 + "/media/delete", delete_by_date_size)
    router.add("POST", V1 + "/media/(?P<server_name>[^/]*)/delete", delete_by_date_size)
    router.add("GET", V1 + "/media/" + _MXC, media_info)
    router.add("DELETE", V1 + "/media/" + _MXC, delete_media)
    router.add("GET", V1 + "/users/(?P<user_id>[^/]*)/media", user_media)
    router.add("DELETE", V1 + "/users/(?P<user_id>[^/]*)/media", delete_user_media)
    router.add("GET", V1 + "/statistics/users/media", usage)
    router.add("POST", V1 + "/purge_media_cache", purge_media_cache)


def media_info_json(media: LocalMedia | RemoteMedia) -> dict[str, Any]:
    """``media_info`` of ``GET /_synapse/admin/v1/media/{origin}/{mediaId}``.
    ``filesystem_id`` is the blob's SHA-256: blobs are named by it here."""
    local = isinstance(media, LocalMedia)
    return {
        "media_origin": None if local else media.origin,
        "user_id": media.user_id if local else None,
        "media_id": media.media_id,
        "media_type": media.content_type,
        "media_length": media.size,
        "upload_name": media.upload_name,
        "created_ts": media.created_ts,
        "filesystem_id": None if local else media.sha256,
        "url_cache": None,
        "last_access_ts": media.last_access_ts,
        "quarantined_by": media.quarantined_by,
        "authenticated": media.authenticated,
        "safe_from_quarantine": media.safe_from_quarantine if local else None,
        "sha256": media.sha256,
    }


def user_media_json(media: LocalMedia) -> dict[str, Any]:
    """One entry of ``GET /_synapse/admin/v1/users/{userId}/media``."""
    return {
        "created_ts": media.created_ts,
        "last_access_ts": media.last_access_ts,
        "media_id": media.media_id,
        "media_length": media.size,
        "media_type": media.content_type,
        "quarantined_by": media.quarantined_by,
        "safe_from_quarantine": media.safe_from_quarantine,
        "upload_name": media.upload_name,
    }


def _media_id(request: ApiRequest) -> str:
    media_id = request.path["media_id"]
    if not _MEDIA_ID_RE.fullmatch(media_id):
        raise InvalidParam("Invalid media ID")
    return media_id


def _user_media_query(request: ApiRequest) -> tuple[int, int, str | None, bool]:
    """``from``, ``limit``, ``order_by``, ``dir``; with neither of the last two, the
    newest media first (Synapse's default)."""
    start = params.integer(request, "from", 0) or 0
    limit = params.integer(request, "limit", DEFAULT_LIMIT)
    order_by = params.choice(request, "order_by", tuple(USER_MEDIA_ORDER))
    descending = params.direction(request)
    if order_by is None and descending is None:
        return start, limit or 0, "created_ts", True
    return start, limit or 0, order_by, bool(descending)


def _usage_query(request: ApiRequest) -> dict[str, Any]:
    from_ts = params.integer(request, "from_ts")
    until_ts = params.integer(request, "until_ts")
    if from_ts is not None and until_ts is not None and until_ts < from_ts:
        raise InvalidParam("Query parameter until_ts must be greater than from_ts.")
    search_term = request.arg("search_term")
    if search_term == "":
        raise InvalidParam("Query parameter search_term cannot be empty.")
    return {
        "start": params.integer(request, "from", 0) or 0,
        "limit": params.integer(request, "limit", DEFAULT_LIMIT) or 0,
        "order_by": params.choice(request, "order_by", USAGE_ORDER, "user_id"),
        "descending": bool(params.direction(request)),
        "from_ts": from_ts, "until_ts": until_ts, "search_term": search_term,
    }
