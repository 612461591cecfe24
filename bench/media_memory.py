"""How much a 100 MB upload and its download grow the server's RSS (issue 13: uploads and
downloads stream through files and never hold a whole file in memory; goal < 10 MB).

    .venv/bin/python -m bench.media_memory

Starts this server with its defaults except ``max_upload_size: 200M`` (the default, 50M,
would refuse the file) and rate limits off, sends 100 MB with chunked transfer encoding
(no Content-Length, the case twisted.web would otherwise buffer in memory) and once more
with a Content-Length, downloads it, and prints RSS after each step. Ours only: it
measures a property of this server, not a comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import aiohttp

from bench.client import Client
from bench.servers import OurServer

SIZE = 100 * 1024 * 1024
CHUNK = 1024 * 1024


async def _chunks(seed: bytes):
    block = hashlib.sha256(seed).digest() * (CHUNK // 32)
    for i in range(SIZE // CHUNK):
        yield block[i % 32:] + block[:i % 32]


async def main_async() -> None:
    server = OurServer(extra={"max_upload_size": "200M"})
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, server.url)
            await client.register("memory")
            # warm up: one small upload/download so imports and pools are in place
            mxc = await client.upload(os.urandom(1000), "application/octet-stream", "w")
            await client.media_get("download/" + mxc[len("mxc://"):])
            base = server.rss_kb()
            print(f"RSS before: {base / 1024:.1f} MB  (defaults + max_upload_size: 200M)")
            headers = {"Authorization": f"Bearer {client.token}",
                       "Content-Type": "application/octet-stream"}
            async with session.post(server.url + "/_matrix/media/v3/upload",
                                    data=_chunks(b"a"), headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                chunked = (await resp.json())["content_uri"]
            print(f"after 100 MB chunked upload:        +{(server.rss_kb() - base) / 1024:.1f} MB")
            body = b"".join([c async for c in _chunks(b"b")])
            async with session.post(server.url + "/_matrix/media/v3/upload", data=body,
                                    headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            del body
            print(f"after 100 MB Content-Length upload: +{(server.rss_kb() - base) / 1024:.1f} MB")
            got = 0
            async with session.get(
                    server.url + "/_matrix/client/v1/media/download/" + chunked[len("mxc://"):],
                    headers={"Authorization": f"Bearer {client.token}"}) as resp:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    got += len(chunk)
            assert got == SIZE, got
            print(f"after 100 MB download:              +{(server.rss_kb() - base) / 1024:.1f} MB")
    finally:
        server.cleanup()


if __name__ == "__main__":
    asyncio.run(main_async())
