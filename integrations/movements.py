"""Movements pushed in by the offender-management system: transfers, release dates, releases.

That system knows a person by their DOC number: the record is the one active record with
that number (found through the keyed blind index of the participant summary view, once the
views include everything recorded so far). A transfer is `transfer`, a new release date
`change_release_date`, a release `discharge` with the policy's release type (default
`administrative-release`), so the program's rules hold as for an entry made by staff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar
from uuid import UUID

from domain.application import Command
from domain.errors import InvalidValue, NotFound
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance
from integrations.inbound import AlsoWith, Ambiguous, Receiver, Recorded

KINDS = ("transfer", "release_date_changed", "released")
RELEASE_TYPE = "administrative-release"
REQUIRED = {"transfer": ("facility", "unit"), "release_date_changed": ("expected_release_on",),
            "released": ()}
ALLOWED = {"transfer": {"facility", "unit"}, "release_date_changed": {"expected_release_on"},
           "released": {"discharge_type"}}
# The active records with a DOC number; raises ViewsBehind when the views cannot say yet.
FindActive = Callable[[str], list[UUID]]


class ViewsBehind(Exception):
    """The views the lookup reads have not caught up with the log in time."""


@dataclass(frozen=True)
class Movement:
    noun: ClassVar[str] = "movement"

    movement_id: str
    doc_number: str
    kind: str
    effective_at: datetime
    facility: str | None = None
    unit: str | None = None
    expected_release_on: date | None = None
    release_date_given: bool = False  # an unknown release date is null, not absent
    discharge_type: str | None = None
    reason: str | None = None

    @property
    def external_id(self) -> str:
        return self.movement_id

    def command(self, by: Provenance) -> Command:
        self._check()
        reason = self.reason or f"movement {self.movement_id} reported by {by.source}"
        at = self.effective_at
        if self.kind == "transfer":
            assert self.facility is not None and self.unit is not None
            facility, unit = self.facility, self.unit
            return lambda p, policy: p.transfer(by=by, facility=facility, unit=unit, at=at,
                                                reason=reason)
        if self.kind == "release_date_changed":
            return lambda p, policy: p.change_release_date(
                by=by, expected_release_on=self.expected_release_on, at=at, reason=reason)
        discharge_type = self.discharge_type or RELEASE_TYPE

        def release(p: Participant, policy: ProgramPolicy) -> None:
            kind = policy.discharge_types.get(discharge_type)
            if kind is not None and kind.category != "administrative":
                # Completion, termination and withdrawal are the program's decisions.
                raise InvalidValue("discharge_type", "a release from custody is an "
                                   "administrative discharge type")
            p.discharge(policy, by=by, discharge_type=discharge_type, at=at, reason=reason)
        return release

    def _check(self) -> None:
        if self.kind not in KINDS:
            raise InvalidValue("kind", f"expected one of {KINDS}")
        given = {name for name in ("facility", "unit", "discharge_type")
                 if getattr(self, name) is not None}
        if self.release_date_given or self.expected_release_on is not None:
            given.add("expected_release_on")
        for name in REQUIRED[self.kind]:
            if name not in given:
                raise InvalidValue(name, f"required for a {self.kind} movement"
                                   + (" (null when unknown)" if name == "expected_release_on"
                                      else ""))
        for name in sorted(given - ALLOWED[self.kind]):
            raise InvalidValue(name, f"not part of a {self.kind} movement")


class Movements:
    def __init__(self, receiver: Receiver, find_active: FindActive) -> None:
        self._receiver = receiver
        self._find_active = find_active

    def receive(self, movement: Movement, by: Provenance, sender: str,
                also_with: AlsoWith | None = None) -> Recorded:
        def locate() -> UUID:
            found = self._find_active(movement.doc_number)
            if not found:
                raise NotFound("participant", "active with that DOC number")
            if len(found) > 1:
                raise Ambiguous("DOC number")
            return found[0]
        return self._receiver.receive(movement, locate, by, sender, also_with)
