"""The decisions a room makes about each new event, applied inside the actor's batch.

``RoomWriter`` is synchronous and runs only inside ``RoomActor``'s open transaction
(one savepoint per inbox item), so every read sees the writes of the items before it
in the same batch. It builds and signs local events, judges remote ones, and keeps the
invariant the rest of the room relies on:

    current state == resolve(state after each forward extremity)

while the room has at most ``MAX_PREV_EVENTS`` forward extremities (the next local
event cites them all, so it is built on current state). Beyond that the work per event
is bounded rather than growing with the extremities: a new event's state is folded into
current state (``resolve(current, state after the event)``) instead of resolving every
extremity again, and a local event cites, and is built on the resolution of, the
``MAX_PREV_EVENTS`` deepest (so each one folds ten extremities into one). A remote
server flooding the room with forks costs each of its events one resolution of two
state groups, and never stops the room.

Slow I/O (fetching missing events or state over federation) never happens here: the
caller brings everything an event needs (DESIGN.md §3, "Slow I/O stays outside the
inbox").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Sequence

from twisted.logger import Logger

from homeserver.crypto.signing import SigningKey, encode_base64
from homeserver.errors import AuthError, BadJson, Forbidden, InvalidParam, InvalidRoomState
from homeserver.events.builder import finalize_event
from homeserver.events.hashing import compute_reference_hash
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.rules import power_levels as pl
from homeserver.rooms.rules.auth import (
    auth_types_for_event, check_auth_rules, check_state_independent_auth,
    implied_create_event_id)
from homeserver.rooms.rules.power_levels import CREATE_KEY
from homeserver.rooms.rules.state_res import resolve_state_groups
from homeserver.rooms.storage.state_store import StateKey
from homeserver.rooms.storage.store import EventContext, RoomStore

#: prev_events of a local event: the deepest forward extremities, at most this many
MAX_PREV_EVENTS = 10
MEMBER = "m.room.member"
#: canonical JSON's integer range (depth must stay encodable in every room version)
MAX_DEPTH = 2 ** 53 - 1
_RESOLVED_CACHE = 8

log = Logger()


class Outcome:
    """What happened to one remote PDU (``RemoteOutcome.status``)."""

    ACCEPTED = "accepted"
    SOFT_FAILED = "soft_failed"     # stored, in the DAG, hidden from clients
    REJECTED = "rejected"           # stored as rejected, never used as state
    OUTLIER = "outlier"             # stored without state (auth chain / state answers)
    DUPLICATE = "duplicate"         # already known: nothing written
    MISSING_AUTH = "missing_auth"   # some auth event unknown: nothing written
    MISSING_PREV = "missing_prev"   # prev events unknown and no state given
    WRONG_ROOM = "wrong_room"
    ERROR = "error"                 # an internal failure on this event: nothing written


@dataclasses.dataclass(frozen=True)
class RemoteOutcome:
    event_id: str
    status: str
    reason: str | None = None


class RoomWriter:
    def __init__(self, store: RoomStore, room_id: str, room_version: RoomVersion,
                 server_name: str, signing_key: SigningKey,
                 now_ms: Callable[[], int]) -> None:
        self._store = store
        self.room_id = room_id
        self.version = room_version
        self._server_name = server_name
        self._signing_key = signing_key
        self._now_ms = now_ms
        #: frozenset of state groups → the group resolving them (forks are resolved
        #: once, not once per event that arrives while the fork lasts)
        self._resolved: dict[frozenset[int], int] = {}
        #: state resolutions run (not answered from the cache), and the state groups
        #: they were given in all: what a flood of forks costs the room
        self.resolutions = 0
        self.groups_resolved = 0

    # -- local events -------------------------------------------------------------------
    def create_room_events(self, create: PDU, partials: Sequence[Mapping[str, Any]],
                           meta: Mapping[str, Any]) -> list[PDU]:
        """Initialise the room DB and write the create event and ``partials`` after it.

        All or nothing: the caller runs this in one savepoint.
        """
        self._store.initialise(self.room_id, self.version.identifier, **meta)
        check_auth_rules(self.version, create, {})
        ctx = EventContext(create)
        self._store.persist([ctx])
        self._store.set_current_state(ctx.state_after, {create.state_pair: ctx.seq})
        return [create] + [self.create_local(p) for p in partials]

    def import_room(self, event: PDU, state: Sequence[PDU], auth_chain: Sequence[PDU],
                    meta: Mapping[str, Any]) -> RemoteOutcome:
        """Initialise the room DB of a room joined over federation (send_join answer).

        ``state`` is the state before ``event`` (our join), ``auth_chain`` their auth
        events; both are stored as outliers, then ``event`` on top of ``state``. All or
        nothing: raises InvalidRoomState unless ``event`` is accepted.
        """
        self._store.initialise(self.room_id, self.version.identifier, **meta)
        seen: dict[str, PDU] = {}
        for pdu in [*auth_chain, *state]:
            seen.setdefault(pdu.event_id, pdu)
        outcomes = self.apply_remote([event], outliers=list(seen.values()),
                                     state_before={event.event_id: state})
        outcome = outcomes[-1]
        if outcome.status != Outcome.ACCEPTED:
            raise InvalidRoomState(f"the join event was not accepted: {outcome.status}"
                                   f" ({outcome.reason})")
        return outcome

    def template(self, partial: Mapping[str, Any]) -> tuple[dict[str, Any], dict[StateKey, PDU]]:
        """The unsigned event ``create_local`` would build for ``partial`` now
        (prev_events, auth_events, depth filled in) and the auth state it is judged
        against; nothing is written. For make_join/make_leave/make_knock templates and
        for an invite a remote server must sign before it is written."""
        event, state, _before = self._template(partial)
        return event, state

    def _template(self, partial: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[StateKey, PDU], int | None]:
        store = self._store
        event_type, sender = partial["type"], partial["sender"]
        state_key = partial.get("state_key")
        content = partial.get("content", {})
        extremities = store.forward_extremities(limit=MAX_PREV_EVENTS + 1)
        if not extremities:
            raise InvalidRoomState("the room has no events to build on")
        prevs = extremities[:MAX_PREV_EVENTS]
        if len(prevs) == len(extremities):
            before = store.current_state_group  # by the invariant above
        else:
            before = self._state_before([e for e, _ in prevs])
        wanted = auth_types_for_event(self.version, event_type, sender, state_key, content)
        if before == store.current_state_group:
            # the usual case: indexed lookups in current_state, no delta chain walk
            state = store.current_state_events(wanted | {CREATE_KEY})
        else:
            state = store.state_events(before, wanted | {CREATE_KEY})
        event: dict[str, Any] = {
            "room_id": self.room_id, "type": event_type, "sender": sender,
            "content": content, "prev_events": [e for e, _ in prevs],
            "auth_events": [state[k].event_id for k in sorted(wanted) if k in state],
            "depth": min(max(d for _, d in prevs) + 1, MAX_DEPTH),
        }
        if state_key is not None:
            event["state_key"] = state_key
        if partial.get("redacts") is not None:
            event["redacts"] = partial["redacts"]
        return event, state, before

    def create_local(self, partial: Mapping[str, Any], txn_key: str | None = None) -> PDU:
        """Build, sign, authorise and write one event sent by a local user.

        ``partial`` has ``type``, ``sender``, ``content`` and optionally ``state_key``
        and ``redacts``. Raises AuthError (403) if the auth rules refuse it, Forbidden
        for a redaction of someone else's event without the redact level, BadJson for
        power levels that are not integers or a tombstone naming no other room.
        """
        store = self._store
        if txn_key is not None:
            done = store.event_for_txn(txn_key)
            if done is not None:
                return store.get_event(done)
        event_type, state_key = partial["type"], partial.get("state_key")
        content = partial.get("content", {})
        if event_type == "m.room.power_levels":
            pl.check_new_power_levels(content)
        elif event_type == "m.room.tombstone":
            self._check_new_tombstone(state_key, content)
        event, state, before = self._template(partial)
        pdu = finalize_event(self.version, event, self._server_name, self._signing_key,
                             self._now_ms(), cited_hash=self._reference_hash)
        check_auth_rules(self.version, pdu, state)
        ctx = EventContext(pdu, state_before=before, txn_key=txn_key)
        if pdu.type == "m.room.redaction" and pdu.redacts:
            ctx.redactor_has_power = self._check_local_redaction(pdu, state)
        self._store.persist([ctx])
        self._advance_current_state(ctx)
        return pdu

    def _check_new_tombstone(self, state_key: str | None, content: Mapping[str, Any]
                             ) -> None:
        """A tombstone we write is a state event naming another room (spec "Room
        Upgrades"; Synapse refuses the rest with 400, as sytest "Cannot send tombstone
        event that points to the same room" checks)."""
        if state_key is None:
            raise BadJson("m.room.tombstone must be a state event")
        replacement = content.get("replacement_room")
        if not isinstance(replacement, str):
            raise BadJson("m.room.tombstone needs a replacement_room")
        if replacement == self.room_id:
            raise BadJson("a tombstone cannot name the room it is sent in")

    def _reference_hash(self, event_id: str) -> str:
        """The reference hash a room v1/v2 event cites ``event_id`` with (the pruned
        form a redacted event is stored in hashes the same)."""
        cited = self._store.get_event(event_id)
        if cited is None:
            raise InvalidRoomState(f"cannot cite unknown event {event_id}")
        return encode_base64(compute_reference_hash(self.version, cited.get_dict()))

    def _check_local_redaction(self, redaction: PDU, state: Mapping[StateKey, PDU]) -> bool:
        """Whether the redactor has the redact level; raises for a redaction a local
        user may not send (as Synapse): of an event this room does not have (400: a
        local user can only know it from another room, sytest "PUT /redact disallows
        redaction of event in different room"), of the create or server ACL event,
        or of someone else's event without the redact level (403)."""
        has_power = pl.user_power_level(redaction.sender, state) >= pl.redact_level(state)
        target = self._store.get_event(redaction.redacts)
        if target is None:
            raise InvalidParam("Cannot redact an event that is not in this room")
        if target.is_state() and target.state_key == "" \
                and target.type in ("m.room.create", "m.room.server_acl"):
            raise Forbidden(f"Redacting {target.type} events is not permitted")
        if target.sender != redaction.sender and not has_power:
            raise Forbidden("you may not redact other users' events")
        return has_power

    # -- remote events ------------------------------------------------------------------
    def apply_remote(self, pdus: Sequence[PDU], outliers: Sequence[PDU] = (),
                     state_before: Mapping[str, Sequence[PDU]] | None = None, *,
                     backfilled: bool = False) -> list[RemoteOutcome]:
        """Judge and write PDUs received over federation (signatures already checked).

        ``outliers`` (auth chains, state answers) are stored first without state.
        ``pdus`` are timeline events; each gets the spec's checks on receipt
        (server-server API, "Checks performed on receipt of a PDU"): auth against its
        auth events, against the state before it (both reject), against the current
        state (soft-fail). The state before a PDU comes from its prev events, or from
        ``state_before[event_id]`` (e.g. a /state_ids answer) when they are unknown.
        Each event has its own savepoint: one that breaks never undoes the others.

        ``backfilled``: ``pdus`` are history from another server's ``/backfill``,
        older than the room's timeline. They get the same checks except the soft-fail
        one (current state says nothing about the past), are written as historical
        (``EventContext.backfilled``: never announced, forward extremities and current
        state untouched), and one held only as an outlier (the state a room was joined
        with) becomes a timeline event in place.
        """
        todo = [(pdu, True, None) for pdu in _auth_order(outliers)]
        todo += [(pdu, False, (state_before or {}).get(pdu.event_id))
                 for pdu in sorted(pdus, key=lambda p: p.depth)]
        outcomes = []
        for pdu, outlier, state in todo:
            try:
                with self._store.transaction():
                    outcomes.append(self._apply_one(pdu, outlier, state,
                                                    backfilled and not outlier))
            except Exception as e:  # noqa: BLE001 - one broken event must not stop a batch
                log.failure("applying remote event {event_id}", event_id=pdu.event_id)
                self.forget_resolutions()
                outcomes.append(RemoteOutcome(pdu.event_id, Outcome.ERROR, repr(e)))
        return outcomes

    def _apply_one(self, pdu: PDU, outlier: bool, state: Sequence[PDU] | None,
                   backfilled: bool = False) -> RemoteOutcome:
        store = self._store
        if pdu.room_id != self.room_id:
            return RemoteOutcome(pdu.event_id, Outcome.WRONG_ROOM)
        held = store.get_event(pdu.event_id)
        promote = backfilled and held is not None and held.internal_metadata["outlier"] \
            and not held.internal_metadata["rejected"]
        if held is not None and not promote:
            return RemoteOutcome(pdu.event_id, Outcome.DUPLICATE)
        auth_list = list(store.get_events(pdu.auth_event_ids).values())
        if len(auth_list) != len(set(pdu.auth_event_ids)):
            return RemoteOutcome(pdu.event_id, Outcome.MISSING_AUTH)
        ctx = EventContext(pdu, outlier=outlier, backfilled=backfilled)
        # the room's create event has nothing before it: the empty state
        first = backfilled and pdu.type == "m.room.create" and not pdu.prev_event_ids
        try:
            check_state_independent_auth(self.version, pdu, auth_list)
            auth_map = {(e.type, e.state_key): e for e in auth_list}
            self._with_create(auth_map)
            check_auth_rules(self.version, pdu, auth_map)
        except AuthError as e:
            ctx.rejected = e.message
        if not outlier:
            if state is not None:
                by_seq = store.seqs_for_ids(e.event_id for e in state)
                if len(by_seq) != len({e.event_id for e in state}):
                    return RemoteOutcome(pdu.event_id, Outcome.MISSING_AUTH,
                                         "state events must be stored first")
                ctx.state_before = store.state.group_for_map(
                    {e.state_pair: by_seq[e.event_id] for e in state},
                    store.current_state_group)
            elif pdu.prev_event_ids and self._have_state_after(pdu.prev_event_ids):
                ctx.state_before = self._state_before(pdu.prev_event_ids)
            elif not first:
                return RemoteOutcome(pdu.event_id, Outcome.MISSING_PREV)
            if ctx.rejected is None and not first:
                ctx.rejected = self._auth_failure(pdu, ctx.state_before)
            current = store.current_state_group
            # (no current state yet: this is the first event of an imported room)
            if ctx.rejected is None and current is not None and not backfilled \
                    and ctx.state_before != current \
                    and self._auth_failure(pdu, None) is not None:
                ctx.soft_failed = True
            if ctx.rejected is None and pdu.type == "m.room.redaction":
                pl_state = store.state_events(ctx.state_before, [pl.POWER_LEVELS_KEY,
                                                                 CREATE_KEY])
                ctx.redactor_has_power = (pl.user_power_level(pdu.sender, pl_state)
                                          >= pl.redact_level(pl_state))
        if promote:
            store.promote_outlier(ctx)
        else:
            store.persist([ctx])
        if ctx.in_timeline and not backfilled:
            self._advance_current_state(ctx)
        status = (Outcome.REJECTED if ctx.rejected else Outcome.OUTLIER if outlier
                  else Outcome.SOFT_FAILED if ctx.soft_failed else Outcome.ACCEPTED)
        return RemoteOutcome(pdu.event_id, status, ctx.rejected)

    def _auth_failure(self, pdu: PDU, group: int | None) -> str | None:
        """Why ``pdu`` fails the auth rules against a state group (None: current)."""
        wanted = auth_types_for_event(self.version, pdu.type, pdu.sender, pdu.state_key,
                                      pdu.content) | {CREATE_KEY}
        state = (self._store.current_state_events(wanted) if group is None
                 else self._store.state_events(group, wanted))
        self._with_create(state)
        try:
            check_auth_rules(self.version, pdu, state)
        except AuthError as e:
            return e.message
        return None

    def _with_create(self, state: dict[StateKey, PDU]) -> None:
        # v12 events do not cite the create event, but the rules need it (MSC4291)
        if CREATE_KEY not in state:
            create_id = implied_create_event_id(self.version, self.room_id)
            create = self._store.get_event(create_id) if create_id else None
            if create is not None:
                state[CREATE_KEY] = create

    # -- state --------------------------------------------------------------------------
    def _have_state_after(self, event_ids: Iterable[str]) -> bool:
        """Whether every one of ``event_ids`` is held with state (not an outlier)."""
        for event_id in event_ids:
            groups = self._store.state_groups_of(event_id)
            if groups is None or groups[1] is None:
                return False
        return True

    def _state_before(self, prev_ids: Iterable[str]) -> int:
        """The state group before an event with these (known) prev events."""
        groups = set()
        for prev in prev_ids:
            before_after = self._store.state_groups_of(prev)
            if before_after is None or before_after[1] is None:
                raise RuntimeError(f"prev event {prev} has no state")
            groups.add(before_after[1])
        return self._resolve(groups)

    def _resolve(self, groups: set[int]) -> int:
        if len(groups) == 1:
            return next(iter(groups))
        key = frozenset(groups)
        if key in self._resolved:
            return self._resolved[key]
        store = self._store
        self.resolutions += 1
        self.groups_resolved += len(groups)
        resolved = resolve_state_groups(
            self.version, [store.state_ids(g) for g in sorted(groups)], store.get_event)
        by_seq = store.seqs_for_ids(resolved.values())
        group = store.state.group_for_map(
            {k: by_seq[v] for k, v in resolved.items()}, max(groups))
        if len(self._resolved) >= _RESOLVED_CACHE:
            self._resolved.pop(next(iter(self._resolved)))
        self._resolved[key] = group
        return group

    def forget_resolutions(self) -> None:
        """Drop cached resolutions (after a rollback may have undone their groups)."""
        self._resolved.clear()

    def _advance_current_state(self, ctx: EventContext) -> None:
        """Re-establish the invariant (module docstring) after ``ctx`` was written."""
        store = self._store
        extremities = store.forward_extremities(limit=MAX_PREV_EVENTS + 1)
        if [e for e, _ in extremities] == [ctx.pdu.event_id]:
            changes = None
            if ctx.state_before == store.current_state_group:
                changes = ({ctx.pdu.state_pair: ctx.seq}
                           if ctx.state_after != ctx.state_before else {})
            self._note_member_changes(ctx, store.set_current_state(ctx.state_after,
                                                                   changes))
            return
        if len(extremities) <= MAX_PREV_EVENTS:
            groups = {store.state_groups_of(e)[1] for e, _ in extremities}
        else:
            # a flood: fold the event's state in rather than resolve every extremity
            groups = {store.current_state_group, ctx.state_after}
        self._note_member_changes(ctx, store.set_current_state(self._resolve(groups)))

    def _note_member_changes(self, ctx: EventContext,
                             changes: Mapping[StateKey, int | None]) -> None:
        """Memberships of current state that changed other than by ``ctx``'s own
        event (a state resolution, or the state a gap-filled event was placed on) are
        recorded with it, so its announcement carries them to the memberships index
        (a member event announces only its own membership)."""
        store, found = self._store, []
        for (event_type, user_id), seq in changes.items():
            if event_type != MEMBER or seq == ctx.seq:
                continue
            event = store.get_event_by_seq(seq) if seq is not None else None
            if event is None:   # gone from current state: out of the room
                found.append((user_id, "leave", ctx.pdu.event_id))
            else:
                found.append((user_id, event.membership, event.event_id))
        if found:
            store.add_member_changes(ctx.seq, found)


def _auth_order(events: Sequence[PDU]) -> list[PDU]:
    """``events`` with every event after the auth events it cites (among them)."""
    by_id = {e.event_id: e for e in events}
    done: set[str] = set()
    ordered: list[PDU] = []

    def visit(event: PDU) -> None:
        stack = [(event, iter(event.auth_event_ids))]
        done.add(event.event_id)
        while stack:
            current, deps = stack[-1]
            for dep in deps:
                if dep in by_id and dep not in done:
                    done.add(dep)
                    stack.append((by_id[dep], iter(by_id[dep].auth_event_ids)))
                    break
            else:
                stack.pop()
                ordered.append(current)

    for event in sorted(events, key=lambda e: e.depth):
        if event.event_id not in done:
            visit(event)
    return ordered
