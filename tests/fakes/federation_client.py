"""A FederationClient stand-in: canned answers per (method, destination, path),
every request recorded. An answer that is an exception is raised (use
``federation.client.RemoteHttpError`` / ``RemoteUnreachable`` for remote failures)."""

from __future__ import annotations

from typing import Any, Mapping


class FakeFederationClient:
    def __init__(self) -> None:
        self.answers: dict[tuple[str, str, str], Any] = {}
        #: (method, destination, path, args, body, timeout) of every request
        self.requests: list[tuple[str, str, str, Any, Any, Any]] = []

    def answer(self, method: str, destination: str, path: str, value: Any) -> None:
        self.answers[(method, destination, path)] = value

    def sent(self, method: str, path: str) -> list[tuple]:
        return [r for r in self.requests if r[0] == method and r[2] == path]

    async def get_json(self, destination: str, path: str,
                       args: Mapping[str, Any] | None = None, *,
                       timeout: float | None = None, sign: bool = True) -> Any:
        return self._reply("GET", destination, path, args, None, timeout)

    async def post_json(self, destination: str, path: str, body: Any,
                        args: Mapping[str, Any] | None = None, *,
                        timeout: float | None = None, sign: bool = True) -> Any:
        return self._reply("POST", destination, path, args, body, timeout)

    async def put_json(self, destination: str, path: str, body: Any,
                       args: Mapping[str, Any] | None = None, *,
                       timeout: float | None = None, sign: bool = True) -> Any:
        return self._reply("PUT", destination, path, args, body, timeout)

    def _reply(self, method, destination, path, args, body, timeout) -> Any:
        from federation.client import RemoteHttpError

        self.requests.append((method, destination, path, args, body, timeout))
        value = self.answers.get((method, destination, path))
        if value is None:
            raise RemoteHttpError(destination, 404, b'{"errcode":"M_UNRECOGNIZED"}')
        if isinstance(value, BaseException):
            raise value
        return value() if callable(value) else value
