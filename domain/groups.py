"""A group session: a community meeting, an encounter, a seminar... held at a facility.

The session is a stream of its own and holds no personal data: its kind, place, time,
length and the staff member who facilitated it. Who attended is a fact of each
participant's own record (domain.community), encrypted under that participant's key.
"""

from __future__ import annotations

from datetime import datetime

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
    facilitator_staff_id: str
    topic: str | None
    actor_id: str
    actor_role: str
    effective_at: datetime
    reason: str
    source: str
    correlation_id: str
    causation_id: str | None

    def apply(self, session: GroupSession) -> None:
        session.program, session.facility, session.unit = self.program, self.facility, self.unit
        session.kind, session.held_at = self.kind, self.held_at
        session.duration_minutes = self.duration_minutes
        session.facilitator_staff_id, session.topic = self.facilitator_staff_id, self.topic


class GroupSession(Aggregate):
    def __init__(self) -> None:
        self.program = ""
        self.facility = ""
        self.unit: str | None = None
        self.kind = ""
        self.held_at: datetime | None = None
        self.duration_minutes = 0
        self.facilitator_staff_id = ""
        self.topic: str | None = None

    @classmethod
    def hold(cls, policy: ProgramPolicy, *, by: Provenance, facility: str, unit: str | None,
             kind: str, held_at: datetime, duration_minutes: int, facilitator_staff_id: str,
             topic: str | None = None) -> GroupSession:
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
                           facilitator_staff_id=facilitator_staff_id, topic=topic)

    @property
    def session(self) -> Session:
        assert self.held_at is not None
        return Session(str(self.id), self.kind, self.facility, self.held_at)
