"""voip/sfu/sfu_config.py: the ``voip.sfu`` section, and its place in the config."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.config import ConfigError, parse_config
from voip.sfu.sfu_config import SfuConfig, SfuConfigError, parse_sfu_config


class SfuConfigTest(unittest.TestCase):
    def test_defaults(self):
        """No section: the SFU is on with the documented defaults."""
        self.assertEqual(parse_sfu_config({}), (SfuConfig(), ()))
        self.assertTrue(SfuConfig().enabled)

    def test_values(self):
        """Every key is read, durations in s/ms, addresses normalised."""
        config, warnings = parse_sfu_config({"sfu": {
            "enabled": False, "bind_addresses": ["10.0.0.2"], "public_ip": "203.0.113.9",
            "max_participants_per_call": 4, "max_calls": 2, "max_bitrate_per_track": 32000,
            "media_timeout": "1500ms", "connect_timeout": "10s", "colour": "blue",
            "max_video_bitrate": 800000}})
        self.assertEqual(config, SfuConfig(False, ("10.0.0.2",), "203.0.113.9", 4, 2, 32000,
                                           1.5, 10.0, 800000))
        self.assertEqual(warnings, ("unknown config key 'voip.sfu.colour' ignored",))

    def test_bad_values_name_the_key(self):
        """An invalid value is an error naming voip.sfu.<key>."""
        for raw, key in (({"enabled": "yes"}, "enabled"),
                         ({"bind_addresses": ["not-an-ip"]}, "bind_addresses"),
                         ({"max_calls": 0}, "max_calls"),
                         ({"media_timeout": "soon"}, "media_timeout")):
            with self.assertRaises(SfuConfigError) as e:
                parse_sfu_config({"sfu": raw})
            self.assertIn(f"voip.sfu.{key}", str(e.exception))

    def test_in_the_server_config(self):
        """parse_config reads ``voip.sfu`` and turns its errors into ConfigError."""
        base = {"server_name": "example.org"}
        self.assertEqual(parse_config({**base, "voip": {"sfu": {"max_calls": 3}}}, "/tmp")
                         .sfu.max_calls, 3)
        with self.assertRaises(ConfigError):
            parse_config({**base, "voip": {"sfu": {"max_calls": -1}}}, "/tmp")
