"""Stage rules: promotion to the next stage only, after its minimum days; overrides need a
supervisor; regression goes lower and revokes what the new stage does not allow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from domain import events as ev
from domain.errors import InvalidValue, RuleViolation
from domain.participant import Participant, fold
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]


def test_admission_starts_in_the_first_stage(admitted: Participant, admitted_on: date) -> None:
    assert admitted.state.stage == "orientation"
    assert admitted.state.stage_since == admitted_on
    assert admitted.state.status == "active"
    assert admitted.state.stage_history == [
        {"stage": "orientation", "direction": "admission", "since": admitted_on.isoformat()}]


def test_promotion_to_the_next_stage(admitted: Participant, policy: ProgramPolicy,
                                     by: Provenance, days_ago: DaysAgo,
                                     admitted_on: date) -> None:
    admitted.collect_events()
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="criteria met",
                     review={"criteria_met": True})
    (event,) = admitted.collect_events()
    assert isinstance(event, ev.StagePromoted)
    assert (event.from_stage, event.to_stage) == ("orientation", "phase-1")
    assert event.override is False
    assert event.days_in_stage == (days_ago(100).date() - admitted_on).days
    assert event.review == {"criteria_met": True}
    assert event.actor_role == "counselor"
    assert admitted.state.stage == "phase-1"
    assert admitted.state.stage_since == days_ago(100).date()
    assert admitted.state.stage_history[-1]["direction"] == "promote"


@pytest.mark.parametrize("to_stage", ["phase-2", "re-entry", "orientation"])
def test_promotion_only_to_the_next_stage(admitted: Participant, policy: ProgramPolicy,
                                          by: Provenance, days_ago: DaysAgo,
                                          to_stage: str) -> None:
    with pytest.raises(RuleViolation) as exc:
        admitted.promote(policy, by=by, to_stage=to_stage, at=days_ago(100), reason="jump")
    assert exc.value.rule == "promotion-not-next-stage"
    assert admitted.state.stage == "orientation"


def test_no_promotion_beyond_the_last_stage(in_phase_2: Participant, policy: ProgramPolicy,
                                            supervisor: Provenance, days_ago: DaysAgo) -> None:
    in_phase_2.promote(policy, by=supervisor, to_stage="re-entry", at=days_ago(1),
                       reason="criteria met", override=True)
    with pytest.raises(RuleViolation) as exc:
        in_phase_2.promote(policy, by=supervisor, to_stage="orientation", at=days_ago(0),
                           reason="beyond", override=True)
    assert exc.value.rule == "no-next-stage"


def test_promotion_before_the_minimum_days_is_refused(
        admitted: Participant, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo,
        admitted_on: date) -> None:
    # Orientation needs 30 days: day 29 is one short, day 30 is enough.
    day_29 = datetime.combine(admitted_on + timedelta(days=29), datetime.min.time(),
                              tzinfo=days_ago(0).tzinfo)
    with pytest.raises(RuleViolation) as exc:
        admitted.promote(policy, by=by, to_stage="phase-1", at=day_29, reason="early")
    assert exc.value.rule == "promotion-before-minimum-days"
    assert admitted.state.stage == "orientation"
    admitted.promote(policy, by=by, to_stage="phase-1", at=day_29 + timedelta(days=1),
                     reason="criteria met")
    assert admitted.state.stage == "phase-1"


def test_override_by_a_counselor_is_refused(admitted: Participant, policy: ProgramPolicy,
                                            by: Provenance, days_ago: DaysAgo) -> None:
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="criteria met")
    admitted.collect_events()
    with pytest.raises(RuleViolation) as exc:
        admitted.promote(policy, by=by, to_stage="phase-2", at=days_ago(40), reason="early",
                         override=True)
    assert exc.value.rule == "override-requires-supervisor"
    assert admitted.collect_events() == []
    assert admitted.state.stage == "phase-1"


def test_override_by_a_supervisor_is_accepted_and_marked(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        supervisor: Provenance, days_ago: DaysAgo) -> None:
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="criteria met")
    admitted.collect_events()
    admitted.promote(policy, by=supervisor, to_stage="phase-2", at=days_ago(40),
                     reason="exceptional progress", override=True)
    (event,) = admitted.collect_events()
    assert isinstance(event, ev.StagePromoted)
    assert event.override is True
    assert event.days_in_stage == 60  # of the 90 that phase-1 needs
    assert event.actor_role == "supervisor"
    assert event.reason == "exceptional progress"
    assert admitted.state.stage == "phase-2"


def test_an_unneeded_override_is_not_recorded_as_one(
        admitted: Participant, policy: ProgramPolicy, supervisor: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.collect_events()
    admitted.promote(policy, by=supervisor, to_stage="phase-1", at=days_ago(100),
                     reason="criteria met", override=True)
    (event,) = admitted.collect_events()
    assert event.override is False


def test_promotion_needs_a_reason(admitted: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="   ")
    assert exc.value.field == "reason"
    assert admitted.state.stage == "orientation"


def test_regression_must_go_lower(in_phase_2: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo) -> None:
    for to_stage in ("phase-2", "re-entry"):
        with pytest.raises(RuleViolation) as exc:
            in_phase_2.regress(policy, by=by, to_stage=to_stage, at=days_ago(1),
                               reason="setback")
        assert exc.value.rule == "regression-not-lower"
    assert in_phase_2.state.stage == "phase-2"


def test_regression_revokes_disallowed_privileges_in_the_same_batch(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.suspend_privilege(policy, by=by, privilege="tv-room", at=days_ago(5),
                                 reason="sanction pending")
    in_phase_2.collect_events()

    in_phase_2.regress(policy, by=by, to_stage="orientation", at=days_ago(1),
                       reason="relapse")

    events = in_phase_2.collect_events()
    assert [type(e) for e in events] == [ev.StageRegressed, ev.PrivilegeRevoked,
                                        ev.PrivilegeRevoked, ev.PrivilegeRevoked]
    regressed, *revoked = events
    assert (regressed.from_stage, regressed.to_stage) == ("phase-2", "orientation")
    # Suspended privileges go too; commissary is allowed in orientation and stays.
    assert [e.privilege for e in revoked] == ["recreation", "tv-room", "visits-contact"]
    assert {e.caused_by for e in revoked} == {
        f"stage-regression:v{regressed.originator_version}"}
    assert [e.originator_version for e in events] == list(
        range(regressed.originator_version, regressed.originator_version + 4))
    assert in_phase_2.state.stage == "orientation"
    assert in_phase_2.state.stage_since == days_ago(1).date()
    assert set(in_phase_2.state.privileges) == {"commissary"}
    assert in_phase_2.state.stage_history[-1]["direction"] == "regress"


def test_regression_keeping_every_privilege_revokes_nothing(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    in_phase_2.revoke_privilege(policy, by=by, privilege="visits-contact", at=days_ago(3),
                                reason="visits moved")
    in_phase_2.revoke_privilege(policy, by=by, privilege="tv-room", at=days_ago(3),
                                reason="room closed")
    in_phase_2.collect_events()
    in_phase_2.regress(policy, by=by, to_stage="phase-1", at=days_ago(1), reason="setback")
    assert [type(e) for e in in_phase_2.collect_events()] == [ev.StageRegressed]
    assert set(in_phase_2.state.privileges) == {"commissary", "recreation"}


def test_repeating_a_stage_resets_stage_since(in_phase_2: Participant, policy: ProgramPolicy,
                                              by: Provenance, days_ago: DaysAgo) -> None:
    assert in_phase_2.state.stage_since == days_ago(80).date()
    in_phase_2.collect_events()
    in_phase_2.repeat_stage(policy, by=by, at=days_ago(2), reason="repeat the phase")
    (event,) = in_phase_2.collect_events()
    assert isinstance(event, ev.StageRepeated)
    assert event.from_stage == event.to_stage == "phase-2"
    assert in_phase_2.state.stage == "phase-2"
    assert in_phase_2.state.stage_since == days_ago(2).date()
    assert in_phase_2.state.stage_history[-1] == {
        "stage": "phase-2", "direction": "repeat", "since": days_ago(2).date().isoformat()}
    # The minimum days now count from the repeat: promotion is early again.
    with pytest.raises(RuleViolation) as exc:
        in_phase_2.promote(policy, by=by, to_stage="re-entry", at=days_ago(0), reason="done")
    assert exc.value.rule == "promotion-before-minimum-days"


def test_stage_event_before_the_current_stage_began_is_refused(
        in_phase_2: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:
        in_phase_2.repeat_stage(policy, by=by, at=days_ago(81), reason="back-dated")
    assert exc.value.rule == "effective-before-current-stage"
    with pytest.raises(RuleViolation) as exc:
        in_phase_2.regress(policy, by=by, to_stage="phase-1", at=days_ago(81),
                           reason="back-dated")
    assert exc.value.rule == "effective-before-current-stage"


def test_a_hold_blocks_promotion_until_its_date(admitted: Participant, policy: ProgramPolicy,
                                               by: Provenance, supervisor: Provenance,
                                               days_ago: DaysAgo) -> None:
    until = days_ago(30).date()
    admitted.hold_stage(by=by, at=days_ago(60), reason="treatment plan review", until=until)
    assert admitted.state.stage_held_until == until

    with pytest.raises(RuleViolation) as exc:
        admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(31), reason="ready")
    assert exc.value.rule == "stage-on-hold"

    # A supervisor may override the hold; here we check the plain rule: on the date it ends.
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(30), reason="ready")
    assert admitted.state.stage == "phase-1"
    assert admitted.state.stage_held_until is None


def test_a_supervisor_may_override_a_hold(admitted: Participant, policy: ProgramPolicy,
                                          supervisor: Provenance, days_ago: DaysAgo) -> None:
    admitted.hold_stage(by=supervisor, at=days_ago(60), reason="review",
                        until=days_ago(-30).date())
    admitted.collect_events()
    admitted.promote(policy, by=supervisor, to_stage="phase-1", at=days_ago(1),
                     reason="review done early", override=True)
    (event,) = admitted.collect_events()
    assert event.override is True


def test_a_hold_must_end_after_it_starts(admitted: Participant, by: Provenance,
                                         days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.hold_stage(by=by, at=days_ago(10), reason="review",
                            until=days_ago(10).date())
    assert exc.value.field == "until"


def test_an_open_ended_hold_blocks_promotion(admitted: Participant, policy: ProgramPolicy,
                                             by: Provenance, days_ago: DaysAgo) -> None:
    admitted.hold_stage(by=by, at=days_ago(60), reason="pending review")
    with pytest.raises(RuleViolation) as exc:
        admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(1), reason="ready")
    assert exc.value.rule == "stage-on-hold"


def test_effective_date_in_the_future_is_refused(admitted: Participant,
                                                 policy: ProgramPolicy, by: Provenance,
                                                 days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(-1), reason="soon")
    assert exc.value.field == "effective_at"
    # Within the allowed clock skew (5 minutes) "now" is still now.
    admitted.promote(policy, by=by, to_stage="phase-1", at=by.now + timedelta(minutes=4),
                     reason="criteria met")
    assert admitted.state.stage == "phase-1"


def test_effective_time_without_a_time_zone_is_refused(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.promote(policy, by=by, to_stage="phase-1",
                         at=days_ago(10).replace(tzinfo=None), reason="criteria met")
    assert exc.value.field == "effective_at"


def test_effective_date_before_admission_is_refused(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        supervisor: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:
        admitted.promote(policy, by=supervisor, to_stage="phase-1", at=days_ago(201),
                         reason="back-dated", override=True)
    assert exc.value.rule == "effective-before-admission"
    with pytest.raises(RuleViolation) as exc:
        admitted.hold_stage(by=by, at=days_ago(250), reason="back-dated")
    assert exc.value.rule == "effective-before-admission"


def test_unknown_stage(admitted: Participant, policy: ProgramPolicy, by: Provenance,
                       days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.promote(policy, by=by, to_stage="phase-9", at=days_ago(10), reason="x")
    assert exc.value.field == "to_stage"
    with pytest.raises(InvalidValue) as exc:
        admitted.regress(policy, by=by, to_stage="phase-0", at=days_ago(10), reason="x")
    assert exc.value.field == "to_stage"


def test_folding_the_history_gives_the_live_state(in_phase_2: Participant,
                                                  policy: ProgramPolicy, by: Provenance,
                                                  days_ago: DaysAgo) -> None:
    in_phase_2.hold_stage(by=by, at=days_ago(10), reason="review", until=days_ago(5).date())
    in_phase_2.regress(policy, by=by, to_stage="phase-1", at=days_ago(3), reason="setback")
    in_phase_2.repeat_stage(policy, by=by, at=days_ago(1), reason="repeat")
    assert fold(in_phase_2.history) == in_phase_2.state
