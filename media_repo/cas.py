"""Content-addressed blob storage for the media repository (DESIGN.md §6).

A blob is named by the SHA-256 of its bytes, so the same bytes are stored once however
often they are uploaded. Media IDs (``homeserver.store.media``) map to blobs; this
module knows nothing of media IDs, reference counts or HTTP.

:class:`BlobStore` is the whole interface the media repository uses, so another backend
(an S3-compatible bucket, say) can be added without touching the servlets.
:class:`LocalBlobStore` keeps blobs on the local file system::

    root/blobs/ab/cd/abcd…(64 hex digits)
    root/tmp/<random>            (a write in progress; swept at start)

A write streams its source in 64 KiB chunks into a temp file under ``root/tmp`` (the
same file system as the blobs, so the final rename is atomic), hashing as it goes;
then fsync, ``os.replace`` to the blob's name and fsync of the directory. A process
killed mid-write leaves only a temp file, never a half blob under its final name.

Writing is two-phase (:meth:`BlobStore.stage`, then :meth:`BlobStore.commit`) so that
the caller learns the hash before the blob becomes visible and can hold a lock on it
across "commit the bytes, then count a reference in the database" (see
``media_repo.repository``). Every method that touches the disk runs through the
``run_in_thread`` callable the store was built with, so blocking I/O stays off the
reactor thread; this module itself never imports twisted.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import secrets
from typing import Any, Awaitable, BinaryIO, Callable, Protocol, TypeVar

CHUNK_SIZE = 64 * 1024

_SHA256_RE = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T")
#: runs a blocking function elsewhere (e.g. ``deferToThreadPool``) and returns an awaitable
RunInThread = Callable[..., Awaitable[Any]]


class BlobTooLarge(Exception):
    """The source had more bytes than the caller's ``max_size``."""


class BlobMissing(Exception):
    """No blob with that hash is stored."""


@dataclasses.dataclass(frozen=True)
class StagedBlob:
    """Bytes written and hashed but not yet visible under their hash."""

    sha256: str
    size: int
    #: backend-specific handle (the temp file's path for :class:`LocalBlobStore`)
    handle: Any = dataclasses.field(repr=False)


class BlobStore(Protocol):
    """Where the media repository keeps bytes, addressed by their SHA-256 (hex)."""

    async def stage(self, source: BinaryIO, *, max_size: int | None = None) -> StagedBlob:
        """Read ``source`` to its end into a staging area, hashing it; raises
        :class:`BlobTooLarge` (and keeps nothing) past ``max_size`` bytes."""

    async def commit(self, staged: StagedBlob) -> None:
        """Make a staged blob readable under its hash (a no-op for bytes already
        stored, whose staged copy is dropped)."""

    async def discard(self, staged: StagedBlob) -> None:
        """Drop a staged blob that will not be committed."""

    async def write(self, source: BinaryIO, *,
                    max_size: int | None = None) -> tuple[str, int]:
        """Stage and commit in one go; returns ``(sha256, size)``."""

    async def open(self, sha256: str) -> BinaryIO:
        """A binary file object positioned at the blob's start; raises
        :class:`BlobMissing`. The caller closes it."""

    async def size(self, sha256: str) -> int:
        """The blob's size in bytes; raises :class:`BlobMissing`."""

    async def exists(self, sha256: str) -> bool:
        """Whether a blob with this hash is stored."""

    async def delete(self, sha256: str) -> None:
        """Remove the blob (a no-op if it is not there)."""

    async def stored_before(self, cutoff_s: float) -> list[str]:
        """The hashes of blobs stored before ``cutoff_s`` (Unix seconds): the
        candidates of the orphan sweep (:meth:`MediaRepository.sweep_orphans`)."""


def is_sha256_hex(value: str) -> bool:
    """Whether ``value`` is a lowercase hex SHA-256 (the only names blobs have)."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


async def _run_inline(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


class LocalBlobStore:
    """:class:`BlobStore` on a local directory (``media_store_path``)."""

    def __init__(self, root: str, run_in_thread: RunInThread | None = None) -> None:
        self.root = root
        self._blobs = os.path.join(root, "blobs")
        self._tmp = os.path.join(root, "tmp")
        # Without a thread runner the methods block their caller: fine for tests and
        # scripts, never for the reactor thread (the composition root passes a pool).
        self._run = run_in_thread or _run_inline

    # -- lifecycle ----------------------------------------------------------------
    def prepare(self) -> int:
        """Create the directories and sweep temp files left by a killed process;
        returns how many were removed. Blocking: call once at start, before any
        write, from a thread (or before the reactor runs)."""
        os.makedirs(self._blobs, exist_ok=True)
        os.makedirs(self._tmp, exist_ok=True)
        swept = 0
        for name in os.listdir(self._tmp):
            try:
                os.unlink(os.path.join(self._tmp, name))
                swept += 1
            except FileNotFoundError:
                pass
        return swept

    def path_for(self, sha256: str) -> str:
        """The file a blob lives in: ``root/blobs/ab/cd/<sha256>``."""
        if not is_sha256_hex(sha256):
            raise BlobMissing(sha256)
        return os.path.join(self._blobs, sha256[:2], sha256[2:4], sha256)

    # -- BlobStore ----------------------------------------------------------------
    async def stage(self, source: BinaryIO, *, max_size: int | None = None) -> StagedBlob:
        return await self._run(self._stage_sync, source, max_size)

    async def commit(self, staged: StagedBlob) -> None:
        await self._run(self._commit_sync, staged)

    async def discard(self, staged: StagedBlob) -> None:
        await self._run(_unlink_quietly, staged.handle)

    async def write(self, source: BinaryIO, *,
                    max_size: int | None = None) -> tuple[str, int]:
        staged = await self.stage(source, max_size=max_size)
        await self.commit(staged)
        return staged.sha256, staged.size

    async def open(self, sha256: str) -> BinaryIO:
        return await self._run(self._open_sync, sha256)

    async def size(self, sha256: str) -> int:
        return await self._run(self._size_sync, sha256)

    async def exists(self, sha256: str) -> bool:
        return await self._run(lambda: is_sha256_hex(sha256)
                               and os.path.exists(self.path_for(sha256)))

    async def delete(self, sha256: str) -> None:
        await self._run(self._delete_sync, sha256)

    async def stored_before(self, cutoff_s: float) -> list[str]:
        return await self._run(self._stored_before_sync, cutoff_s)

    def _stored_before_sync(self, cutoff_s: float) -> list[str]:
        found = []
        for directory, _dirs, names in os.walk(self._blobs):
            for name in names:
                if not is_sha256_hex(name):
                    continue
                try:
                    if os.stat(os.path.join(directory, name)).st_mtime < cutoff_s:
                        found.append(name)
                except FileNotFoundError:
                    pass
        return found

    # -- the blocking halves --------------------------------------------------------
    def _stage_sync(self, source: BinaryIO, max_size: int | None) -> StagedBlob:
        os.makedirs(self._tmp, exist_ok=True)
        temp = os.path.join(self._tmp, secrets.token_hex(16))
        digest = hashlib.sha256()
        size = 0
        try:
            with open(temp, "xb") as out:
                while True:
                    chunk = source.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise BlobTooLarge(f"more than {max_size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            _unlink_quietly(temp)
            raise
        return StagedBlob(digest.hexdigest(), size, temp)

    def _commit_sync(self, staged: StagedBlob) -> None:
        final = self.path_for(staged.sha256)
        if os.path.exists(final):
            # the same bytes are stored already: one copy however often uploaded
            _unlink_quietly(staged.handle)
            return
        directory = os.path.dirname(final)
        os.makedirs(directory, exist_ok=True)
        os.replace(staged.handle, final)
        _fsync_dir(directory)

    def _open_sync(self, sha256: str) -> BinaryIO:
        try:
            return open(self.path_for(sha256), "rb")
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    def _size_sync(self, sha256: str) -> int:
        try:
            return os.stat(self.path_for(sha256)).st_size
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    def _delete_sync(self, sha256: str) -> None:
        if not is_sha256_hex(sha256):
            return
        path = self.path_for(sha256)
        _unlink_quietly(path)
        _fsync_dir(os.path.dirname(path))


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(directory: str) -> None:
    """Make a rename or unlink in ``directory`` durable (POSIX needs the directory's
    own fsync for that)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems refuse fsync on directories
        if e.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
