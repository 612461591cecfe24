"""MatrixRTC transports we advertise (MSC4143 "Discovery of transport infrastructure").

``GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports`` answers
``{"rtc_transports": [...]}`` and ``/.well-known/matrix/client`` carries the same list
as ``org.matrix.msc4143.rtc_foci`` (what Element Call reads). First our built-in SFU,
as a transport of type ``org.roomserver.sfu`` whose ``sfu_url`` is the base of its
HTTP API on our public URL, then the operator's own (e.g. LiveKit, Synapse's
``matrix_rtc.transports`` list, passed through as written). Pure: no twisted.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

SFU_TRANSPORT_TYPE = "org.roomserver.sfu"
#: the SFU's API on the client API, relative to the public base URL (voip/sfu)
SFU_API_PATH = "_matrix/client/unstable/org.roomserver.sfu"
#: a request path that exists once the SFU's routes are mounted (one per room)
SFU_PROBE_PATH = "/" + SFU_API_PATH + "/rooms/!probe:localhost/sessions/new"


@dataclasses.dataclass(frozen=True)
class MatrixRtcConfig:
    """``matrix_rtc:`` — ``transports`` is Synapse's key (a list of mappings, each with
    a ``type``; ``livekit`` ones need ``url`` or ``livekit_service_url``);
    ``builtin_sfu`` is ours (advertise the SFU inside this server; default true)."""

    transports: tuple[Mapping[str, Any], ...] = ()
    builtin_sfu: bool = True


def parse_matrix_rtc(raw: Any) -> MatrixRtcConfig:
    """Validate the ``matrix_rtc`` section; ValueError names the bad key."""
    if raw is None:
        return MatrixRtcConfig()
    if not isinstance(raw, Mapping):
        raise ValueError("matrix_rtc: expected a mapping")
    transports = raw.get("transports") or []
    if not isinstance(transports, list):
        raise ValueError("matrix_rtc.transports: expected a list")
    for i, transport in enumerate(transports):
        key = f"matrix_rtc.transports[{i}]"
        if not isinstance(transport, Mapping) or not isinstance(transport.get("type"), str) \
                or not transport["type"]:
            raise ValueError(f"{key}: expected a mapping with a type")
        if transport["type"] == "livekit" and not (
                isinstance(transport.get("url"), str)
                or isinstance(transport.get("livekit_service_url"), str)):
            raise ValueError(f"{key}: a livekit transport needs url or livekit_service_url")
    builtin = raw.get("builtin_sfu", True)
    if not isinstance(builtin, bool):
        raise ValueError("matrix_rtc.builtin_sfu: expected true or false")
    return MatrixRtcConfig(tuple(dict(t) for t in transports), builtin)


def builtin_transport(base_url: str) -> dict[str, str]:
    """Our SFU as a transport; ``base_url`` ends with "/"."""
    return {"type": SFU_TRANSPORT_TYPE, "sfu_url": base_url + SFU_API_PATH}


def rtc_transports(config: MatrixRtcConfig, base_url: str, *,
                   sfu_served: bool) -> list[dict[str, Any]]:
    """The transports, in our order of preference: the built-in SFU (only while its
    API is really served here) before the operator's."""
    ours = [builtin_transport(base_url)] if config.builtin_sfu and sfu_served else []
    return ours + [dict(t) for t in config.transports]
