"""Fixtures for the domain unit tests: a policy, provenances, an admitted participant, a ledger.

All data is synthetic. Dates are computed from the current time so the tests do not rot.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.application import TCLedger
from domain.errors import ParticipantErased
from domain.participant import Participant
from domain.policy import PolicyBook, ProgramPolicy, default_policy
from domain.provenance import Provenance

ADMITTED_DAYS_AGO = 200


class FakeKeys:
    """Stands in for key management: remembers which data keys were destroyed."""

    def __init__(self) -> None:
        self.destroyed: list[UUID] = []

    def destroy_data_key(self, stream_id: UUID) -> None:
        self.destroyed.append(stream_id)

    def check_readable(self, stream_id: UUID) -> None:
        if stream_id in self.destroyed:
            raise ParticipantErased(stream_id)


@pytest.fixture(scope="session")
def policy() -> ProgramPolicy:
    return default_policy()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def by(now: datetime) -> Provenance:
    return Provenance("staff-counselor-1", "counselor", source="test", now=now)


@pytest.fixture
def supervisor(now: datetime) -> Provenance:
    return Provenance("staff-supervisor-1", "supervisor", source="test", now=now)


@pytest.fixture
def days_ago(now: datetime) -> Callable[[float], datetime]:
    """An effective time that many days before now (negative: in the future)."""

    def _days_ago(days: float) -> datetime:
        return now - timedelta(days=days)

    return _days_ago


@pytest.fixture
def admitted_on(now: datetime) -> date:
    return (now - timedelta(days=ADMITTED_DAYS_AGO)).date()


@pytest.fixture
def admission_fields(admitted_on: date) -> Callable[..., dict[str, Any]]:
    """The keyword arguments of an admission, with synthetic data; override any of them."""

    def _fields(**overrides: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "facility": "SYN-FACILITY-A", "unit": "SYN-UNIT-1",
            "external_ids": {"DOC": {"value": "SYN-000123", "issuer": "SYN-DOC"}},
            "given_name": "Test", "family_name": "Resident 1",
            "date_of_birth": date(1990, 1, 1), "admitted_on": admitted_on,
            "expected_release_on": admitted_on + timedelta(days=700),
            "counselor_id": "staff-counselor-1", "referral_source": "synthetic court",
            "program_agreement_signed": True, "reason": "synthetic referral",
            "assessments": [],
        }
        fields.update(overrides)
        return fields

    return _fields


@pytest.fixture
def admit(policy: ProgramPolicy, by: Provenance,
          admission_fields: Callable[..., dict[str, Any]]) -> Callable[..., Participant]:
    def _admit(**overrides: Any) -> Participant:
        return Participant.admit(policy, by=by, **admission_fields(**overrides))

    return _admit


@pytest.fixture
def admitted(admit: Callable[..., Participant]) -> Participant:
    """A participant in orientation since 200 days ago, holding no privilege."""
    return admit()


@pytest.fixture
def in_phase_2(admitted: Participant, policy: ProgramPolicy, by: Provenance,
               days_ago: Callable[[float], datetime]) -> Participant:
    """The admitted participant promoted to phase-1 (170 days ago) and phase-2 (80 days ago),
    holding commissary, recreation, tv-room and visits-contact (all active)."""
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(170), reason="criteria met")
    admitted.promote(policy, by=by, to_stage="phase-2", at=days_ago(80), reason="criteria met")
    for privilege in ("commissary", "recreation", "tv-room", "visits-contact"):
        admitted.grant_privilege(policy, by=by, privilege=privilege, at=days_ago(75),
                                 reason="earned")
    return admitted


@pytest.fixture
def keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture
def make_ledger(policy: ProgramPolicy, keys: FakeKeys) -> Callable[[], TCLedger]:
    """Builds a TCLedger over in-memory (POPO) persistence."""

    def _make() -> TCLedger:
        return TCLedger(PolicyBook([policy]), keys=keys,
                        env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

    return _make


@pytest.fixture
def ledger(make_ledger: Callable[[], TCLedger]) -> TCLedger:
    return make_ledger()
