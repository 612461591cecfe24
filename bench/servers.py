"""Start the two servers a benchmark compares: ours and a stock Synapse, on loopback.

Both run their defaults (ours: what ``python -m homeserver generate`` writes) except
open registration and rate limits off, with SQLite by default (or PostgreSQL with
``BENCH_PG=1``), a fresh data directory, and a free port; ``described`` says so. ``rss_kb()`` reads the server process's resident
set size from /proc.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNAPSE_SH = os.environ.get("SYNAPSE_SH", os.path.join(ROOT, "..", "shared", "anchors",
                                                       "synapse.sh"))
_OFF = {"per_second": 1000000, "burst_count": 1000000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, alive, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server for {url} exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {url}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(servers, *, busy: float = 0.05, longest: float = 90.0) -> float:
    """Wait until every server uses less than ``busy`` of a CPU over a second (one may
    still be working off the previous workload); returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < longest:
        before = [cpu_seconds(s.pid) for s in servers]
        time.sleep(1.0)
        after = [cpu_seconds(s.pid) for s in servers]
        if all(b - a < busy for a, b in zip(before, after)):
            break
    return time.monotonic() - start


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class OurServer:
    name = "ours"

    def __init__(self, *, postgres: bool = False, extra: dict | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-ours-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_name = "bench.ours"
        self.proc: subprocess.Popen | None = None
        out = subprocess.run([sys.executable, "-m", "homeserver", "generate", "--server-name",
                              self.server_name, "--data-dir", self.dir, "--http-port",
                              str(self.port)], cwd=ROOT, check=True, capture_output=True,
                             text=True)
        self.config = out.stdout.strip()
        overrides = {
            "enable_registration": True, "enable_registration_without_verification": True,
            "rc_message": _OFF, "rc_registration": _OFF,
            "rc_login": {k: _OFF for k in ("address", "account", "failed_attempts")},
            "rc_joins": {"local": _OFF, "remote": _OFF},
            "rc_invites": {"per_room": _OFF, "per_user": _OFF},
            "rc_delayed_event_mgmt": _OFF,
        }
        if postgres:
            self.pg_db = _create_pg_database("bench_ours")
            overrides["database"] = {"name": "psycopg2", "args": {
                "user": "postgres", "database": self.pg_db, "host": "127.0.0.1", "port": 5432,
                "cp_min": 2, "cp_max": 8}}
        self._overrides = overrides
        self._base = dict(overrides)
        self.overrides = os.path.join(self.dir, "bench.yaml")
        self.configure(extra or {})

    def configure(self, extra: dict) -> None:
        """Merge ``extra`` into the config overrides (taking effect at the next start)."""
        self._overrides.update(extra)
        with open(self.overrides, "w") as f:
            yaml.safe_dump(self._overrides, f)

    @property
    def changed(self) -> str:
        """Settings beyond the defaults and the benchmark's own (``configure``), as
        ``key: value``; empty when the server runs its defaults."""
        return ", ".join(f"{k}: {json.dumps(v)}" for k, v in self._overrides.items()
                         if self._base.get(k) != v)

    @property
    def described(self) -> str:
        with open(self.config) as f:
            rooms = (yaml.safe_load(f) or {}).get("rooms", {})
        rooms = ", ".join(f"rooms.{k} {str(v).lower() if isinstance(v, bool) else f'{v:g}'}"
                          for k, v in rooms.items())
        db = "PostgreSQL" if "database" in self._overrides else "SQLite"
        return (f"default configuration ({rooms}; {db}) with open registration and rate "
                f"limits off, log level warn (ROOMSERVER_LOG_LEVEL: no access log)"
                f"{'; changed: ' + self.changed if self.changed else ''}")

    def start(self) -> None:
        log = open(os.path.join(self.dir, "server.log"), "ab")
        env = dict(os.environ, ROOMSERVER_LOG_LEVEL="warn")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "homeserver", "run", "--config", self.config,
             "--config", self.overrides], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env=env)
        _wait_http(self.url + "/_matrix/client/versions", lambda: self.proc.poll() is None)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return _rss_kb(self.pid)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class SynapseServer:
    name = "synapse"

    def __init__(self, *, postgres: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_name = "bench.synapse"
        self.dir = tempfile.mkdtemp(prefix="bench-synapse-")
        # MSC4140 is off in Synapse unless a maximum delay is set (bench/matrixrtc.py)
        extra = os.path.join(self.dir, "bench-extra.yaml")
        with open(extra, "w") as f:
            yaml.safe_dump({"max_event_delay_duration": "1d"}, f)
        self.env = dict(os.environ, SYN_NAME=self.server_name, SYN_PORT=str(self.port),
                        SYN_DIR=self.dir, SYN_VERIFY_TLS="0", SYN_EXTRA_CONFIG=extra)
        if postgres:
            db = _create_pg_database("bench_synapse", collate_c=True)
            self.env.update(SYN_DB="postgres", SYN_PG_DB=db, SYN_PG_USER="postgres",
                            SYN_PG_PASSWORD="")
        self._sh("install")

    @property
    def described(self) -> str:
        db = "PostgreSQL" if self.env.get("SYN_DB") == "postgres" else "SQLite"
        return (f"{os.environ.get('SYNAPSE_VERSION', '1.163.2')}, its defaults as "
                f"synapse.sh writes them ({db}) with open registration and rate limits off")

    def _sh(self, *args: str) -> str:
        out = subprocess.run(["bash", SYNAPSE_SH, *args], env=self.env, capture_output=True,
                             text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"synapse.sh {' '.join(args)} failed: {out.stderr[-2000:]}")
        return out.stdout

    def start(self) -> None:
        self._sh("start")

    def stop(self) -> None:
        self._sh("stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int:
        with open(os.path.join(self.dir, "synapse.pid")) as f:
            return int(f.read().strip())

    def rss_kb(self) -> int:
        return _rss_kb(self.pid)

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _create_pg_database(prefix: str, collate_c: bool = False) -> str:
    import psycopg2

    name = f"{prefix}_{os.getpid()}_{int(time.time())}"
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        extra = " ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" \
            if collate_c else ""
        cur.execute(f'CREATE DATABASE "{name}"{extra}')
    conn.close()
    return name
