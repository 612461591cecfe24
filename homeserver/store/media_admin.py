"""Queries over the media tables for administration (Synapse's admin API for media,
``media_retention``): paging a user's media, usage per user, old media, access times,
quarantine in bulk and protection.

It owns no table: ``homeserver.store.media`` does, and keeps every blob's refcount in
step with its rows. Nothing here inserts or deletes a row that points at a blob, so
nothing here touches a refcount; deleting goes through ``Media.delete_local`` /
``Media.delete_remote`` (via ``media_repo.repository``).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.accounts import profiles
from homeserver.store.database import Database
from homeserver.store.media import LocalMedia, local_media, remote_media_cache
from homeserver.store.rooms import room_stats
from homeserver.store.user_directory import user_directory

_m, _r = local_media.c, remote_media_cache.c

#: Synapse's ``order_by`` names for a user's media and the columns behind them
USER_MEDIA_ORDER = {
    "media_id": _m.media_id,
    "upload_name": _m.upload_name,
    "created_ts": _m.created_ts,
    "last_access_ts": _m.last_access_ts,
    "media_length": _m.size,
    "media_type": _m.content_type,
    "quarantined_by": _m.quarantined_by,
    "safe_from_quarantine": _m.safe_from_quarantine,
}
#: Synapse's ``order_by`` names of ``GET /statistics/users/media``
USAGE_ORDER = ("user_id", "displayname", "media_length", "media_count")
#: hashes per ``IN (…)`` list
_CHUNK = 500


@dataclasses.dataclass(frozen=True)
class MediaUsage:
    """One user's uploads: how many media IDs with bytes, and their total size."""

    user_id: str
    displayname: str | None
    media_count: int
    media_length: int


class MediaAdminStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- quarantine and protection -------------------------------------------------------
    # Quarantine follows the bytes (as Synapse's since 1.128, which also tracks hashes):
    # quarantining an item quarantines every local and cached remote item with the
    # same SHA-256 (protected local media excepted), and lifting it lifts them all.

    async def quarantine_item(self, origin: str | None, media_id: str,
                              by: str | None) -> int | None:
        """Quarantine (``by``: the admin) or with None release a local
        (``origin`` None) or cached remote item and every item with its bytes.
        The named item itself is changed even if protected. Returns how many rows
        changed, or None if the item is unknown."""
        def txn(conn: Connection) -> int | None:
            if origin is None:
                item = (_m.media_id == media_id,)
                sha256 = conn.execute(sa.select(_m.sha256).where(*item)).first()
                table = local_media
            else:
                item = (_r.origin == origin, _r.media_id == media_id)
                sha256 = conn.execute(sa.select(_r.sha256).where(*item)).first()
                table = remote_media_cache
            if sha256 is None:
                return None
            changed = conn.execute(sa.update(table).where(*item)
                                   .values(quarantined_by=by)).rowcount
            if sha256[0] is not None:
                changed += _quarantine_hashes(conn, [sha256[0]], by,
                                              skip=(origin, media_id))
            return changed

        return await self._db.run(txn)

    async def quarantine_user_media(self, user_id: str, by: str) -> int:
        """Quarantine every unprotected media ID ``user_id`` uploaded and every item
        with the same bytes; returns how many rows changed (already quarantined
        ones count again, as in Synapse)."""
        def txn(conn: Connection) -> int:
            mine = (_m.user_id == user_id, _m.safe_from_quarantine.is_(False))
            hashes = list(conn.execute(sa.select(_m.sha256).distinct().where(
                *mine, _m.sha256.is_not(None))).scalars())
            changed = conn.execute(sa.update(local_media).where(*mine)
                                   .values(quarantined_by=by)).rowcount
            return changed + _quarantine_hashes(conn, hashes, by, not_user=user_id)

        return await self._db.run(txn)

    async def inherit_quarantine(self, media_id: str, sha256: str) -> bool:
        """Quarantine a just-uploaded media ID if its bytes are quarantined under
        another (unprotected) ID or remote item; True if it was."""
        def txn(conn: Connection) -> bool:
            by = conn.execute(sa.union_all(
                sa.select(_m.quarantined_by).where(_m.sha256 == sha256,
                                                   _m.quarantined_by.is_not(None)),
                sa.select(_r.quarantined_by).where(_r.sha256 == sha256,
                                                   _r.quarantined_by.is_not(None)),
            ).limit(1)).scalar()
            if by is None:
                return False
            return conn.execute(sa.update(local_media).where(
                _m.media_id == media_id, _m.quarantined_by.is_(None),
                _m.safe_from_quarantine.is_(False)).values(quarantined_by=by)).rowcount == 1

        return await self._db.run(txn)

    async def set_protected(self, media_id: str, protected: bool) -> bool:
        """Mark a local media ID safe from bulk quarantine (or not); False if unknown."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.update(local_media).where(_m.media_id == media_id)
                                .values(safe_from_quarantine=protected)).rowcount == 1

        return await self._db.run(txn)

    # -- listing -----------------------------------------------------------------------------
    async def user_media_page(self, user_id: str, *, start: int, limit: int,
                              order_by: str | None, descending: bool
                              ) -> tuple[list[LocalMedia], int]:
        """One page of ``user_id``'s media IDs and how many there are in all. Ties
        (and every order) end in ascending ``media_id``, so pages are stable."""
        column = USER_MEDIA_ORDER[order_by or "created_ts"]

        def txn(conn: Connection) -> tuple[list[LocalMedia], int]:
            total = conn.execute(sa.select(sa.func.count()).where(
                _m.user_id == user_id)).scalar_one()
            order = [column.desc() if descending else column.asc()]
            if column is not _m.media_id:
                order.append(_m.media_id.asc())
            rows = conn.execute(sa.select(local_media).where(_m.user_id == user_id)
                                .order_by(*order).offset(start).limit(limit))
            return [LocalMedia(**r._mapping) for r in rows], int(total)

        return await self._db.run(txn)

    async def usage_page(self, *, start: int, limit: int, order_by: str, descending: bool,
                         from_ts: int | None, until_ts: int | None,
                         search_term: str | None) -> tuple[list[MediaUsage], int]:
        """Users with uploads (in ``[from_ts, until_ts]`` if given), with their count
        and bytes; ``search_term`` matches anywhere in the user ID or display name."""
        def txn(conn: Connection) -> tuple[list[MediaUsage], int]:
            where = [_m.sha256.is_not(None)]
            if from_ts is not None:
                where.append(_m.created_ts >= from_ts)
            if until_ts is not None:
                where.append(_m.created_ts <= until_ts)
            count, length = sa.func.count(), sa.func.coalesce(sa.func.sum(_m.size), 0)
            per_user = (sa.select(_m.user_id.label("user_id"), count.label("media_count"),
                                  length.label("media_length"))
                        .where(*where).group_by(_m.user_id).subquery())
            displayname = profiles.c.displayname
            q = (sa.select(per_user.c.user_id, displayname.label("displayname"),
                           per_user.c.media_count, per_user.c.media_length)
                 .select_from(per_user.outerjoin(
                     profiles, profiles.c.user_id == per_user.c.user_id)))
            if search_term:
                pattern = "%" + _escape_like(search_term) + "%"
                q = q.where(sa.or_(per_user.c.user_id.like(pattern, escape="\\"),
                                   displayname.like(pattern, escape="\\")))
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery()))
            column = {"user_id": per_user.c.user_id, "displayname": displayname,
                      "media_length": per_user.c.media_length,
                      "media_count": per_user.c.media_count}[order_by]
            order = [column.desc() if descending else column.asc()]
            if order_by != "user_id":
                order.append(per_user.c.user_id.asc())
            rows = conn.execute(q.order_by(*order).offset(start).limit(limit))
            return ([MediaUsage(r.user_id, r.displayname, int(r.media_count),
                                int(r.media_length)) for r in rows],
                    int(total.scalar_one()))

        return await self._db.run(txn)

    # -- old media ---------------------------------------------------------------------------
    async def old_local_media(self, *, before_ts: int, size_gt: int = 0,
                              keep_profiles: bool, profile_prefix: str,
                              include_quarantined: bool = False,
                              include_protected: bool = False) -> list[str]:
        """Local media IDs with bytes last accessed (or, never accessed, created)
        before ``before_ts`` and larger than ``size_gt``. ``keep_profiles`` spares
        those a profile, the user directory or a room uses as its avatar
        (``profile_prefix`` + media ID: ``mxc://server/``)."""
        def txn(conn: Connection) -> list[str]:
            q = sa.select(_m.media_id).where(
                _m.sha256.is_not(None), _m.size > size_gt, _not_accessed_since(_m, before_ts))
            if keep_profiles:
                mxc = sa.literal(profile_prefix, sa.Text) + _m.media_id
                for column in (profiles.c.avatar_url, user_directory.c.avatar_url,
                               room_stats.c.avatar):
                    q = q.where(~sa.exists().where(column == mxc))
            if not include_quarantined:
                q = q.where(_m.quarantined_by.is_(None))
            if not include_protected:
                q = q.where(_m.safe_from_quarantine.is_(False))
            return list(conn.execute(q.order_by(_m.media_id)).scalars())

        return await self._db.run(txn)

    async def old_remote_media(self, *, before_ts: int) -> list[tuple[str, str]]:
        """Cached remote items last accessed (or, never, cached) before ``before_ts``;
        quarantined ones stay, so a purge never lets them be fetched afresh."""
        def txn(conn: Connection) -> list[tuple[str, str]]:
            q = sa.select(_r.origin, _r.media_id).where(
                _not_accessed_since(_r, before_ts), _r.quarantined_by.is_(None))
            return [(r.origin, r.media_id) for r in conn.execute(
                q.order_by(_r.origin, _r.media_id))]

        return await self._db.run(txn)

    # -- access times -------------------------------------------------------------------------
    async def record_access(self, local: Mapping[str, int],
                            remote: Mapping[tuple[str, str], int]) -> None:
        """Move ``last_access_ts`` forward (never back) for the given media."""
        def txn(conn: Connection) -> None:
            for media_id, ts in _sorted(local.items()):
                conn.execute(sa.update(local_media).where(
                    _m.media_id == media_id,
                    sa.or_(_m.last_access_ts.is_(None), _m.last_access_ts < ts))
                    .values(last_access_ts=ts))
            for (origin, media_id), ts in _sorted(remote.items()):
                conn.execute(sa.update(remote_media_cache).where(
                    _r.origin == origin, _r.media_id == media_id,
                    sa.or_(_r.last_access_ts.is_(None), _r.last_access_ts < ts))
                    .values(last_access_ts=ts))

        if local or remote:
            await self._db.run(txn)


def _quarantine_hashes(conn: Connection, hashes: list[str], by: str | None, *,
                       skip: tuple[str | None, str] | None = None,
                       not_user: str | None = None) -> int:
    """Set ``quarantined_by`` on the other items with these bytes (sparing
    protected local media when quarantining); returns how many rows changed."""
    changed = 0
    for i in range(0, len(hashes), _CHUNK):
        chunk = hashes[i:i + _CHUNK]
        local = [_m.sha256.in_(chunk)]
        remote = [_r.sha256.in_(chunk)]
        if by is not None:
            local.append(_m.safe_from_quarantine.is_(False))
        if not_user is not None:
            local.append(_m.user_id != not_user)
        if skip is not None and skip[0] is None:
            local.append(_m.media_id != skip[1])
        elif skip is not None:
            remote.append(sa.not_(sa.and_(_r.origin == skip[0], _r.media_id == skip[1])))
        changed += conn.execute(sa.update(local_media).where(*local)
                                .values(quarantined_by=by)).rowcount
        changed += conn.execute(sa.update(remote_media_cache).where(*remote)
                                .values(quarantined_by=by)).rowcount
    return changed


def _not_accessed_since(c, before_ts: int):
    return sa.or_(c.last_access_ts < before_ts,
                  sa.and_(c.last_access_ts.is_(None), c.created_ts < before_ts))


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sorted(items: Iterable) -> list:
    # a fixed order of row updates: two flushes never wait on each other's locks
    return sorted(items)
