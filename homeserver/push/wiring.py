"""Composition of the push part of the service tree (called from
``homeserver.app``, the composition root)."""

from __future__ import annotations

from typing import Any


def register_servlets(router: Any, c: dict[str, Any]) -> None:
    from homeserver.client_api import push_rules

    push_rules.register(router, auth=c["auth"], push_rules=c["push_rules"])
