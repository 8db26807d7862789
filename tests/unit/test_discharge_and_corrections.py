"""Discharge closes the record to everything but corrections, consent, aftercare and legal
holds; corrections and voids change the folded state while the history keeps every fact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from domain import events as ev
from domain.errors import InvalidValue, NotFound, RuleViolation
from domain.participant import Participant, fold
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]
SPECIMEN = "SYN-SPEC-0042"


def version_of(p: Participant, kind: type[ev.ParticipantEvent], nth: int = 0) -> int:
    found = [e.originator_version for e in p.history if type(e) is kind]
    return found[nth]


# --- discharge -------------------------------------------------------------------------

def test_discharge_revokes_every_privilege_then_discharges(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.suspend_privilege(policy, by=by, privilege="tv-room", at=days_ago(5),
                                 reason="misuse")
    in_phase_2.collect_events()
    in_phase_2.discharge(policy, by=by, discharge_type="successful-completion",
                         at=days_ago(1), reason="program completed",
                         aftercare_referral="SYN-AFTERCARE")
    events = in_phase_2.collect_events()
    assert [type(e) for e in events] == [ev.PrivilegeRevoked] * 4 + [ev.Discharged]
    assert [e.privilege for e in events[:4]] == [
        "commissary", "recreation", "tv-room", "visits-contact"]
    assert {e.caused_by for e in events[:4]} == {"discharge"}
    discharged = events[-1]
    assert (discharged.category, discharged.successful) == ("successful", True)
    assert in_phase_2.state.privileges == {}
    assert in_phase_2.state.status == "discharged"
    assert in_phase_2.state.discharge == {
        "type": "successful-completion", "category": "successful", "successful": True,
        "effective_on": days_ago(1).date().isoformat(), "reinstatement_eligible_on": None,
        "aftercare_referral": "SYN-AFTERCARE"}


@pytest.mark.parametrize(("discharge_type", "days"), [
    ("therapeutic-termination", 90), ("voluntary-withdrawal", 60),
    ("absconded", None), ("administrative-parole", None)])
def test_reinstatement_date_comes_from_the_policy(
        admitted: Participant, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo,
        discharge_type: str, days: int | None) -> None:
    admitted.discharge(policy, by=by, discharge_type=discharge_type, at=days_ago(10),
                       reason="synthetic discharge")
    expected = None if days is None else days_ago(10).date() + timedelta(days=days)
    assert isinstance(admitted.history[-1], ev.Discharged)
    assert admitted.history[-1].reinstatement_eligible_on == expected
    assert admitted.state.discharge is not None
    assert admitted.state.discharge["reinstatement_eligible_on"] == (
        expected.isoformat() if expected else None)
    assert admitted.state.discharge["successful"] is False


def test_discharge_with_an_unknown_type(admitted: Participant, policy: ProgramPolicy,
                                        by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.discharge(policy, by=by, discharge_type="vanished", at=days_ago(1),
                           reason="x")
    assert exc.value.field == "type"
    assert admitted.state.status == "active"


def test_discharge_needs_a_reason(in_phase_2: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo) -> None:
    in_phase_2.collect_events()
    with pytest.raises(InvalidValue) as exc:
        in_phase_2.discharge(policy, by=by, discharge_type="absconded", at=days_ago(1),
                             reason="")
    assert exc.value.field == "reason"
    assert in_phase_2.collect_events() == []
    assert in_phase_2.state.status == "active"
    assert len(in_phase_2.state.privileges) == 4


Command = Callable[[Participant, ProgramPolicy, Provenance, datetime], Any]

REFUSED_AFTER_DISCHARGE: dict[str, Command] = {
    "promote": lambda p, pol, by, at: p.promote(pol, by=by, to_stage="phase-1", at=at,
                                                reason="x"),
    "regress": lambda p, pol, by, at: p.regress(pol, by=by, to_stage="orientation", at=at,
                                                reason="x"),
    "repeat_stage": lambda p, pol, by, at: p.repeat_stage(pol, by=by, at=at, reason="x"),
    "hold_stage": lambda p, pol, by, at: p.hold_stage(by=by, at=at, reason="x"),
    "grant_privilege": lambda p, pol, by, at: p.grant_privilege(
        pol, by=by, privilege="commissary", at=at, reason="x"),
    "record_infraction": lambda p, pol, by, at: p.record_infraction(
        pol, by=by, code="threat", observed_at=at, description="d", reason="x"),
    "impose_sanction": lambda p, pol, by, at: p.impose_sanction(
        pol, by=by, sanction="pull-up", at=at, reason="x"),
    "collect_specimen": lambda p, pol, by, at: p.collect_specimen(
        pol, by=by, specimen_id="SYN-SPEC-9", method="urine", test_reason="random",
        collected_at=at),
    "assign_counselor": lambda p, pol, by, at: p.assign_counselor(
        by=by, counselor_id="staff-counselor-9", at=at, reason="x"),
    "transfer": lambda p, pol, by, at: p.transfer(by=by, facility="SYN-FACILITY-B",
                                                  unit="SYN-UNIT-2", at=at, reason="x"),
    "change_release_date": lambda p, pol, by, at: p.change_release_date(
        by=by, expected_release_on=None, at=at, reason="x"),
    "record_assessment": lambda p, pol, by, at: p.record_assessment(
        by=by, at=at, instrument="SYN-INSTRUMENT"),
    "assign_job_function": lambda p, pol, by, at: p.assign_job_function(
        by=by, function="kitchen", at=at, reason="x"),
    "award_incentive": lambda p, pol, by, at: p.award_incentive(
        by=by, incentive="certificate", at=at, reason="x"),
    "discharge": lambda p, pol, by, at: p.discharge(
        pol, by=by, discharge_type="absconded", at=at, reason="x"),
}


@pytest.fixture
def discharged(in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
               days_ago: DaysAgo) -> Participant:
    in_phase_2.discharge(policy, by=by, discharge_type="therapeutic-termination",
                         at=days_ago(5), reason="synthetic termination")
    in_phase_2.collect_events()
    return in_phase_2


@pytest.mark.parametrize("command", sorted(REFUSED_AFTER_DISCHARGE))
def test_a_discharged_record_refuses_program_activity(
        discharged: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo, command: str) -> None:
    with pytest.raises(RuleViolation) as exc:
        REFUSED_AFTER_DISCHARGE[command](discharged, policy, by, days_ago(1))
    assert exc.value.rule == "participant-discharged"
    assert discharged.collect_events() == []


def test_a_discharged_record_takes_corrections_consent_aftercare_and_holds(
        discharged: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    at = days_ago(1)
    consent_id = discharged.give_consent(by=by, recipient="SYN-PROBATION", purpose="aftercare",
                                         categories=["discharge"], at=at,
                                         expires_on=at.date() + timedelta(days=365),
                                         expiry_event="end of supervision")
    discharged.revoke_consent(by=by, consent_id=consent_id, at=at, reason="withdrawn")
    discharged.send_aftercare_handoff(by=by, receiving_agency="SYN-AGENCY",
                                      report="synthetic report", at=at, reason="handoff")
    hold_id = discharged.place_legal_hold(by=by, matter="SYN-MATTER-1", at=at,
                                          reason="litigation")
    discharged.release_legal_hold(by=by, hold_id=hold_id, at=at, reason="closed")
    discharged.correct_entry(policy, by=by, version=version_of(discharged, ev.Discharged),
                             changes={"aftercare_referral": "SYN-AFTERCARE-2"}, at=at,
                             reason="referral recorded late")
    discharged.request_amendment(by=by, requested_change="spelling", at=at,
                                 reason="resident request")
    assert [type(e) for e in discharged.collect_events()] == [
        ev.ConsentGiven, ev.ConsentRevoked, ev.AftercareHandoffSent, ev.LegalHoldPlaced,
        ev.LegalHoldReleased, ev.EntryCorrected, ev.AmendmentRequested]
    assert discharged.state.status == "discharged"
    assert discharged.state.discharge is not None
    assert discharged.state.discharge["aftercare_referral"] == "SYN-AFTERCARE-2"
    assert discharged.state.aftercare_handoffs[0]["receiving_agency"] == "SYN-AGENCY"


def test_voiding_a_discharge_reopens_the_record(discharged: Participant,
                                                by: Provenance, days_ago: DaysAgo) -> None:
    discharged.void_entry(by=by, version=version_of(discharged, ev.Discharged),
                          at=days_ago(1), reason="discharged in error")
    assert discharged.state.status == "active"
    assert discharged.state.discharge is None


# --- corrections -----------------------------------------------------------------------

@pytest.fixture
def resulted(admitted: Participant, policy: ProgramPolicy, by: Provenance,
             days_ago: DaysAgo) -> Participant:
    admitted.collect_specimen(policy, by=by, specimen_id=SPECIMEN, method="urine",
                              test_reason="random", collected_at=days_ago(5))
    admitted.record_result(policy, by=by, specimen_id=SPECIMEN, result="positive",
                           substances=[{"code": "cocaine", "level_ng_ml": 300}],
                           resulted_at=days_ago(4), lab="SYN-LAB")
    return admitted


def test_correcting_a_result_changes_the_state_and_keeps_the_history(
        resulted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    version = version_of(resulted, ev.TestResulted)
    resulted.correct_entry(policy, by=by, version=version,
                           changes={"result": "negative", "substances": []},
                           at=days_ago(1), reason="lab transcription error")
    specimen = resulted.state.specimens[SPECIMEN]
    assert (specimen["result"], specimen["substances"]) == ("negative", [])
    assert specimen["lab"] == "SYN-LAB"  # untouched fields stay

    original = resulted.history[version - 1]
    assert isinstance(original, ev.TestResulted)
    assert original.result == "positive"
    assert original.substances[0]["code"] == "cocaine"
    correction = resulted.history[-1]
    assert isinstance(correction, ev.EntryCorrected)
    assert correction.supersedes_version == version
    assert correction.changes == {"result": "negative", "substances": []}
    assert resulted.amended == {version: "EntryCorrected"}
    assert fold(resulted.history) == resulted.state


def test_corrections_of_one_entry_accumulate(resulted: Participant, policy: ProgramPolicy,
                                             by: Provenance, days_ago: DaysAgo) -> None:
    version = version_of(resulted, ev.TestResulted)
    resulted.correct_entry(policy, by=by, version=version,
                           changes={"result": "negative", "substances": []},
                           at=days_ago(2), reason="transcription error")
    resulted.correct_entry(policy, by=by, version=version, changes={"lab": "SYN-LAB-2"},
                           at=days_ago(1), reason="wrong lab")
    specimen = resulted.state.specimens[SPECIMEN]
    assert (specimen["result"], specimen["lab"]) == ("negative", "SYN-LAB-2")


def test_corrected_substances_carry_the_policy_cutoffs(
        resulted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    resulted.correct_entry(policy, by=by, version=version_of(resulted, ev.TestResulted),
                           changes={"substances": [{"code": "opiates", "level_ng_ml": 2500}]},
                           at=days_ago(1), reason="wrong analyte")
    # Same shape as a result recorded in the first place.
    assert resulted.state.specimens[SPECIMEN]["substances"] == [
        {"code": "opiates", "level_ng_ml": 2500, "cutoff_ng_ml": 2000.0}]


def test_correcting_with_unknown_codes_is_refused(resulted: Participant,
                                                  policy: ProgramPolicy, by: Provenance,
                                                  days_ago: DaysAgo) -> None:
    version = version_of(resulted, ev.TestResulted)
    with pytest.raises(InvalidValue) as exc:
        resulted.correct_entry(policy, by=by, version=version, changes={"result": "purple"},
                               at=days_ago(1), reason="x")
    assert exc.value.field == "changes.result"
    with pytest.raises(InvalidValue) as exc:
        resulted.correct_entry(policy, by=by, version=version,
                               changes={"substances": [{"code": "kryptonite"}]},
                               at=days_ago(1), reason="x")
    assert exc.value.field == "changes.substances[0].code"
    with pytest.raises(InvalidValue) as exc:
        resulted.correct_entry(policy, by=by, version=version, changes={"lab": 42},
                               at=days_ago(1), reason="x")
    assert exc.value.field == "changes.lab"
    assert resulted.state.specimens[SPECIMEN]["result"] == "positive"


def test_correcting_a_collection_method_checks_the_catalogue(
        resulted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        resulted.correct_entry(policy, by=by, version=version_of(resulted, ev.SpecimenCollected),
                               changes={"method": "telepathy"}, at=days_ago(1), reason="x")
    assert exc.value.field == "changes.method"


def test_correcting_an_effective_time_to_before_admission_is_refused(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned")
    with pytest.raises(RuleViolation) as exc:
        admitted.correct_entry(policy, by=by, version=version_of(admitted, ev.PrivilegeGranted),
                               changes={"effective_at": days_ago(400).isoformat()},
                               at=days_ago(1), reason="back-date")
    assert exc.value.rule == "effective-before-admission"


def test_correcting_an_effective_time(admitted: Participant, policy: ProgramPolicy,
                                      by: Provenance, days_ago: DaysAgo) -> None:
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="criteria met")
    admitted.correct_entry(policy, by=by, version=version_of(admitted, ev.StagePromoted),
                           changes={"effective_at": days_ago(90).isoformat()},
                           at=days_ago(1), reason="wrong date entered")
    assert admitted.state.stage_since == days_ago(90).date()
    with pytest.raises(InvalidValue) as exc:
        admitted.correct_entry(policy, by=by, version=version_of(admitted, ev.StagePromoted),
                               changes={"effective_at": days_ago(-2).isoformat()},
                               at=days_ago(1), reason="future")
    assert exc.value.field == "changes.effective_at"
    with pytest.raises(InvalidValue) as exc:
        admitted.correct_entry(policy, by=by, version=version_of(admitted, ev.StagePromoted),
                               changes={"effective_at": "2020-01-01T00:00:00"},
                               at=days_ago(1), reason="naive")
    assert exc.value.field == "changes.effective_at"


@pytest.mark.parametrize(("kind", "field"), [
    (ev.TestResulted, "specimen_id"),
    (ev.SpecimenCollected, "specimen_id"),
    (ev.ParticipantAdmitted, "admitted_on"),
    (ev.ParticipantAdmitted, "effective_at"),  # an admission is not voidable: date is fixed
    (ev.ParticipantAdmitted, "no_such_field"),
])
def test_a_non_correctable_field_is_named(resulted: Participant, policy: ProgramPolicy,
                                          by: Provenance, days_ago: DaysAgo,
                                          kind: type[ev.ParticipantEvent], field: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        resulted.correct_entry(policy, by=by, version=version_of(resulted, kind),
                               changes={field: "SYN-VALUE"}, at=days_ago(1), reason="x")
    assert exc.value.field == f"changes.{field}"


def test_correcting_the_admission(admitted: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo) -> None:
    admitted.correct_entry(policy, by=by, version=1,
                           changes={"family_name": "Resident 2", "date_of_birth": "1991-02-03"},
                           at=days_ago(1), reason="identity verified")
    assert admitted.state.family_name == "Resident 2"
    assert admitted.state.date_of_birth == date(1991, 2, 3)
    assert admitted.state.stage == "orientation"
    first = admitted.history[0]
    assert isinstance(first, ev.ParticipantAdmitted)
    assert first.family_name == "Resident 1"


def test_an_empty_correction_is_refused(admitted: Participant, policy: ProgramPolicy,
                                        by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.correct_entry(policy, by=by, version=1, changes={}, at=days_ago(1),
                               reason="nothing")
    assert exc.value.field == "changes"


def test_correcting_a_correction_is_refused(resulted: Participant, policy: ProgramPolicy,
                                            by: Provenance, days_ago: DaysAgo) -> None:
    resulted.correct_entry(policy, by=by, version=version_of(resulted, ev.TestResulted),
                           changes={"lab": "SYN-LAB-2"}, at=days_ago(2), reason="wrong lab")
    correction = version_of(resulted, ev.EntryCorrected)
    with pytest.raises(RuleViolation) as exc:
        resulted.correct_entry(policy, by=by, version=correction,
                               changes={"lab": "SYN-LAB-3"}, at=days_ago(1), reason="again")
    assert exc.value.rule == "correction-target-not-correctable"
    with pytest.raises(RuleViolation) as exc:
        resulted.void_entry(by=by, version=correction, at=days_ago(1), reason="undo")
    assert exc.value.rule == "correction-target-not-correctable"


def test_voiding_a_promotion_reverts_the_stage(admitted: Participant, policy: ProgramPolicy,
                                              by: Provenance, days_ago: DaysAgo,
                                              admitted_on: date) -> None:
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="criteria met")
    version = version_of(admitted, ev.StagePromoted)
    admitted.collect_events()
    admitted.void_entry(by=by, version=version, at=days_ago(1), reason="recorded in error")
    (event,) = admitted.collect_events()
    assert isinstance(event, ev.EntryVoided)
    assert event.supersedes_version == version
    assert admitted.state.stage == "orientation"
    assert admitted.state.stage_since == admitted_on
    assert [h["direction"] for h in admitted.state.stage_history] == ["admission"]
    assert any(isinstance(e, ev.StagePromoted) for e in admitted.history)
    assert admitted.amended == {version: "EntryVoided"}
    # The record is as if the promotion never happened: it can be promoted again.
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(0), reason="criteria met")
    assert admitted.state.stage == "phase-1"


def test_voiding_twice_is_refused(admitted: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo) -> None:
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned")
    version = version_of(admitted, ev.PrivilegeGranted)
    admitted.void_entry(by=by, version=version, at=days_ago(2), reason="in error")
    assert admitted.state.privileges == {}
    with pytest.raises(RuleViolation) as exc:
        admitted.void_entry(by=by, version=version, at=days_ago(1), reason="again")
    assert exc.value.rule == "entry-already-voided"
    with pytest.raises(RuleViolation) as exc:
        admitted.correct_entry(policy, by=by, version=version,
                               changes={"until": days_ago(-9).date().isoformat()},
                               at=days_ago(1), reason="after void")
    assert exc.value.rule == "entry-already-voided"


@pytest.mark.parametrize("kind", [ev.ParticipantAdmitted, ev.LegalHoldPlaced])
def test_some_entries_cannot_be_voided(admitted: Participant, by: Provenance,
                                       days_ago: DaysAgo,
                                       kind: type[ev.ParticipantEvent]) -> None:
    admitted.place_legal_hold(by=by, matter="SYN-MATTER-2", at=days_ago(3), reason="litigation")
    with pytest.raises(RuleViolation) as exc:
        admitted.void_entry(by=by, version=version_of(admitted, kind), at=days_ago(1),
                            reason="remove")
    assert exc.value.rule == "entry-not-voidable"
    assert admitted.state.open_legal_holds


def test_amending_an_unknown_version(admitted: Participant, policy: ProgramPolicy,
                                     by: Provenance, days_ago: DaysAgo) -> None:
    for version in (0, 99):
        with pytest.raises(NotFound) as exc:
            admitted.void_entry(by=by, version=version, at=days_ago(1), reason="x")
        assert exc.value.what == "version"


@pytest.mark.parametrize("command", ["correct", "void"])
def test_amendments_need_a_reason(admitted: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo, command: str) -> None:
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned")
    version = version_of(admitted, ev.PrivilegeGranted)
    with pytest.raises(InvalidValue) as exc:
        if command == "correct":
            admitted.correct_entry(policy, by=by, version=version,
                                   changes={"until": days_ago(-9).date().isoformat()},
                                   at=days_ago(1), reason="  ")
        else:
            admitted.void_entry(by=by, version=version, at=days_ago(1), reason="")
    assert exc.value.field == "reason"
    assert admitted.amended == {}


def test_amendment_request_denial_and_disagreement(admitted: Participant, by: Provenance,
                                                   days_ago: DaysAgo) -> None:
    amendment_id = admitted.request_amendment(by=by, requested_change="date of birth",
                                              at=days_ago(3), reason="resident request",
                                              target_version=1)
    with pytest.raises(RuleViolation) as exc:
        admitted.file_disagreement(by=by, amendment_id=amendment_id, statement="s",
                                   at=days_ago(2), reason="x")
    assert exc.value.rule == "disagreement-requires-denial"
    admitted.deny_amendment(by=by, amendment_id=amendment_id, at=days_ago(2),
                            reason="record is accurate")
    with pytest.raises(RuleViolation) as exc:
        admitted.deny_amendment(by=by, amendment_id=amendment_id, at=days_ago(1), reason="x")
    assert exc.value.rule == "amendment-decided"
    admitted.file_disagreement(by=by, amendment_id=amendment_id, statement="I disagree",
                               at=days_ago(1), reason="resident statement")
    assert admitted.state.amendments[amendment_id]["status"] == "denied"
    assert admitted.state.amendments[amendment_id]["disagreement"] == "I disagree"
    with pytest.raises(NotFound):
        admitted.request_amendment(by=by, requested_change="x", at=days_ago(1),
                                   reason="x", target_version=99)
