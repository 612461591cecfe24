"""Run a Node script from ``tests/clients`` without blocking the reactor.

The scripts are real clients (matrix-js-sdk, or puppeteer driving Hydrogen); a test that
starts one keeps serving whatever the script talks to (a push gateway, the web app's
files) while it runs. A script that exits non-zero fails the test with its output, which
the script writes as a step log ending in the failing step.
"""

from __future__ import annotations

import os
import shutil

from twisted.internet import defer, utils

CLIENTS_DIR = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(CLIENTS_DIR, "node_modules")


def missing_setup() -> str | None:
    """Why the Node clients cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed (see README: Node 20 or newer)"
    if not os.path.isdir(os.path.join(NODE_MODULES, "matrix-js-sdk")):
        return f"{NODE_MODULES} is missing: run `make install` (npm ci in tests/clients)"
    return None


@defer.inlineCallbacks
def run_node(test, script: str, env: dict[str, str], *, args: tuple[str, ...] = (),
             server=None):
    """Run ``node <script> <args>`` with ``env`` added; fail ``test`` with its output unless it
    exits 0. The whole output is also kept in the test's temp dir (path printed)."""
    problem = missing_setup()
    if problem:
        test.fail(problem)
    full_env = dict(os.environ, **env)
    out, err, code = yield utils.getProcessOutputAndValue(
        shutil.which("node"), [script, *args], env=full_env, path=CLIENTS_DIR)
    out_text = out.decode("utf-8", "replace")
    err_text = err.decode("utf-8", "replace")
    log_path = os.path.abspath(test.mktemp() + ".log")
    with open(log_path, "w") as f:
        f.write(f"$ node {script}\n--- stdout ---\n{out_text}\n--- stderr ---\n{err_text}\n")
    if code != 0:
        server_log = f"\n--- server log (tail) ---\n{server.logs()}" if server else ""
        test.fail(f"node {script} exited {code} (full output: {log_path})\n"
                  f"--- stdout (tail) ---\n{out_text[-6000:]}\n"
                  f"--- stderr (tail) ---\n{err_text[-4000:]}{server_log}")
    return out_text
