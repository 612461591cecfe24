"""The push rules API over HTTP and its m.push_rules account data in /sync (spec:
Client-Server API, "Push Rules: API")."""

from __future__ import annotations

from tests.client_api.sync_helpers import SyncTestCase, V3

RULES = f"{V3}/pushrules"


class PushRulesApiTests(SyncTestCase):
    async def test_get_all_defaults(self):
        """GET /pushrules/ answers the global ruleset with the spec's defaults."""
        _, token = await self.register("alice")
        body = await self.ok("GET", f"{RULES}/", token=token)
        override = [r["rule_id"] for r in body["global"]["override"]]
        self.assertEqual(override[0], ".m.rule.master")
        self.assertIn(".m.rule.is_user_mention", override)
        self.assertEqual(body["global"]["content"][0]["pattern"], "alice")
        self.assertEqual(await self.ok("GET", f"{RULES}/global/", token=token),
                         body["global"])
        self.assertEqual(await self.ok("GET", f"{RULES}/global/underride/", token=token),
                         body["global"]["underride"])

    async def test_put_get_delete_rule(self):
        """A new rule reads back, can be placed with before, and deleted."""
        _, token = await self.register("alice")
        rule = {"conditions": [{"kind": "event_match", "key": "content.body",
                                "pattern": "cake"}], "actions": ["notify"]}
        await self.ok("PUT", f"{RULES}/global/override/cake", rule, token=token)
        await self.ok("PUT", f"{RULES}/global/override/pie?before=cake", rule, token=token)
        got = await self.ok("GET", f"{RULES}/global/override/cake", token=token)
        self.assertEqual((got["rule_id"], got["default"], got["enabled"]),
                         ("cake", False, True))
        ids = [r["rule_id"] for r in
               await self.ok("GET", f"{RULES}/global/override/", token=token)]
        self.assertEqual(ids[:3], [".m.rule.master", "pie", "cake"])
        await self.ok("DELETE", f"{RULES}/global/override/cake", token=token)
        self.assertError(await self.request("GET", f"{RULES}/global/override/cake",
                                            token=token), 404, "M_NOT_FOUND")

    async def test_enabled_and_actions(self):
        """enabled and actions of a default rule can be read and changed."""
        _, token = await self.register("alice")
        path = f"{RULES}/global/underride/.m.rule.message"
        self.assertEqual(await self.ok("GET", f"{path}/enabled", token=token),
                         {"enabled": True})
        await self.ok("PUT", f"{path}/enabled", {"enabled": False}, token=token)
        await self.ok("PUT", f"{path}/actions", {"actions": ["dont_notify"]}, token=token)
        self.assertEqual(await self.ok("GET", f"{path}/enabled", token=token),
                         {"enabled": False})
        self.assertEqual(await self.ok("GET", f"{path}/actions", token=token),
                         {"actions": ["dont_notify"]})

    async def test_errors(self):
        """Unknown rules 404; bad bodies, default IDs and bad paths 400."""
        _, token = await self.register("alice")
        for method, path, body, status, code in [
            ("GET", f"{RULES}/global/override/nope", None, 404, "M_NOT_FOUND"),
            ("DELETE", f"{RULES}/global/override/nope", None, 404, "M_NOT_FOUND"),
            ("PUT", f"{RULES}/global/override/nope/enabled", {"enabled": True}, 404,
             "M_NOT_FOUND"),
            ("PUT", f"{RULES}/global/override/x", {"actions": "notify"}, 400, "M_BAD_JSON"),
            ("PUT", f"{RULES}/global/override/x", {"conditions": []}, 400,
             "M_MISSING_PARAM"),
            ("PUT", f"{RULES}/global/override/.x", {"actions": []}, 400, "M_INVALID_PARAM"),
            ("DELETE", f"{RULES}/global/override/.m.rule.master", None, 400,
             "M_INVALID_PARAM"),
            ("PUT", f"{RULES}/global/underride/.m.rule.message/enabled", {"enabled": 1},
             400, "M_BAD_JSON"),
            ("PUT", f"{RULES}/global/override/x?before=missing", {"actions": []}, 404,
             "M_NOT_FOUND"),
            ("GET", f"{RULES}/device/override/x", None, 400, "M_UNRECOGNIZED"),
            ("GET", f"{RULES}/global/bogus/", None, 400, "M_UNRECOGNIZED"),
        ]:
            self.assertError(await self.request(method, path, body, token=token),
                             status, code)
        self.assertError(await self.request("GET", f"{RULES}/"), 401, "M_MISSING_TOKEN")

    async def test_account_data_in_sync(self):
        """An initial sync carries m.push_rules; a change arrives incrementally."""
        _, token = await self.register("alice")
        first = await self.sync_ok(token)
        rules = [e for e in first["account_data"]["events"] if e["type"] == "m.push_rules"]
        self.assertEqual(len(rules), 1)
        self.assertIn("underride", rules[0]["content"]["global"])
        await self.ok("PUT", f"{RULES}/global/room/!r:test.local", {"actions": []},
                      token=token)
        later = await self.sync_ok(token, since=first["next_batch"])
        changed = [e for e in later["account_data"]["events"]
                   if e["type"] == "m.push_rules"]
        self.assertEqual([r["rule_id"] for r in changed[0]["content"]["global"]["room"]],
                         ["!r:test.local"])
