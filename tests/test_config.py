"""Configuration parsing: Synapse key names, deep merge, one-line errors."""

import os
import subprocess
import sys
import tempfile

import yaml
from twisted.trial import unittest

from homeserver.config import ConfigError, RoomsConfig, load_config_files, parse_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(d, name, data):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


class ParseConfigTests(unittest.TestCase):
    def test_minimal(self):
        """A config with only server_name gets sensible defaults."""
        c = parse_config({"server_name": "example.org"}, "/tmp")
        self.assertEqual(c.server_name, "example.org")
        self.assertEqual(c.listeners[0].port, 8008)
        self.assertEqual(c.database["name"], "sqlite3")
        self.assertEqual(c.default_room_version, "12")
        self.assertFalse(c.enable_registration)

    def test_synapse_keys(self):
        """Synapse's homeserver.yaml keys are understood."""
        c = parse_config({
            "server_name": "example.org:8448",
            "listeners": [{"port": 9000, "bind_addresses": ["127.0.0.1"], "type": "http",
                           "tls": False, "resources": [{"names": ["client"]}]}],
            "database": {"name": "psycopg2", "args": {"user": "u", "database": "d"}},
            "max_upload_size": "10M",
            "rc_message": {"per_second": 1, "burst_count": 5},
            "rc_login": {"address": {"per_second": 2, "burst_count": 3}},
            "default_room_version": 10,
        }, "/tmp")
        self.assertEqual(c.listeners[0].port, 9000)
        self.assertIn("client", c.listeners[0].resources)
        self.assertEqual(c.database["name"], "psycopg2")
        self.assertEqual(c.max_upload_size, 10 * 1024 * 1024)
        self.assertEqual(c.rate_limits["rc_message"].burst_count, 5)
        self.assertEqual(c.rate_limits["rc_login.address"].per_second, 2)
        self.assertEqual(c.default_room_version, "10")

    def test_media_keys(self):
        """Synapse's media keys: authenticated media on by default, the pending-upload
        cap and the thumbnailer's pixel limit."""
        c = parse_config({"server_name": "a.b"}, "/tmp")
        self.assertEqual((c.enable_authenticated_media, c.max_pending_media_uploads,
                          c.max_image_pixels), (True, 5, 32 * 1024 * 1024))
        self.assertEqual(c.media_store_path, "/tmp/media_store")
        c = parse_config({"server_name": "a.b", "enable_authenticated_media": False,
                          "max_pending_media_uploads": 2, "max_image_pixels": "10M"}, "/tmp")
        self.assertEqual((c.enable_authenticated_media, c.max_pending_media_uploads,
                          c.max_image_pixels), (False, 2, 10 * 1024 * 1024))
        self.assertEqual(c.warnings, ())

    def test_unknown_key_warns(self):
        """An unknown key is a warning, not an error."""
        c = parse_config({"server_name": "a.b", "no_such_key": 1}, "/tmp")
        self.assertTrue(any("no_such_key" in w for w in c.warnings))

    def test_invalid_values(self):
        """Invalid values raise a ConfigError naming the key."""
        cases = [
            ({"server_name": "bad name!"}, "server_name"),
            ({"server_name": "a.b", "enable_registration": "yes"}, "enable_registration"),
            ({"server_name": "a.b", "default_room_version": "99"}, "default_room_version"),
            ({"server_name": "a.b", "listeners": [{"port": "x"}]}, "listeners[0].port"),
            ({"server_name": "a.b", "max_upload_size": "lots"}, "max_upload_size"),
            ({"server_name": "a.b", "max_pending_media_uploads": 0},
             "max_pending_media_uploads"),
            ({"server_name": "a.b", "enable_authenticated_media": "no"},
             "enable_authenticated_media"),
            ({"server_name": "a.b", "max_image_pixels": "huge"}, "max_image_pixels"),
            ({"server_name": "a.b", "rooms": {"idle_seconds": -1}}, "idle_seconds"),
            ({"server_name": "a.b", "rooms": {"max_warm": 0}}, "max_warm"),
            ({"server_name": "a.b", "enable_registration": True}, "enable_registration"),
        ]
        for raw, key in cases:
            with self.assertRaises(ConfigError) as cm:
                parse_config(raw, "/tmp")
            self.assertIn(key, str(cm.exception))
            self.assertNotIn("\n", str(cm.exception))

    def test_turn_keys(self):
        """Synapse's turn_* keys: URIs, secret, lifetime as a duration, guests flag."""
        c = parse_config({"server_name": "a.b", "turn_uris": ["turn:t.a.b:3478"],
                          "turn_shared_secret": "s", "turn_user_lifetime": "1d",
                          "turn_allow_guests": False}, "/tmp")
        self.assertEqual(c.turn.uris, ("turn:t.a.b:3478",))
        self.assertEqual(c.turn.user_lifetime_ms, 86_400_000)
        self.assertFalse(c.turn.allow_guests)
        defaults = parse_config({"server_name": "a.b"}, "/tmp").turn
        self.assertEqual((defaults.uris, defaults.user_lifetime_ms, defaults.allow_guests),
                         ((), 3_600_000, True))
        self.assertEqual(parse_config({"server_name": "a.b", "turn_user_lifetime": 5000},
                                      "/tmp").turn.user_lifetime_ms, 5000)

    def test_federation_outbox_limits(self):
        """federation: pdu_backlog_max_age (1d) and edu_max_age (7d) are durations;
        a bad one names its key."""
        c = parse_config({"server_name": "a.b"}, "/tmp").federation_outbox
        self.assertEqual((c.pdu_backlog_max_age_ms, c.edu_max_age_ms),
                         (86_400_000, 7 * 86_400_000))
        c = parse_config({"server_name": "a.b", "federation": {
            "pdu_backlog_max_age": "3d", "edu_max_age": "12h"}}, "/tmp")
        self.assertEqual((c.federation_outbox.pdu_backlog_max_age_ms,
                          c.federation_outbox.edu_max_age_ms),
                         (3 * 86_400_000, 12 * 3_600_000))
        self.assertEqual(c.warnings, ())
        with self.assertRaises(ConfigError) as e:
            parse_config({"server_name": "a.b", "federation": {"edu_max_age": "soon"}},
                         "/tmp")
        self.assertIn("federation.edu_max_age", str(e.exception))

    def test_media_retention(self):
        """media_retention: Synapse durations per kind; off unless set, null is off,
        and no warning for the key."""
        c = parse_config({"server_name": "a.b", "media_retention": {
            "local_media_lifetime": "90d", "remote_media_lifetime": 3_600_000}}, "/tmp")
        self.assertEqual(c.media_retention.local_media_lifetime_ms, 90 * 86_400_000)
        self.assertEqual(c.media_retention.remote_media_lifetime_ms, 3_600_000)
        self.assertEqual(c.warnings, ())
        for raw in ({}, {"media_retention": None}, {"media_retention": {}},
                    {"media_retention": {"local_media_lifetime": None}}):
            r = parse_config({"server_name": "a.b", **raw}, "/tmp").media_retention
            self.assertEqual((r.local_media_lifetime_ms, r.remote_media_lifetime_ms),
                             (None, None))
        c = parse_config({"server_name": "a.b",
                          "media_retention": {"remote_media_lifetime": "14d"}}, "/tmp")
        self.assertEqual((c.media_retention.local_media_lifetime_ms,
                          c.media_retention.remote_media_lifetime_ms),
                         (None, 14 * 86_400_000))

    def test_login_via_existing_session(self):
        """login_via_existing_session: off, UIA required and 5 minutes by default, as in
        Synapse; each key read, no warning; bad values are errors naming the key."""
        d = parse_config({"server_name": "a.b"}, "/tmp").login_via_existing_session
        self.assertEqual((d.enabled, d.require_ui_auth, d.token_timeout_ms),
                         (False, True, 300_000))
        limit = parse_config({"server_name": "a.b"}, "/tmp").rate_limits["rc_login_token_request"]
        self.assertEqual((limit.per_second, limit.burst_count), (1 / 60, 1))
        c = parse_config({"server_name": "a.b", "login_via_existing_session": {
            "enabled": True, "require_ui_auth": False, "token_timeout": "30s"}}, "/tmp")
        s = c.login_via_existing_session
        self.assertEqual((s.enabled, s.require_ui_auth, s.token_timeout_ms),
                         (True, False, 30_000))
        self.assertEqual(c.warnings, ())
        for bad, key in (({"enabled": "yes"}, "login_via_existing_session.enabled"),
                         ({"token_timeout": "soon"},
                          "login_via_existing_session.token_timeout"),
                         ({"token_timeout": 0}, "login_via_existing_session.token_timeout")):
            with self.assertRaises(ConfigError) as e:
                parse_config({"server_name": "a.b", "login_via_existing_session": bad}, "/tmp")
            self.assertIn(key, str(e.exception))
        with self.assertRaises(ConfigError):
            parse_config({"server_name": "a.b", "login_via_existing_session": True}, "/tmp")

    def test_invalid_media_retention(self):
        """A media_retention that is not a mapping, or a lifetime that is not a
        positive duration, is an error naming the key."""
        cases = [
            ({"media_retention": "90d"}, "media_retention"),
            ({"media_retention": {"local_media_lifetime": "soon"}},
             "media_retention.local_media_lifetime"),
            ({"media_retention": {"remote_media_lifetime": 0}},
             "media_retention.remote_media_lifetime"),
            ({"media_retention": {"remote_media_lifetime": True}},
             "media_retention.remote_media_lifetime"),
        ]
        for raw, key in cases:
            with self.assertRaises(ConfigError) as cm:
                parse_config({"server_name": "a.b", **raw}, "/tmp")
            self.assertIn(key, str(cm.exception))

    def test_turn_secret_path(self):
        """turn_shared_secret_path reads the secret from a file next to the config."""
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "turn.secret"), "w") as f:
            f.write("from-file\n")
        c = parse_config({"server_name": "a.b", "turn_shared_secret_path": "turn.secret"}, d)
        self.assertEqual(c.turn.shared_secret, "from-file")

    def test_invalid_turn_and_baseurl(self):
        """Bad turn_* values and a non-URL public_baseurl are errors naming the key."""
        cases = [
            ({"turn_uris": ["http://x"]}, "turn_uris"),
            ({"turn_uris": "turn:x"}, "turn_uris"),
            ({"turn_user_lifetime": "soon"}, "turn_user_lifetime"),
            ({"turn_user_lifetime": 0}, "turn_user_lifetime"),
            ({"turn_username": "u"}, "turn_username"),
            ({"turn_shared_secret": ""}, "turn_shared_secret"),
            ({"turn_shared_secret": "a", "turn_shared_secret_path": "b"},
             "turn_shared_secret_path"),
            ({"turn_allow_guests": "no"}, "turn_allow_guests"),
            ({"public_baseurl": "matrix.a.b"}, "public_baseurl"),
            ({"serve_client_wellknown": "yes"}, "serve_client_wellknown"),
        ]
        for extra, key in cases:
            with self.assertRaises(ConfigError) as cm:
                parse_config({"server_name": "a.b", **extra}, "/tmp")
            self.assertIn(key, str(cm.exception))

    def test_trusted_key_servers(self):
        """Absent means matrix.org (as Synapse); [] means none; verify_keys are checked."""
        from homeserver.config import TrustedKeyServer

        key = "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ"
        self.assertEqual(parse_config({"server_name": "a.b"}, "/tmp").trusted_key_servers,
                         (TrustedKeyServer("matrix.org"),))
        self.assertEqual(parse_config({"server_name": "a.b", "trusted_key_servers": []},
                                      "/tmp").trusted_key_servers, ())
        c = parse_config({"server_name": "a.b", "trusted_key_servers": [
            {"server_name": "n.example", "verify_keys": {"ed25519:auto": key}}]}, "/tmp")
        self.assertEqual(c.trusted_key_servers,
                         (TrustedKeyServer("n.example", {"ed25519:auto": key}),))
        self.assertEqual(c.warnings, ())
        for bad in [{"trusted_key_servers": "matrix.org"},
                    {"trusted_key_servers": [{"server_name": "bad name"}]},
                    {"trusted_key_servers": [{"server_name": "n.example",
                                              "verify_keys": {"ed25519:a": "short"}}]},
                    {"trusted_key_servers": [{"server_name": "n.example"}],
                     "federation_verify_certificates": False}]:
            with self.assertRaises(ConfigError) as cm:
                parse_config({"server_name": "a.b", **bad}, "/tmp")
            self.assertIn("trusted_key_servers", str(cm.exception))
        parse_config({"server_name": "a.b", "federation_verify_certificates": False,
                      "trusted_key_servers": [{"server_name": "n.example",
                                               "accept_keys_insecurely": True}]}, "/tmp")

    def test_url_preview_keys(self):
        """Synapse's url_preview_* keys and max_spider_size; previews are off by default."""
        defaults = parse_config({"server_name": "a.b"}, "/tmp").url_preview
        self.assertFalse(defaults.enabled)
        self.assertEqual(defaults.max_spider_size, 10 * 1024 * 1024)
        self.assertEqual(defaults.accept_language, ("en",))
        c = parse_config({
            "server_name": "a.b", "url_preview_enabled": True,
            "url_preview_ip_range_whitelist": ["127.0.0.1", "10.1.0.0/16"],
            "url_preview_ip_range_blacklist": ["8.8.8.8"],
            "url_preview_url_blacklist": [{"netloc": "*.evil.example"},
                                          {"scheme": "http", "path": "^/admin"}],
            "max_spider_size": "1M", "url_preview_accept_language": ["de", "en;q=0.5"],
        }, "/tmp").url_preview
        self.assertTrue(c.enabled)
        self.assertEqual(c.ip_range_whitelist, ("127.0.0.1", "10.1.0.0/16"))
        self.assertEqual(c.ip_range_blacklist, ("8.8.8.8",))
        self.assertEqual(c.url_blacklist[1], {"scheme": "http", "path": "^/admin"})
        self.assertEqual(c.max_spider_size, 1024 * 1024)
        self.assertEqual(c.accept_language, ("de", "en;q=0.5"))
        self.assertEqual(parse_config({"server_name": "a.b", "url_preview_enabled": True},
                                      "/tmp").warnings, ())

    def test_invalid_url_preview_keys(self):
        """Bad url_preview_* values are errors naming the key."""
        cases = [
            ({"url_preview_enabled": "yes"}, "url_preview_enabled"),
            ({"url_preview_ip_range_whitelist": ["not-an-ip"]},
             "url_preview_ip_range_whitelist"),
            ({"url_preview_ip_range_blacklist": "10.0.0.0/8"}, "url_preview_ip_range_blacklist"),
            ({"url_preview_url_blacklist": ["*.example"]}, "url_preview_url_blacklist[0]"),
            ({"url_preview_url_blacklist": [{"host": "x"}]}, "url_preview_url_blacklist[0]"),
            ({"url_preview_url_blacklist": [{"netloc": 5}]}, "url_preview_url_blacklist[0]"),
            ({"url_preview_url_blacklist": [{"path": "^(unclosed"}]},
             "url_preview_url_blacklist[0].path"),
            ({"max_spider_size": "huge"}, "max_spider_size"),
            ({"max_spider_size": 0}, "max_spider_size"),
            ({"url_preview_accept_language": []}, "url_preview_accept_language"),
        ]
        for extra, key in cases:
            with self.assertRaises(ConfigError) as cm:
                parse_config({"server_name": "a.b", **extra}, "/tmp")
            self.assertIn(key, str(cm.exception))
            self.assertNotIn("\n", str(cm.exception))

    def test_deep_merge(self):
        """Later files override earlier ones, merging mappings deeply."""
        d = tempfile.mkdtemp()
        a = _write(d, "a.yaml", {"server_name": "a.b", "rooms": {"idle_seconds": 5,
                                                                  "max_open": 7}})
        b = _write(d, "b.yaml", {"rooms": {"idle_seconds": 9}})
        c = load_config_files([a, b])
        self.assertEqual(c.rooms.idle_seconds, 9)
        self.assertEqual(c.rooms.max_open, 7)
        self.assertEqual(c.rooms.max_warm, 256)  # the default

    def test_release_free_pools(self):
        """rooms.release_free_pools: on unless switched off; a bool only."""
        self.assertTrue(parse_config({"server_name": "a.b"},
                                     tempfile.mkdtemp()).rooms.release_free_pools)
        off = parse_config({"server_name": "a.b", "rooms": {"release_free_pools": False}},
                           tempfile.mkdtemp())
        self.assertFalse(off.rooms.release_free_pools)
        with self.assertRaises(ConfigError):
            parse_config({"server_name": "a.b", "rooms": {"release_free_pools": "no"}},
                         tempfile.mkdtemp())

    def test_idle_rooms_hibernate_within_a_minute_by_default(self):
        """Without a rooms section an idle room leaves memory in tens of seconds (a
        Durable Object's scale), not minutes."""
        config = parse_config({"server_name": "a.b"}, tempfile.mkdtemp())
        self.assertGreaterEqual(config.rooms.idle_seconds, 10)
        self.assertLessEqual(config.rooms.idle_seconds, 60)


class CliTests(unittest.TestCase):
    def _cli(self, *args):
        return subprocess.run([sys.executable, "-m", "homeserver", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    def test_generate_writes_config_and_key(self):
        """generate writes homeserver.yaml and a Synapse-format signing key."""
        d = tempfile.mkdtemp()
        out = self._cli("generate", "--server-name", "localhost", "--data-dir", d,
                        "--http-port", "8123")
        self.assertEqual(out.returncode, 0, out.stderr)
        path = out.stdout.strip()
        self.assertEqual(path, os.path.join(d, "homeserver.yaml"))
        config = load_config_files([path])
        self.assertEqual(config.listeners[0].port, 8123)
        self.assertTrue(config.url_preview.enabled)  # `make run` users get link previews
        # rooms run at the defaults: a generated file does not freeze older ones
        self.assertEqual(config.rooms, RoomsConfig())
        with open(config.signing_key_path) as f:
            algo, version, seed = f.read().split()
        self.assertEqual(algo, "ed25519")
        self.assertTrue(version.startswith("a_"))
        self.assertEqual(len(seed), 43)

    def test_run_invalid_config_exits_2(self):
        """run with an invalid value prints one line naming the key and exits 2."""
        d = tempfile.mkdtemp()
        path = _write(d, "bad.yaml", {"server_name": "a.b", "max_upload_size": []})
        out = self._cli("run", "--config", path)
        self.assertEqual(out.returncode, 2)
        self.assertIn("max_upload_size", out.stderr)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1)

    def test_migrate_command_brings_a_fresh_database_to_head(self):
        """migrate upgrades the schema and exits 0; a second run has nothing to do."""
        d = tempfile.mkdtemp()
        path = self._cli("generate", "--server-name", "localhost", "--data-dir", d
                         ).stdout.strip()
        for _ in range(2):
            out = self._cli("migrate", "--config", path)
            self.assertEqual(out.returncode, 0, out.stderr)
        from homeserver.store.database import Database
        db = Database.from_config(load_config_files([path]).database, None,
                                  migrate_on_start=False)
        self.assertTrue(db.at_head())
        db.engine.dispose()

    def test_run_migrates_in_a_child_process(self):
        """Before serving, a schema behind head is upgraded by a child process, so
        the server process itself never imports alembic."""
        d = tempfile.mkdtemp()
        path = self._cli("generate", "--server-name", "localhost", "--data-dir", d
                         ).stdout.strip()
        probe = ("import sys; from homeserver.__main__ import _load, _migrate_in_child;"
                 f"p = {path!r}; rc = _migrate_in_child(_load([p]), [p]);"
                 "print(rc, 'alembic' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.stdout.split(), ["0", "False"], out.stderr)
        from homeserver.store.database import Database
        db = Database.from_config(load_config_files([path]).database, None,
                                  migrate_on_start=False)
        self.assertTrue(db.at_head())
        db.engine.dispose()
