"""The push rules API's domain side (spec: Client-Server API, "Push Rules: API").

Reads merge the defaults with the user's stored changes; every write stores the new
changes and the ``m.push_rules`` account data together, then wakes the user's syncs.
Only the ``global`` scope exists (spec: device-specific rules were removed).
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from homeserver.push import rulesets
from homeserver.push.rulesets import Ruleset, UnrecognizedPath

SCOPE = "global"


class DefaultRuleset(dict):
    """The ruleset of a user who never changed a rule: the server defaults only (the
    evaluator may then share outcomes between users, see SharedEvaluation)."""

_CACHE_SIZE = 20_000


def _scope(scope: str) -> None:
    if scope != SCOPE:
        raise UnrecognizedPath(f"Unknown push rules scope {scope!r}")


class PushRulesService:
    def __init__(self, store: Any, notify_user: Callable[[str], None]) -> None:
        """``store``: ``GlobalStore.push_rules``."""
        self._store = store
        self._notify_user = notify_user
        #: user → merged ruleset: every event is evaluated for each local member,
        #: and merging copies the defaults; dropped when the user changes a rule
        self._merged: collections.OrderedDict[str, Ruleset] = collections.OrderedDict()
        self._generation = 0

    async def ruleset(self, user_id: str) -> Ruleset:
        """The user's rules in evaluation order (what the evaluator uses)."""
        return rulesets.ruleset(user_id, await self._store.get_changes(user_id))

    async def rulesets(self, user_ids: list[str]) -> dict[str, Ruleset]:
        """user → ruleset, for evaluation (shared objects: callers must not change
        them). A user who never changed a rule gets a :class:`DefaultRuleset`."""
        result = {u: self._merged[u] for u in user_ids if u in self._merged}
        missing = [u for u in user_ids if u not in result]
        if missing:
            generation = self._generation
            changes = await self._store.get_many(missing)
            for user_id in missing:
                result[user_id] = rulesets.ruleset(user_id, changes[user_id]) \
                    if changes[user_id] is not None else \
                    DefaultRuleset(rulesets.ruleset(user_id, None))
                if generation == self._generation:  # no rule changed meanwhile
                    self._merged[user_id] = result[user_id]
            while len(self._merged) > _CACHE_SIZE:
                self._merged.popitem(last=False)
        return result

    async def account_data(self, user_id: str) -> dict[str, Any]:
        """``{"global": ruleset}``: ``GET /pushrules/`` and the ``m.push_rules``
        account data event."""
        return {SCOPE: rulesets.for_client(await self.ruleset(user_id))}

    # -- reads ------------------------------------------------------------------------
    async def get(self, user_id: str, scope: str, kind: str | None = None,
                  rule_id: str | None = None, attr: str | None = None) -> Any:
        """``GET /pushrules/global/[kind/[ruleId/[enabled|actions]]]``."""
        _scope(scope)
        rules = rulesets.for_client(await self.ruleset(user_id))
        if kind is None:
            return rules
        rulesets.check_kind(kind)
        if rule_id is None:
            return rules[kind]
        rule = rulesets.find_rule(rules, kind, rule_id)
        if attr is None:
            return rule
        if attr == "enabled":
            return {"enabled": rule["enabled"]}
        if attr == "actions":
            return {"actions": rule["actions"]}
        raise UnrecognizedPath(f"Unknown push rule attribute {attr!r}")

    # -- writes -----------------------------------------------------------------------
    async def put(self, user_id: str, scope: str, kind: str, rule_id: str, body: Any,
                  before: str | None, after: str | None) -> None:
        _scope(scope)
        await self._change(user_id, lambda c: rulesets.put_rule(
            c, kind, rule_id, body, before=before, after=after))

    async def delete(self, user_id: str, scope: str, kind: str, rule_id: str) -> None:
        _scope(scope)
        await self._change(user_id, lambda c: rulesets.delete_rule(c, kind, rule_id))

    async def put_attr(self, user_id: str, scope: str, kind: str, rule_id: str,
                       attr: str, body: Any) -> None:
        _scope(scope)
        if attr == "enabled":
            edit = rulesets.set_enabled
        elif attr == "actions":
            edit = rulesets.set_actions
        else:
            raise UnrecognizedPath(f"Unknown push rule attribute {attr!r}")
        await self._change(user_id, lambda c: edit(c, user_id, kind, rule_id, body))

    async def copy_room_rules(self, user_id: str, old_room: str, new_room: str) -> None:
        """A room upgrade's settings copier (``MembershipService.add_settings_copier``):
        the user's rules about ``old_room`` now also apply to ``new_room`` (sytest
        "local user has push rules copied to upgraded room")."""
        changes = rulesets.copy_room_rules(await self._store.get_changes(user_id),
                                           old_room, new_room)
        if changes is not None:
            await self._change(user_id, lambda _: changes)

    async def forget_user(self, user_id: str) -> None:
        """Account deactivation: the user's rules go back to the defaults and their
        ``m.push_rules`` account data goes (as Synapse's purge of account data)."""
        try:
            await self._store.delete_user(user_id)
        finally:
            self._generation += 1
            self._merged.pop(user_id, None)

    async def _change(self, user_id: str, edit: Callable[[Any], dict[str, Any]]) -> None:
        # one request at a time per user would need a lock; the last write wins, as
        # with any account data
        changes = edit(await self._store.get_changes(user_id))
        content = {SCOPE: rulesets.for_client(rulesets.ruleset(user_id, changes))}
        try:
            await self._store.set_changes(user_id, changes, content)
        finally:
            self._generation += 1
            self._merged.pop(user_id, None)
        self._notify_user(user_id)
