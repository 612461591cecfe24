"""Two instances of our server on loopback, federating over TLS (issue 14: "the same
suite passes with two instances of this server").

``OurPair.get()`` starts, once per test process, servers A and B, each named
``localhost:<its TLS port>``, each with a certificate for localhost signed by one
throw-away loopback CA made here with openssl (so no Synapse is needed), each
trusting that CA (``federation_custom_ca_list``) and allowing loopback
(``ip_range_whitelist``). Both are stopped and their directories removed when the
process exits. ``restart_b()``/``stop_b()`` keep B's data directory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SkipTest

from tests.e2e.harness import ServerProcess
from tests.interop.synapse import our_federating_server


def make_ca(out_dir: str) -> str:
    """A self-signed CA (``ca.key`` + ``ca.crt`` in ``out_dir``); the certificate's path."""
    key, crt = os.path.join(out_dir, "ca.key"), os.path.join(out_dir, "ca.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=roomserver interop test CA", "-keyout", key, "-out", crt,
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    return crt


class OurPair:
    """Servers ``a`` and ``b`` (``ServerProcess``), federating (module docstring)."""

    _instance: "OurPair | None" = None
    _failure: BaseException | None = None

    def __init__(self) -> None:
        if shutil.which("openssl") is None:
            raise SkipTest("openssl is needed to make the loopback CA")
        self.dir = tempfile.mkdtemp(prefix="roomserver-pair-")
        self.a: ServerProcess | None = None
        self.b: ServerProcess | None = None
        atexit.register(self.stop)
        self.ca_path = make_ca(self.dir)
        servers = []
        for label in ("a", "b"):
            cert_dir = os.path.join(self.dir, label)
            os.mkdir(cert_dir)
            server, _port = our_federating_server(self.ca_path, cert_dir)
            servers.append(server)
        self.a, self.b = servers
        self.a.start()
        self.b.start()

    def stop_b(self) -> None:
        assert self.b is not None
        self.b.stop()

    def start_b(self) -> None:
        assert self.b is not None
        self.b.start()

    def stop(self) -> None:
        for server in (self.a, self.b):
            if server is not None:
                server.stop()
                shutil.rmtree(server.data_dir, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    def get(cls) -> "OurPair":
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
