"""Configuration: YAML files merged deeply, validated once into frozen values.

:mod:`.parse` reads the whole file into a :class:`Config`; each section's values and
their parsing live in a module of their own (:mod:`.listeners`, :mod:`.rate_limits`,
:mod:`.rooms`, :mod:`.federation`, :mod:`.media`, :mod:`.calls`, :mod:`.accounts`),
over the typed reads of :mod:`.values`. What other packages import is re-exported here.
"""

from homeserver.config.accounts import LoginViaExistingSession
from homeserver.config.calls import TurnConfig
from homeserver.config.federation import FederationOutboxConfig, TrustedKeyServer
from homeserver.config.listeners import Listener
from homeserver.config.media import MediaRetentionConfig, UrlPreviewConfig
from homeserver.config.parse import Config, load_config_files, parse_config
from homeserver.config.rate_limits import RateLimit
from homeserver.config.rooms import RoomsConfig
from homeserver.config.values import ConfigError

__all__ = [
    "Config", "ConfigError", "FederationOutboxConfig", "Listener", "LoginViaExistingSession",
    "MediaRetentionConfig", "RateLimit", "RoomsConfig", "TrustedKeyServer", "TurnConfig",
    "UrlPreviewConfig", "load_config_files", "parse_config",
]
