"""A real Synapse and our real server on loopback, federating over TLS.

``Federation.get()`` starts, once per test process, both servers and returns them:

- Synapse through ``../shared/anchors/synapse.sh`` (installed into
  ``$SYNAPSE_ANCHOR_HOME``, default ``~/.cache/synapse-anchor``), named
  ``localhost:<port>`` with a TLS federation listener on that port and a plain HTTP
  client listener, trusting the anchor's loopback CA; its instance directory is a
  fresh temporary one, so parallel runs and other users of the anchor do not collide;
- our server (``tests.e2e.harness.ServerProcess``) named ``localhost:<port>`` with a
  TLS listener on that port (a certificate for localhost signed by the same CA),
  ``federation_custom_ca_list: [ca.crt]`` and loopback allowed by the SSRF filter.

Both are stopped when the process exits. If Synapse cannot be installed (no network)
``Federation.get()`` raises ``SkipTest`` saying so; any other failure is an error.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import SkipTest

from tests.e2e.harness import ROOT, ServerProcess, free_port

SYNAPSE_SH = os.path.normpath(os.path.join(ROOT, "..", "shared", "anchors", "synapse.sh"))
ANCHOR_HOME = os.environ.get("SYNAPSE_ANCHOR_HOME",
                             os.path.expanduser("~/.cache/synapse-anchor"))
LOOPBACK = ["127.0.0.0/8", "::1/128"]
#: where the third-party-invite suite runs its fake identity server, which our server
#: trusts (``trusted_third_party_id_servers``; tests/interop/test_third_party_invites.py)
IDENTITY_PORT = free_port()

log = Logger()


def make_cert(ca_dir: str, out_dir: str) -> tuple[str, str]:
    """A key and a certificate for localhost/127.0.0.1/::1 signed by the loopback CA."""
    key, crt = os.path.join(out_dir, "tls.key"), os.path.join(out_dir, "tls.crt")
    csr, ext = os.path.join(out_dir, "tls.csr"), os.path.join(out_dir, "tls.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                    os.path.join(ca_dir, "ca.crt"), "-CAkey", os.path.join(ca_dir, "ca.key"),
                    "-CAcreateserial", "-CAserial", os.path.join(out_dir, "ca.srl"),
                    "-days", "30", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    return key, crt


def our_federating_server(ca_path: str, cert_dir: str,
                          data_dir: str | None = None) -> tuple[ServerProcess, int]:
    """Our server (not started) named ``localhost:<fed port>``: a plain client+federation
    listener on ``.port`` and a TLS federation listener on the returned port, with a
    certificate from the CA at ``ca_path`` (its key beside it), trusting that CA, and
    loopback allowed by the SSRF filter."""
    import yaml

    fed_port = free_port()
    key, crt = make_cert(os.path.dirname(ca_path), cert_dir)
    server = ServerProcess(server_name=f"localhost:{fed_port}", data_dir=data_dir, overrides={
        "tls_certificate_path": crt,
        "tls_private_key_path": key,
        "federation_custom_ca_list": [ca_path],
        "ip_range_whitelist": LOOPBACK,
        "trusted_key_servers": [],
        "trusted_third_party_id_servers": [f"http://127.0.0.1:{IDENTITY_PORT}"],
    })
    with open(server.override_path) as f:
        overrides = yaml.safe_load(f)
    overrides["listeners"] = [
        {"port": server.port, "bind_addresses": ["127.0.0.1"], "type": "http",
         "resources": [{"names": ["client", "federation"]}]},
        {"port": fed_port, "bind_addresses": ["127.0.0.1"], "type": "http",
         "tls": True, "resources": [{"names": ["federation"]}]},
    ]
    with open(server.override_path, "w") as f:
        yaml.safe_dump(overrides, f)
    return server, fed_port


class Synapse:
    """One Synapse instance driven through synapse.sh."""

    def __init__(self) -> None:
        self.fed_port = free_port()
        self.http_port = free_port()
        self.server_name = f"localhost:{self.fed_port}"
        self.dir = tempfile.mkdtemp(prefix="synapse-interop-")
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.env = dict(os.environ, SYNAPSE_ANCHOR_HOME=ANCHOR_HOME, SYN_NAME=self.server_name,
                        SYN_PORT=str(self.http_port), SYN_FED_TLS_PORT=str(self.fed_port),
                        SYN_VERIFY_TLS="1", SYN_DIR=self.dir,
                        SYN_EXTRA_CONFIG=self._extra_config())
        self.start_seconds: float | None = None

    def _extra_config(self) -> str:
        """Synapse settings the interop tests need beyond synapse.sh's defaults."""
        path = os.path.join(self.dir, "interop.yaml")
        with open(path, "w") as f:
            # queries lane: Synapse lets nobody publish rooms by default, and keeps its
            # room directory from other servers
            f.write("allow_public_rooms_over_federation: true\n"
                    "room_list_publication_rules: [{action: allow}]\n")
        return path

    def sh(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["bash", SYNAPSE_SH, *args], env=self.env, capture_output=True,
                              text=True, timeout=600)
        if check and done.returncode != 0:
            raise RuntimeError(f"synapse.sh {' '.join(args)} failed: "
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout

    def install(self) -> None:
        try:
            self.sh("install")
        except RuntimeError as e:
            raise SkipTest(f"Synapse could not be installed (network?): {e}") from None

    def ca(self) -> str:
        return self.sh("ca").strip().splitlines()[-1]

    def start(self) -> None:
        began = time.monotonic()
        self.sh("start")
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        self.sh("stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def register(self, user: str, password: str) -> None:
        self.sh("register", user, password)

    def signing_key_path(self) -> str:
        return os.path.join(self.dir, f"{self.server_name}.signing.key")

    def request(self, method: str, path: str, body: Any = None,
                token: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                return e.code, json.loads(payload)
            except ValueError:
                return e.code, payload

    def login(self, user: str, password: str) -> str:
        status, body = self.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password})
        if status != 200:
            raise RuntimeError(f"Synapse login failed: {status} {body}")
        return body["access_token"]


class Federation:
    """Synapse + our server, federating (module docstring)."""

    _instance: "Federation | None" = None
    _failure: BaseException | None = None

    def __init__(self) -> None:
        self.synapse = Synapse()
        self.ours: ServerProcess | None = None
        self.cert_dir: str | None = None
        self.synapse.install()
        atexit.register(self.stop)  # whatever got started, even if a later step fails
        self.ca_path = self.synapse.ca()
        self.ca_dir = os.path.dirname(self.ca_path)
        self.cert_dir = tempfile.mkdtemp(prefix="roomserver-interop-tls-")
        self.ours, self.our_fed_port = our_federating_server(self.ca_path, self.cert_dir)
        self.our_name = self.ours.server_name
        self.synapse.start()
        began = time.monotonic()
        self.ours.start()
        log.info("interop: Synapse started in {syn:.1f}s, ours in {ours:.1f}s",
                 syn=self.synapse.start_seconds, ours=time.monotonic() - began)

    def signing_keys_path(self) -> str:
        assert self.ours is not None
        [name] = [n for n in os.listdir(self.ours.data_dir) if n.endswith(".signing.key")]
        return os.path.join(self.ours.data_dir, name)

    def stop(self) -> None:
        if self.ours is not None:
            self.ours.stop()
            shutil.rmtree(self.ours.data_dir, ignore_errors=True)
        self.synapse.stop()
        if self.cert_dir is not None:
            shutil.rmtree(self.cert_dir, ignore_errors=True)

    @classmethod
    def get(cls) -> "Federation":
        """The running pair, started on first use (a failed start is not retried)."""
        if cls._failure is not None:
            raise cls._failure
        if cls._instance is None:
            try:
                cls._instance = cls()
            except BaseException as e:
                cls._failure = e
                raise
        return cls._instance
