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
    ``on_signing_key_update`` are the EDU handlers) and ``remote_keys``."""
    from federation.device_lists import RemoteDeviceLists
    from federation.remote_keys import RemoteKeys
    from federation.remote_queries import RemoteQueries

    queries = RemoteQueries(client=client, now_ms=now_ms)
    lists = RemoteDeviceLists(server_name=server_name, store=store, client=client,
                              device_lists_changed=device_lists_changed)
    return {"remote_queries": queries, "remote_device_lists": lists,
            "remote_keys": RemoteKeys(queries=queries, device_lists=lists)}


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


# --- inbound PDUs, EDUs and the room reads (helper fedin) ---
def build_inbound(*, config: Config, store: Any, rooms: Any, c: dict[str, Any],
                  notify_room: Callable[[str], None],
                  now_ms: Callable[[], int]) -> dict[str, Any]:
    """``/send`` and the read endpoints; ``edu_handlers`` is the registry other
    features add their EDU types to (``m.typing`` and ``m.receipt`` are in it)."""
    from federation.edus import EduHandlers
    from federation.gaps import GapFiller
    from federation.live_edus import LiveEdus
    from federation.pdu_checks import PduChecker
    from federation.room_reads import RoomReads
    from federation.transactions import TransactionHandler

    checker = PduChecker(c["keyring"])
    edus = EduHandlers()
    LiveEdus(rooms=rooms, typing=c["typing"], receipts=store.receipts,
             notify_room=notify_room).register(edus)
    if "remote_device_lists" in c:  # m.device_list_update, m.signing_key_update
        for edu_type, handler in edu_handlers(c).items():
            edus.register(edu_type, handler)
    return {
        "edu_handlers": edus,
        "federation_transactions": TransactionHandler(
            server_name=config.server_name, rooms=rooms,
            store=store.federation_inbound_txns, checker=checker,
            gaps=GapFiller(client=c["federation_client"], checker=checker), edus=edus),
        "federation_room_reads": RoomReads(
            server_name=config.server_name, rooms=rooms,
            rooms_joined_by=store.streams.rooms_joined_by_server, now_ms=now_ms),
    }


def register_inbound(router: Router, c: dict[str, Any]) -> None:
    from federation import inbound_servlets

    inbound_servlets.register(router, authenticator=c["federation_authenticator"],
                              transactions=c["federation_transactions"],
                              reads=c["federation_room_reads"])
