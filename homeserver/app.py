"""The composition root: build the whole service tree from the config (DESIGN.md §3).

Every component gets exactly the collaborators it uses as constructor arguments, with
the reactor injected as its clock. Nothing else in the code base imports the global
reactor: only ``run_forever`` does, to install the asyncio reactor and run it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application import internet, service
from twisted.logger import Logger

from homeserver.config import Config, Listener

log = Logger()


class _Stoppable(service.Service):
    """Adapts a component with ``start()``/``stop() -> Deferred`` to IService."""

    def __init__(self, name: str, start=None, stop=None) -> None:
        self.setName(name)
        self._start, self._stop = start, stop

    def startService(self) -> None:
        super().startService()
        if self._start is not None:
            self._start()

    def stopService(self):
        super().stopService()
        return self._stop() if self._stop is not None else None


class HomeServer(service.MultiService):
    """The running server: a MultiService with handles tests and benchmarks may use."""

    components: dict[str, Any]


def build_service(config: Config, reactor) -> HomeServer:
    from homeserver.crypto.signing import read_signing_keys
    from homeserver.http.server import JsonResource, Router, make_site
    from homeserver.ratelimit import RateLimiter
    from homeserver.rooms.registry import RoomRegistry
    from homeserver.store import GlobalStore
    from homeserver.sync.notifier import Notifier

    def now_ms() -> int:
        return int(reactor.seconds() * 1000)

    top = HomeServer()
    signing_keys = read_signing_keys(config.signing_key_path)
    os.makedirs(config.data_dir, exist_ok=True)

    store = GlobalStore.from_config(config.database, reactor)
    store.db.setServiceParent(top)  # migrates, then starts its thread pool

    notifier = Notifier(reactor)
    rooms = RoomRegistry(
        data_dir=os.path.join(config.data_dir, "rooms"),
        server_name=config.server_name,
        signing_key=signing_keys[0],
        clock=reactor,
        stream_writer=store,
        listener=notifier,
        idle_seconds=config.rooms.idle_seconds,
        max_open=config.rooms.max_open,
        now_ms=now_ms,
    )
    _Stoppable("rooms", stop=rooms.stop).setServiceParent(top)
    ratelimiter = RateLimiter(config.rate_limits, reactor.seconds)

    # --- domain services: accounts (helper E) ---
    # --- domain services: rooms (helper F) ---
    # --- domain services: sync & live data (helper G) ---
    # --- domain services: search, relations, directory (helper H) ---

    top.components = {
        "config": config, "store": store, "rooms": rooms, "notifier": notifier,
        "signing_keys": signing_keys, "ratelimiter": ratelimiter, "reactor": reactor,
    }

    for listener in config.listeners:
        if listener.type != "http":
            log.warn("listener type {type} is not supported; ignored", type=listener.type)
            continue
        router = Router()
        _register_resources(router, listener, top.components, now_ms)
        site = make_site(JsonResource(router, max_body=config.max_request_body_size),
                         hard_limit=max(config.max_upload_size, config.max_request_body_size))
        for address in listener.bind_addresses:
            _listen(listener, address, site, config, reactor).setServiceParent(top)
    return top


def _register_resources(router, listener: Listener, c: dict, now_ms) -> None:
    from federation.key_server import KeyServer
    from homeserver.client_api import versions

    config: Config = c["config"]
    if "keys" in listener.resources:
        KeyServer(config.server_name, c["signing_keys"], now_ms).register(router)
    if "client" in listener.resources:
        versions.register(router, public_baseurl=config.public_baseurl,
                          server_name=config.server_name,
                          default_room_version=config.default_room_version,
                          unstable_features={})
        # --- servlets: accounts (helper E) ---
        # --- servlets: rooms (helper F) ---
        # --- servlets: sync & live data (helper G) ---
        # --- servlets: search, relations, directory (helper H) ---


def _listen(listener: Listener, address: str, site, config: Config, reactor):
    if listener.tls:
        from twisted.internet import ssl

        with open(config.tls_private_key_path, "rb") as f:
            key = f.read()
        with open(config.tls_certificate_path, "rb") as f:
            cert = f.read()
        cert_opts = ssl.PrivateCertificate.loadPEM(key + b"\n" + cert).options()
        return internet.SSLServer(listener.port, site, cert_opts, interface=address,
                                  reactor=reactor)
    return internet.TCPServer(listener.port, site, interface=address, reactor=reactor)


def run_forever(config: Config) -> int:
    """Install the asyncio reactor, start the service tree and run until SIGTERM/SIGINT."""
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
        textFileLogObserver,
    )

    level = LogLevel.levelWithName(os.environ.get("ROOMSERVER_LOG_LEVEL", "info").lower())
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(defaultLogLevel=level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    for warning in config.warnings:
        log.warn("config: {warning}", warning=warning)

    try:
        top = build_service(config, reactor)
    except Exception as e:  # a bad key file or unreachable database: one line, exit 2
        print(f"startup error: {e}", file=sys.stderr)
        return 2
    top.startService()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    log.info("{name} listening on {listeners}", name=config.server_name,
             listeners=", ".join(f"{a}:{l.port}" for l in config.listeners
                                 for a in l.bind_addresses))
    reactor.run()
    return 0
