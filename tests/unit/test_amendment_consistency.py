"""Corrections and voids keep the record as consistent as the first entries left it: derived
fields follow, consequences go with their cause, later entries are not orphaned, and an
amendment that would break a rule is refused with that rule and records nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from domain import events as ev
from domain.errors import InvalidValue, RuleViolation
from domain.participant import Participant, fold
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]
SPECIMEN = "SYN-SPEC-0077"


def version_of(p: Participant, kind: type[ev.ParticipantEvent], nth: int = -1) -> int:
    return [e.originator_version for e in p.history if type(e) is kind][nth]


def new_events(p: Participant) -> list[ev.ParticipantEvent]:
    events = p.collect_events()
    assert fold(p.history) == p.state  # the live state is what a refold shows
    return events  # type: ignore[return-value]


@contextmanager
def refused(p: Participant, rule: str) -> Iterator[None]:
    """The amendment raises RuleViolation(rule) and the record is left exactly as it was."""
    p.collect_events()
    state, length = fold(p.history), len(p.history)
    with pytest.raises(RuleViolation) as exc:
        yield
    assert exc.value.rule == rule, exc.value
    assert p.collect_events() == []
    assert (len(p.history), p.state) == (length, state)


@contextmanager
def invalid(p: Participant, field: str) -> Iterator[None]:
    p.collect_events()
    length = len(p.history)
    with pytest.raises(InvalidValue) as exc:
        yield
    assert exc.value.field == field, exc.value
    assert p.collect_events() == [] and len(p.history) == length


def correct(p: Participant, policy: ProgramPolicy, by: Provenance, version: int,
            **changes: Any) -> list[ev.ParticipantEvent]:
    p.collect_events()
    p.correct_entry(policy, by=by, version=version, changes=changes, at=by.now,
                    reason="synthetic correction")
    return new_events(p)


def void(p: Participant, policy: ProgramPolicy | None, by: Provenance,
         version: int) -> list[ev.ParticipantEvent]:
    p.collect_events()
    p.void_entry(policy, by=by, version=version, at=by.now, reason="entered in error")
    return new_events(p)


# --- drug tests ------------------------------------------------------------------------

@pytest.fixture
def positive(admitted: Participant, policy: ProgramPolicy, by: Provenance,
             days_ago: DaysAgo) -> Participant:
    admitted.collect_specimen(policy, by=by, specimen_id=SPECIMEN, method="urine",
                              test_reason="random", collected_at=days_ago(6))
    admitted.record_result(policy, by=by, specimen_id=SPECIMEN, result="positive",
                           substances=[{"code": "cocaine", "level_ng_ml": 300},
                                       {"code": "thc", "level_ng_ml": 80}],
                           resulted_at=days_ago(5), lab="SYN-LAB")
    return admitted


def test_positive_corrected_to_negative_drops_its_substances(
        positive: Participant, policy: ProgramPolicy, by: Provenance) -> None:
    # A counselor correcting a mis-keyed positive expects no drug named on a negative: the
    # substances are cleared and the correction records that it cleared them.
    (correction,) = correct(positive, policy, by, version_of(positive, ev.TestResulted),
                            result="negative")
    assert isinstance(correction, ev.EntryCorrected)
    assert correction.changes == {"result": "negative", "substances": []}
    specimen = positive.state.specimens[SPECIMEN]
    assert (specimen["result"], specimen["validity"], specimen["substances"]) == (
        "negative", "valid", [])


def test_a_negative_naming_substances_is_refused(
        positive: Participant, policy: ProgramPolicy, by: Provenance) -> None:
    version = version_of(positive, ev.TestResulted)
    with refused(positive, "result-substances-inconsistent"):
        positive.correct_entry(policy, by=by, version=version, at=by.now, reason="x",
                               changes={"result": "negative",
                                        "substances": [{"code": "thc", "level_ng_ml": 80}]})


def test_a_negative_corrected_to_positive_must_name_a_substance(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.collect_specimen(policy, by=by, specimen_id=SPECIMEN, method="urine",
                              test_reason="random", collected_at=days_ago(6))
    admitted.record_result(policy, by=by, specimen_id=SPECIMEN, result="negative",
                           substances=[], resulted_at=days_ago(5))
    version = version_of(admitted, ev.TestResulted)
    with refused(admitted, "result-substances-inconsistent"):
        admitted.correct_entry(policy, by=by, version=version, changes={"result": "positive"},
                               at=by.now, reason="x")
    correct(admitted, policy, by, version, result="positive",
            substances=[{"code": "fentanyl", "level_ng_ml": 4}])
    assert admitted.state.specimens[SPECIMEN]["substances"][0]["code"] == "fentanyl"


def test_each_positive_substance_is_at_or_above_its_cutoff(
        positive: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    # cocaine's cut-off is 150 ng/mL: at 90 the specimen is negative for it.
    with refused(positive, "result-substances-inconsistent"):
        positive.correct_entry(policy, by=by, version=version_of(positive, ev.TestResulted),
                               changes={"substances": [{"code": "cocaine", "level_ng_ml": 90}]},
                               at=by.now, reason="x")
    positive.collect_specimen(policy, by=by, specimen_id="SYN-SPEC-0078", method="urine",
                              test_reason="random", collected_at=days_ago(3))
    with invalid(positive, "substances[0].level_ng_ml"):
        positive.record_result(policy, by=by, specimen_id="SYN-SPEC-0078", result="positive",
                               substances=[{"code": "cocaine", "level_ng_ml": 90}],
                               resulted_at=days_ago(2))


def test_a_corrected_result_takes_the_validity_of_its_result(
        positive: Participant, policy: ProgramPolicy, by: Provenance) -> None:
    version = version_of(positive, ev.TestResulted)
    correct(positive, policy, by, version, result="dilute")
    assert positive.state.specimens[SPECIMEN]["validity"] == "dilute"
    correct(positive, policy, by, version, result="invalid", validity="substituted")
    assert positive.state.specimens[SPECIMEN]["validity"] == "substituted"


@pytest.mark.parametrize(("follow_up", "to_result"), [
    ("confirm", "negative"), ("review", "dilute"), ("dispute", "negative")])
def test_a_result_is_not_corrected_from_under_its_follow_ups(
        positive: Participant, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo,
        follow_up: str, to_result: str) -> None:
    if follow_up == "confirm":
        positive.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=True,
                                method="GC-MS", substances=[{"code": "cocaine"}],
                                at=days_ago(3))
    elif follow_up == "review":
        positive.review_result(by=by, specimen_id=SPECIMEN, outcome="not-explained",
                               at=days_ago(3), reason="no prescription")
    else:
        positive.dispute_result(by=by, specimen_id=SPECIMEN, grounds="chain of custody",
                                at=days_ago(3), reason="resident disputes")
    version = version_of(positive, ev.TestResulted)
    with refused(positive, "later-entries-depend"):
        positive.correct_entry(policy, by=by, version=version, changes={"result": to_result},
                               at=by.now, reason="x")
    with refused(positive, "later-entries-depend"):
        positive.void_entry(policy, by=by, version=version, at=by.now, reason="x")
    with refused(positive, "later-entries-depend"):
        positive.void_entry(policy, by=by, version=version_of(positive, ev.SpecimenCollected),
                            at=by.now, reason="x")


def test_result_and_collection_times_stay_in_order(
        positive: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    with invalid(positive, "changes.resulted_at"):
        positive.correct_entry(policy, by=by, version=version_of(positive, ev.TestResulted),
                               changes={"resulted_at": days_ago(7).isoformat()}, at=by.now,
                               reason="x")
    with invalid(positive, "changes.collected_at"):
        positive.correct_entry(policy, by=by,
                               version=version_of(positive, ev.SpecimenCollected),
                               changes={"collected_at": days_ago(4).isoformat()}, at=by.now,
                               reason="x")
    # A result dated by its own moment moves with it.
    (correction,) = correct(positive, policy, by, version_of(positive, ev.TestResulted),
                            resulted_at=days_ago(5.5).isoformat())
    assert isinstance(correction, ev.EntryCorrected)
    assert correction.changes["effective_at"] == days_ago(5.5)


def test_a_confirmed_positive_names_its_substances(
        positive: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    positive.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=False,
                            method="GC-MS", substances=[], at=days_ago(3))
    with refused(positive, "result-substances-inconsistent"):
        positive.correct_entry(policy, by=by, version=version_of(positive, ev.ResultConfirmed),
                               changes={"confirmed": True}, at=by.now, reason="x")


# --- discharge -------------------------------------------------------------------------

@pytest.fixture
def completed(in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
              days_ago: DaysAgo) -> Participant:
    in_phase_2.discharge(policy, by=by, discharge_type="successful-completion",
                         at=days_ago(10), reason="program completed")
    return in_phase_2


def test_correcting_the_discharge_type_rederives_category_success_and_reinstatement(
        completed: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    (correction,) = correct(completed, policy, by, version_of(completed, ev.Discharged),
                            discharge_type="therapeutic-termination")
    reinstatement = days_ago(10).date() + timedelta(days=90)
    assert isinstance(correction, ev.EntryCorrected)
    assert correction.changes == {"discharge_type": "therapeutic-termination",
                                  "category": "therapeutic", "successful": False,
                                  "reinstatement_eligible_on": reinstatement}
    assert completed.state.discharge is not None
    assert {k: completed.state.discharge[k] for k in (
        "type", "category", "successful", "reinstatement_eligible_on")} == {
        "type": "therapeutic-termination", "category": "therapeutic", "successful": False,
        "reinstatement_eligible_on": reinstatement.isoformat()}
    # Back to a type with no reinstatement: the date goes.
    correct(completed, policy, by, version_of(completed, ev.Discharged),
            discharge_type="absconded")
    assert completed.state.discharge["reinstatement_eligible_on"] is None
    assert completed.state.discharge["category"] == "absconded"


def test_a_discharge_date_correction_moves_the_reinstatement_date(
        completed: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    version = version_of(completed, ev.Discharged)
    correct(completed, policy, by, version, discharge_type="voluntary-withdrawal")
    correct(completed, policy, by, version, effective_at=days_ago(8).isoformat())
    assert completed.state.discharge is not None
    assert completed.state.discharge["reinstatement_eligible_on"] == (
        days_ago(8).date() + timedelta(days=60)).isoformat()


@pytest.mark.parametrize("field", ["category", "successful"])
def test_derived_discharge_fields_are_not_corrected_directly(
        completed: Participant, policy: ProgramPolicy, by: Provenance, field: str) -> None:
    with invalid(completed, f"changes.{field}"):
        completed.correct_entry(policy, by=by, version=version_of(completed, ev.Discharged),
                                changes={field: "therapeutic" if field == "category" else False},
                                at=by.now, reason="x")


def test_a_reinstatement_date_only_where_the_type_has_one(
        completed: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    version = version_of(completed, ev.Discharged)
    with refused(completed, "reinstatement-not-applicable"):
        completed.correct_entry(policy, by=by, version=version, at=by.now, reason="x",
                                changes={"reinstatement_eligible_on":
                                         days_ago(-30).date().isoformat()})
    correct(completed, policy, by, version, discharge_type="therapeutic-termination")
    correct(completed, policy, by, version,
            reinstatement_eligible_on=days_ago(-30).date().isoformat())
    with invalid(completed, "changes.reinstatement_eligible_on"):
        completed.correct_entry(policy, by=by, version=version, at=by.now, reason="x",
                                changes={"reinstatement_eligible_on":
                                         days_ago(20).date().isoformat()})


def test_a_discharge_is_not_dated_before_the_activity_it_ends(
        completed: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    # in_phase_2 was granted privileges 75 days ago.
    with refused(completed, "effective-date-out-of-order"):
        completed.correct_entry(policy, by=by, version=version_of(completed, ev.Discharged),
                                changes={"effective_at": days_ago(76).isoformat()},
                                at=by.now, reason="x")
    with refused(completed, "effective-date-out-of-order"):
        completed.correct_entry(policy, by=by,
                                version=version_of(completed, ev.PrivilegeGranted),
                                changes={"effective_at": days_ago(9).isoformat()},
                                at=by.now, reason="x")


def test_voiding_a_discharge_gives_back_what_it_revoked(
        completed: Participant, policy: ProgramPolicy, by: Provenance) -> None:
    revoked = [e.originator_version for e in completed.history
               if isinstance(e, ev.PrivilegeRevoked)]
    discharged = version_of(completed, ev.Discharged)
    events = void(completed, policy, by, discharged)
    assert [(type(e), e.supersedes_version) for e in events  # type: ignore[attr-defined]
            ] == [(ev.EntryVoided, v) for v in [discharged, *revoked]]
    assert completed.state.status == "active"
    assert completed.state.active_privileges == [
        "commissary", "recreation", "tv-room", "visits-contact"]


# --- stages ----------------------------------------------------------------------------

def test_voiding_a_promotion_revokes_what_only_the_later_stage_allowed(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance) -> None:
    # phase-1 allows commissary and recreation, not tv-room or visits-contact.
    promotion = version_of(in_phase_2, ev.StagePromoted)
    events = void(in_phase_2, policy, by, promotion)
    voided, *revoked = events
    assert isinstance(voided, ev.EntryVoided) and voided.supersedes_version == promotion
    assert [(type(e), e.privilege, e.caused_by) for e in revoked  # type: ignore[attr-defined]
            ] == [(ev.PrivilegeRevoked, p, f"entry-voided:v{voided.originator_version}")
                  for p in ("tv-room", "visits-contact")]
    assert in_phase_2.state.stage == "phase-1"
    assert in_phase_2.state.active_privileges == ["commissary", "recreation"]
    # The revocations belong to the void: not amendable on their own.
    with refused(in_phase_2, "entry-is-consequence"):
        in_phase_2.void_entry(policy, by=by, version=revoked[0].originator_version,
                              at=by.now, reason="x")


def test_a_stage_decision_is_not_voided_under_a_later_one(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance) -> None:
    first = version_of(in_phase_2, ev.StagePromoted, 0)
    with refused(in_phase_2, "later-entries-depend"):
        in_phase_2.void_entry(policy, by=by, version=first, at=by.now, reason="x")
    in_phase_2.hold_stage(by=by, at=by.now, reason="pending review")
    with refused(in_phase_2, "later-entries-depend"):
        in_phase_2.void_entry(policy, by=by, version=version_of(in_phase_2, ev.StagePromoted),
                              at=by.now, reason="x")


def test_without_the_policy_a_stage_void_that_may_cost_privileges_is_refused(
        in_phase_2: Participant, by: Provenance) -> None:
    with refused(in_phase_2, "void-needs-program-policy"):
        in_phase_2.void_entry(by=by, version=version_of(in_phase_2, ev.StagePromoted),
                              at=by.now, reason="x")


def test_a_corrected_promotion_date_keeps_the_minimum_days(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        supervisor: Provenance, admitted_on: date) -> None:
    def on(days_after_admission: int) -> str:
        return datetime.combine(admitted_on + timedelta(days=days_after_admission),
                                datetime.min.time(), tzinfo=by.now.tzinfo).isoformat()

    admitted.promote(policy, by=by, to_stage="phase-1", at=datetime.fromisoformat(on(40)),
                     reason="criteria met")
    version = version_of(admitted, ev.StagePromoted)
    with refused(admitted, "promotion-before-minimum-days"):
        admitted.correct_entry(policy, by=by, version=version,
                               changes={"effective_at": on(29)}, at=by.now, reason="x")
    (correction,) = correct(admitted, policy, by, version, effective_at=on(30))
    assert isinstance(correction, ev.EntryCorrected)
    assert correction.changes["days_in_stage"] == 30
    # An override recorded with the promotion still covers an earlier date.
    admitted.promote(policy, by=supervisor, to_stage="phase-2",
                     at=datetime.fromisoformat(on(60)), reason="exceptional", override=True)
    correct(admitted, policy, by, version_of(admitted, ev.StagePromoted), effective_at=on(45))
    assert admitted.state.stage_since == admitted_on + timedelta(days=45)
    # But not before the stage it leaves began.
    with refused(admitted, "effective-before-current-stage"):
        admitted.correct_entry(policy, by=by, version=version_of(admitted, ev.StagePromoted),
                               changes={"effective_at": on(20)}, at=by.now, reason="x")


def test_voiding_a_regression_voids_the_revocations_it_caused(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.regress(policy, by=by, to_stage="orientation", at=days_ago(3),
                       reason="relapse")
    regression = version_of(in_phase_2, ev.StageRegressed)
    caused = [e.originator_version for e in in_phase_2.history
              if isinstance(e, ev.PrivilegeRevoked)]
    events = void(in_phase_2, policy, by, regression)
    assert [e.supersedes_version for e in events  # type: ignore[attr-defined]
            ] == [regression, *caused]
    assert in_phase_2.state.stage == "phase-2"
    assert in_phase_2.state.active_privileges == [
        "commissary", "recreation", "tv-room", "visits-contact"]


# --- privileges ------------------------------------------------------------------------

def test_a_grant_is_not_voided_from_under_later_decisions_on_it(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.suspend_privilege(policy, by=by, privilege="tv-room", at=days_ago(5),
                                 reason="misuse")
    grant = [e.originator_version for e in in_phase_2.history
             if isinstance(e, ev.PrivilegeGranted) and e.privilege == "tv-room"][0]
    with refused(in_phase_2, "later-entries-depend"):
        in_phase_2.void_entry(policy, by=by, version=grant, at=by.now, reason="x")
    void(in_phase_2, policy, by, version_of(in_phase_2, ev.PrivilegeSuspended))
    void(in_phase_2, policy, by, grant)
    assert "tv-room" not in in_phase_2.state.privileges


def test_consequences_are_amended_through_their_cause(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.regress(policy, by=by, to_stage="phase-1", at=days_ago(3), reason="relapse")
    revocation = version_of(in_phase_2, ev.PrivilegeRevoked)
    with refused(in_phase_2, "entry-is-consequence"):
        in_phase_2.void_entry(policy, by=by, version=revocation, at=by.now, reason="x")
    with refused(in_phase_2, "entry-is-consequence"):
        in_phase_2.correct_entry(policy, by=by, version=revocation, at=by.now, reason="x",
                                 changes={"effective_at": days_ago(2).isoformat()})


def test_a_void_may_not_give_back_a_privilege_the_stage_does_not_allow(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    # tv-room revoked by hand, then a regression to phase-1 (which does not allow it):
    # voiding the revocation would hand tv-room back in phase-1.
    in_phase_2.revoke_privilege(policy, by=by, privilege="tv-room", at=days_ago(5),
                                reason="misuse")
    revocation = version_of(in_phase_2, ev.PrivilegeRevoked)
    in_phase_2.regress(policy, by=by, to_stage="phase-1", at=days_ago(3), reason="relapse")
    with refused(in_phase_2, "privilege-not-allowed-in-stage"):
        in_phase_2.void_entry(policy, by=by, version=revocation, at=by.now, reason="x")


def test_a_void_may_not_give_a_discharged_record_a_privilege(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.revoke_privilege(policy, by=by, privilege="tv-room", at=days_ago(5),
                                reason="misuse")
    revocation = version_of(in_phase_2, ev.PrivilegeRevoked)
    in_phase_2.discharge(policy, by=by, discharge_type="absconded", at=days_ago(1),
                         reason="absconded")
    with refused(in_phase_2, "participant-discharged"):
        in_phase_2.void_entry(policy, by=by, version=revocation, at=by.now, reason="x")


def test_a_corrected_window_stays_after_its_effective_date(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned", until=days_ago(-10).date())
    version = version_of(admitted, ev.PrivilegeGranted)
    with invalid(admitted, "changes.until"):
        admitted.correct_entry(policy, by=by, version=version, at=by.now, reason="x",
                               changes={"until": days_ago(11).date().isoformat()})
    with invalid(admitted, "changes.until"):  # moving the grant past its window's end
        admitted.correct_entry(policy, by=by, version=version, at=by.now, reason="x",
                               changes={"until": days_ago(3).date().isoformat(),
                                        "effective_at": days_ago(2).isoformat()})
    admitted.impose_sanction(policy, by=by, sanction="pull-up", at=days_ago(4),
                             reason="graded", due_on=days_ago(2).date())
    with invalid(admitted, "changes.due_on"):
        admitted.correct_entry(policy, by=by, version=version_of(admitted, ev.SanctionImposed),
                               changes={"due_on": days_ago(5).date().isoformat()},
                               at=by.now, reason="x")


# --- sanctions and infractions ---------------------------------------------------------

def test_voiding_an_open_sanction_voids_the_suspensions_it_caused(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    sanction_id = in_phase_2.impose_sanction(policy, by=by, sanction="ban", at=days_ago(5),
                                             reason="community decision")
    imposed = version_of(in_phase_2, ev.SanctionImposed)
    events = void(in_phase_2, policy, by, imposed)
    assert [e.supersedes_version for e in events  # type: ignore[attr-defined]
            ] == [imposed, imposed + 1, imposed + 2]
    assert sanction_id not in in_phase_2.state.sanctions
    assert in_phase_2.state.active_privileges == [
        "commissary", "recreation", "tv-room", "visits-contact"]


def test_voiding_a_completion_suspends_again_what_it_restored(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    sanction_id = in_phase_2.impose_sanction(policy, by=by, sanction="ban", at=days_ago(5),
                                             reason="community decision")
    in_phase_2.complete_sanction(policy, by=by, sanction_id=sanction_id, at=days_ago(2),
                                 reason="done")
    with refused(in_phase_2, "later-entries-depend"):
        in_phase_2.void_entry(policy, by=by, version=version_of(in_phase_2, ev.SanctionImposed),
                              at=by.now, reason="x")
    events = void(in_phase_2, policy, by, version_of(in_phase_2, ev.SanctionCompleted))
    assert len(events) == 3  # the completion and its two restorations
    assert in_phase_2.state.sanctions[sanction_id]["status"] == "open"
    assert in_phase_2.state.active_privileges == ["commissary", "visits-contact"]


def test_an_infraction_code_correction_rederives_its_rule_class(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.record_infraction(policy, by=by, code="disrespect", observed_at=days_ago(3),
                               description="synthetic", reason="observed")
    version = version_of(admitted, ev.InfractionRecorded)
    (correction,) = correct(admitted, policy, by, version, code="threat")
    assert isinstance(correction, ev.EntryCorrected)
    assert correction.changes == {"code": "threat", "rule_class": "major"}
    (infraction,) = admitted.state.infractions.values()
    assert (infraction["code"], infraction["rule_class"]) == ("threat", "major")
    with invalid(admitted, "changes.rule_class"):
        admitted.correct_entry(policy, by=by, version=version, changes={"rule_class": "house"},
                               at=by.now, reason="x")


def test_an_infraction_is_not_corrected_out_from_under_its_sanction(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    # A major infraction draws severity 3-5; a house rule 1-3. The behavioural contract
    # (severity 4) imposed for it would be out of grade for a house-rule infraction.
    infraction_id = admitted.record_infraction(policy, by=by, code="threat",
                                               observed_at=days_ago(3),
                                               description="synthetic", reason="observed")
    admitted.impose_sanction(policy, by=by, sanction="behavioural-contract", at=days_ago(2),
                             reason="graded", infraction_id=infraction_id)
    version = version_of(admitted, ev.InfractionRecorded)
    with refused(admitted, "sanction-out-of-grade"):
        admitted.correct_entry(policy, by=by, version=version, changes={"code": "disrespect"},
                               at=by.now, reason="x")
    with refused(admitted, "later-entries-depend"):
        admitted.void_entry(policy, by=by, version=version, at=by.now, reason="x")
    correct(admitted, policy, by, version, code="contraband-minor")  # still major


# --- consent, admission and other references --------------------------------------------

def test_a_consent_expiry_is_not_corrected_to_before_a_disclosure_under_it(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    consent_id = admitted.give_consent(by=by, recipient="SYN-PAROLE", purpose="supervision",
                                       categories=["discharge"], at=days_ago(20),
                                       expires_on=days_ago(-100).date())
    admitted.trigger_event(ev.DisclosureMade, **by.event_fields("", days_ago(5)),
                           disclosure_id="SYN-DISC-1", recipient="SYN-PAROLE",
                           purpose="supervision", consent_id=consent_id,
                           categories=["discharge"], redisclosure_notice="synthetic")
    version = version_of(admitted, ev.ConsentGiven)
    with refused(admitted, "disclosure-outside-consent"):
        admitted.correct_entry(policy, by=by, version=version, at=by.now, reason="x",
                               changes={"expires_on": days_ago(10).date().isoformat()})
    with invalid(admitted, "changes.expires_on"):
        admitted.correct_entry(policy, by=by, version=version, at=by.now, reason="x",
                               changes={"expires_on": None})
    with refused(admitted, "later-entries-depend"):
        admitted.void_entry(policy, by=by, version=version, at=by.now, reason="x")
    correct(admitted, policy, by, version, expires_on=days_ago(5).date().isoformat())


@pytest.mark.parametrize(("changes", "field"), [
    ({"date_of_birth": "2100-01-01"}, "changes.date_of_birth"),
    ({"expected_release_on": "2001-01-01"}, "changes.expected_release_on"),
    ({"external_ids": {"DOC": "SYN-1"}}, "changes.external_ids.DOC"),
    ({"external_ids": {"DOC": {"value": " "}}}, "changes.external_ids.DOC"),
    ({"external_ids": {"SID": {"value": "SYN-2"}}}, "changes.external_ids.DOC"),
])
def test_admission_corrections_keep_the_admission_rules(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        changes: dict[str, Any], field: str) -> None:
    with invalid(admitted, field):
        admitted.correct_entry(policy, by=by, version=1, changes=changes, at=by.now,
                               reason="x")
    correct(admitted, policy, by, 1, external_ids={
        "DOC": {"value": "SYN-000124", "issuer": "SYN-DOC"},
        "SID": {"value": "SYN-9", "issuer": None}})  # as the API stores an id with no issuer
    assert admitted.state.external_ids["DOC"]["value"] == "SYN-000124"
    correct(admitted, policy, by, 1, family_name="Resident 3")  # the ids stay acceptable


def test_entries_referred_to_by_later_ones_are_voided_last(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    job_id = admitted.assign_job_function(by=by, function="kitchen", at=days_ago(9),
                                          reason="assigned")
    admitted.end_job_function(by=by, job_id=job_id, at=days_ago(8), reason="ended")
    amendment_id = admitted.request_amendment(by=by, requested_change="spelling",
                                              at=days_ago(7), reason="resident request")
    admitted.deny_amendment(by=by, amendment_id=amendment_id, at=days_ago(6),
                            reason="accurate")
    for kind in (ev.JobFunctionAssigned, ev.AmendmentRequested):
        with refused(admitted, "later-entries-depend"):
            admitted.void_entry(policy, by=by, version=version_of(admitted, kind), at=by.now,
                                reason="x")
    for kind in (ev.JobFunctionEnded, ev.JobFunctionAssigned, ev.AmendmentDenied,
                 ev.AmendmentRequested):
        void(admitted, policy, by, version_of(admitted, kind))
    assert admitted.state.job_functions == {} and admitted.state.amendments == {}
