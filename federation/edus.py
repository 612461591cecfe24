"""EDUs received in ``/send`` transactions, dispatched by ``edu_type``.

Spec: Server-Server API, "Transactions" and "EDUs". Each feature registers the
handler for its EDU types (``m.typing``, ``m.receipt``, ``m.presence``,
``m.device_list_update``, ``m.direct_to_device``, ``m.signing_key_update`` …) with
:meth:`EduHandlers.register`; an EDU nobody handles is ignored, as the spec lets a
server ignore EDUs it does not understand. A handler's failure is logged and never
fails the transaction (EDUs are best-effort; the PDUs must still be answered).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

from twisted.logger import Logger

log = Logger()

#: (origin, content) → None; ``origin`` is the authenticated sending server
EduHandler = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class EduHandlers:
    def __init__(self) -> None:
        self._handlers: dict[str, EduHandler] = {}

    def register(self, edu_type: str, handler: EduHandler) -> None:
        """Handle ``edu_type`` with ``handler``; one handler per type."""
        if edu_type in self._handlers:
            raise ValueError(f"a handler for {edu_type} is already registered")
        self._handlers[edu_type] = handler

    def handles(self, edu_type: str) -> bool:
        return edu_type in self._handlers

    async def dispatch(self, origin: str, edu: Any) -> bool:
        """Hand one EDU to its handler; False if it was malformed or unhandled."""
        if not isinstance(edu, Mapping):
            return False
        edu_type, content = edu.get("edu_type"), edu.get("content")
        if not isinstance(edu_type, str) or not isinstance(content, Mapping):
            return False
        handler = self._handlers.get(edu_type)
        if handler is None:
            return False
        try:
            await handler(origin, content)
        except Exception:  # noqa: BLE001 - one bad EDU must not fail the transaction
            log.failure("EDU {edu_type} from {origin}", edu_type=edu_type, origin=origin)
            return False
        return True
