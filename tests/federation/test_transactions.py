"""/send transactions over a real room actor: per-PDU results, dedup, limits, ACLs,
unknown rooms, EDU dispatch, and missing prev events fetched from a fake remote."""

from urllib.parse import quote

from twisted.trial import unittest

from federation.edus import EduHandlers
from federation.gaps import GapFiller
from federation.pdu_checks import PduChecker
from federation.transactions import MAX_PDUS, TransactionHandler
from homeserver.crypto.signing import SigningKey
from homeserver.errors import BadJson
from tests.fakes.rooms import ALICE, RoomHarness, remote_event
from tests.federation.fakes import FakeKeyring, FakeRemote, MemoryTxnStore

REMOTE = SigningKey.from_seed("r1", b"\x01" * 32)
OTHER = SigningKey.from_seed("r1", b"\x02" * 32)
ORIGIN = "remote.example"
BOB = "@bob:remote.example"


class TransactionTest(RoomHarness, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.room_id, _ = self.create_room()
        self.actor = self.drive(self.registry.get(self.room_id))
        self.remote = FakeRemote()
        self.store = MemoryTxnStore()
        self.edus = EduHandlers()
        checker = PduChecker(FakeKeyring({(ORIGIN, REMOTE.key_id): REMOTE.verify_key_bytes}))
        self.handler = TransactionHandler(
            server_name="test", rooms=self.registry, store=self.store, checker=checker,
            gaps=GapFiller(client=self.remote, checker=checker), edus=self.edus)
        self.ts = 10

    def event(self, partial, prev=None, key=REMOTE, also=()):
        """A remote event on ``prev`` (default: our extremities), its auth events from
        our current state plus the state events ``also``."""
        state = self.drive(self.actor.current_state())
        state.update({e.state_pair: e for e in also})
        if prev is None:
            prev = list(self.drive(self.actor.get_events(
                self.drive(self.actor.forward_extremities()))).values())
        self.ts += 1
        return remote_event(self.room_id, self.room_version, state, prev, partial, key,
                            server=ORIGIN, ts=self.ts)

    def join(self):
        return self.event({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                           "content": {"membership": "join"}})

    def msg(self, body, prev=None, key=REMOTE, also=()):
        return self.event({"type": "m.room.message", "sender": BOB,
                           "content": {"msgtype": "m.text", "body": body}}, prev, key, also)

    def send(self, txn_id, pdus, edus=(), origin=ORIGIN):
        body = {"origin": origin, "origin_server_ts": 1,
                "pdus": [dict(p.get_dict()) if hasattr(p, "get_dict") else p for p in pdus],
                "edus": list(edus)}
        return self.drive(self.handler.on_send(origin, txn_id, body))

    def stored(self, event_id):
        return self.drive(self.actor.get_event(event_id))

    def test_accepts_join_and_message(self):
        """A remote join then a message are accepted and answered {} each."""
        join = self.join()
        self.assertEqual(self.send("t1", [join]), {"pdus": {join.event_id: {}}})
        msg = self.msg("hello")
        self.assertEqual(self.send("t2", [msg]), {"pdus": {msg.event_id: {}}})
        self.assertEqual(self.stored(msg.event_id).content["body"], "hello")
        self.assertEqual(self.remote.calls, [])

    def test_bad_signature_dropped(self):
        """A PDU signed with the wrong key gets an error and is not stored."""
        join = self.join()
        self.send("t1", [join])
        forged = self.msg("forged", key=OTHER)
        result = self.send("t2", [forged])["pdus"][forged.event_id]
        self.assertIn("signature", result["error"])
        self.assertIsNone(self.stored(forged.event_id))

    def test_bad_content_hash_redacted(self):
        """A PDU whose content no longer matches its hash is stored redacted."""
        self.send("t1", [self.join()])
        msg = self.msg("original")
        tampered = dict(msg.get_dict(), content={"msgtype": "m.text", "body": "evil"})
        self.assertEqual(self.send("t2", [tampered]), {"pdus": {msg.event_id: {}}})
        self.assertEqual(dict(self.stored(msg.event_id).content), {})

    def test_rejected_by_auth_reports_error(self):
        """A message from a server whose user never joined fails auth: an error."""
        msg = self.msg("not a member")
        result = self.send("t1", [msg])["pdus"][msg.event_id]
        self.assertIn("error", result)

    def test_retried_transaction_answered_same_without_reprocessing(self):
        """The same (origin, txnId) again returns the first response; its new body is
        ignored. Another origin's txnId of the same name is its own transaction."""
        join = self.join()
        first = self.send("t1", [join])
        late = self.msg("sneaked into a retry")
        self.assertEqual(self.send("t1", [late]), first)
        self.assertIsNone(self.stored(late.event_id))
        self.assertEqual(self.send("t1", [], origin="elsewhere.example"), {"pdus": {}})

    def test_too_many_pdus_or_edus(self):
        """More than 50 PDUs or 100 EDUs is a 400 M_BAD_JSON; malformed bodies too."""
        for body in [{"pdus": [{}] * (MAX_PDUS + 1)}, {"edus": [{}] * 101},
                     {"pdus": "x"}, ["not", "an object"]]:
            failure = self.drive_failure(self.handler.on_send(ORIGIN, "big", body), BadJson)
            self.assertEqual(failure.value.errcode, "M_BAD_JSON")

    def test_unknown_room_per_pdu_error(self):
        """PDUs for a room we are not in get an error each; others still go through."""
        join = self.join()
        stranger = dict(self.msg("x").get_dict(), room_id="!unknown:remote.example")
        response = self.send("t1", [join, stranger])["pdus"]
        self.assertEqual(response[join.event_id], {})
        [other] = [k for k in response if k != join.event_id]
        self.assertIn("not in room", response[other]["error"])

    def test_acl_denies_origin(self):
        """A server the room's ACL denies gets an error for each of its PDUs."""
        self.drive(self.actor.create_event({
            "type": "m.room.server_acl", "sender": ALICE, "state_key": "",
            "content": {"allow": ["*"], "deny": ["remote.example"]}}))
        join = self.join()
        result = self.send("t1", [join])["pdus"][join.event_id]
        self.assertIn("ACL", result["error"])
        self.assertIsNone(self.stored(join.event_id))

    def test_missing_prev_events_fetched(self):
        """A PDU after events we lack: they come from /get_missing_events, bounded,
        between our forward extremities and the PDU, and all are accepted."""
        extremities = self.drive(self.actor.forward_extremities())
        join = self.join()
        m1 = self.msg("one", prev=[join], also=[join])
        m2 = self.msg("two", prev=[m1], also=[join])
        path = f"/_matrix/federation/v1/get_missing_events/{quote(self.room_id, '')}"
        self.remote.answers[("POST", path)] = {"events": [dict(join.get_dict()),
                                                          dict(m1.get_dict())]}
        self.assertEqual(self.send("t1", [m2]), {"pdus": {m2.event_id: {}}})
        [(_, destination, _, body)] = self.remote.calls
        self.assertEqual(destination, ORIGIN)
        self.assertEqual(body["earliest_events"], extremities)
        self.assertEqual(body["latest_events"], [m2.event_id])
        self.assertLessEqual(body["limit"], 10)
        for event in (join, m1, m2):
            self.assertIsNotNone(self.stored(event.event_id))
        self.assertEqual(self.drive(self.actor.forward_extremities()), [m2.event_id])

    def test_gap_filled_from_state(self):
        """When /get_missing_events leaves a gap, the missing prev event and the state
        before it come from /event and /state_ids, and the PDU is accepted."""
        self.send("t1", [self.join()])
        state_ids = list(self.drive(self.actor.current_state_ids()).values())
        m1 = self.msg("one")
        m2 = self.msg("two", prev=[m1])
        room = quote(self.room_id, "")
        event_path = f"/_matrix/federation/v1/event/{quote(m1.event_id, '')}"
        self.remote.answers[("GET", event_path)] = {
            "origin": ORIGIN, "origin_server_ts": 1, "pdus": [dict(m1.get_dict())]}
        self.remote.answers[("GET", f"/_matrix/federation/v1/state_ids/{room}")] = \
            lambda args: {"pdu_ids": state_ids, "auth_chain_ids": []} \
            if args == {"event_id": m1.event_id} else None
        self.assertEqual(self.send("t2", [m2]), {"pdus": {m2.event_id: {}}})
        self.assertEqual(self.remote.paths()[0][1],
                         f"/_matrix/federation/v1/get_missing_events/{room}")
        self.assertEqual(self.stored(m1.event_id).content["body"], "one")

    def test_unfillable_gap_reports_error(self):
        """A PDU whose prev events nobody will give us is answered with an error."""
        self.send("t1", [self.join()])
        m1 = self.msg("one")
        m2 = self.msg("two", prev=[m1])
        result = self.send("t2", [m2])["pdus"][m2.event_id]
        self.assertIn("missing prev events", result["error"])
        self.assertIsNone(self.stored(m2.event_id))

    def test_missing_auth_events_fetched(self):
        """A PDU citing an auth event we lack gets it from /event_auth (stored as an
        outlier), so the PDU is judged rather than left MISSING_AUTH."""
        join = self.join()
        side = self.msg("from a fork", also=[join])  # prev: our extremities, not join
        room = quote(self.room_id, "")
        auth_path = (f"/_matrix/federation/v1/event_auth/{room}/"
                     f"{quote(side.event_id, '')}")
        self.remote.answers[("GET", auth_path)] = {"auth_chain": [dict(join.get_dict())]}
        result = self.send("t1", [side])["pdus"][side.event_id]
        self.assertIn(("GET", auth_path), self.remote.paths())
        self.assertTrue(self.stored(join.event_id).internal_metadata["outlier"])
        # judged: bob is not joined in the state before it, so it is rejected
        self.assertIn("rejected", result["error"])
        self.assertNotIn("missing auth", result["error"])

    def test_flood_of_extremities_does_not_stop_the_room(self):
        """40 forks from a remote server in one transaction are all accepted; the next
        local events cite at most 10 prev events each and whittle the extremities
        down."""
        join = self.join()
        self.send("t1", [join])
        forks = [self.msg(f"fork {i}", prev=[join], also=[join]) for i in range(40)]
        response = self.send("t2", forks)
        self.assertEqual(response["pdus"], {f.event_id: {} for f in forks})
        self.assertEqual(len(self.drive(self.actor.forward_extremities())), 40)
        counts = []
        for n in range(5):
            local = self.drive(self.actor.create_event(self.message(f"local {n}")))
            self.assertLessEqual(len(local.prev_event_ids), 10)
            counts.append(len(self.drive(self.actor.forward_extremities())))
        self.assertEqual(counts, [31, 22, 13, 4, 1])

    def test_flood_of_forked_state_costs_bounded_resolutions(self):
        """200 forked state events from a remote server (each its own state group) are
        all accepted with one two-group resolution each at most, not a resolution of
        every extremity per event; a local message then still goes in at once, citing
        10 prev events with one resolution of them, and local messages fold the
        extremities down to one."""
        join = self.join()
        self.send("t0", [join])
        forks = [self.event({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                             "content": {"membership": "join", "displayname": f"fork {i}"}},
                            prev=[join]) for i in range(200)]
        before = self.actor.resolution_counts
        for n in range(4):
            batch = forks[n * 50:(n + 1) * 50]
            response = self.send(f"t{n + 1}", batch)
            self.assertEqual(response["pdus"], {f.event_id: {} for f in batch})
        runs, groups = (a - b for a, b in zip(self.actor.resolution_counts, before))
        self.assertLessEqual(runs, 200)
        self.assertLessEqual(groups, 2 * 200 + 10 * 10)
        self.assertEqual(len(self.drive(self.actor.forward_extremities())), 200)
        before = self.actor.resolution_counts
        local = self.drive(self.actor.create_event(self.message("still here")))
        self.assertEqual(len(local.prev_event_ids), 10)
        runs, groups = (a - b for a, b in zip(self.actor.resolution_counts, before))
        self.assertLessEqual((runs, groups), (2, 10 + 2))
        count = len(self.drive(self.actor.forward_extremities()))
        self.assertEqual(count, 191)
        while count > 1:
            self.drive(self.actor.create_event(self.message("fold")))
            count, last = len(self.drive(self.actor.forward_extremities())), count
            self.assertEqual(count, max(1, last - 9))
        # folded to one: current state is that of the last event again
        state = self.drive(self.actor.current_state([("m.room.member", BOB)]))
        self.assertEqual(state[("m.room.member", BOB)].membership, "join")

    def test_edus_dispatched(self):
        """EDUs reach the handler registered for their type with the origin; unknown
        and malformed EDUs are ignored and do not fail the transaction."""
        seen = []

        async def typing(origin, content):
            seen.append((origin, dict(content)))

        async def broken(origin, content):
            raise RuntimeError("boom")

        self.edus.register("m.typing", typing)
        self.edus.register("m.broken", broken)
        response = self.send("t1", [], edus=[
            {"edu_type": "m.typing", "content": {"room_id": self.room_id}},
            {"edu_type": "m.unknown", "content": {}}, {"edu_type": "m.broken", "content": {}},
            "garbage", {"edu_type": "m.typing", "content": "not an object"}])
        self.assertEqual(response, {"pdus": {}})
        self.assertEqual(seen, [(ORIGIN, {"room_id": self.room_id})])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
