"""Reporting content: events, rooms and users (spec: Client-Server API, "Reporting
content")."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase, q

V3 = "/_matrix/client/v3"


class ReportTests(ServerTestCase):
    async def setup_room(self):
        self.alice, self.token = await self.register("alice")
        self.bob, self.bob_token = await self.register("bob")
        self.room = await self.create_room(self.token, preset="public_chat")
        status, _ = await self.request("POST", f"{V3}/join/{q(self.room)}", {},
                                       token=self.bob_token)
        self.assertEqual(status, 200)
        self.event = await self.send(self.token, self.room, {"msgtype": "m.text",
                                                             "body": "offensive"})

    def report_path(self, room: str | None = None, event: str | None = None) -> str:
        return f"{V3}/rooms/{q(room or self.room)}/report/{q(event or self.event)}"

    async def test_report_event(self):
        """A member reports a visible event; reason and score are stored."""
        await self.setup_room()
        status, body = await self.request("POST", self.report_path(),
                                          {"reason": "rude", "score": -80},
                                          token=self.bob_token)
        self.assertEqual((status, body), (200, {}))
        status, _ = await self.request("POST", self.report_path(), {}, token=self.bob_token)
        self.assertEqual(status, 200)
        reports = await self.c["store"].reports.list_reports(room_id=self.room)
        self.assertEqual([(r.reporter, r.event_id, r.reason, r.score) for r in reports],
                         [(self.bob, self.event, None, None),
                          (self.bob, self.event, "rude", -80)])

    async def test_event_not_visible_is_404(self):
        """Unknown events, unknown rooms, rooms the reporter is not in: 404 M_NOT_FOUND."""
        await self.setup_room()
        _, stranger = await self.register("stranger")
        for path, token in ((self.report_path(event="$nope"), self.bob_token),
                            (self.report_path(room="!nope:test.local"), self.bob_token),
                            (self.report_path(), stranger)):
            status, body = await self.request("POST", path, {"reason": "x"}, token=token)
            self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"), path)
        # bob left: he may no longer report (spec v1.8: must be joined)
        await self.request("POST", f"{V3}/rooms/{q(self.room)}/leave", {},
                           token=self.bob_token)
        status, body = await self.request("POST", self.report_path(), {"reason": "x"},
                                          token=self.bob_token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        self.assertEqual(await self.c["store"].reports.list_reports(), [])

    async def test_bad_report_bodies(self):
        """Mistyped reason/score are 400; no token is 401."""
        await self.setup_room()
        for body, errcode in (({"reason": 5}, "M_BAD_JSON"), ({"score": "bad"}, "M_BAD_JSON"),
                              ({"score": 10}, "M_INVALID_PARAM"),
                              ({"score": True}, "M_BAD_JSON")):
            status, resp = await self.request("POST", self.report_path(), body,
                                              token=self.bob_token)
            self.assertEqual((status, resp["errcode"]), (400, errcode), body)
        status, resp = await self.request("POST", self.report_path(), {"reason": "x"})
        self.assertEqual((status, resp["errcode"]), (401, "M_MISSING_TOKEN"))

    async def test_report_room_and_user(self):
        """Rooms and users are reportable by anyone; unknown ones are 404."""
        await self.setup_room()
        _, stranger = await self.register("stranger")
        status, _ = await self.request("POST", f"{V3}/rooms/{q(self.room)}/report",
                                       {"reason": "spam room"}, token=stranger)
        self.assertEqual(status, 200)
        status, body = await self.request("POST", f"{V3}/rooms/{q('!x:test.local')}/report",
                                          {"reason": "?"}, token=stranger)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.request("POST", f"{V3}/rooms/{q(self.room)}/report", {},
                                          token=stranger)
        self.assertEqual((status, body["errcode"]), (400, "M_MISSING_PARAM"))
        status, _ = await self.request("POST", f"{V3}/users/{q(self.alice)}/report",
                                       {"reason": "spammer"}, token=stranger)
        self.assertEqual(status, 200)
        status, body = await self.request("POST", f"{V3}/users/{q('@ghost:test.local')}/report",
                                          {"reason": "?"}, token=stranger)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        reports = await self.c["store"].reports.list_reports()
        self.assertEqual([(r.room_id, r.event_id, r.target_user_id, r.reason)
                          for r in reports],
                         [(None, None, self.alice, "spammer"),
                          (self.room, None, None, "spam room")])
