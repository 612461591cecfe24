"""Media upload memory: does a big upload sit whole in the server's memory?

    python -m bench.media_upload_memory [--mb 20] [--uploads 5]

Starts the real service tree in this process on a free loopback port, then uploads
``--uploads`` bodies of ``--mb`` MiB (with Content-Length, then chunked) and downloads
each back, printing the process's peak RSS before and after. The client streams its
bodies from a temp file, so growth is the server's. Streaming shows as growth well
under one body per concurrent upload; no assertions, numbers only (peak RSS is coarse
and the allocator keeps what it freed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile

from twisted.internet import defer, task


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(reactor, mb: int, uploads: int) -> None:
    from treq.client import HTTPClient
    from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
    from twisted.web.iweb import UNKNOWN_LENGTH

    from homeserver.app import build_service
    from tests.client_api.harness import test_config
    from tests.e2e.harness import free_port

    data_dir = tempfile.mkdtemp(prefix="bench-media-")
    port = free_port()
    hs = build_service(test_config(data_dir, port, max_upload_size=f"{mb + 1}M"), reactor)
    hs.startService()
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    base = f"http://127.0.0.1:{port}"
    resp = await http.post(base + "/_matrix/client/v3/register", json.dumps({
        "username": "bench", "password": "pw-bench-123",
        "auth": {"type": "m.login.dummy"}}).encode())
    token = json.loads(await resp.content())["access_token"]
    auth = {"Authorization": [f"Bearer {token}"]}

    body_path = os.path.join(data_dir, "body")
    with open(body_path, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1024 * 1024))
    print(f"peak RSS before: {peak_rss_mb():.0f} MiB")
    for i in range(uploads):
        with open(body_path, "rb") as f:
            producer = FileBodyProducer(f)
            if i % 2:
                producer.length = UNKNOWN_LENGTH  # chunked
            resp = await http.post(base + "/_matrix/media/v3/upload", data=producer,
                                   headers=auth)
            uri = json.loads(await resp.content())["content_uri"]
        resp = await http.get(base + "/_matrix/client/v1/media/download/"
                              + uri[len("mxc://"):], headers=auth)
        digest = hashlib.sha256()
        await resp.collect(digest.update)
        print(f"upload {i + 1} ({'chunked' if i % 2 else 'Content-Length'}): "
              f"peak RSS {peak_rss_mb():.0f} MiB")
    await hs.stopService()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--uploads", type=int, default=5)
    args = parser.parse_args()
    task.react(lambda r: defer.ensureDeferred(run(r, args.mb, args.uploads)))


if __name__ == "__main__":
    main()
