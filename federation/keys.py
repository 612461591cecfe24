"""Other servers' signing keys: fetched, checked, cached (spec: Server-Server API,
"Retrieving server keys").

A key is looked up in the ``server_keys`` cache first. If it is missing, or not valid
until the time the caller needs (``minimum_valid_until_ts``; *now* for request
authentication), the server is asked directly (``GET /_matrix/key/v2/server``) and,
only if that fails to produce the key, each configured notary in turn
(``POST /_matrix/key/v2/query``; Synapse's ``trusted_key_servers``). So notaries are
never contacted while servers answer for themselves, and a test federation on
loopback never reaches out to matrix.org.

Every response must be signed by each of the keys it lists (self-signature); a notary
answer must in addition carry the notary's signature when the config pins the
notary's keys. Responses are cached whole (``key_json``) so we can serve them as a
notary ourselves. Concurrent look-ups for one server share one fetch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol, Sequence

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from homeserver.crypto.canonical_json import CanonicalJsonError, encode_canonical_json
from homeserver.crypto.signing import (
    ED25519, SigningKey, decode_base64, verify_json_signature,
)
from homeserver.store.server_keys import ServerKey

log = Logger()


class KeyFetchError(Exception):
    """No valid key could be found for the server and key ID asked for."""


@dataclasses.dataclass(frozen=True)
class TrustedKeyServer:
    """A notary (``trusted_key_servers`` entry); ``verify_keys`` pins its keys."""

    server_name: str
    verify_keys: Mapping[str, bytes] | None = None


# -- pure: checking responses ---------------------------------------------------------------

def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def keys_from_response(body: Any, server_name: str) -> list[ServerKey]:
    """The keys in a ``/_matrix/key/v2/server``-shaped object for ``server_name``.

    Raises :class:`KeyFetchError` unless it names ``server_name``, has an integer
    ``valid_until_ts``, and carries a valid signature by every key in ``verify_keys``.
    ``old_verify_keys`` come back with their ``expired_ts`` (valid until then).
    """
    if not isinstance(body, dict) or body.get("server_name") != server_name:
        raise KeyFetchError(f"response is not about {server_name}")
    valid_until = body.get("valid_until_ts")
    verify_keys, old_keys = body.get("verify_keys"), body.get("old_verify_keys", {})
    if not _int(valid_until) or not isinstance(verify_keys, dict) \
            or not isinstance(old_keys, dict):
        raise KeyFetchError(f"malformed key response from {server_name}")
    try:
        key_json = encode_canonical_json(body)
    except CanonicalJsonError as e:
        raise KeyFetchError(f"key response of {server_name} is not canonical JSON: {e}") \
            from None
    keys = []
    for key_id, entry in verify_keys.items():
        if not key_id.startswith(ED25519 + ":"):
            continue  # an algorithm we do not know cannot sign anything we check
        key_b64 = entry.get("key") if isinstance(entry, dict) else None
        try:
            key_bytes = decode_base64(key_b64) if isinstance(key_b64, str) else b""
        except ValueError:
            key_bytes = b""
        if len(key_bytes) != 32:
            raise KeyFetchError(f"{server_name} {key_id}: not an ed25519 key")
        if not verify_json_signature(body, server_name, key_id, key_bytes):
            raise KeyFetchError(f"{server_name}: response not signed by {key_id}")
        keys.append(ServerKey(server_name, key_id, key_b64, valid_until, None, key_json))
    for key_id, entry in old_keys.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) \
                or not _int(entry.get("expired_ts")):
            continue
        keys.append(ServerKey(server_name, key_id, entry["key"], entry["expired_ts"],
                              entry["expired_ts"], key_json))
    return keys


def signed_by_notary(body: Mapping[str, Any], notary: TrustedKeyServer) -> bool:
    """True if the notary's keys are not pinned, or one of them signed ``body``."""
    if not notary.verify_keys:
        return True
    return any(verify_json_signature(body, notary.server_name, key_id, key)
               for key_id, key in notary.verify_keys.items())


# -- I/O ---------------------------------------------------------------------------------------

class KeyStore(Protocol):
    async def store_server_keys(self, keys: Iterable[ServerKey]) -> int: ...
    async def get_server_key(self, server_name: str, key_id: str) -> ServerKey | None: ...


class JsonClient(Protocol):
    """The part of FederationClient used here."""

    def get_json(self, destination: str, path: str, args: Any = None, *,
                 timeout: float | None = None, sign: bool = True) -> Awaitable[Any]: ...

    def post_json(self, destination: str, path: str, body: Any, args: Any = None, *,
                  timeout: float | None = None, sign: bool = True) -> Awaitable[Any]: ...


class Keyring:
    """Verify keys of any server, ours included (module docstring)."""

    def __init__(self, *, server_name: str, own_keys: Sequence[SigningKey], store: KeyStore,
                 client: JsonClient, now_ms: Callable[[], int],
                 notaries: Sequence[TrustedKeyServer] = (), timeout: float = 30.0) -> None:
        self._server_name = server_name
        self._own = {k.key_id: k for k in own_keys}
        self._store = store
        self._client = client
        self._now_ms = now_ms
        self._notaries = tuple(notaries)
        self._timeout = timeout
        #: server name → the callers waiting for the fetch in flight
        self._inflight: dict[str, list[defer.Deferred]] = {}

    async def get_verify_key(self, server_name: str, key_id: str,
                             minimum_valid_until_ts: int | None = None) -> bytes:
        """The raw ed25519 key, valid until at least ``minimum_valid_until_ts`` (default
        now); raises :class:`KeyFetchError` if none can be found."""
        key = await self.get_key(server_name, key_id, minimum_valid_until_ts)
        return decode_base64(key.verify_key)

    async def get_key(self, server_name: str, key_id: str,
                      minimum_valid_until_ts: int | None = None) -> ServerKey:
        minimum = self._now_ms() if minimum_valid_until_ts is None else minimum_valid_until_ts
        if server_name == self._server_name:
            own = self._own.get(key_id)
            if own is None:
                raise KeyFetchError(f"we have no key {key_id}")
            return ServerKey(server_name, key_id, own.verify_key_base64, 2 ** 53 - 1)
        cached = await self._store.get_server_key(server_name, key_id)
        if cached is not None and cached.valid_until_ts >= minimum:
            return cached
        await self.refresh(server_name, key_id, minimum)
        cached = await self._store.get_server_key(server_name, key_id)
        if cached is None:
            raise KeyFetchError(f"no key {key_id} for {server_name}")
        if cached.valid_until_ts < minimum:
            raise KeyFetchError(f"{server_name} {key_id} is only valid until "
                                f"{cached.valid_until_ts}")
        return cached

    def refresh(self, server_name: str, key_id: str | None = None,
                minimum: int = 0) -> defer.Deferred:
        """Fetch ``server_name``'s keys into the cache (shared by concurrent callers:
        a second caller waits for the fetch already under way)."""
        mine: defer.Deferred = defer.Deferred()
        waiters = self._inflight.get(server_name)
        if waiters is not None:
            waiters.append(mine)
            return mine
        waiters = self._inflight[server_name] = [mine]

        def finish(result: Any) -> None:
            # each waiter gets its own Deferred so one cannot consume another's result
            for waiter in self._inflight.pop(server_name):
                (waiter.errback if isinstance(result, Failure) else waiter.callback)(result)

        defer.ensureDeferred(self._fetch(server_name, key_id, minimum)).addBoth(finish)
        return mine

    async def _fetch(self, server_name: str, key_id: str | None, minimum: int) -> None:
        try:
            body = await self._client.get_json(server_name, "/_matrix/key/v2/server",
                                               timeout=self._timeout, sign=False)
            keys = keys_from_response(body, server_name)
            await self._store.store_server_keys(keys)
            if key_id is None or any(k.key_id == key_id and k.valid_until_ts >= minimum
                                     for k in keys):
                return
        except Exception as e:  # unreachable, malformed, unsigned: try the notaries
            log.info("direct key fetch from {server} failed: {e}", server=server_name, e=e)
        for notary in self._notaries:
            if notary.server_name == server_name:
                continue
            try:
                await self._from_notary(notary, server_name, key_id, minimum)
                return
            except Exception as e:
                log.info("notary {notary} had no keys for {server}: {e}",
                         notary=notary.server_name, server=server_name, e=e)

    async def _from_notary(self, notary: TrustedKeyServer, server_name: str,
                           key_id: str | None, minimum: int) -> None:
        wanted = {} if key_id is None else {key_id: {"minimum_valid_until_ts": minimum}}
        body = await self._client.post_json(
            notary.server_name, "/_matrix/key/v2/query",
            {"server_keys": {server_name: wanted}}, timeout=self._timeout, sign=False)
        entries = body.get("server_keys") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise KeyFetchError(f"malformed answer from notary {notary.server_name}")
        found = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("server_name") != server_name:
                continue
            if not signed_by_notary(entry, notary):
                raise KeyFetchError(f"answer not signed by notary {notary.server_name}")
            found += keys_from_response(entry, server_name)
        if not found:
            raise KeyFetchError(f"notary {notary.server_name} returned no keys")
        await self._store.store_server_keys(found)
