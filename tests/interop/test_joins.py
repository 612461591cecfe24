"""Membership across servers against a real Synapse: joins both ways in room versions
10 and 12, invites both ways, rejected invites both ways.

Messages after a join need the inbound /send and outbound sender lanes, so these
tests look at room state through each server's client API (``/state``,
``/joined_members``, ``/sync``) instead.
"""

from __future__ import annotations

import itertools
import time
import urllib.parse

from twisted.trial import unittest

from tests.interop.synapse import Federation

_names = itertools.count()


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class JoinsTest(unittest.TestCase):
    timeout = 300

    def setUp(self):
        self.fed = Federation.get()
        self.syn = self.fed.synapse
        self.ours = self.fed.ours

    # -- people on both sides ---------------------------------------------------------
    def _our_user(self) -> tuple[str, str]:
        name = f"ours{next(_names)}x{int(time.time() * 1000) % 100000}"
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        return body["user_id"], body["access_token"]

    def _forget_synapse_backoff(self) -> None:
        """Until this branch serves /send (lane fedin), Synapse's /send to us gets a
        404 after each join and Synapse then backs off from us; an admin resets that
        so each test starts with Synapse willing to call us."""
        if not hasattr(JoinsTest, "_admin_token"):
            name = f"admin{int(time.time() * 1000) % 100000}"
            self.syn.sh("register", name, "pw-" + name, "admin")
            JoinsTest._admin_token = self.syn.login(name, "pw-" + name)
        self.syn.request(
            "POST", "/_synapse/admin/v1/federation/destinations/"
            f"{_q(self.fed.our_name)}/reset_connection", {}, token=JoinsTest._admin_token)

    def _synapse_user(self) -> tuple[str, str]:
        name = f"syn{next(_names)}x{int(time.time() * 1000) % 100000}"
        self.syn.register(name, "pw-" + name)
        return f"@{name}:{self.syn.server_name}", self.syn.login(name, "pw-" + name)

    def _poll(self, check, what: str, seconds: float = 30.0):
        deadline = time.monotonic() + seconds
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.3)

    def _our_members(self, room_id: str, token: str) -> dict:
        status, body = self.ours.request(
            "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/joined_members", token=token)
        self.assertEqual(status, 200, body)
        return body["joined"]

    def _synapse_members(self, room_id: str, token: str) -> dict:
        status, body = self.syn.request(
            "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/joined_members", token=token)
        self.assertEqual(status, 200, body)
        return body["joined"]

    def _synapse_room(self, token: str, version: str, **extra) -> str:
        status, body = self.syn.request("POST", "/_matrix/client/v3/createRoom", {
            "room_version": version, **extra}, token=token)
        self.assertEqual(status, 200, body)
        return body["room_id"]

    def _our_room(self, token: str, version: str, **extra) -> str:
        status, body = self.ours.request("POST", "/_matrix/client/v3/createRoom", {
            "room_version": version, **extra}, token=token)
        self.assertEqual(status, 200, body)
        return body["room_id"]

    # -- (a) our user joins a Synapse room ----------------------------------------------
    def _we_join_synapse_room(self, version: str) -> None:
        syn_user, syn_token = self._synapse_user()
        room_id = self._synapse_room(syn_token, version, preset="public_chat",
                                     name=f"synapse room v{version}")
        user, token = self._our_user()
        status, body = self.ours.request(
            "POST", f"/_matrix/client/v3/join/{_q(room_id)}?server_name="
            f"{_q(self.syn.server_name)}", {}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["room_id"], room_id)
        self.assertEqual(set(self._our_members(room_id, token)), {syn_user, user})
        self.assertIn(user, self._synapse_members(room_id, syn_token))
        status, sync = self.ours.request("GET", "/_matrix/client/v3/sync", token=token)
        self.assertEqual(status, 200, sync)
        joined = sync["rooms"]["join"][room_id]
        events = joined["state"]["events"] + joined["timeline"]["events"]
        names = [e["content"].get("name") for e in events if e["type"] == "m.room.name"]
        self.assertEqual(names, [f"synapse room v{version}"])
        [create] = [e for e in events if e["type"] == "m.room.create"]
        self.assertEqual(create["content"].get("room_version"), version)

    def test_we_join_synapse_room_v10(self):
        """Our user joins a public v10 room made on Synapse and sees its state in /sync."""
        self._we_join_synapse_room("10")

    def test_we_join_synapse_room_v12(self):
        """Our user joins a public v12 room (room ID without server) made on Synapse."""
        self._we_join_synapse_room("12")

    def test_we_join_synapse_room_by_alias(self):
        """Our user joins a Synapse room by its alias (resolved by /query/directory)."""
        _syn_user, syn_token = self._synapse_user()
        local = f"fedjoin{next(_names)}x{int(time.time()) % 100000}"
        room_id = self._synapse_room(syn_token, "12", preset="public_chat",
                                     room_alias_name=local)
        user, token = self._our_user()
        alias = f"#{local}:{self.syn.server_name}"
        status, body = self.ours.request("POST", f"/_matrix/client/v3/join/{_q(alias)}", {},
                                         token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["room_id"], room_id)
        self.assertIn(user, self._synapse_members(room_id, syn_token))

    # -- (b) a Synapse user joins our room ----------------------------------------------
    def _synapse_joins_our_room(self, version: str) -> None:
        user, token = self._our_user()
        room_id = self._our_room(token, version, preset="public_chat")
        syn_user, syn_token = self._synapse_user()
        self._forget_synapse_backoff()
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/join/{_q(room_id)}?server_name="
            f"{_q(self.fed.our_name)}", {}, token=syn_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(set(self._our_members(room_id, token)), {user, syn_user})
        self.assertEqual(set(self._synapse_members(room_id, syn_token)), {user, syn_user})

    def test_synapse_joins_our_room_v10(self):
        """A Synapse user joins our public v10 room (our make_join/send_join)."""
        self._synapse_joins_our_room("10")

    def test_synapse_joins_our_room_v12(self):
        """A Synapse user joins our public v12 room (our make_join/send_join)."""
        self._synapse_joins_our_room("12")

    def test_synapse_cannot_join_our_private_room(self):
        """Joining our invite-only room without an invite is refused (our 403)."""
        _user, token = self._our_user()
        room_id = self._our_room(token, "12", preset="private_chat")
        _syn_user, syn_token = self._synapse_user()
        self._forget_synapse_backoff()
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/join/{_q(room_id)}?server_name="
            f"{_q(self.fed.our_name)}", {}, token=syn_token)
        self.assertEqual(status, 403, body)

    # -- (c) our user invites a Synapse user --------------------------------------------
    def test_we_invite_synapse_user_who_joins(self):
        """Our user invites a Synapse user: Synapse sees the invite and joins."""
        user, token = self._our_user()
        room_id = self._our_room(token, "12", preset="private_chat")
        syn_user, syn_token = self._synapse_user()
        status, body = self.ours.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/invite",
            {"user_id": syn_user}, token=token)
        self.assertEqual(status, 200, body)

        def invited():
            status, sync = self.syn.request("GET", "/_matrix/client/v3/sync?timeout=0",
                                            token=syn_token)
            return status == 200 and room_id in sync["rooms"].get("invite", {})
        self._poll(invited, "the invite on Synapse")
        self._forget_synapse_backoff()
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/join", {}, token=syn_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(set(self._our_members(room_id, token)), {user, syn_user})

    def test_synapse_user_rejects_our_invite(self):
        """A Synapse user rejects our invite (our make_leave/send_leave): it is a leave."""
        _user, token = self._our_user()
        room_id = self._our_room(token, "10", preset="private_chat")
        syn_user, syn_token = self._synapse_user()
        status, body = self.ours.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/invite",
            {"user_id": syn_user}, token=token)
        self.assertEqual(status, 200, body)
        self._forget_synapse_backoff()
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/leave", {}, token=syn_token)
        self.assertEqual(status, 200, body)
        status, member = self.ours.request(
            "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/state/m.room.member/"
            f"{_q(syn_user)}", token=token)
        self.assertEqual((status, member.get("membership")), (200, "leave"))

    # -- (d) a Synapse user invites our user --------------------------------------------
    def _synapse_invites_us(self, version: str) -> tuple[str, str, str, str]:
        syn_user, syn_token = self._synapse_user()
        room_id = self._synapse_room(syn_token, version, preset="private_chat",
                                     name="invite only")
        user, token = self._our_user()
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/invite", {"user_id": user},
            token=syn_token)
        self.assertEqual(status, 200, body)
        status, sync = self.ours.request("GET", "/_matrix/client/v3/sync", token=token)
        self.assertEqual(status, 200, sync)
        invite = sync["rooms"]["invite"][room_id]["invite_state"]["events"]
        self.assertIn({"type": "m.room.name", "state_key": "", "sender": syn_user,
                       "content": {"name": "invite only"}},
                      [{k: e.get(k) for k in ("type", "state_key", "sender", "content")}
                       for e in invite])
        [own] = [e for e in invite if e["type"] == "m.room.member"
                 and e["state_key"] == user]
        self.assertEqual(own["content"]["membership"], "invite")
        return room_id, syn_token, user, token

    def test_synapse_invites_our_user_who_joins(self):
        """A Synapse user invites ours: the invite is in our /sync, and our user joins."""
        room_id, syn_token, user, token = self._synapse_invites_us("12")
        status, body = self.ours.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/join", {}, token=token)
        self.assertEqual(status, 200, body)
        self.assertIn(user, self._synapse_members(room_id, syn_token))
        status, sync = self.ours.request("GET", "/_matrix/client/v3/sync", token=token)
        self.assertIn(room_id, sync["rooms"]["join"])
        self.assertNotIn(room_id, sync["rooms"]["invite"])

    def test_our_user_rejects_synapse_invite(self):
        """Our user rejects a Synapse invite (make_leave/send_leave): Synapse sees a leave
        and the invite leaves our /sync."""
        room_id, syn_token, user, token = self._synapse_invites_us("10")
        status, body = self.ours.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/leave", {}, token=token)
        self.assertEqual(status, 200, body)
        status, member = self.syn.request(
            "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/state/m.room.member/{_q(user)}",
            token=syn_token)
        self.assertEqual((status, member.get("membership")), (200, "leave"))
        status, sync = self.ours.request("GET", "/_matrix/client/v3/sync", token=token)
        self.assertNotIn(room_id, sync["rooms"]["invite"])

    # -- knocks -------------------------------------------------------------------------
    def test_we_knock_on_synapse_room(self):
        """Our user knocks on a Synapse v12 knock room: Synapse sees the knock, our
        /sync lists the room under rooms.knock with its stripped state."""
        _syn_user, syn_token = self._synapse_user()
        room_id = self._synapse_room(syn_token, "12", preset="private_chat",
                                     name="knock here", initial_state=[{
                                         "type": "m.room.join_rules", "state_key": "",
                                         "content": {"join_rule": "knock"}}])
        user, token = self._our_user()
        status, body = self.ours.request(
            "POST", f"/_matrix/client/v3/knock/{_q(room_id)}?server_name="
            f"{_q(self.syn.server_name)}", {"reason": "hello"}, token=token)
        self.assertEqual(status, 200, body)
        status, member = self.syn.request(
            "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/state/m.room.member/{_q(user)}",
            token=syn_token)
        self.assertEqual((status, member.get("membership")), (200, "knock"))
        status, sync = self.ours.request("GET", "/_matrix/client/v3/sync", token=token)
        knock = sync["rooms"]["knock"][room_id]["knock_state"]["events"]
        self.assertIn("knock here", [e["content"].get("name") for e in knock
                                     if e["type"] == "m.room.name"])
