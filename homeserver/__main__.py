"""Command line: ``python -m homeserver generate|run``.

    generate --server-name NAME --data-dir DIR [--http-port 8008]
        writes DIR/homeserver.yaml and an ed25519 signing key (Synapse's key-file
        format) and prints the config path.
    run --config A.yaml [--config B.yaml …]
        runs in the foreground; later files override earlier ones. SIGTERM stops
        gracefully and exits 0. An invalid config prints one line and exits 2.
        A database schema behind head is first upgraded by a ``migrate`` child
        process, so the server process never loads alembic.
    migrate --config A.yaml [--config B.yaml …]
        upgrades the global database's schema to head and exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import yaml

from homeserver.config import ConfigError, RoomsConfig, load_config_files
from homeserver.ids import is_valid_server_name

EXIT_CONFIG_ERROR = 2


def generate(server_name: str, data_dir: str, http_port: int) -> str:
    """Write a config and signing key for ``server_name`` into ``data_dir``; return the path."""
    import secrets

    from homeserver.crypto.signing import generate_signing_key, write_signing_key

    os.makedirs(data_dir, exist_ok=True)
    config_path = os.path.join(data_dir, "homeserver.yaml")
    key_name = f"{server_name.replace(':', '_')}.signing.key"
    key_path = os.path.join(data_dir, key_name)
    if not os.path.exists(key_path):
        write_signing_key(key_path, generate_signing_key())
    if os.path.exists(config_path):
        return config_path
    # Loopback-only development servers get open registration so `make run` is usable
    # from a client at once; anything else starts closed, as Synapse does.
    local = server_name.split(":")[0] in ("localhost", "127.0.0.1")
    config = {
        "server_name": server_name,
        "listeners": [{
            "port": http_port, "bind_addresses": ["127.0.0.1"], "type": "http",
            "tls": False, "x_forwarded": False,
            "resources": [{"names": ["client", "federation"], "compress": False}],
        }],
        "database": {"name": "sqlite3", "args": {"database": "homeserver.db"}},
        "signing_key_path": key_name,
        "media_store_path": "media_store",
        "enable_registration": local,
        "enable_registration_without_verification": local,
        "registration_shared_secret": secrets.token_urlsafe(32),
        "max_upload_size": "50M",
        # link previews in clients; private and loopback targets stay blocked
        "url_preview_enabled": True,
        # the defaults, shown so they are easy to find and change
        "rooms": dataclasses.asdict(RoomsConfig()),
    }
    tmp = config_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# Generated for {server_name}. Synapse's key names are understood.\n")
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, config_path)
    return config_path


def _load(config_paths: list[str]):
    try:
        return load_config_files(config_paths)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return None


def migrate(config_paths: list[str]) -> int:
    """Upgrade the global database's schema to head (alembic)."""
    config = _load(config_paths)
    if config is None:
        return EXIT_CONFIG_ERROR
    from homeserver.store.database import Database

    db = Database.from_config(config.database, reactor=None, migrate_on_start=False)
    try:
        db.migrate()
    finally:
        db.engine.dispose()
    return 0


def _migrate_in_child(config, config_paths: list[str]) -> int:
    """A schema behind head is upgraded by a child process (``migrate``), so that the
    server itself never imports alembic (~6 MB it would keep for good). 0 if fine."""
    from homeserver.store.database import Database

    db = Database.from_config(config.database, reactor=None, migrate_on_start=False)
    try:
        if db.at_head():
            return 0
    except Exception:
        return 0  # unreachable now: the server's own start reports it properly
    finally:
        db.engine.dispose()
    import subprocess

    args = [sys.executable, "-m", "homeserver", "migrate"]
    for path in config_paths:
        args += ["--config", path]
    return subprocess.run(args).returncode


def run(config_paths: list[str]) -> int:
    config = _load(config_paths)
    if config is None:
        return EXIT_CONFIG_ERROR
    if _migrate_in_child(config, config_paths) != 0:
        print("database migration failed", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    from homeserver.runtime import run_forever

    return run_forever(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m homeserver")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a config and signing key")
    gen.add_argument("--server-name", required=True)
    gen.add_argument("--data-dir", required=True)
    gen.add_argument("--http-port", type=int, default=8008)
    runp = sub.add_parser("run", help="run the server in the foreground")
    runp.add_argument("--config", action="append", required=True)
    mig = sub.add_parser("migrate", help="upgrade the database schema and exit")
    mig.add_argument("--config", action="append", required=True)
    args = parser.parse_args(argv)

    if args.command == "generate":
        if not is_valid_server_name(args.server_name):
            print(f"config error: server_name: invalid {args.server_name!r}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
        print(generate(args.server_name, args.data_dir, args.http_port))
        return 0
    if args.command == "migrate":
        return migrate(args.config)
    return run(args.config)


if __name__ == "__main__":
    sys.exit(main())
