"""Run the real server process on a free loopback port for end-to-end tests.

``ServerProcess`` generates a config with the real CLI, adds test overrides (rate
limits off unless asked, open registration), starts ``python -m homeserver run`` and
waits until ``/_matrix/client/versions`` answers. It can be stopped with SIGTERM or
killed with SIGKILL and started again on the same data directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

import yaml

from twisted.internet import defer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_deferred(coro) -> defer.Deferred:
    """Run an asyncio coroutine (matrix-nio) from a trial test on the asyncio reactor."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coro))


class ServerProcess:
    def __init__(self, *, server_name: str = "localhost", overrides: dict | None = None,
                 data_dir: str | None = None) -> None:
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="roomserver-e2e-")
        self.port = free_port()
        self.server_name = server_name
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.data_dir, "server.log")
        self._overrides = overrides or {}
        self.config_path = self._generate()

    def _generate(self) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "homeserver", "generate", "--server-name", self.server_name,
             "--data-dir", self.data_dir, "--http-port", str(self.port)],
            cwd=ROOT, check=True, capture_output=True, text=True)
        config_path = out.stdout.strip()
        test_overrides: dict[str, Any] = {
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "rc_message": {"per_second": 10000, "burst_count": 100000},
            "rc_registration": {"per_second": 10000, "burst_count": 100000},
            "rc_login": {k: {"per_second": 10000, "burst_count": 100000}
                         for k in ("address", "account", "failed_attempts")},
            "rc_joins": {k: {"per_second": 10000, "burst_count": 100000}
                         for k in ("local", "remote")},
            "rc_invites": {k: {"per_second": 10000, "burst_count": 100000}
                           for k in ("per_room", "per_user")},
        }
        test_overrides.update(self._overrides)
        self.override_path = os.path.join(self.data_dir, "test-overrides.yaml")
        with open(self.override_path, "w") as f:
            yaml.safe_dump(test_overrides, f)
        return config_path

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "homeserver", "run", "--config", self.config_path,
             "--config", self.override_path],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.logs()}")
            try:
                with urllib.request.urlopen(self.base_url + "/_matrix/client/versions",
                                            timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError("server did not start: " + self.logs())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code, self.proc = self.proc.returncode, None
        return code

    def kill(self) -> int | None:
        return self.stop(signal.SIGKILL)

    def logs(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                raw: bytes | None = None, headers: dict | None = None) -> tuple[int, Any]:
        """A blocking HTTP call for simple assertions (status, parsed JSON body)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                payload = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            payload, status = e.read(), e.code
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload
