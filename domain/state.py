"""The state of a participant's record, as folded from its events.

Kept apart from the aggregate so that it can be rebuilt from scratch whenever a correction
or a void changes an earlier event: the fold is the only way state is ever produced.
Sub-records are plain dicts of JSON-ready values: they are what the API and the views show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass
class ParticipantState:
    program: str = ""
    facility: str = ""
    unit: str = ""
    # Where the record placed the participant and from when: (effective_at, version,
    # facility), from the admission and each transfer (neither can be voided or change
    # facility by correction). Internal: what a roster checks a line against.
    placements: list[tuple[datetime, int, str]] = field(default_factory=list)
    counselor_id: str | None = None
    external_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    given_name: str = ""
    family_name: str = ""
    date_of_birth: date | None = None
    admitted_on: date | None = None
    expected_release_on: date | None = None
    referral_source: str | None = None
    program_agreement_signed: bool = False
    status: str = "active"
    stage: str = ""
    stage_since: date | None = None
    stage_held: bool = False
    stage_held_until: date | None = None
    stage_history: list[dict[str, Any]] = field(default_factory=list)
    assessments: dict[str, dict[str, Any]] = field(default_factory=dict)
    privileges: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    incentives: list[dict[str, Any]] = field(default_factory=list)
    infractions: dict[str, dict[str, Any]] = field(default_factory=dict)
    sanctions: dict[str, dict[str, Any]] = field(default_factory=dict)
    specimens: dict[str, dict[str, Any]] = field(default_factory=dict)
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)
    disclosures: list[dict[str, Any]] = field(default_factory=list)
    legal_holds: dict[str, dict[str, Any]] = field(default_factory=dict)
    discharge: dict[str, Any] | None = None
    aftercare_handoffs: list[dict[str, Any]] = field(default_factory=list)
    amendments: dict[str, dict[str, Any]] = field(default_factory=dict)
    attendance: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups_facilitated: dict[str, dict[str, Any]] = field(default_factory=dict)
    peer_feedback: dict[str, dict[str, Any]] = field(default_factory=dict)
    mentorships: dict[str, dict[str, Any]] = field(default_factory=dict)
    follow_ups: dict[str, dict[str, Any]] = field(default_factory=dict)
    recovery_supports: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def open_sanctions(self) -> list[dict[str, Any]]:
        return [s for s in self.sanctions.values() if s["status"] == "open"]

    @property
    def open_legal_holds(self) -> list[dict[str, Any]]:
        return [h for h in self.legal_holds.values() if h["released_on"] is None]

    @property
    def active_privileges(self) -> list[str]:
        return sorted(c for c, p in self.privileges.items() if p["status"] == "active")
