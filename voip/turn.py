"""TURN credentials for ``GET /voip/turnServer`` (spec: Client-Server API, "Voice over
IP", "Server behaviour"; voip.yaml). Pure: values in, values out.

With a shared secret the credentials are time-limited, in the scheme of the TURN REST
API draft that coturn implements (``use-auth-secret``): the username is
``"<expiry unix seconds>:<user_id>"`` and the password the base64 HMAC-SHA1 of that
username keyed by the secret, so the TURN server checks them without asking us. With a
static username and password those are handed out as they are. With neither (or no
URIs) the answer is ``{}``, as Synapse answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from homeserver.config import TurnConfig


def turn_credentials(config: TurnConfig, user_id: str, now_ms: int) -> dict[str, Any]:
    """The voip.yaml response body for ``user_id`` at ``now_ms``."""
    lifetime_s = config.user_lifetime_ms // 1000
    if not config.uris:
        return {}
    if config.shared_secret is not None:
        expiry = (now_ms + config.user_lifetime_ms) // 1000
        username = f"{expiry}:{user_id}"
        mac = hmac.new(config.shared_secret.encode("utf-8"), username.encode("utf-8"),
                       hashlib.sha1)
        password = base64.b64encode(mac.digest()).decode("ascii")
    elif config.username is not None and config.password is not None:
        username, password = config.username, config.password
    else:
        return {}
    return {"username": username, "password": password, "uris": list(config.uris),
            "ttl": lifetime_s}
