"""End-to-end encryption across servers (issue 14's proof): a user here and a user on
Synapse, each a real matrix-nio client with its own Olm machine, share an encrypted room;
an encrypted message each way decrypts on the other side.

On the way: each client's ``/keys/query`` of the other user crosses servers
(``/user/keys/query``), the sender's ``/keys/claim`` of a one-time key too
(``/user/keys/claim``), the Megolm room key travels Olm-encrypted as a to-device
message (``m.direct_to_device`` EDUs), and the ``m.room.encrypted`` event as a PDU.

Needs matrix-nio's crypto (the ``vodozemac`` package); skipped without it.
"""

from __future__ import annotations

import tempfile
import time
import urllib.parse
import uuid

import nio
from nio.crypto import ENCRYPTION_ENABLED
from twisted.trial import unittest

from tests.e2e.harness import as_deferred
from tests.interop.synapse import Federation


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class E2eeInteropTest(unittest.TestCase):
    timeout = 600

    def setUp(self) -> None:
        if not ENCRYPTION_ENABLED:
            raise unittest.SkipTest("matrix-nio's crypto needs the vodozemac package")
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours
        self.name = uuid.uuid4().hex[:8]
        self.clients: list[nio.AsyncClient] = []

    def tearDown(self):
        async def close():
            for c in self.clients:
                await c.close()
        return as_deferred(close())

    def nio_client(self, base_url: str, user_id: str) -> nio.AsyncClient:
        c = nio.AsyncClient(base_url, user_id, store_path=tempfile.mkdtemp(prefix="nio-"),
                            config=nio.AsyncClientConfig(encryption_enabled=True))
        self.clients.append(c)
        return c

    async def logged_in(self, base_url: str, user_id: str, password: str) -> nio.AsyncClient:
        c = self.nio_client(base_url, user_id)
        resp = await c.login(password, device_name="nio")
        self.assertIsInstance(resp, nio.LoginResponse, repr(resp))
        if c.should_upload_keys:
            resp = await c.keys_upload()
            self.assertIsInstance(resp, nio.KeysUploadResponse, repr(resp))
        return c

    async def until(self, step, seconds: float, what: str):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = await step()
            if found:
                return found
        self.fail(f"timed out after {seconds:g}s waiting for {what}; "
                  f"our log: {self.ours.logs()[-3000:]}")

    async def decrypted(self, client: nio.AsyncClient, room_id: str, body: str,
                        pending: list) -> bool:
        """One /sync of ``client``: True once ``body`` arrived decrypted (events that
        came before their room key are retried after each sync)."""
        resp = await client.sync(timeout=1000)
        self.assertIsInstance(resp, nio.SyncResponse, repr(resp))
        if client.should_query_keys:
            await client.keys_query()
        room = resp.rooms.join.get(room_id)
        pending.extend(room.timeline.events if room else [])
        for i, event in enumerate(pending):
            if isinstance(event, nio.MegolmEvent):
                try:
                    pending[i] = event = client.decrypt_event(event)
                except nio.EncryptionError:
                    continue
            if isinstance(event, nio.RoomMessageText) and event.body == body:
                # it came as m.room.encrypted and the client's Megolm session opened it
                self.assertTrue(event.decrypted, event)
                return True
        return False

    async def send_encrypted(self, client: nio.AsyncClient, room_id: str, body: str):
        await client.sync(timeout=0)
        if client.should_query_keys:
            await client.keys_query()
        resp = await client.room_send(room_id, "m.room.message",
                                      {"msgtype": "m.text", "body": body},
                                      ignore_unverified_devices=True)
        self.assertIsInstance(resp, nio.RoomSendResponse, repr(resp))

    def test_encrypted_messages_decrypt_across_servers(self):
        """Alice (here) → Bob (Synapse) and back, Megolm over Olm, each decrypts."""
        return as_deferred(self._scenario())

    async def _scenario(self):
        alice_id = f"@alice{self.name}:{self.fed.our_name}"
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": f"alice{self.name}", "password": "pw-alice",
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        self.syn.register(f"bob{self.name}", "pw-bob")
        bob_id = f"@bob{self.name}:{self.syn.server_name}"
        alice = await self.logged_in(self.ours.base_url, alice_id, "pw-alice")
        bob = await self.logged_in(self.syn.base_url, bob_id, "pw-bob")

        created = await alice.room_create(preset=nio.RoomPreset.public_chat, initial_state=[{
            "type": "m.room.encryption", "state_key": "",
            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        self.assertIsInstance(created, nio.RoomCreateResponse, repr(created))
        room_id = created.room_id
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
            f"{q(self.fed.our_name)}", {}, token=bob.access_token)
        self.assertEqual(status, 200, body)

        async def alice_sees_bob() -> bool:
            await alice.sync(timeout=1000)
            room = alice.rooms.get(room_id)
            return room is not None and bob_id in room.users

        await self.until(alice_sees_bob, 60, "Bob's join here")
        await self.send_encrypted(alice, room_id, "secret from roomserver")
        bob_pending: list = []
        await self.until(lambda: self.decrypted(bob, room_id, "secret from roomserver",
                                                bob_pending),
                         90, "Alice's encrypted message decrypted on Synapse")

        await self.send_encrypted(bob, room_id, "secret from synapse")
        alice_pending: list = []
        await self.until(lambda: self.decrypted(alice, room_id, "secret from synapse",
                                                alice_pending),
                         90, "Bob's encrypted message decrypted here")
