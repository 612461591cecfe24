"""In-process servlet tests of federation endpoints: requests signed by a made-up
``remote.example`` whose key is in our key cache (so nothing is fetched)."""

from __future__ import annotations

import json

from federation import xmatrix
from homeserver.crypto.signing import SigningKey, sign_json
from homeserver.store.server_keys import ServerKey

REMOTE = SigningKey.from_seed("r1", b"\x05" * 32)
FAR = 2 ** 50


class SignedRequests:
    """Mixin for a ServerTestCase: ``await self.signed(method, path, body)``."""

    # never ask matrix.org about the made-up servers
    config_overrides = {"trusted_key_servers": []}

    def setUp(self):
        super().setUp()
        body = sign_json({"server_name": "remote.example", "valid_until_ts": FAR,
                          "verify_keys": {REMOTE.key_id: {"key": REMOTE.verify_key_base64}},
                          "old_verify_keys": {}}, "remote.example", REMOTE)
        self.remote_key_json = json.dumps(body).encode()
        return self.c["store"].server_keys.store_server_keys([ServerKey(
            "remote.example", REMOTE.key_id, REMOTE.verify_key_base64, FAR, None,
            self.remote_key_json)])

    async def signed(self, method, path, body=None, *, key=REMOTE, origin="remote.example",
                     destination="test.local", sent_body=None):
        [header] = xmatrix.sign_request([key], method=method, uri=path, origin=origin,
                                        destination=destination, content=body)
        return await self.request(method, path, sent_body if sent_body is not None else body,
                                  headers={"Authorization": header})
