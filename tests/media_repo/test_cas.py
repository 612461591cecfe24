"""The content-addressed blob store (media_repo.cas) on a temp directory, inline."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile

from twisted.trial import unittest

from media_repo.cas import BlobMissing, BlobTooLarge, LocalBlobStore, is_sha256_hex


class LocalBlobStoreTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="cas-test-")
        self.store = LocalBlobStore(self.root)
        self.store.prepare()

    def blob_files(self) -> list[str]:
        out = []
        for dirpath, _, names in os.walk(os.path.join(self.root, "blobs")):
            out.extend(os.path.join(dirpath, n) for n in names)
        return out

    def temp_files(self) -> list[str]:
        return os.listdir(os.path.join(self.root, "tmp"))

    async def test_write_names_by_hash(self) -> None:
        """A blob is stored at blobs/ab/cd/<sha256> with its exact bytes and size."""
        data = os.urandom(200_000)
        sha, size = await self.store.write(io.BytesIO(data))
        self.assertEqual((sha, size), (hashlib.sha256(data).hexdigest(), len(data)))
        path = os.path.join(self.root, "blobs", sha[:2], sha[2:4], sha)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(await self.store.size(sha), len(data))
        self.assertTrue(await self.store.exists(sha))
        f = await self.store.open(sha)
        with f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), sha)
        self.assertEqual(self.temp_files(), [])

    async def test_dedup(self) -> None:
        """The same bytes written 100 times leave one blob file and no temp files."""
        data = b"the same bytes" * 1000
        shas = {(await self.store.write(io.BytesIO(data)))[0] for _ in range(100)}
        self.assertEqual(len(shas), 1)
        self.assertEqual(len(self.blob_files()), 1)
        self.assertEqual(self.temp_files(), [])

    async def test_too_large_keeps_nothing(self) -> None:
        """A source past max_size raises BlobTooLarge and leaves no file behind."""
        with self.assertRaises(BlobTooLarge):
            await self.store.write(io.BytesIO(b"x" * 1001), max_size=1000)
        self.assertEqual((self.blob_files(), self.temp_files()), ([], []))
        sha, size = await self.store.write(io.BytesIO(b"x" * 1000), max_size=1000)
        self.assertEqual(size, 1000)

    async def test_staged_is_invisible_until_commit(self) -> None:
        """A staged blob is not readable under its hash until committed; a discarded
        one leaves nothing."""
        staged = await self.store.stage(io.BytesIO(b"staged"))
        self.assertFalse(await self.store.exists(staged.sha256))
        await self.store.commit(staged)
        self.assertTrue(await self.store.exists(staged.sha256))
        other = await self.store.stage(io.BytesIO(b"dropped"))
        await self.store.discard(other)
        self.assertFalse(await self.store.exists(other.sha256))
        self.assertEqual(self.temp_files(), [])

    async def test_delete_and_missing(self) -> None:
        """A deleted blob is gone; opening or sizing a missing one raises BlobMissing;
        names that are not hashes never reach the file system."""
        sha, _ = await self.store.write(io.BytesIO(b"bye"))
        await self.store.delete(sha)
        await self.store.delete(sha)  # idempotent
        self.assertFalse(await self.store.exists(sha))
        with self.assertRaises(BlobMissing):
            await self.store.open(sha)
        with self.assertRaises(BlobMissing):
            await self.store.size(sha)
        for bad in ("../../etc/passwd", "ABCDEF" * 10 + "abcd", ""):
            self.assertFalse(is_sha256_hex(bad))
            self.assertFalse(await self.store.exists(bad))
            with self.assertRaises(BlobMissing):
                await self.store.open(bad)

    def test_prepare_sweeps_temp_files(self) -> None:
        """Temp files left by a killed write are removed at start; blobs stay."""
        with open(os.path.join(self.root, "tmp", "half-written"), "wb") as f:
            f.write(b"partial")
        self.assertEqual(LocalBlobStore(self.root).prepare(), 1)
        self.assertEqual(self.temp_files(), [])

    async def test_failed_read_leaves_no_temp(self) -> None:
        """A source that fails mid-read (a killed upload) leaves no temp file and no
        blob."""
        class Broken(io.BytesIO):
            def read(self, n: int = -1) -> bytes:
                if self.tell() > 100_000:
                    raise OSError("connection lost")
                return super().read(n)

        with self.assertRaises(OSError):
            await self.store.write(Broken(os.urandom(500_000)))
        self.assertEqual((self.blob_files(), self.temp_files()), ([], []))


_CHILD = r"""
import io, sys, time
from media_repo.cas import LocalBlobStore

class Slow(io.RawIOBase):
    sent = 0
    def readable(self): return True
    def read(self, n=-1):
        if self.sent >= 1_000_000:
            print("halfway", flush=True)
            time.sleep(60)
        self.sent += 65536
        return b"k" * 65536

store = LocalBlobStore(sys.argv[1])
store.prepare()
store._stage_sync(Slow(), None)
"""


class KillTests(unittest.TestCase):
    def test_kill_mid_write(self) -> None:
        """A process killed (SIGKILL) mid-write leaves no blob visible, only a temp
        file, which the next start sweeps."""
        import signal
        import subprocess
        import sys

        root = tempfile.mkdtemp(prefix="cas-kill-")
        child = subprocess.Popen([sys.executable, "-c", _CHILD, root],
                                 stdout=subprocess.PIPE,
                                 cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                     os.path.abspath(__file__)))))
        try:
            self.assertEqual(child.stdout.readline().strip(), b"halfway")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        blobs = [n for _, _, names in os.walk(os.path.join(root, "blobs")) for n in names]
        self.assertEqual(blobs, [])
        self.assertEqual(len(os.listdir(os.path.join(root, "tmp"))), 1)
        self.assertEqual(LocalBlobStore(root).prepare(), 1)
        self.assertEqual(os.listdir(os.path.join(root, "tmp")), [])
