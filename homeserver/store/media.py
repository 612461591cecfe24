"""The media repository's tables (DESIGN.md §6; spec: Client-Server API, "Content
repository").

- ``local_media``: one row per media ID this server handed out. ``sha256`` and
  ``size`` stay NULL between ``POST /media/v1/create`` and the upload that fills it
  (async upload); ``unused_expires_ts`` is set only while it is empty.
- ``remote_media_cache``: media of other servers fetched over federation, by
  ``(origin, media_id)``.
- ``media_blobs``: one row per stored blob (``media_repo.cas``), with the number of
  rows above and in ``media_thumbnails`` that point at it.
- ``media_thumbnails``: thumbnails keyed by the *source blob* (so two media IDs with
  the same bytes share them) and the requested size, method, output type and
  animation.

Every insert or delete of a row that points at a blob changes that blob's
``refcount`` in the same transaction, so deleting one media ID never removes bytes
another media ID or a thumbnail still uses. Methods that drop references return the
hashes whose count reached 0: their rows are gone, and the caller deletes the bytes
after the commit (see ``media_repo.repository``, which also re-checks under a lock).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import insert_if_absent, metadata

local_media = sa.Table(
    "local_media", metadata,
    sa.Column("media_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=True),
    sa.Column("upload_name", sa.Text, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("sha256", sa.Text, nullable=True),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Column("last_access_ts", sa.BigInteger, nullable=True),
    sa.Column("quarantined_by", sa.Text, nullable=True),
    sa.Column("unused_expires_ts", sa.BigInteger, nullable=True),
    # uploaded while enable_authenticated_media was on (Synapse's column and meaning)
    sa.Column("authenticated", sa.Boolean, nullable=False),
    # an admin protected it from bulk quarantine (Synapse's column; 0010_media_admin)
    sa.Column("safe_from_quarantine", sa.Boolean, nullable=False, default=False,
              server_default=sa.false()),
    sa.Index(None, "user_id", "created_ts"),
    sa.Index(None, "sha256"),
    sa.Index(None, "unused_expires_ts"),
    sa.Index(None, "last_access_ts"),
)

remote_media_cache = sa.Table(
    "remote_media_cache", metadata,
    sa.Column("origin", sa.Text, primary_key=True),
    sa.Column("media_id", sa.Text, primary_key=True),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=True),
    sa.Column("upload_name", sa.Text, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Column("last_access_ts", sa.BigInteger, nullable=True),
    sa.Column("quarantined_by", sa.Text, nullable=True),
    sa.Column("authenticated", sa.Boolean, nullable=False),
    sa.Index(None, "sha256"),
    sa.Index(None, "last_access_ts"),
)

media_blobs = sa.Table(
    "media_blobs", metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("refcount", sa.Integer, nullable=False),
)

media_thumbnails = sa.Table(
    "media_thumbnails", metadata,
    sa.Column("source_sha256", sa.Text, primary_key=True),
    sa.Column("width", sa.Integer, primary_key=True),
    sa.Column("height", sa.Integer, primary_key=True),
    sa.Column("method", sa.Text, primary_key=True),
    sa.Column("content_type", sa.Text, primary_key=True),
    sa.Column("animated", sa.Boolean, primary_key=True),
    sa.Column("thumbnail_sha256", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # what was made for the requested width x height (never upscaled: may be smaller)
    sa.Column("thumbnail_width", sa.Integer, nullable=False),
    sa.Column("thumbnail_height", sa.Integer, nullable=False),
)

_m, _r, _b, _t = local_media.c, remote_media_cache.c, media_blobs.c, media_thumbnails.c


@dataclasses.dataclass(frozen=True)
class LocalMedia:
    """A ``local_media`` row. ``sha256``/``size`` are None until its bytes arrive."""

    media_id: str
    user_id: str
    content_type: str | None
    upload_name: str | None
    size: int | None
    sha256: str | None
    created_ts: int
    last_access_ts: int | None
    quarantined_by: str | None
    unused_expires_ts: int | None
    authenticated: bool
    safe_from_quarantine: bool = False

    @property
    def uploaded(self) -> bool:
        return self.sha256 is not None


@dataclasses.dataclass(frozen=True)
class RemoteMedia:
    """A ``remote_media_cache`` row."""

    origin: str
    media_id: str
    sha256: str
    content_type: str | None
    upload_name: str | None
    size: int
    created_ts: int
    last_access_ts: int | None
    quarantined_by: str | None
    authenticated: bool


@dataclasses.dataclass(frozen=True)
class Thumbnail:
    """A ``media_thumbnails`` row: ``width``/``height`` as requested (the key),
    ``thumbnail_width``/``thumbnail_height`` as made."""

    source_sha256: str
    width: int
    height: int
    method: str
    content_type: str
    animated: bool
    thumbnail_sha256: str
    size: int
    thumbnail_width: int
    thumbnail_height: int


class CannotOverwrite(Exception):
    """The media ID has its bytes already (async upload's second PUT)."""


class Media:
    """The media repository's rows; see the module docstring for the refcount rule."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- local media ------------------------------------------------------------------
    async def create_pending(self, media_id: str, user_id: str, created_ts: int,
                             expires_ts: int, authenticated: bool) -> None:
        """A media ID with no bytes yet (``POST /_matrix/media/v1/create``)."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.insert(local_media).values(
                media_id=media_id, user_id=user_id, created_ts=created_ts,
                last_access_ts=created_ts, unused_expires_ts=expires_ts,
                authenticated=authenticated))

        await self._db.run(txn)

    async def pending_count(self, user_id: str, now_ms: int) -> tuple[int, int | None]:
        """How many unexpired empty media IDs ``user_id`` holds, and the earliest
        time one of them expires (None if there are none)."""
        def txn(conn: Connection) -> tuple[int, int | None]:
            row = conn.execute(sa.select(sa.func.count(), sa.func.min(_m.unused_expires_ts))
                               .where(_m.user_id == user_id, _m.sha256.is_(None),
                                      _m.unused_expires_ts > now_ms)).one()
            return int(row[0]), row[1]

        return await self._db.run(txn)

    async def add_uploaded(self, media: LocalMedia) -> None:
        """Insert a media ID together with its bytes' blob reference."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.insert(local_media).values(dataclasses.asdict(media)))
            _add_ref(conn, media.sha256, media.size)

        await self._db.run(txn)

    async def fill_pending(self, media_id: str, content_type: str, upload_name: str | None,
                           sha256: str, size: int) -> None:
        """Give an empty media ID its bytes; raises :class:`CannotOverwrite` if it
        has them already (or is gone: check :meth:`get_local` first for a 404)."""
        def txn(conn: Connection) -> None:
            done = conn.execute(sa.update(local_media).where(
                _m.media_id == media_id, _m.sha256.is_(None)).values(
                content_type=content_type, upload_name=upload_name, sha256=sha256,
                size=size, unused_expires_ts=None)).rowcount
            if done != 1:
                raise CannotOverwrite(media_id)
            _add_ref(conn, sha256, size)

        await self._db.run(txn)

    async def get_local(self, media_id: str) -> LocalMedia | None:
        def txn(conn: Connection) -> LocalMedia | None:
            row = conn.execute(sa.select(local_media).where(_m.media_id == media_id)).first()
            return None if row is None else LocalMedia(**row._mapping)

        return await self._db.run(txn)

    async def delete_local(self, media_id: str) -> list[str]:
        """Delete a media ID; returns the blobs (its own, and its thumbnails' if
        that was the last reference to its bytes) nothing references any more."""
        def txn(conn: Connection) -> list[str]:
            row = conn.execute(sa.select(_m.sha256).where(_m.media_id == media_id)).first()
            if row is None:
                return []
            conn.execute(sa.delete(local_media).where(_m.media_id == media_id))
            return [] if row.sha256 is None else _drop_ref(conn, row.sha256)

        return await self._db.run(txn)

    async def quarantine_local(self, media_id: str, by: str | None) -> bool:
        """Set (or with ``by=None`` lift) a media ID's quarantine; False if unknown."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.update(local_media).where(_m.media_id == media_id)
                                .values(quarantined_by=by)).rowcount == 1

        return await self._db.run(txn)

    async def expire_pending(self, now_ms: int) -> list[str]:
        """Delete empty media IDs whose ``unused_expires_ts`` passed; returns them."""
        def txn(conn: Connection) -> list[str]:
            gone = list(conn.execute(sa.select(_m.media_id).where(
                _m.sha256.is_(None), _m.unused_expires_ts <= now_ms)).scalars())
            if gone:
                conn.execute(sa.delete(local_media).where(
                    _m.media_id.in_(gone), _m.sha256.is_(None)))
            return gone

        return await self._db.run(txn)

    async def list_by_user(self, user_id: str, *, limit: int = 100,
                           before_ts: int | None = None) -> list[LocalMedia]:
        """A user's media IDs, newest first (``before_ts`` pages on)."""
        def txn(conn: Connection) -> list[LocalMedia]:
            q = sa.select(local_media).where(_m.user_id == user_id)
            if before_ts is not None:
                q = q.where(_m.created_ts < before_ts)
            q = q.order_by(_m.created_ts.desc(), _m.media_id).limit(limit)
            return [LocalMedia(**r._mapping) for r in conn.execute(q)]

        return await self._db.run(txn)

    async def usage_by_user(self, user_id: str) -> tuple[int, int]:
        """``(media IDs, bytes)`` a user uploaded; shared blobs count per media ID."""
        def txn(conn: Connection) -> tuple[int, int]:
            row = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(
                sa.func.sum(_m.size), 0)).where(_m.user_id == user_id)).one()
            return int(row[0]), int(row[1])

        return await self._db.run(txn)

    # -- remote media cache -------------------------------------------------------------
    async def add_remote(self, media: RemoteMedia) -> bool:
        """Cache a remote media item with its blob reference; False (and no new
        reference) if ``(origin, media_id)`` is cached already."""
        def txn(conn: Connection) -> bool:
            if not insert_if_absent(conn, remote_media_cache, dataclasses.asdict(media),
                                    ("origin", "media_id")):
                return False
            _add_ref(conn, media.sha256, media.size)
            return True

        return await self._db.run(txn)

    async def get_remote(self, origin: str, media_id: str) -> RemoteMedia | None:
        def txn(conn: Connection) -> RemoteMedia | None:
            row = conn.execute(sa.select(remote_media_cache).where(
                _r.origin == origin, _r.media_id == media_id)).first()
            return None if row is None else RemoteMedia(**row._mapping)

        return await self._db.run(txn)

    async def touch_remote(self, origin: str, media_id: str, now_ms: int) -> None:
        """Record a download of a cached remote item (retention reads
        ``last_access_ts``)."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.update(remote_media_cache).where(
                _r.origin == origin, _r.media_id == media_id).values(last_access_ts=now_ms))

        await self._db.run(txn)

    async def delete_remote(self, origin: str, media_id: str) -> list[str]:
        """Drop a cached remote item; returns blobs nothing references any more."""
        def txn(conn: Connection) -> list[str]:
            row = conn.execute(sa.select(_r.sha256).where(
                _r.origin == origin, _r.media_id == media_id)).first()
            if row is None:
                return []
            conn.execute(sa.delete(remote_media_cache).where(
                _r.origin == origin, _r.media_id == media_id))
            return _drop_ref(conn, row.sha256)

        return await self._db.run(txn)

    # -- thumbnails -----------------------------------------------------------------------
    async def thumbnails_of(self, source_sha256: str) -> list[Thumbnail]:
        def txn(conn: Connection) -> list[Thumbnail]:
            return [Thumbnail(**r._mapping) for r in conn.execute(
                sa.select(media_thumbnails).where(_t.source_sha256 == source_sha256))]

        return await self._db.run(txn)

    async def add_thumbnail(self, thumb: Thumbnail) -> bool:
        """Record a thumbnail with its blob reference; False if that key exists (or
        its source blob is no longer referenced: a thumbnail must not outlive it)."""
        def txn(conn: Connection) -> bool:
            source = conn.execute(sa.select(_b.refcount).where(
                _b.sha256 == thumb.source_sha256)).scalar()
            # a thumbnail identical to its source would keep that blob alive forever
            if not source or thumb.thumbnail_sha256 == thumb.source_sha256:
                return False
            if not insert_if_absent(conn, media_thumbnails, dataclasses.asdict(thumb),
                                    ("source_sha256", "width", "height", "method",
                                     "content_type", "animated")):
                return False
            _add_ref(conn, thumb.thumbnail_sha256, thumb.size)
            return True

        return await self._db.run(txn)

    # -- blobs ------------------------------------------------------------------------------
    async def referenced(self, sha256s: list[str]) -> set[str]:
        """Which of these blobs some row references (refcount above zero)."""
        def txn(conn: Connection) -> set[str]:
            return set(conn.execute(sa.select(_b.sha256).where(
                _b.sha256.in_(sha256s), _b.refcount > 0)).scalars())

        return await self._db.run(txn)

    async def blob_refcount(self, sha256: str) -> int:
        """How many rows reference the blob (0 if it has no row)."""
        def txn(conn: Connection) -> int:
            return int(conn.execute(sa.select(_b.refcount).where(
                _b.sha256 == sha256)).scalar() or 0)

        return await self._db.run(txn)


def _add_ref(conn: Connection, sha256: str | None, size: int | None) -> None:
    assert sha256 is not None and size is not None
    insert_if_absent(conn, media_blobs, {"sha256": sha256, "size": size, "refcount": 0},
                     ("sha256",))
    conn.execute(sa.update(media_blobs).where(_b.sha256 == sha256)
                 .values(refcount=_b.refcount + 1))


def _drop_ref(conn: Connection, sha256: str) -> list[str]:
    """One reference fewer; a blob left with none loses its row and, if it was a
    thumbnail source, its thumbnails (whose own blobs may be freed in turn)."""
    conn.execute(sa.update(media_blobs).where(_b.sha256 == sha256)
                 .values(refcount=_b.refcount - 1))
    left = conn.execute(sa.select(_b.refcount).where(_b.sha256 == sha256)).scalar()
    if left is not None and left > 0:
        return []
    conn.execute(sa.delete(media_blobs).where(_b.sha256 == sha256))
    freed = [sha256]
    thumbs = list(conn.execute(sa.select(_t.thumbnail_sha256).where(
        _t.source_sha256 == sha256)).scalars())
    if thumbs:
        conn.execute(sa.delete(media_thumbnails).where(_t.source_sha256 == sha256))
        for thumb_sha in _unique(thumbs):
            for _ in range(thumbs.count(thumb_sha)):
                freed.extend(s for s in _drop_ref(conn, thumb_sha) if s not in freed)
    return freed


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
