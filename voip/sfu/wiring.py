"""How the composition root (homeserver/app.py) builds the SFU and mounts its API."""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

from voip.sfu.service import SfuService


class RoomGate:
    """The SFU's view of the rooms: membership (the same check the client API makes
    through RoomService) and whether the room is encrypted (no server-side
    processing of media there)."""

    def __init__(self, room_service: Any, rooms: Any) -> None:
        self._room_service = room_service
        self._rooms = rooms

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        return await self._room_service.is_joined(room_id, user_id)

    async def is_encrypted(self, room_id: str) -> bool:
        if not self._rooms.known(room_id):
            return False
        actor = await self._rooms.get(room_id)
        return bool(await actor.current_state([("m.room.encryption", "")]))


def _denoiser_factory() -> Callable[[], Any] | None:
    """``SpeakerDenoiser`` of voip/denoise.py (issue 15, noise suppression), imported
    with the first speaker who asks: it loads Opus and RNNoise. None without it."""
    if importlib.util.find_spec("voip.denoise") is None:
        return None

    def make() -> Any:
        from voip.denoise import SpeakerDenoiser

        return SpeakerDenoiser()
    return make


def build(*, config, reactor, room_service, rooms, now_ms: Callable[[], int]) -> SfuService:
    from voip.turn import turn_credentials

    def ice_servers_for(user_id: str) -> list[dict]:
        creds = turn_credentials(config.turn, user_id, now_ms())
        if not creds:
            return []
        return [{"urls": creds["uris"], "username": creds["username"],
                 "credential": creds["password"]}]

    return SfuService(config.sfu, gate=RoomGate(room_service, rooms), clock=reactor,
                      ice_servers_for=ice_servers_for,
                      denoiser_factory=_denoiser_factory())


def register_servlets(router, c: dict) -> None:
    from voip.sfu import resources

    if "sfu" in c:
        resources.register(router, auth=c["auth"], sfu=c["sfu"])
