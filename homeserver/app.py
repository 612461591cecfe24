"""The composition root: build the whole service tree from the config (DESIGN.md §3).

Every component gets exactly the collaborators it uses as constructor arguments, with
the reactor injected as its clock. Nothing else in the code base imports the global
reactor: only ``homeserver.runtime.run_forever`` does, to install the asyncio reactor and run it.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application import internet, service
from twisted.internet import defer, threads
from twisted.logger import Logger, LogLevel
from twisted.python.threadpool import ThreadPool

from homeserver.config import Config, Listener
from homeserver.runtime import log_level

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
    from homeserver.client_api.auth import Authenticator
    from homeserver.faults import stream_writer_from_env
    from homeserver.ratelimit import RateLimiter
    from homeserver.rooms.actor.registry import RoomRegistry
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
    # One thread, started with the server, takes the fsyncs of closing hibernating
    # rooms' DBs off the reactor thread. The reactor's own pool would grow to ten
    # threads during a burst of hibernations, and every thread made then keeps its
    # objects among the burst's (CPython's arenas stay resident; see
    # rooms/actor/memory.py).
    closer = ThreadPool(1, 1, name="room-closer")
    # added before the rooms: MultiService stops its children in reverse order
    _Stoppable("room-closer", start=closer.start, stop=lambda: threads.deferToThreadPool(
        reactor, reactor.getThreadPool(), closer.stop)).setServiceParent(top)
    # and one more creates the WAL file of a woken room before its first commit (two
    # fsyncs), apart from the closes, which come in bursts when rooms are evicted
    wal_starter = ThreadPool(1, 1, name="room-wal")
    _Stoppable("room-wal", start=wal_starter.start, stop=lambda: threads.deferToThreadPool(
        reactor, reactor.getThreadPool(), wal_starter.stop)).setServiceParent(top)
    rooms = RoomRegistry(
        data_dir=os.path.join(config.data_dir, "rooms"),
        server_name=config.server_name,
        signing_key=signing_keys[0],
        clock=reactor,
        stream_writer=stream_writer_from_env(store),
        listener=notifier,
        idle_seconds=config.rooms.idle_seconds,
        max_open=config.rooms.max_open,
        max_warm=config.rooms.max_warm,
        release_free_pools=config.rooms.release_free_pools,
        now_ms=now_ms,
        close_in_thread=lambda fn: threads.deferToThreadPool(reactor, closer, fn),
        wal_in_thread=lambda fn: threads.deferToThreadPool(reactor, wal_starter, fn),
    )
    rooms.add_memory_releaser(store.db.shrink_memory)
    rooms.add_memory_releaser(store.streams.compact)
    rooms.add_memory_releaser(store.push_progress.compact)
    # replayed announcements reach waiting /syncs through the notifier like new events
    _Stoppable("rooms", start=lambda: defer.ensureDeferred(rooms.recover_unclean()).addErrback(
        lambda f: log.failure("room recovery failed", f)),
        stop=rooms.stop).setServiceParent(top)
    ratelimiter = RateLimiter(config.rate_limits, reactor.seconds)
    # store.access_tokens tells an expired token (a soft logout) from an unknown one
    auth = Authenticator(store.access_tokens, now_ms)

    extra_components: dict[str, Any] = {}
    # --- domain services: accounts (helper E) ---
    from homeserver.accounts.deactivation import Deactivator
    from homeserver.accounts.devices import DeviceManager
    from homeserver.accounts.login import FailedAttempts, PasswordLogin, PasswordVerifier
    from homeserver.accounts.login_tokens import LoginTokenService
    from homeserver.accounts.passwords import PasswordChanger, PasswordHasher
    from homeserver.accounts.registration import Registrar, RegistrationService
    from homeserver.accounts.sessions import SessionIssuer
    from homeserver.client_api import uia as uia_
    from synapse_compat.admin_register import Nonces, SharedSecretRegistration

    password_hasher = PasswordHasher(reactor)
    from homeserver.e2ee.device_lists import device_list_waker

    # new logins, renames, deletions and key uploads wake room mates' syncs alike
    device_lists_changed = device_list_waker(store.streams, notifier)
    login_sessions = SessionIssuer(store.devices, auth, now_ms, config.server_name,
                                   device_lists_changed=device_lists_changed)
    password_verifier = PasswordVerifier(store.accounts, config.server_name,
                                         FailedAttempts(ratelimiter, now_ms))
    uia = uia_.UserInteractiveAuth(uia_.UiaSessions(now_ms), {
        uia_.LOGIN_DUMMY: uia_.dummy_stage,
        uia_.LOGIN_PASSWORD: uia_.PasswordStage(password_verifier),
        uia_.LOGIN_REGISTRATION_TOKEN: uia_.RegistrationTokenStage(store.registration_tokens),
    })
    device_manager = DeviceManager(store.devices, store.to_device, auth, notifier,
                                   device_lists_changed=device_lists_changed)
    registrar = Registrar(store, ratelimiter, config.server_name)
    # POST /login/get_token and m.login.token (login_via_existing_session, off by default)
    login_tokens = LoginTokenService(config.login_via_existing_session,
                                     tokens=store.login_tokens, accounts=store.accounts,
                                     ratelimiter=ratelimiter, now_ms=now_ms)
    extra_components.update({
        "login_tokens": login_tokens,
        "uia": uia, "sessions": login_sessions, "device_manager": device_manager,
        # the login response's well_known matches /.well-known/matrix/client
        "password_login": PasswordLogin(password_verifier, login_sessions, ratelimiter,
                                        public_baseurl=_advertised_baseurl(config),
                                        login_tokens=login_tokens),
        "registration": RegistrationService(config, registrar, login_sessions, uia,
                                            password_hasher, store),
        "password_changer": PasswordChanger(store.accounts, device_manager,
                                            password_hasher),
        "deactivator": Deactivator(store, device_manager, rooms),
        "shared_secret_registration": SharedSecretRegistration(
            config.registration_shared_secret, Nonces(reactor.seconds), registrar,
            login_sessions, password_hasher),
    })
    # --- domain services: rooms (helper F) ---
    from homeserver.rooms.features.service import RoomService
    room_service = RoomService(rooms=rooms, store=store, notifier=notifier,
                               ratelimiter=ratelimiter, server_name=config.server_name,
                               default_room_version=config.default_room_version,
                               now_ms=now_ms)
    extra_components["room_service"] = room_service
    # stops before (it was added after) the rooms and the database it writes through
    _Stoppable("room_service", stop=room_service.stop).setServiceParent(top)
    # --- MSC4140 delayed events (helper rtcsig): sent later through the room actors ---
    from homeserver.delayed_events.scheduler import DelayedEventScheduler

    delayed_events = DelayedEventScheduler(
        store=store.delayed_events, rooms=room_service, ratelimiter=ratelimiter,
        clock=reactor, now_ms=now_ms, config=config.delayed_events)
    notifier.add_event_observer(delayed_events.on_event)
    # started after the rooms' recovery; stops before the rooms it sends into
    _Stoppable("delayed_events", start=delayed_events.start,
               stop=delayed_events.stop).setServiceParent(top)
    extra_components["delayed_events"] = delayed_events
    # --- domain services: sync & live data (helper G) ---
    from homeserver.sync import wiring as sync_wiring

    live = sync_wiring.build_live_data(
        reactor=reactor, config=config, store=store, rooms=rooms, notifier=notifier,
        auth=auth, room_service=room_service, now_ms=now_ms)
    _Stoppable("live-data", start=live.start, stop=live.stop).setServiceParent(top)
    extra_components.update(live.components)
    # --- domain services: push ---
    from homeserver.http.outbound import AddressPolicy
    from homeserver.push import wiring as push_wiring

    # every request to a URL a user chose goes through this (SSRF; http/outbound.py)
    outbound_policy = AddressPolicy(whitelist=config.ip_range_whitelist,
                                    blacklist=config.ip_range_blacklist)
    push = push_wiring.build_push(reactor=reactor, store=store, rooms=rooms,
                                  components={**extra_components}, now_ms=now_ms,
                                  address_policy=outbound_policy)
    _Stoppable("push", stop=push["push_delivery"].stop).setServiceParent(top)
    extra_components.update(push)
    # --- federation: transport and trust (helper fedtransport) ---
    # outbound client (discovery, TLS, X-Matrix signing, SSRF filter), remote keyring,
    # our key server and notary, the inbound X-Matrix authenticator
    from federation import wiring as federation_wiring

    federation = federation_wiring.build(
        config=config, reactor=reactor, store=store, signing_keys=signing_keys,
        address_policy=outbound_policy, now_ms=now_ms)
    _Stoppable("federation_client",
               stop=federation["federation_client"].close).setServiceParent(top)
    extra_components.update(federation)
    # --- federation queries (helper fedquery): our users asking about remote things ---
    # remote profiles, aliases, room directories and keys, and the remote device-list
    # cache; handed to the profile, directory and key services below
    extra_components.update(federation_wiring.build_remote(
        store=store, client=federation["federation_client"],
        server_name=config.server_name, now_ms=now_ms,
        device_lists_changed=device_lists_changed))
    room_service.directory.attach_remote(extra_components["remote_queries"])
    # --- federation: outbound sender (helper fedout) ---
    # one durable queue per destination over the room stream and the federation
    # outbox; added after the client so it stops (reverse order) before it closes
    sender_components = federation_wiring.build_sender(
        config=config, reactor=reactor, store=store, rooms=rooms,
        client=federation["federation_client"], live=extra_components, now_ms=now_ms)
    sender = sender_components["federation_sender"]
    # once every room is asleep, caches of recent stream entries go too (memory.py)
    rooms.add_memory_releaser(sender.release_caches, when_all_asleep=True)
    rooms.add_memory_releaser(store.streams.recent.release, when_all_asleep=True)
    _Stoppable("federation_sender", start=sender.begin,
               stop=sender.stop).setServiceParent(top)
    extra_components.update(sender_components)
    # --- federation: inbound PDUs, EDUs and room reads (helper fedin) ---
    extra_components.update(federation_wiring.build_inbound(
        config=config, store=store, rooms=rooms, c=extra_components,
        notify_room=notifier.notify_room, notify_users=notifier.notify_users,
        now_ms=now_ms))
    extra_components.update(federation_wiring.attach_backfill(
        config=config, reactor=reactor, c=extra_components))
    # tables that only grow unless purged: /send dedup, remote to-device message IDs,
    # the federation outbox of servers long down
    for job in federation_wiring.housekeeping(config=config, store=store,
                                              c=extra_components, clock=reactor,
                                              now_ms=now_ms):
        job.setServiceParent(top)
    # --- domain services: search, relations, directory (helper H) ---
    from homeserver.rooms.features.relations import RelationsService
    from homeserver.profiles import ProfileService
    from homeserver.reports import ContentReports
    from homeserver.rooms.features.search import SearchService
    from homeserver.user_directory import UserDirectoryService

    room_service = extra_components["room_service"]
    history = room_service.visibility
    user_directory = UserDirectoryService(server_name=config.server_name, store=store)
    notifier.add_event_observer(user_directory.on_room_event)
    _Stoppable("user_directory", stop=user_directory.stop).setServiceParent(top)
    relations = RelationsService(rooms=rooms, store=store, visibility=history, now_ms=now_ms,
                                 serializer=room_service.serializer)
    extra_components.update({
        "user_directory": user_directory,
        "profiles": ProfileService(server_name=config.server_name, store=store, rooms=rooms,
                                   directory=user_directory,
                                   remote=extra_components["remote_queries"]),
        "relations": relations,
        "search": SearchService(rooms=rooms, store=store, visibility=history,
                                relations=relations, now_ms=now_ms),
        "reports": ContentReports(rooms=rooms, store=store, visibility=history),
    })

    # --- domain services: end-to-end encryption plumbing (helper e2ee) ---
    from homeserver.e2ee import wiring as e2e_wiring

    extra_components.update(e2e_wiring.build(
        store=store, uia=uia, device_lists_changed=device_lists_changed,
        device_manager=device_manager, deactivator=extra_components["deactivator"],
        server_name=config.server_name, remote_keys=extra_components["remote_keys"]))
    # --- domain services: spaces, jump to date (issue 12, misc) ---
    from homeserver.rooms.features.hierarchy import SpaceHierarchy
    from homeserver.rooms.features.timestamps import TimestampToEvent

    extra_components.update({
        "space_hierarchy": SpaceHierarchy(rooms=rooms, store=store,
                                          server_name=config.server_name,
                                          remote=extra_components.get("remote_spaces")),
        "timestamp_to_event": TimestampToEvent(rooms=rooms, visibility=history),
    })
    # --- federation queries (helper fedquery): what other servers may ask us ---
    extra_components.update(federation_wiring.build_queries(
        config=config, store=store, c=extra_components, now_ms=now_ms))

    # --- domain services: media repository (DESIGN.md §6) ---
    from media_repo.cas import LocalBlobStore
    from media_repo.expiry import PendingMediaExpiry
    from media_repo.repository import MediaRepository

    # blob reads, writes and fsyncs run here, never on the reactor thread
    media_io = ThreadPool(1, 4, name="media-io")
    _Stoppable("media-io", start=media_io.start, stop=lambda: threads.deferToThreadPool(
        reactor, reactor.getThreadPool(), media_io.stop)).setServiceParent(top)
    def media_io_run(fn, *args):
        return threads.deferToThreadPool(reactor, media_io, fn, *args)

    blobs = LocalBlobStore(config.media_store_path, run_in_thread=media_io_run)
    # before any listener exists, so no upload's temp file can be swept: a listing
    # of one directory, done once at start
    blobs.prepare()
    media = MediaRepository(
        store=store.media, blobs=blobs, server_name=config.server_name, clock=reactor,
        now_ms=now_ms, max_upload_size=config.max_upload_size,
        enable_authenticated_media=config.enable_authenticated_media,
        max_pending_uploads=config.max_pending_media_uploads)
    PendingMediaExpiry(media, reactor).setServiceParent(top)
    # blobs a killed process left behind without their row: removed once, in the
    # background, after start (media_repo/repository.py, sweep_orphans)
    _Stoppable("media-orphan-sweep", start=lambda: defer.ensureDeferred(
        media.sweep_orphans()).addErrback(lambda f: log.failure("media orphan sweep", f))
               ).setServiceParent(top)
    from media_repo.thumbnails import Thumbnails

    # Pillow decodes and encodes here: CPU-bound, and never on the reactor thread
    thumbnail_pool = ThreadPool(1, 2, name="thumbnailer")
    _Stoppable("thumbnailer", start=thumbnail_pool.start, stop=lambda: threads.deferToThreadPool(
        reactor, reactor.getThreadPool(), thumbnail_pool.stop)).setServiceParent(top)
    thumbnails = Thumbnails(
        repository=media, store=store.media, max_pixels=config.max_image_pixels,
        run_in_thread=lambda fn, *a: threads.deferToThreadPool(reactor, thumbnail_pool,
                                                               fn, *a))
    media.upload_observers.append(thumbnails.on_upload)
    _Stoppable("thumbnails", stop=thumbnails.stop).setServiceParent(top)
    extra_components.update({"media_repository": media, "thumbnails": thumbnails,
                             "media_io": media_io_run})
    # --- domain services: URL previews (issue 13) ---
    # Built only with url_preview_enabled (the routes answer 404 otherwise). Pages and
    # images are fetched through their own address policy (url_preview_ip_range_*
    # keys, as Synapse). Images are stored as new local media of the asking user.
    if config.url_preview.enabled:
        from homeserver.http.outbound import AddressPolicy
        from media_repo.spider import Spider
        from media_repo.repository import BytesSink
        from media_repo.url_preview import UrlPreviewer

        preview_config = config.url_preview
        spider = Spider(reactor, AddressPolicy(whitelist=preview_config.ip_range_whitelist,
                                               blacklist=preview_config.ip_range_blacklist),
                        url_rules=preview_config.url_blacklist,
                        max_size=preview_config.max_spider_size,
                        accept_language=preview_config.accept_language)
        extra_components["url_previewer"] = UrlPreviewer(
            fetcher=spider, sink=BytesSink(media), clock=reactor)
    # --- media over federation (issue 13, helper fedmedia) ---
    # remote media: fetched from its origin over federation (signed, multipart), cached
    # in remote_media_cache + the blob store; Location parts through the SSRF filter
    from federation.tls import FederationTls
    from media_repo.remote import FederationMediaFetcher, build_http_agent

    location_tls = FederationTls(verify=config.federation_verify_certificates,
                                 custom_ca_paths=config.federation_custom_ca_list)
    remote_media = FederationMediaFetcher(
        client=extra_components["federation_client"], store=store.media,
        store_blob=media.store_derived, now_ms=now_ms, clock=reactor,
        max_size=config.max_upload_size,
        make_http_agent=lambda: build_http_agent(reactor, location_tls, outbound_policy))
    # thumbnails of remote media are made here from the cached original (as Synapse)
    remote_media.fetch_observers.append(thumbnails.on_upload)
    media.remote = remote_media  # the fetcher stores through the repository: set after
    # --- domain services: media administration and retention (issue 13) ---
    from homeserver.store.media_admin import MediaAdminStore
    from media_repo.access import AccessTimes
    from media_repo.admin import MediaAdmin
    from media_repo.retention import MediaRetention

    media_admin_store = MediaAdminStore(store.db)
    # last_access_ts, written in batches: what retention and the purges go by
    access_times = AccessTimes(media_admin_store, server_name=config.server_name,
                               clock=reactor, now_ms=now_ms)
    access_times.setServiceParent(top)  # after the database: stops (and flushes) first
    media.access_observers.append(access_times.record)
    media_admin = MediaAdmin(repository=media, media=store.media, store=media_admin_store,
                             accounts=store.accounts, server_name=config.server_name,
                             access=access_times)
    media.upload_observers.append(media_admin.on_upload)
    MediaRetention(media_admin, clock=reactor, now_ms=now_ms,
                   local_lifetime_ms=config.media_retention.local_media_lifetime_ms,
                   remote_lifetime_ms=config.media_retention.remote_media_lifetime_ms,
                   ).setServiceParent(top)
    extra_components.update({"media_admin": media_admin, "media_access_times": access_times})

    # --- federation: membership across servers (helper fedjoin) ---
    # make_join/send_join, make_leave/send_leave, knocks, invites (serving), and our
    # users joining, inviting to and leaving rooms held elsewhere (doing)
    extra_components.update(federation_wiring.build_membership(
        config=config, store=store, rooms=rooms, components=extra_components,
        notifier=notifier, signing_key=signing_keys[0], now_ms=now_ms))

    # --- third-party invites (issue 14, helper fedspace): by email, over federation ---
    extra_components.update(federation_wiring.build_third_party_invites(
        config=config, reactor=reactor, store=store, rooms=rooms, c=extra_components,
        address_policy=outbound_policy))
    # --- voice: the built-in SFU (issue 15, helper sfu) ---
    # one aiortc peer connection per participant session, Opus forwarded undecoded;
    # added late so it stops (closing every peer connection) before rooms and database
    if config.sfu.enabled:
        from voip.sfu import wiring as sfu_wiring

        sfu = sfu_wiring.build(config=config, reactor=reactor, room_service=room_service,
                               rooms=rooms, now_ms=now_ms)
        notifier.add_event_observer(sfu.on_room_event)
        _Stoppable("sfu", start=sfu.start, stop=sfu.stop).setServiceParent(top)
        extra_components["sfu"] = sfu

    top.components = {
        "config": config, "store": store, "rooms": rooms, "notifier": notifier,
        "signing_keys": signing_keys, "ratelimiter": ratelimiter, "reactor": reactor,
        "auth": auth, "now_ms": now_ms, **extra_components,
    }

    for listener in config.listeners:
        if listener.type != "http":
            log.warn("listener type {type} is not supported; ignored", type=listener.type)
            continue
        router = Router()
        _register_resources(router, listener, top.components, now_ms)
        if "federation" in listener.resources:
            # after every other route: unknown federation paths are 401 unless signed
            federation_wiring.register_fallback(router, top.components)
        root = JsonResource(router, max_body=config.max_request_body_size)
        if "client" in listener.resources and "sync_stream" in top.components:
            # sync & live data (helper G): the WebSocket endpoint is not a JSON route,
            # so a root in front of the JSON resource mounts it at its exact path
            from homeserver.http.server import MountingResource
            from homeserver.sync.websocket import WS_PATH
            ws = top.components["sync_stream"].resource()
            root = MountingResource(root, {WS_PATH: ws})
        site = make_site(root,
                         hard_limit=max(config.max_upload_size, config.max_request_body_size),
                         access_log=log_level() <= LogLevel.info)
        for address in listener.bind_addresses:
            _listen(listener, address, site, config, reactor).setServiceParent(top)
    return top


def _advertised_baseurl(config: Config) -> str | None:
    from homeserver.client_api.versions import well_known_client

    body = well_known_client(serve=config.serve_client_wellknown,
                             public_baseurl=config.public_baseurl,
                             server_name=config.server_name)
    return None if body is None else body["m.homeserver"]["base_url"]


def _register_resources(router, listener: Listener, c: dict, now_ms) -> None:
    from homeserver.client_api import versions

    config: Config = c["config"]
    # --- federation: transport and trust (helper fedtransport) ---
    from federation import wiring as federation_wiring

    if "keys" in listener.resources:
        federation_wiring.register_keys(router, c)
    if "federation" in listener.resources:
        federation_wiring.register_federation(router, c)
        # --- federation: membership across servers (helper fedjoin) ---
        federation_wiring.register_membership(router, c)
        # --- federation: inbound PDUs, EDUs and room reads (helper fedin) ---
        federation_wiring.register_inbound(router, c)
        # --- federation queries (helper fedquery) ---
        federation_wiring.register_queries(router, c)
        # --- third-party invites (helper fedspace): /3pid/onbind, exchange ---
        federation_wiring.register_third_party_invites(router, c)
        # media over federation (issue 13): our media for other servers, multipart
        from media_repo import federation_resources

        federation_resources.register(
            router, authenticator=c["federation_authenticator"],
            repository=c["media_repository"], thumbnails=c["thumbnails"],
            run_in_thread=c["media_io"])
    # --- servlets: URL previews (issue 13) ---
    if listener.resources & {"client", "media"}:
        from media_repo import preview_resources

        preview_resources.register(router, auth=c["auth"], previewer=c.get("url_previewer"),
                                   client="client" in listener.resources,
                                   legacy_media="media" in listener.resources)
    if "client" in listener.resources:
        from homeserver.client_api import rtc

        delayed_on = config.delayed_events.enabled
        versions.register(router, authenticator=c["auth"],
                          public_baseurl=config.public_baseurl,
                          server_name=config.server_name,
                          default_room_version=config.default_room_version,
                          unstable_features={"org.roomserver.ws": True,
                                             "org.matrix.msc4140": delayed_on},
                          get_login_token=config.login_via_existing_session.enabled,
                          serve_client_wellknown=config.serve_client_wellknown,
                          extra_capabilities={"org.matrix.msc4140.delayed_events":
                                              config.delayed_events.capability()}
                          if delayed_on else {},
                          well_known_extra=rtc.well_known_foci(
                              router, config.matrix_rtc,
                              _advertised_baseurl(config) or "/"))
        # --- servlets: accounts (helper E) ---
        from homeserver.client_api import account as account_servlets
        from homeserver.client_api import devices as device_servlets
        from synapse_compat import admin_register

        account_servlets.register(router, c)
        device_servlets.register(router, c)
        admin_register.register(router, c["shared_secret_registration"])
        # --- servlets: rooms (helper F) ---
        from homeserver.client_api import directory as directory_api
        from homeserver.client_api import room_history, room_state
        from homeserver.client_api import rooms as rooms_api
        rooms_api.register(router, auth=c["auth"], room_service=c["room_service"],
                           third_party_invites=c.get("third_party_invites"),
                           delayed_events=c["delayed_events"])
        # + MSC4140's ?org.matrix.msc4140.delay= on state PUTs
        room_state.register(router, auth=c["auth"], room_service=c["room_service"],
                            delayed_events=c["delayed_events"])
        for module in (room_history, directory_api):
            module.register(router, auth=c["auth"], room_service=c["room_service"])
        # --- servlets: MatrixRTC signalling (helper rtcsig): MSC4140, MSC4143 ---
        from homeserver.client_api import delayed_events as delayed_servlets

        delayed_servlets.register(router, auth=c["auth"], scheduler=c["delayed_events"])
        rtc.register(router, auth=c["auth"], config=config.matrix_rtc,
                     public_baseurl=config.public_baseurl)
        # --- servlets: sync & live data (helper G) ---
        from homeserver.sync import wiring as sync_wiring

        sync_wiring.register_servlets(router, c)
        # --- servlets: search, relations, directory (helper H) ---
        from homeserver.client_api import profile, relations, report, search, user_directory

        for module in (profile, user_directory, relations, search, report):
            module.register(router, c)
        # --- servlets: end-to-end encryption plumbing (helper e2ee) ---
        from homeserver.e2ee import wiring as e2e_wiring

        e2e_wiring.register_servlets(router, c)
        # --- servlets: VoIP, third parties, spaces (issue 12, misc) ---
        from homeserver.client_api import spaces, thirdparty, timestamps, voip

        voip.register(router, auth=c["auth"], turn=config.turn, now_ms=now_ms)
        from voip.sfu import wiring as sfu_wiring

        sfu_wiring.register_servlets(router, c)
        thirdparty.register(router, c)
        spaces.register(router, auth=c["auth"], hierarchy=c["space_hierarchy"])
        timestamps.register(router, auth=c["auth"], finder=c["timestamp_to_event"])
        # --- servlets: OpenID tokens (helper fedquery) ---
        from homeserver.client_api import openid as openid_servlets

        openid_servlets.register(router, auth=c["auth"], openid=c["openid"])
        # --- servlets: push ---
        from homeserver.push import wiring as push_wiring

        push_wiring.register_servlets(router, c)
        # --- servlets: Synapse admin API for media (issue 13) ---
        from synapse_compat import admin_media

        admin_media.register(router, auth=c["auth"], accounts=c["store"].accounts,
                             admin=c["media_admin"])
    if "media" in listener.resources:
        from media_repo import resources as media_resources

        media_resources.register(router, auth=c["auth"], repository=c["media_repository"],
                                 thumbnails=c["thumbnails"], run_in_thread=c["media_io"])


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
