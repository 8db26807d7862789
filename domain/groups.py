"""A group session: a community meeting, an encounter, a seminar... held at a facility.

The session is a stream of its own and holds no personal data: its kind, place, time,
length and the staff member who facilitated it, or only that a peer led it. Who attended,
and which resident led a peer-led group, are facts of each participant's own record
(domain.community), encrypted under that participant's key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.community import Session
from domain.errors import InvalidValue
from domain.policy import ProgramPolicy
from domain.provenance import CLOCK_SKEW, Provenance

MAX_DURATION_MINUTES = 600


class GroupHeld(Aggregate.Created):
    program: str
    facility: str
    unit: str | None
    kind: str
    held_at: datetime
    duration_minutes: int
    facilitator_staff_id: str | None  # None when a peer led it (see `peer_led`)
    peer_led: bool
    topic: str | None
    actor_id: str
    actor_role: str
    effective_at: datetime
    reason: str
    source: str
    correlation_id: str
    causation_id: str | None

    # Version 2 knows peer-led groups; every stored version 1 session was led by staff.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["peer_led"] = False

    def apply(self, session: GroupSession) -> None:
        session.program, session.facility, session.unit = self.program, self.facility, self.unit
        session.kind, session.held_at = self.kind, self.held_at
        session.duration_minutes = self.duration_minutes
        session.facilitator_staff_id, session.topic = self.facilitator_staff_id, self.topic
        session.peer_led = self.peer_led


class GroupSession(Aggregate):
    def __init__(self) -> None:
        self.program = ""
        self.facility = ""
        self.unit: str | None = None
        self.kind = ""
        self.held_at: datetime | None = None
        self.duration_minutes = 0
        self.facilitator_staff_id: str | None = None
        self.peer_led = False
        self.topic: str | None = None

    @classmethod
    def hold(cls, policy: ProgramPolicy, *, by: Provenance, facility: str, unit: str | None,
             kind: str, held_at: datetime, duration_minutes: int,
             facilitator_staff_id: str | None, topic: str | None = None) -> GroupSession:
        """A session led by a staff member, or by a peer (`facilitator_staff_id` None): the
        peer's leading it is then recorded on their own record, with the session
        (domain.community.record_facilitation)."""
        if kind not in policy.group_kinds:
            raise InvalidValue("kind", f"unknown group kind {kind!r}; expected one of "
                               f"{', '.join(policy.group_kinds) or 'none (the program '}"
                               f"{'' if policy.group_kinds else 'lists no group kinds)'}")
        if held_at.tzinfo is None:
            raise InvalidValue("held_at", "must carry a time zone")
        if held_at > by.now + CLOCK_SKEW:
            raise InvalidValue("held_at", "must not be in the future: record a session once "
                               "it was held")
        if not 1 <= duration_minutes <= MAX_DURATION_MINUTES:
            raise InvalidValue("duration_minutes",
                               f"expected 1 to {MAX_DURATION_MINUTES} minutes")
        return cls._create(GroupHeld, **by.event_fields("", held_at), program=policy.code,
                           facility=facility, unit=unit, kind=kind, held_at=held_at,
                           duration_minutes=duration_minutes,
                           facilitator_staff_id=facilitator_staff_id,
                           peer_led=facilitator_staff_id is None, topic=topic)

    @property
    def session(self) -> Session:
        assert self.held_at is not None
        return Session(str(self.id), self.kind, self.facility, self.held_at)
