"""Infractions and graded sanctions: the rule class bounds the sanction; sanctions suspend
privileges and give them back when completed or rescinded, not when failed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from domain import events as ev
from domain.errors import InvalidValue, NotFound, RuleViolation
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]


def infraction(p: Participant, policy: ProgramPolicy, by: Provenance, at: datetime,
               code: str) -> str:
    return p.record_infraction(policy, by=by, code=code, observed_at=at,
                               description="synthetic incident", reason="staff report")


def test_record_an_infraction(admitted: Participant, policy: ProgramPolicy, by: Provenance,
                              days_ago: DaysAgo) -> None:
    admitted.collect_events()
    observed = days_ago(3)
    infraction_id = admitted.record_infraction(
        policy, by=by, code="threat", observed_at=observed, description="synthetic incident",
        reason="peer report", reporter_kind="peer", reporter_id="SYN-PEER-7",
        at=days_ago(2))
    (event,) = admitted.collect_events()
    assert isinstance(event, ev.InfractionRecorded)
    assert (event.code, event.rule_class) == ("threat", "major")
    assert event.effective_at == days_ago(2)
    recorded = admitted.state.infractions[infraction_id]
    assert recorded["rule_class"] == "major"
    assert recorded["observed_at"] == observed.isoformat()
    assert (recorded["reporter_kind"], recorded["reporter_id"]) == ("peer", "SYN-PEER-7")


def test_staff_reporter_defaults_to_the_actor(admitted: Participant, policy: ProgramPolicy,
                                              by: Provenance, days_ago: DaysAgo) -> None:
    infraction_id = infraction(admitted, policy, by, days_ago(3), "disrespect")
    recorded = admitted.state.infractions[infraction_id]
    assert (recorded["reporter_kind"], recorded["reporter_id"]) == ("staff", by.actor_id)


def test_infraction_with_an_unknown_code(admitted: Participant, policy: ProgramPolicy,
                                         by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        infraction(admitted, policy, by, days_ago(3), "jaywalking")
    assert exc.value.field == "code"
    assert admitted.state.infractions == {}


def test_infraction_with_an_unknown_reporter_kind(admitted: Participant,
                                                  policy: ProgramPolicy, by: Provenance,
                                                  days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.record_infraction(policy, by=by, code="threat", observed_at=days_ago(3),
                                   description="synthetic", reason="report",
                                   reporter_kind="visitor")
    assert exc.value.field == "reporter_kind"


def test_infraction_observed_in_the_future(admitted: Participant, policy: ProgramPolicy,
                                           by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.record_infraction(policy, by=by, code="threat", observed_at=days_ago(-1),
                                   description="synthetic", reason="report", at=days_ago(0))
    assert exc.value.field == "observed_at"


def test_sanction_within_the_grade(admitted: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo) -> None:
    infraction_id = infraction(admitted, policy, by, days_ago(3), "house-rule-hygiene")
    admitted.collect_events()
    due = days_ago(-5).date()
    sanction_id = admitted.impose_sanction(policy, by=by, sanction="haircut", at=days_ago(2),
                                           reason="graded response",
                                           infraction_id=infraction_id, due_on=due)
    (event,) = admitted.collect_events()
    assert isinstance(event, ev.SanctionImposed)
    assert (event.sanction, event.severity, event.override) == ("haircut", 3, False)
    assert event.suspends == []
    sanction = admitted.state.sanctions[sanction_id]
    assert sanction["status"] == "open"
    assert sanction["infraction_id"] == infraction_id
    assert sanction["due_on"] == due.isoformat()
    assert admitted.state.open_sanctions == [sanction]


@pytest.mark.parametrize(("code", "sanction"), [
    ("house-rule-hygiene", "ban"),         # house 1-3, ban is 4
    ("threat", "talk-to"),                 # major 3-5, talk-to is 1
    ("violence", "loss-of-privilege"),     # cardinal 5-6, loss-of-privilege is 4
])
def test_sanction_out_of_grade_is_refused(admitted: Participant, policy: ProgramPolicy,
                                          by: Provenance, days_ago: DaysAgo, code: str,
                                          sanction: str) -> None:
    infraction_id = infraction(admitted, policy, by, days_ago(3), code)
    with pytest.raises(RuleViolation) as exc:
        admitted.impose_sanction(policy, by=by, sanction=sanction, at=days_ago(2),
                                 reason="response", infraction_id=infraction_id)
    assert exc.value.rule == "sanction-out-of-grade"
    assert admitted.state.sanctions == {}


def test_sanction_out_of_grade_override_needs_a_supervisor(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        supervisor: Provenance, days_ago: DaysAgo) -> None:
    infraction_id = infraction(admitted, policy, by, days_ago(3), "violence")
    with pytest.raises(RuleViolation) as exc:
        admitted.impose_sanction(policy, by=by, sanction="talk-to", at=days_ago(2),
                                 reason="mitigating circumstances",
                                 infraction_id=infraction_id, override=True)
    assert exc.value.rule == "override-requires-supervisor"
    admitted.collect_events()
    sanction_id = admitted.impose_sanction(policy, by=supervisor, sanction="talk-to",
                                           at=days_ago(2), reason="mitigating circumstances",
                                           infraction_id=infraction_id, override=True)
    (event,) = admitted.collect_events()
    assert isinstance(event, ev.SanctionImposed)
    assert event.override is True
    assert event.actor_role == "supervisor"
    assert admitted.state.sanctions[sanction_id]["severity"] == 1


def test_sanction_without_an_infraction_is_not_graded(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    sanction_id = admitted.impose_sanction(policy, by=by, sanction="general-meeting",
                                           at=days_ago(2), reason="community decision")
    assert admitted.state.sanctions[sanction_id]["severity"] == 5


def test_sanction_unknown_or_misdated(admitted: Participant, policy: ProgramPolicy,
                                      by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.impose_sanction(policy, by=by, sanction="stocks", at=days_ago(2),
                                 reason="response")
    assert exc.value.field == "sanction"
    with pytest.raises(InvalidValue) as exc:
        admitted.impose_sanction(policy, by=by, sanction="haircut", at=days_ago(2),
                                 reason="response", due_on=days_ago(3).date())
    assert exc.value.field == "due_on"
    with pytest.raises(NotFound) as not_found:
        admitted.impose_sanction(policy, by=by, sanction="haircut", at=days_ago(2),
                                 reason="response", infraction_id="no-such-infraction")
    assert not_found.value.what == "infraction"


def test_sanction_suspends_the_active_privileges_it_names(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    # loss-of-privilege suspends phone-extended, visits-contact, tv-room, furlough:
    # of these the participant holds visits-contact and tv-room (tv-room already suspended).
    in_phase_2.suspend_privilege(policy, by=by, privilege="tv-room", at=days_ago(10),
                                 reason="earlier matter")
    infraction_id = infraction(in_phase_2, policy, by, days_ago(3), "threat")
    in_phase_2.collect_events()
    sanction_id = in_phase_2.impose_sanction(policy, by=by, sanction="loss-of-privilege",
                                             at=days_ago(2), reason="graded response",
                                             infraction_id=infraction_id)
    events = in_phase_2.collect_events()
    assert [type(e) for e in events] == [ev.SanctionImposed, ev.PrivilegeSuspended]
    imposed, suspended = events
    assert imposed.suspends == ["visits-contact"]
    assert (suspended.privilege, suspended.caused_by) == ("visits-contact", sanction_id)
    assert in_phase_2.state.privileges["visits-contact"]["status"] == "suspended"
    assert in_phase_2.state.privileges["visits-contact"]["suspended_by"] == sanction_id
    assert in_phase_2.state.privileges["tv-room"]["suspended_by"] is None
    assert in_phase_2.state.active_privileges == ["commissary", "recreation"]


@pytest.mark.parametrize("close", ["complete_sanction", "rescind_sanction"])
def test_completion_or_rescission_restores_the_privileges(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo, close: str) -> None:
    sanction_id = in_phase_2.impose_sanction(policy, by=by, sanction="ban", at=days_ago(5),
                                             reason="community decision")
    assert in_phase_2.state.active_privileges == ["commissary", "visits-contact"]
    in_phase_2.collect_events()
    getattr(in_phase_2, close)(policy, by=by, sanction_id=sanction_id, at=days_ago(1),
                               reason="done")
    events = in_phase_2.collect_events()
    closed_type = ev.SanctionCompleted if close == "complete_sanction" else ev.SanctionRescinded
    assert [type(e) for e in events] == [closed_type, ev.PrivilegeRestored,
                                        ev.PrivilegeRestored]
    assert [(e.privilege, e.caused_by) for e in events[1:]] == [
        ("recreation", sanction_id), ("tv-room", sanction_id)]
    assert in_phase_2.state.active_privileges == [
        "commissary", "recreation", "tv-room", "visits-contact"]
    assert in_phase_2.state.sanctions[sanction_id]["status"] == closed_type.status
    assert in_phase_2.state.sanctions[sanction_id]["closed_on"] == days_ago(1).date().isoformat()
    assert in_phase_2.state.open_sanctions == []


def test_completion_restores_only_what_that_sanction_suspended(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.suspend_privilege(policy, by=by, privilege="tv-room", at=days_ago(6),
                                 reason="separate matter")
    sanction_id = in_phase_2.impose_sanction(policy, by=by, sanction="ban", at=days_ago(5),
                                             reason="community decision")
    in_phase_2.complete_sanction(policy, by=by, sanction_id=sanction_id, at=days_ago(1),
                                 reason="done")
    assert in_phase_2.state.privileges["recreation"]["status"] == "active"
    assert in_phase_2.state.privileges["tv-room"]["status"] == "suspended"


def test_failure_does_not_restore_the_privileges(in_phase_2: Participant,
                                                 policy: ProgramPolicy, by: Provenance,
                                                 days_ago: DaysAgo) -> None:
    sanction_id = in_phase_2.impose_sanction(policy, by=by, sanction="ban", at=days_ago(5),
                                             reason="community decision")
    in_phase_2.collect_events()
    in_phase_2.fail_sanction(policy, by=by, sanction_id=sanction_id, at=days_ago(1),
                             reason="not carried out")
    assert [type(e) for e in in_phase_2.collect_events()] == [ev.SanctionFailed]
    assert in_phase_2.state.sanctions[sanction_id]["status"] == "failed"
    assert in_phase_2.state.privileges["recreation"]["status"] == "suspended"
    assert in_phase_2.state.privileges["tv-room"]["status"] == "suspended"


def test_completion_after_regression_does_not_restore_a_revoked_privilege(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    sanction_id = in_phase_2.impose_sanction(policy, by=by, sanction="ban", at=days_ago(5),
                                             reason="community decision")
    in_phase_2.regress(policy, by=by, to_stage="orientation", at=days_ago(4), reason="setback")
    in_phase_2.collect_events()
    in_phase_2.complete_sanction(policy, by=by, sanction_id=sanction_id, at=days_ago(1),
                                 reason="done")
    assert [type(e) for e in in_phase_2.collect_events()] == [ev.SanctionCompleted]
    assert in_phase_2.state.active_privileges == ["commissary"]


@pytest.mark.parametrize("first", ["complete_sanction", "fail_sanction", "rescind_sanction"])
def test_closing_a_closed_sanction_is_refused(admitted: Participant, policy: ProgramPolicy,
                                              by: Provenance, days_ago: DaysAgo,
                                              first: str) -> None:
    sanction_id = admitted.impose_sanction(policy, by=by, sanction="pull-up", at=days_ago(5),
                                           reason="response")
    getattr(admitted, first)(policy, by=by, sanction_id=sanction_id, at=days_ago(2),
                             reason="closed")
    for close in ("complete_sanction", "fail_sanction", "rescind_sanction"):
        with pytest.raises(RuleViolation) as exc:
            getattr(admitted, close)(policy, by=by, sanction_id=sanction_id, at=days_ago(1),
                                     reason="again")
        assert exc.value.rule == "sanction-not-open"


def test_closing_an_unknown_sanction(admitted: Participant, policy: ProgramPolicy,
                                     by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(NotFound) as exc:
        admitted.complete_sanction(policy, by=by, sanction_id="no-such-sanction",
                                   at=days_ago(1), reason="done")
    assert exc.value.what == "sanction"
    assert exc.value.ident == "no-such-sanction"


def test_sanction_decisions_need_a_reason(admitted: Participant, policy: ProgramPolicy,
                                          by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.impose_sanction(policy, by=by, sanction="pull-up", at=days_ago(5), reason=" ")
    assert exc.value.field == "reason"
    assert admitted.state.sanctions == {}
