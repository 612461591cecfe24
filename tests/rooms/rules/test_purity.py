"""The rule of homeserver.rooms.rules: pure. Every module there imports neither twisted
nor sqlite3 (not even through another module), nor the room's actor, storage or
features."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

from twisted.trial import unittest

import homeserver.rooms.rules

_FORBIDDEN = ("twisted", "sqlite3", "_sqlite3", "homeserver.rooms.actor",
              "homeserver.rooms.storage", "homeserver.rooms.features")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(homeserver.__file__)))

# a fresh interpreter per module: in this process twisted is already loaded
_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules
                        if any(m == f or m.startswith(f + ".") for f in sys.argv[2:]))))
"""


def rules_modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(
        homeserver.rooms.rules.__path__, "homeserver.rooms.rules.")]


def loaded_forbidden(module: str) -> list[str]:
    """The forbidden modules loaded by importing ``module`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _PROBE, module, *_FORBIDDEN],
                         cwd=_ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


class PurityTests(unittest.TestCase):
    def test_the_rules_are_found(self) -> None:
        """The probe sees the package's modules (an empty list would prove nothing)."""
        modules = rules_modules()
        for name in ("auth", "power_levels", "state_res", "visibility"):
            self.assertIn(f"homeserver.rooms.rules.{name}", modules)

    def test_no_rules_module_imports_io_or_the_other_parts(self) -> None:
        """Importing any module of rooms/rules loads no twisted, no sqlite3, and none
        of rooms/actor, rooms/storage, rooms/features."""
        for module in rules_modules():
            self.assertEqual(loaded_forbidden(module), [], module)

    def test_the_probe_sees_an_impure_module(self) -> None:
        """The same probe reports twisted and sqlite3 for modules that use them."""
        self.assertIn("twisted", loaded_forbidden("homeserver.rooms.actor.actor"))
        self.assertIn("sqlite3", loaded_forbidden("homeserver.rooms.storage.store"))
