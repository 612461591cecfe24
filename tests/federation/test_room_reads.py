"""Which events a server may see (spec: history visibility applied to servers)."""

from twisted.trial import unittest

from federation.room_reads import server_may_see
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version

V10 = get_room_version("10")


def state_event(event_type, state_key, content):
    return PDU(V10, {"type": event_type, "state_key": state_key, "content": content,
                     "sender": "@a:here"}, f"${event_type}{state_key}")


def state(visibility, **members):
    events = [state_event("m.room.history_visibility", "",
                          {"history_visibility": visibility})]
    events += [state_event("m.room.member", user.replace("_", ":").replace("-", "."),
                           {"membership": membership})
               for user, membership in members.items()]
    return {(e.type, e.state_key): e for e in events}


class ServerMaySeeTest(unittest.TestCase):
    def test_shared_and_world_readable(self):
        """Shared and world-readable history is visible to any server in the room."""
        self.assertTrue(server_may_see("there.example", state("shared")))
        self.assertTrue(server_may_see("there.example", state("world_readable")))

    def test_joined(self):
        """Joined history: only if one of the server's users was joined at the event."""
        self.assertTrue(server_may_see(
            "there.example", state("joined", **{"@b_there-example": "join"})))
        self.assertFalse(server_may_see(
            "there.example", state("joined", **{"@b_there-example": "invite",
                                                "@c_else-example": "join"})))

    def test_invited(self):
        """Invited history: an invite of one of its users is enough."""
        self.assertTrue(server_may_see(
            "there.example", state("invited", **{"@b_there-example": "invite"})))
        self.assertFalse(server_may_see(
            "there.example", state("invited", **{"@b_there-example": "leave"})))

    def test_server_name_matched_whole(self):
        """A user of a server whose name merely ends the same way does not count."""
        self.assertFalse(server_may_see(
            "example", state("joined", **{"@b_there-example": "join"})))
