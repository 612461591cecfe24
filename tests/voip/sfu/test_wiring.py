"""voip/sfu/wiring.py: the SFU is built at start without loading aiortc and PyAV
(~30 MB and ~1 s), which come with the first session."""

from __future__ import annotations

import subprocess
import sys

from twisted.trial import unittest

from tests.e2e.harness import ROOT

_PROBE = """
import sys
from twisted.internet import task
from homeserver.config import parse_config
from voip.sfu import wiring
config = parse_config({"server_name": "example.org"}, "/tmp")
sfu = wiring.build(config=config, reactor=task.Clock(), room_service=None, rooms=None,
                   now_ms=lambda: 0)
print(sorted(m for m in ("aiortc", "av", "aioice") if m in sys.modules))
"""


class LazyMediaTest(unittest.TestCase):
    def test_no_aiortc_until_a_session(self):
        """Building the SFU service imports neither aiortc, aioice nor PyAV."""
        out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
        self.assertEqual(out, "[]")
