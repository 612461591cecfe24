"""Run a Node script from ``tests/clients`` and fail the test with its output.

The scripts are real clients (matrix-js-sdk, or puppeteer driving Hydrogen). Whatever a
script talks to besides the server process (a push gateway, the web app's files) is
served from a thread, so the tests are plain blocking tests: they wait for the script
with ``subprocess.run`` and need no reactor (under trial's ``-j`` workers a test that
waited on the reactor for a child process hung once its worker had run another one).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from twisted.trial import unittest

CLIENTS_DIR = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(CLIENTS_DIR, "node_modules")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Below the tests' trial timeout (300 s), so a hung script is killed and reported.
SCRIPT_TIMEOUT = 270


def missing_setup() -> str | None:
    """Why the Node clients cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed (see README: Node 20 or newer)"
    if not os.path.isdir(os.path.join(NODE_MODULES, "matrix-js-sdk")):
        return f"{NODE_MODULES} is missing: run `make install` (npm ci in tests/clients)"
    return None


def require_chromium(test) -> None:
    """Skip ``test`` without Chromium (fail it under CI, which installs it)."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            test.fail(message)
        raise unittest.SkipTest(message)


def run_node(test, script: str, env: dict[str, str], *, args: tuple[str, ...] = (),
             server=None) -> str:
    """Run ``node <script> <args>`` with ``env`` added; fail ``test`` with its output
    unless it exits 0. The whole output is also kept in the test's temp dir (path
    printed). Returns the script's stdout."""
    problem = missing_setup()
    if problem:
        test.fail(problem)
    try:
        done = subprocess.run([shutil.which("node"), script, *args], cwd=CLIENTS_DIR,
                              env=dict(os.environ, **env), capture_output=True,
                              timeout=SCRIPT_TIMEOUT, stdin=subprocess.DEVNULL)
        out, err, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        out, err, code = e.stdout or b"", e.stderr or b"", f"killed after {SCRIPT_TIMEOUT} s"
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    log_path = os.path.abspath(test.mktemp() + ".log")
    with open(log_path, "w") as f:
        f.write(f"$ node {script}\n--- stdout ---\n{out}\n--- stderr ---\n{err}\n")
    if code != 0:
        server_log = f"\n--- server log (tail) ---\n{server.logs()}" if server else ""
        test.fail(f"node {script} exited {code} (full output: {log_path})\n"
                  f"--- stdout (tail) ---\n{out[-6000:]}\n"
                  f"--- stderr (tail) ---\n{err[-4000:]}{server_log}")
    return out
