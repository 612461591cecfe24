"""Federation transport and trust, assembled for the composition root (homeserver/app.py):
the outbound client, the remote keyring, our key server and notary, and the inbound
authenticator with its servlets."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from federation import server as federation_server
from federation.client import build_federation_client
from federation.key_server import KeyServer
from federation.keys import Keyring, TrustedKeyServer
from federation.notary import Notary
from homeserver.config import Config
from homeserver.crypto.signing import SigningKey, decode_base64
from homeserver.http.outbound import AddressPolicy
from homeserver.http.server import Router


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("roomserver")
    except PackageNotFoundError:
        return "0.1.0"


def build(*, config: Config, reactor: Any, store: Any, signing_keys: Sequence[SigningKey],
          address_policy: AddressPolicy, now_ms: Callable[[], int]) -> dict[str, Any]:
    """The federation components, by name, for ``HomeServer.components``."""
    client = build_federation_client(
        reactor=reactor, server_name=config.server_name, signing_keys=signing_keys,
        verify_certificates=config.federation_verify_certificates,
        custom_ca_paths=config.federation_custom_ca_list, address_policy=address_policy)
    notaries = [TrustedKeyServer(n.server_name, None if n.verify_keys is None else
                                 {k: decode_base64(v) for k, v in n.verify_keys.items()})
                for n in config.trusted_key_servers]
    keyring = Keyring(server_name=config.server_name, own_keys=signing_keys,
                      store=store.server_keys, client=client, now_ms=now_ms,
                      notaries=notaries)
    key_server = KeyServer(config.server_name, signing_keys, now_ms)
    return {
        "federation_client": client,
        "keyring": keyring,
        "key_server": key_server,
        "notary": Notary(server_name=config.server_name, signing_keys=signing_keys,
                         own_keys=key_server.server_keys, cache=store.server_keys,
                         fetcher=keyring, now_ms=now_ms),
        "federation_authenticator": federation_server.FederationAuthenticator(
            server_name=config.server_name, keyring=keyring),
    }


def register_keys(router: Router, c: dict[str, Any]) -> None:
    """The ``keys`` resource: ``/_matrix/key/v2/server`` and the notary ``/query``."""
    c["key_server"].register(router)
    c["notary"].register(router)


def register_federation(router: Router, c: dict[str, Any]) -> None:
    """The ``federation`` resource's servlets (the fallback is added separately, last)."""
    federation_server.register(router, authenticator=c["federation_authenticator"],
                               profiles=c["profiles"], version=_version())


def register_fallback(router: Router, c: dict[str, Any]) -> None:
    federation_server.register_fallback(router, c["federation_authenticator"])


# --- federation queries (helper fedquery) ---------------------------------------------
def build_remote(*, store: Any, client: Any, server_name: str, now_ms: Callable[[], int],
                 device_lists_changed: Callable[[str], Any]) -> dict[str, Any]:
    """What our users' requests about remote things go through: ``remote_queries``
    (profiles, aliases, room directories, keys), ``remote_device_lists`` (the cache
    kept by ``m.device_list_update``; its ``on_device_list_update`` and
    ``on_signing_key_update`` are the EDU handlers), ``remote_keys`` and
    ``remote_spaces`` (other servers' ``/hierarchy``, for the space hierarchy)."""
    from federation.device_lists import RemoteDeviceLists
    from federation.remote_hierarchy import RemoteSpaces
    from federation.remote_keys import RemoteKeys
    from federation.remote_queries import RemoteQueries

    queries = RemoteQueries(client=client, now_ms=now_ms)
    lists = RemoteDeviceLists(server_name=server_name, store=store, client=client,
                              device_lists_changed=device_lists_changed)
    return {"remote_queries": queries, "remote_device_lists": lists,
            "remote_keys": RemoteKeys(queries=queries, device_lists=lists),
            "remote_spaces": RemoteSpaces(client=client, server_name=server_name,
                                          now_ms=now_ms)}


def edu_handlers(c: dict[str, Any]) -> dict[str, Callable[[str, dict], Any]]:
    """EDU type → ``async handler(origin, content)``, for the inbound /send lane."""
    from federation.device_lists import DEVICE_LIST_UPDATE, SIGNING_KEY_UPDATE

    lists = c["remote_device_lists"]
    return {DEVICE_LIST_UPDATE: lists.on_device_list_update,
            SIGNING_KEY_UPDATE: lists.on_signing_key_update}


def build_queries(*, config: Config, store: Any, c: dict[str, Any],
                  now_ms: Callable[[], int]) -> dict[str, Any]:
    """The serving side: ``federation_queries`` and ``openid`` (tokens for
    ``/openid/request_token`` and ``/openid/userinfo``)."""
    from federation.queries import FederationQueries
    from homeserver.accounts.openid import OpenIdService

    return {
        "federation_queries": FederationQueries(
            server_name=config.server_name, store=store,
            directory=c["room_service"].directory, keys=c["keys"],
            hierarchy=c["space_hierarchy"]),
        "openid": OpenIdService(store=store, server_name=config.server_name, now_ms=now_ms),
    }


def register_queries(router: Router, c: dict[str, Any]) -> None:
    """The query servlets (after :func:`register_federation`: ``/query/{type}`` must
    come after ``/query/profile``)."""
    from federation import queries

    queries.register(router, authenticator=c["federation_authenticator"],
                     queries=c["federation_queries"], openid=c["openid"])


# -- membership across servers (helper fedjoin) -----------------------------------------
def build_membership(*, config: Config, store: Any, rooms: Any, components: dict[str, Any],
                     notifier: Any, signing_key: SigningKey,
                     now_ms: Callable[[], int]) -> dict[str, Any]:
    """Joins, invites, leaves and knocks across servers, serving and doing: the
    ``membership_server`` (make_*/send_*/invite servlets) and ``remote_membership``
    (our users in remote rooms), which the local MembershipService is given."""
    from federation.event_checks import EventChecker
    from federation.membership_client import RemoteMembership
    from federation.membership_server import MembershipServer

    checker = EventChecker(components["keyring"])
    room_service = components["room_service"]
    remote = RemoteMembership(
        server_name=config.server_name, client=components["federation_client"],
        checker=checker, rooms=rooms, memberships=store.remote_memberships,
        stream=store, notify_user=notifier.notify_user, signing_key=signing_key,
        now_ms=now_ms)
    room_service.membership.set_remote(remote, room_service.stripped_state)
    server = MembershipServer(
        server_name=config.server_name, rooms=rooms, checker=checker,
        authoriser=room_service.membership, invites=remote,
        stripped=room_service, users=store.accounts, signing_key=signing_key,
        now_ms=now_ms)
    return {"event_checker": checker, "remote_membership": remote,
            "membership_server": server}


def _signed(c: dict[str, Any]) -> Callable[[Any], Any]:
    """Wraps a servlet in X-Matrix authentication."""
    authenticator = c["federation_authenticator"]
    return lambda handler: federation_server.authenticated(authenticator, handler)


def register_membership(router: Router, c: dict[str, Any]) -> None:
    """make_join/send_join v2, make_leave/send_leave v2, make_knock/send_knock, invite v2."""
    from federation import membership_server

    membership_server.register(router, server=c["membership_server"],
                               authenticated=_signed(c))


def build_sender(*, config: Config, reactor: Any, store: Any, rooms: Any, client: Any,
                 live: dict[str, Any], now_ms: Callable[[], int]) -> dict[str, Any]:
    """The outbound sender (lane fedout): the room stream and the federation outbox
    delivered per destination, woken by the global DB's stream advances, with the
    typing, presence and receipt services observed for local users' EDUs."""
    from federation.destinations import OutboxSource, RoomEventSource
    from federation.outbound_edus import LocalEdus
    from federation.sender import FederationSender

    async def device_keys(user_id: str, device_id: str) -> dict[str, Any] | None:
        device = await store.devices.get_device(user_id, device_id)
        if device is None:
            return None
        keys = (await store.e2e_keys.get_device_keys({user_id: [device_id]})
                ).get(user_id, {}).get(device_id, {})
        keys = dict(keys)
        if device.display_name is not None:
            keys["unsigned"] = {"device_display_name": device.display_name}
        return keys

    async def cross_signing_keys(user_id: str) -> dict[str, Any]:
        return (await store.cross_signing.get_keys([user_id])).get(user_id, {})

    sender = FederationSender(
        server_name=config.server_name, clock=reactor, client=client,
        progress=store.federation_destinations,
        pdu_source=RoomEventSource(server_name=config.server_name, streams=store.streams,
                                   rooms=rooms.get, recent=store.streams.recent),
        edu_source=OutboxSource(server_name=config.server_name,
                                outbox=store.federation_outbox, streams=store.streams,
                                rooms=rooms.get, device_keys=device_keys,
                                cross_signing_keys=cross_signing_keys),
        trim_outbox=store.federation_outbox.delete_upto,
        max_age_ms={"room": config.federation_outbox.pdu_backlog_max_age_ms,
                    "federation_outbox": config.federation_outbox.edu_max_age_ms})
    store.db.add_advance_listener(sender.on_streams_advanced)
    edus = LocalEdus(server_name=config.server_name, sender=sender, streams=store.streams,
                     outbox=store.federation_outbox, now_ms=now_ms,
                     presence_enabled=config.presence_enabled, rooms=rooms.get)
    if "typing" in live:
        live["typing"].add_observer(edus.typing_changed)
    if "presence" in live:
        live["presence"].add_observer(edus.presence_changed)
    if "receipts" in live:
        live["receipts"].add_observer(edus.receipt_sent)
    return {"federation_sender": sender, "federation_edus": edus}


# --- inbound PDUs, EDUs and the room reads (helper fedin) ---
def build_inbound(*, config: Config, store: Any, rooms: Any, c: dict[str, Any],
                  notify_room: Callable[[str], None],
                  notify_users: Callable[[Any], None],
                  now_ms: Callable[[], int]) -> dict[str, Any]:
    """``/send`` and the read endpoints; ``edu_handlers`` is the registry other
    features add their EDU types to (``m.typing``, ``m.receipt``,
    ``m.direct_to_device`` and ``m.presence`` are in it)."""
    from federation.edus import EduHandlers
    from federation.gaps import GapFiller
    from federation.inbound_edus import DeviceMessages, RemotePresence
    from federation.live_edus import LiveEdus
    from federation.pdu_checks import PduChecker
    from federation.room_reads import RoomReads
    from federation.transactions import TransactionHandler

    checker = PduChecker(c["keyring"])
    edus = EduHandlers()
    LiveEdus(rooms=rooms, typing=c["typing"], receipts=store.receipts,
             notify_room=notify_room).register(edus)
    device_messages = DeviceMessages(server_name=config.server_name, devices=store.devices,
                                     inbox=store.to_device, notify_users=notify_users)
    device_messages.register(edus)
    if "presence" in c:
        RemotePresence(presence=c["presence"], now_ms=now_ms).register(edus)
    if "remote_device_lists" in c:  # m.device_list_update, m.signing_key_update
        for edu_type, handler in edu_handlers(c).items():
            edus.register(edu_type, handler)
    return {
        "edu_handlers": edus,
        "federation_device_messages": device_messages,
        "federation_transactions": TransactionHandler(
            server_name=config.server_name, rooms=rooms,
            store=store.federation_inbound_txns, checker=checker,
            gaps=GapFiller(client=c["federation_client"], checker=checker), edus=edus),
        "federation_room_reads": RoomReads(
            server_name=config.server_name, rooms=rooms,
            rooms_joined_by=store.streams.rooms_joined_by_server, now_ms=now_ms,
            room_of_event=store.streams.room_of_event),
    }


def attach_backfill(*, config: Config, reactor: Any, c: dict[str, Any]) -> dict[str, Any]:
    """Outbound backfill: ``/messages`` reaching the oldest events we hold asks a
    server of the room for what came before (``federation.backfill``)."""
    from federation.backfill import Backfiller
    from federation.gaps import GapFiller
    from federation.pdu_checks import PduChecker

    client = c["federation_client"]
    backfiller = Backfiller(
        server_name=config.server_name, client=client, clock=reactor,
        gaps=GapFiller(client=client, checker=PduChecker(c["keyring"])))
    c["room_service"].history.attach_backfill(backfiller.backfill)
    return {"federation_backfiller": backfiller}


def register_inbound(router: Router, c: dict[str, Any]) -> None:
    from federation import inbound_servlets

    inbound_servlets.register(router, authenticator=c["federation_authenticator"],
                              transactions=c["federation_transactions"],
                              reads=c["federation_room_reads"])


# -- housekeeping (helper fedharden) ----------------------------------------------------
#: how long a /send transaction's response is kept for retries of the same txnId: a
#: sender retries within minutes to hours (ours gives up backing off at an hour)
INBOUND_TXN_KEEP_MS = 24 * 3600 * 1000
#: how often the federation tables are purged
PURGE_EVERY_S = 3600.0


def housekeeping(*, config: Config, store: Any, c: dict[str, Any], clock: Any,
                 now_ms: Callable[[], int]) -> list[Any]:
    """The periodic jobs that keep federation tables bounded, as services for the
    composition root: /send dedup records older than a day, remote to-device message
    IDs older than a week, outbox entries older than ``federation.edu_max_age`` that a
    server that is down never took."""
    from homeserver.periodic import PeriodicJob

    async def purge_inbound_txns() -> int:
        return await store.federation_inbound_txns.purge_older_than(
            now_ms() - INBOUND_TXN_KEEP_MS)

    async def expire_outbox() -> int:
        return await store.federation_outbox.expire(
            now_ms() - config.federation_outbox.edu_max_age_ms)

    device_messages = c["federation_device_messages"]
    return [
        PeriodicJob("federation-inbound-txns-purge", purge_inbound_txns, clock=clock,
                    interval=PURGE_EVERY_S),
        PeriodicJob("federation-message-ids-purge",
                    lambda: device_messages.purge_old(now_ms()), clock=clock,
                    interval=PURGE_EVERY_S),
        PeriodicJob("federation-outbox-expiry", expire_outbox, clock=clock,
                    interval=PURGE_EVERY_S),
    ]


# --- third-party invites (helper fedspace) ----------------------------------------------
def build_third_party_invites(*, config: Config, reactor: Any, store: Any, rooms: Any,
                              c: dict[str, Any], address_policy: AddressPolicy
                              ) -> dict[str, Any]:
    """Invites by email address: ``third_party_invites`` (the client side, talking to
    the trusted identity servers through the SSRF-filtered agent) and
    ``third_party_exchange`` (``/3pid/onbind`` and ``/exchange_third_party_invite``)."""
    from federation.third_party_invites import ThirdPartyInviteExchange
    from homeserver.http.identity_servers import (
        IdentityServers, treq_request, trusted_base_urls)
    from homeserver.rooms.features.third_party_invites import ThirdPartyInvites

    identity = IdentityServers(
        trusted=trusted_base_urls(config.trusted_third_party_id_servers),
        request=treq_request(reactor, address_policy))
    invites = ThirdPartyInvites(rooms=rooms, membership=c["room_service"].membership,
                                identity=identity)
    return {"identity_servers": identity, "third_party_invites": invites,
            "third_party_exchange": ThirdPartyInviteExchange(
                server_name=config.server_name, rooms=rooms, store=store,
                invites=invites, client=c["federation_client"])}


def register_third_party_invites(router: Router, c: dict[str, Any]) -> None:
    from federation import third_party_invites

    third_party_invites.register(router, exchange=c["third_party_exchange"],
                                 authenticated=_signed(c))
