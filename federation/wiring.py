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
