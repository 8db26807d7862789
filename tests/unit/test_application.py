"""The command side over in-memory persistence: versions, positions, optimistic concurrency,
time travel, history and crypto-shredding erasure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain import events as ev
from domain.application import TCLedger, WriteResult
from domain.errors import InvalidValue, ParticipantNotFound, RuleViolation, VersionMismatch
from domain.participant import Participant, fold
from domain.policy import ProgramPolicy
from domain.provenance import Provenance
from domain.retention import ErasureRecord, erasure_record_id

DaysAgo = Callable[[float], datetime]


@pytest.fixture
def admitted_id(ledger: TCLedger, policy: ProgramPolicy, by: Provenance,
                admission_fields: Callable[..., dict[str, Any]]) -> Any:
    result = ledger.admit(policy, by, **admission_fields(
        assessments=[{"instrument": "SYN-SCREEN", "score": 3, "reason": "intake"}]))
    return result.id


def promote(to_stage: str, at: datetime, by: Provenance,
            **kw: Any) -> Callable[[Participant, ProgramPolicy], None]:
    def command(p: Participant, policy: ProgramPolicy) -> None:
        p.promote(policy, by=by, to_stage=to_stage, at=at, reason="criteria met", **kw)
    return command


def test_admit_and_execute_return_increasing_versions_and_positions(
        ledger: TCLedger, policy: ProgramPolicy, by: Provenance,
        admission_fields: Callable[..., dict[str, Any]], days_ago: DaysAgo) -> None:
    admitted = ledger.admit(policy, by, **admission_fields(
        assessments=[{"instrument": "SYN-SCREEN", "score": 3}]))
    assert isinstance(admitted, WriteResult)
    assert admitted.version == 2  # admission and its assessment
    assert admitted.extra == {}

    promoted = ledger.execute(admitted.id, promote("phase-1", days_ago(100), by))
    assert promoted.id == admitted.id
    assert promoted.version == 3
    assert promoted.position > admitted.position

    granted = ledger.execute(admitted.id, lambda p, pol: p.grant_privilege(
        pol, by=by, privilege="recreation", at=days_ago(90), reason="earned"))
    assert (granted.version, granted.position > promoted.position) == (4, True)

    participant = ledger.participant(admitted.id)
    assert participant.version == 4
    assert participant.state.stage == "phase-1"
    assert participant.state.active_privileges == ["recreation"]
    assert len(participant.state.assessments) == 1


def test_a_command_result_dict_is_passed_back_as_extra(ledger: TCLedger, admitted_id: Any,
                                                       by: Provenance,
                                                       days_ago: DaysAgo) -> None:
    def assign(p: Participant, policy: ProgramPolicy) -> dict[str, str]:
        return {"job_id": p.assign_job_function(by=by, function="kitchen", at=days_ago(1),
                                                reason="rotation")}
    result = ledger.execute(admitted_id, assign)
    assert result.extra["job_id"] in ledger.participant(admitted_id).state.job_functions


def test_regression_and_its_revocations_are_saved_together(
        ledger: TCLedger, admitted_id: Any, by: Provenance, days_ago: DaysAgo) -> None:
    ledger.execute(admitted_id, promote("phase-1", days_ago(100), by))
    before = ledger.execute(admitted_id, lambda p, pol: p.grant_privilege(
        pol, by=by, privilege="recreation", at=days_ago(90), reason="earned"))
    after = ledger.execute(admitted_id, lambda p, pol: p.regress(
        pol, by=by, to_stage="orientation", at=days_ago(1), reason="setback"))
    assert after.version == before.version + 2
    kinds = [type(e) for e in ledger.history(admitted_id)][-2:]
    assert kinds == [ev.StageRegressed, ev.PrivilegeRevoked]


def test_expected_version_mismatch(ledger: TCLedger, admitted_id: Any, by: Provenance,
                                   days_ago: DaysAgo) -> None:
    current = ledger.participant(admitted_id).version
    with pytest.raises(VersionMismatch) as exc:
        ledger.execute(admitted_id, promote("phase-1", days_ago(100), by),
                       expected_version=current - 1)
    assert (exc.value.expected, exc.value.actual) == (current - 1, current)
    assert ledger.participant(admitted_id).state.stage == "orientation"
    result = ledger.execute(admitted_id, promote("phase-1", days_ago(100), by),
                            expected_version=current)
    assert result.version == current + 1


def test_a_refused_command_records_nothing(ledger: TCLedger, admitted_id: Any,
                                           by: Provenance, days_ago: DaysAgo) -> None:
    before = ledger.participant(admitted_id).version
    with pytest.raises(RuleViolation) as exc:
        ledger.execute(admitted_id, promote("phase-2", days_ago(100), by))
    assert exc.value.rule == "promotion-not-next-stage"

    def half_done(p: Participant, policy: ProgramPolicy) -> None:
        p.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="criteria met")
        raise InvalidValue("synthetic", "a later check refuses")

    with pytest.raises(InvalidValue):
        ledger.execute(admitted_id, half_done)
    # Neither the store nor the cached copy holds the half-done promotion.
    participant = ledger.participant(admitted_id)
    assert participant.version == before
    assert participant.state.stage == "orientation"
    assert len(list(ledger.history(admitted_id))) == before


def test_a_guard_runs_before_the_command(ledger: TCLedger, admitted_id: Any, by: Provenance,
                                         days_ago: DaysAgo) -> None:
    def guard(p: Participant) -> None:
        raise RuleViolation("synthetic-guard", "refused by the caller")

    with pytest.raises(RuleViolation) as exc:
        ledger.execute(admitted_id, promote("phase-1", days_ago(100), by), guard=guard)
    assert exc.value.rule == "synthetic-guard"
    assert ledger.participant(admitted_id).state.stage == "orientation"


def test_an_unknown_participant(ledger: TCLedger, by: Provenance, days_ago: DaysAgo) -> None:
    unknown = uuid4()
    with pytest.raises(ParticipantNotFound):
        ledger.participant(unknown)
    with pytest.raises(ParticipantNotFound):
        list(ledger.history(unknown))
    with pytest.raises(ParticipantNotFound):
        ledger.execute(unknown, promote("phase-1", days_ago(1), by))
    assert ledger.erasure_of(unknown) is None


def test_participant_as_of_returns_the_older_state(ledger: TCLedger, admitted_id: Any,
                                                   by: Provenance, days_ago: DaysAgo) -> None:
    between = datetime.now(UTC)
    ledger.execute(admitted_id, promote("phase-1", days_ago(100), by))
    # Recorded later but back-dated to before `between`: still left out.
    ledger.execute(admitted_id, lambda p, pol: p.grant_privilege(
        pol, by=by, privilege="recreation", at=days_ago(90), reason="earned"))

    older = ledger.participant_as_of(admitted_id, between)
    assert older.version == 2
    assert older.state.stage == "orientation"
    assert older.state.privileges == {}
    latest = ledger.participant_as_of(admitted_id, datetime.now(UTC) + timedelta(seconds=1))
    assert latest.version == 4
    assert latest.state.stage == "phase-1"
    with pytest.raises(ParticipantNotFound):
        ledger.participant_as_of(admitted_id, between - timedelta(days=1))


def test_history_yields_every_event_in_order(ledger: TCLedger, admitted_id: Any,
                                             policy: ProgramPolicy, by: Provenance,
                                             days_ago: DaysAgo) -> None:
    ledger.execute(admitted_id, promote("phase-1", days_ago(100), by))
    ledger.execute(admitted_id, lambda p, pol: p.void_entry(
        by=by, version=3, at=days_ago(1), reason="in error"))
    history = list(ledger.history(admitted_id))
    assert [type(e) for e in history] == [ev.ParticipantAdmitted, ev.AssessmentRecorded,
                                          ev.StagePromoted, ev.EntryVoided]
    assert [e.originator_version for e in history] == [1, 2, 3, 4]
    assert all(e.originator_id == admitted_id for e in history)
    timestamps = [e.timestamp for e in history]
    assert timestamps == sorted(timestamps)
    assert ledger.participant(admitted_id).state.stage == "orientation"


def test_a_stored_record_folds_to_the_same_state(
        ledger: TCLedger, admitted_id: Any, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo, make_ledger: Callable[[], TCLedger]) -> None:
    ledger.execute(admitted_id, promote("phase-1", days_ago(100), by))
    ledger.execute(admitted_id, lambda p, pol: p.grant_privilege(
        pol, by=by, privilege="recreation", at=days_ago(90), reason="earned",
        until=days_ago(-30).date()))
    ledger.execute(admitted_id, lambda p, pol: p.correct_entry(
        pol, by=by, version=3, changes={"effective_at": days_ago(95).isoformat()},
        at=days_ago(1), reason="wrong date"))
    ledger.execute(admitted_id, lambda p, pol: p.correct_entry(
        pol, by=by, version=1, changes={"expected_release_on": "2031-01-02"},
        at=days_ago(1), reason="new sentence computation"))
    # Read back without the cache: every event goes through the mapper and the transcoder.
    ledger.repository.cache = None
    stored = ledger.participant(admitted_id)
    assert stored.state.stage_since == days_ago(95).date()
    assert stored.state.expected_release_on.isoformat() == "2031-01-02"
    assert stored.state == fold(list(ledger.history(admitted_id)))


def test_erase_destroys_the_key_and_keeps_an_erasure_record(
        ledger: TCLedger, admitted_id: Any, supervisor: Provenance, keys: Any) -> None:
    version = ledger.participant(admitted_id).version
    result = ledger.erase(admitted_id, supervisor, "retention period over")
    assert keys.destroyed == [admitted_id]
    assert (result.id, result.version) == (admitted_id, version)
    assert result.position > 0

    record = ledger.erasure_of(admitted_id)
    assert isinstance(record, ErasureRecord)
    assert record.id == erasure_record_id(admitted_id)
    assert record.participant_id == admitted_id
    assert record.erased_version == version
    assert record.actor_id == supervisor.actor_id
    assert record.reason == "retention period over"
    assert record.erased_at == supervisor.now


def test_erase_needs_a_reason(ledger: TCLedger, admitted_id: Any, supervisor: Provenance,
                              keys: Any) -> None:
    with pytest.raises(InvalidValue) as exc:
        ledger.erase(admitted_id, supervisor, "  ")
    assert exc.value.field == "reason"
    assert keys.destroyed == []
    assert ledger.erasure_of(admitted_id) is None


def test_erase_is_refused_under_an_open_legal_hold(
        ledger: TCLedger, admitted_id: Any, by: Provenance, supervisor: Provenance,
        keys: Any, days_ago: DaysAgo) -> None:
    placed = ledger.execute(admitted_id, lambda p, pol: {"hold_id": p.place_legal_hold(
        by=by, matter="SYN-MATTER-9", at=days_ago(2), reason="litigation")})
    with pytest.raises(RuleViolation) as exc:
        ledger.erase(admitted_id, supervisor, "retention period over")
    assert exc.value.rule == "legal-hold-open"
    assert keys.destroyed == []
    assert ledger.erasure_of(admitted_id) is None

    ledger.execute(admitted_id, lambda p, pol: p.release_legal_hold(
        by=by, hold_id=placed.extra["hold_id"], at=days_ago(1), reason="matter closed"))
    ledger.erase(admitted_id, supervisor, "retention period over")
    assert keys.destroyed == [admitted_id]
    assert ledger.erasure_of(admitted_id) is not None
