"""Fakes for the inbound federation tests: a keyring, a remote server answering
federation requests from a table, and an in-memory transaction store."""

from __future__ import annotations

import json
from typing import Any

from federation.client import RemoteHttpError


class FakeKeyring:
    """Verify keys by (server, key_id), valid at any time."""

    def __init__(self, keys: dict[tuple[str, str], bytes]) -> None:
        self.keys = keys

    async def get_verify_key(self, server_name, key_id, minimum_valid_until_ts=None):
        key = self.keys.get((server_name, key_id))
        if key is None:
            raise KeyError(key_id)
        return key


class FakeRemote:
    """Answers ``(method, path)`` from ``answers`` (a callable gets the body/args);
    anything else is a 404. Records every call."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Any] = {}
        self.calls: list[tuple[str, str, str, Any]] = []

    def _answer(self, method: str, destination: str, path: str, payload: Any) -> Any:
        self.calls.append((method, destination, path, payload))
        answer = self.answers.get((method, path))
        if answer is None:
            raise RemoteHttpError(destination, 404, json.dumps(
                {"errcode": "M_NOT_FOUND", "error": "no"}).encode())
        return answer(payload) if callable(answer) else answer

    async def get_json(self, destination, path, args=None, *, timeout=None):
        return self._answer("GET", destination, path, args)

    async def post_json(self, destination, path, body, args=None, *, timeout=None):
        return self._answer("POST", destination, path, body)

    def paths(self) -> list[tuple[str, str]]:
        return [(m, p) for m, _, p, _ in self.calls]


class MemoryTxnStore:
    def __init__(self) -> None:
        self.responses: dict[tuple[str, str], Any] = {}

    async def get_response(self, origin, txn_id):
        return self.responses.get((origin, txn_id))

    async def record(self, origin, txn_id, response):
        self.responses.setdefault((origin, txn_id), response)
