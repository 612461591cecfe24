"""A tiny identity server on a loopback port, speaking the v2 API our third-party
invites use (``/hash_details``, ``/lookup``, ``/store-invite``), and the identity
server's side of a binding: ``bind()`` signs each stored invite for the new owner and
calls the owner's homeserver at ``/_matrix/federation/v1/3pid/onbind``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twisted.internet import reactor
from twisted.web import resource, server

from homeserver.crypto.signing import SigningKey, sign_json
from homeserver.http.identity_servers import hashed_address

NAME = "identity.test"
PEPPER = "matrixrocks"


class _Endpoint(resource.Resource):
    isLeaf = True

    def __init__(self, fake: "FakeIdentityServer") -> None:
        super().__init__()
        self.fake = fake

    def render(self, request) -> bytes:
        path = request.path.decode()
        auth = request.getHeader("Authorization")
        body = request.content.read()
        payload = json.loads(body) if body else None
        self.fake.requests.append((request.method.decode(), path, auth, payload))
        status, answer = self.fake.answer(request.method.decode(), path, payload)
        request.setResponseCode(status)
        request.setHeader("Content-Type", "application/json")
        return json.dumps(answer).encode()


def _handler_for(fake: "FakeIdentityServer") -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            payload = json.loads(body) if body else None
            path = self.path.split("?", 1)[0]
            fake.requests.append((self.command, path, self.headers.get("Authorization"),
                                  payload))
            status, answer = fake.answer(self.command, path, payload)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class FakeIdentityServer:
    """Serves on the trial reactor (``port`` 0: any free one), or with
    ``threaded=True`` from a thread of its own, for tests that block the reactor
    (the interop suites' blocking clients)."""

    def __init__(self, key: SigningKey | None = None, *, port: int = 0,
                 threaded: bool = False) -> None:
        self.key = key or SigningKey.from_seed("0", b"\x07" * 32)
        #: address → bound mxid (what /lookup answers)
        self.bindings: dict[str, str] = {}
        #: stored invites: address → list of store-invite requests (+ token)
        self.stored: dict[str, list[dict[str, Any]]] = {}
        #: (method, path, Authorization header, JSON body) of every request
        self.requests: list[tuple[str, str, str | None, Any]] = []
        if threaded:
            self._http = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
            port = self._http.server_address[1]
        else:
            self._port = reactor.listenTCP(port, server.Site(_Endpoint(self)),
                                           interface="127.0.0.1")
            port = self._port.getHost().port
        self.base_url = f"http://127.0.0.1:{port}"
        #: what our server's config calls it (``id_server`` in the client's request)
        self.id_server = f"127.0.0.1:{port}"

    def stop(self):
        if hasattr(self, "_http"):
            self._http.shutdown()
            self._http.server_close()
            return None
        return self._port.stopListening()

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/_matrix/identity/v2/hash_details"):
            return 200, {"lookup_pepper": PEPPER, "algorithms": ["none", "sha256"]}
        if (method, path) == ("POST", "/_matrix/identity/v2/lookup"):
            if body.get("algorithm") != "sha256" or body.get("pepper") != PEPPER:
                return 400, {"errcode": "M_INVALID_PEPPER", "error": "wrong pepper"}
            hashes = {hashed_address(a, "email", PEPPER): m for a, m in self.bindings.items()}
            return 200, {"mappings": {h: hashes[h] for h in body["addresses"]
                                      if h in hashes}}
        if (method, path) == ("POST", "/_matrix/identity/v2/store-invite"):
            token = f"tok{sum(len(v) for v in self.stored.values())}"
            self.stored.setdefault(body["address"], []).append({**body, "token": token})
            return 200, {"token": token, "display_name": body["address"][:3] + "...",
                         "public_keys": [{
                             "public_key": self.key.verify_key_base64,
                             "key_validity_url": self.base_url +
                             "/_matrix/identity/v2/pubkey/isvalid"}]}
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "not here"}

    def onbind_body(self, address: str, mxid: str, *, key: SigningKey | None = None
                    ) -> dict[str, Any]:
        """The /3pid/onbind request for ``address`` now bound to ``mxid``: each stored
        invite signed with ``key`` (default: ours, whose public half was handed out)."""
        self.bindings[address] = mxid
        invites = []
        for stored in self.stored.get(address, []):
            signed = sign_json({"mxid": mxid, "token": stored["token"]}, NAME,
                               key or self.key)
            invites.append({"medium": "email", "address": address, "mxid": mxid,
                            "room_id": stored["room_id"], "sender": stored["sender"],
                            "signed": signed})
        return {"medium": "email", "address": address, "mxid": mxid, "invites": invites}
