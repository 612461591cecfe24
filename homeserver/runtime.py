"""The server process: its log level, the garbage collector after start-up, and
``run_forever`` (install the reactor, start the service tree, run)."""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

from twisted.logger import Logger, LogLevel

log = Logger()


def settle_garbage_collector() -> None:
    """Move everything alive after start-up (modules, config, the service tree) out of
    the collector's sight: a full collection then walks only what requests made since,
    not everything loaded at start as well."""
    gc.collect()
    gc.freeze()


def log_level() -> LogLevel:
    """The level below which log events are dropped: ``ROOMSERVER_LOG_LEVEL``
    (``debug``, ``info``, ``warn``, ``error``, ``critical``; default ``info``, where
    every request gets an access-log line)."""
    return LogLevel.levelWithName(os.environ.get("ROOMSERVER_LOG_LEVEL", "info").lower())


def run_forever(config: Any) -> int:
    """Install the asyncio reactor, start the service tree and run until SIGTERM/SIGINT."""
    from homeserver import reactor as reactor_install
    from homeserver.app import build_service

    reactor = reactor_install.install()  # pyOpenSSL loads on first TLS use
    from twisted.logger import (
        FilteringLogObserver, LogLevelFilterPredicate, globalLogBeginner,
        textFileLogObserver,
    )

    observer = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(defaultLogLevel=log_level())])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    for warning in config.warnings:
        log.warn("config: {warning}", warning=warning)

    try:
        top = build_service(config, reactor)
    except Exception as e:  # a bad key file or unreachable database: one line, exit 2
        print(f"startup error: {e}", file=sys.stderr)
        return 2
    top.startService()
    settle_garbage_collector()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    log.info("{name} listening on {listeners}", name=config.server_name,
             listeners=", ".join(f"{a}:{l.port}" for l in config.listeners
                                 for a in l.bind_addresses))
    reactor.run()
    return 0
