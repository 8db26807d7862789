"""Community life rules: attendance, peer feedback, mentors, follow-ups, recovery supports,
and the command side's writes to several records in one transaction. Synthetic people."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain import community as c
from domain import events as ev
from domain.application import TCLedger
from domain.errors import DomainError, InvalidValue, NotFound, RuleViolation
from domain.groups import GroupSession
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]
FACILITY = "SYN-FACILITY-A"


def session(at: datetime, kind: str = "community-meeting", facility: str = FACILITY,
            group_id: str = "G-1") -> c.Session:
    return c.Session(group_id, kind, facility, at)


def seals() -> tuple[c.PeerSeal, c.PeerSeal]:
    link = str(uuid4())
    return c.PeerSeal(link, "sealed-for-one"), c.PeerSeal(link, "sealed-for-other")


def fresh(p: Participant) -> list[ev.ParticipantEvent]:
    return list(p.collect_events())


# --- attendance ------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "kind"), [("present", ev.GroupAttended),
                                             ("late", ev.GroupAttended),
                                             ("excused", ev.GroupMissed),
                                             ("absent", ev.GroupMissed)])
def test_attendance_records_the_status_as_attended_or_missed(
        admitted: Participant, by: Provenance, days_ago: DaysAgo, status: str,
        kind: type) -> None:
    fresh(admitted)
    assert c.record_attendance(admitted, session(days_ago(1)), by=by, status=status,
                               note="synthetic note")
    [event] = fresh(admitted)
    assert type(event) is kind and event.status == status
    assert event.effective_at == days_ago(1)
    assert admitted.state.attendance["G-1"]["status"] == status


def test_the_same_line_again_is_a_replay_and_a_different_status_is_refused(
        admitted: Participant, by: Provenance, days_ago: DaysAgo) -> None:
    c.record_attendance(admitted, session(days_ago(1)), by=by, status="present")
    fresh(admitted)
    assert c.record_attendance(admitted, session(days_ago(1)), by=by, status="present") is False
    with pytest.raises(RuleViolation) as refused:
        c.record_attendance(admitted, session(days_ago(1)), by=by, status="absent")
    assert refused.value.rule == "attendance-already-recorded"
    assert fresh(admitted) == []


def test_an_unknown_status_is_invalid(admitted: Participant, by: Provenance,
                                      days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as refused:
        c.record_attendance(admitted, session(days_ago(1)), by=by, status="asleep")
    assert refused.value.field == "status"


def test_attendance_needs_an_active_participant_of_that_facility_at_that_time(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.transfer(by=by, facility="SYN-FACILITY-B", unit="U-9", at=days_ago(10),
                      reason="bed space")
    # Before the transfer the participant was at A; after it, at B.
    assert c.record_attendance(admitted, session(days_ago(20), group_id="G-A"), by=by,
                               status="present")
    with pytest.raises(RuleViolation) as refused:
        c.record_attendance(admitted, session(days_ago(5), group_id="G-A2"), by=by,
                            status="present")
    assert refused.value.rule == "not-in-facility-at-session"
    assert c.record_attendance(admitted, session(days_ago(5), facility="SYN-FACILITY-B",
                                                 group_id="G-B"), by=by, status="present")
    with pytest.raises(RuleViolation) as before:
        c.record_attendance(admitted, session(days_ago(300), group_id="G-0"), by=by,
                            status="present")
    assert before.value.rule == "effective-before-admission"
    admitted.discharge(policy, by=by, discharge_type="administrative-release", at=days_ago(1),
                       reason="released")
    with pytest.raises(RuleViolation) as discharged:
        c.record_attendance(admitted, session(days_ago(3), facility="SYN-FACILITY-B",
                                              group_id="G-B2"), by=by, status="present")
    assert discharged.value.rule == "participant-discharged"


def test_a_status_is_corrected_within_its_kind_and_voided_across_it(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    c.record_attendance(admitted, session(days_ago(1)), by=by, status="present")
    version = admitted.version
    admitted.correct_entry(policy, by=by, version=version, changes={"status": "late"},
                           at=days_ago(0), reason="came in after the opening")
    assert admitted.state.attendance["G-1"]["status"] == "late"
    with pytest.raises(InvalidValue):
        admitted.correct_entry(policy, by=by, version=version, changes={"status": "absent"},
                               at=days_ago(0), reason="was not there")
    admitted.void_entry(policy, by=by, version=version, at=days_ago(0), reason="wrong roster")
    assert admitted.state.attendance == {}
    assert c.record_attendance(admitted, session(days_ago(1)), by=by, status="absent")


def test_attendance_summary_counts_the_last_28_days_against_the_stage(
        admitted: Participant, policy: ProgramPolicy, by: Provenance, now: datetime) -> None:
    today = now.date()
    for n in range(6):  # six morning meetings in the window, one long before it
        c.record_attendance(admitted, session(now - timedelta(days=n + 1), "morning-meeting",
                                              group_id=f"MM-{n}"), by=by,
                            status="late" if n == 0 else "present")
    c.record_attendance(admitted, session(now - timedelta(days=60), "morning-meeting",
                                          group_id="MM-old"), by=by, status="present")
    c.record_attendance(admitted, session(now - timedelta(days=2), "seminar", group_id="S-1"),
                        by=by, status="excused")
    c.record_attendance(admitted, session(now - timedelta(days=3), "family", group_id="F-1"),
                        by=by, status="absent")
    summary = c.attendance_summary(admitted.state, policy, today)
    assert summary["days"] == 28 and summary["stage"] == "orientation"
    mm = summary["kinds"]["morning-meeting"]
    assert (mm["present"], mm["late"], mm["attended"], mm["required"]) == (5, 1, 6, 20)
    assert mm["below_requirement"] is True
    seminar = summary["kinds"]["seminar"]
    assert (seminar["excused"], seminar["required"]) == (1, 12)
    family = summary["kinds"]["family"]  # not required in orientation: never below
    assert (family["absent"], family["required"], family["below_requirement"]) == (1, 0, False)
    assert "encounter" not in summary["kinds"]
    assert summary["below_requirement"] == ["community-meeting", "morning-meeting",
                                            "psychoeducation", "seminar"]


def test_attendance_requirement_is_prorated_for_a_new_admission(
        admit: Callable[..., Participant], policy: ProgramPolicy, now: datetime) -> None:
    newcomer = admit(admitted_on=now.date() - timedelta(days=6))
    summary = c.attendance_summary(newcomer.state, policy, now.date())
    assert summary["days"] == 7
    assert summary["kinds"]["morning-meeting"]["required"] == 5


# --- peer feedback and mentors ---------------------------------------------------------

def test_peer_feedback_is_written_on_both_records_with_each_side_sealed(
        admit: Callable[..., Participant], by: Provenance, days_ago: DaysAgo) -> None:
    receiver, giver = admit(), admit(given_name="Peer")
    one, other = seals()
    feedback_id = c.record_peer_feedback(
        receiver, giver, by=by, kind="affirmation", behaviour="helped a newcomer",
        observed_at=days_ago(1), reason="peer report", seals=lambda: (one, other))
    [received] = fresh(receiver)[1:]
    [given] = fresh(giver)[1:]
    assert (received.side, received.peer, received.feedback_id) == (
        "received", "sealed-for-one", feedback_id)
    assert (given.side, given.peer, given.link_id) == ("given", "sealed-for-other", one.link_id)
    assert c.peer_links(receiver.history) == [one.link_id]


def test_peer_feedback_rules(admit: Callable[..., Participant], policy: ProgramPolicy,
                             by: Provenance, days_ago: DaysAgo) -> None:
    receiver, giver = admit(), admit()
    elsewhere = admit(facility="SYN-FACILITY-B")

    def feedback(to: Participant, frm: Participant, **kw: Any) -> str:
        fields = {"kind": "pull-up", "behaviour": "left the area untidy",
                  "observed_at": days_ago(1), "reason": "peer report", **kw}
        return c.record_peer_feedback(to, frm, by=by, seals=seals, **fields)

    for bad, rule_or_field in [
            (lambda: feedback(receiver, receiver), "from_participant"),
            (lambda: feedback(receiver, giver, kind="shout"), "kind"),
            (lambda: feedback(receiver, giver, kind="affirmation", infraction_id="x"),
             "infraction_id"),
            (lambda: feedback(receiver, elsewhere), "peer-not-in-facility")]:
        with pytest.raises((InvalidValue, RuleViolation)) as refused:
            bad()
        assert getattr(refused.value, "field", getattr(refused.value, "rule", None)) \
            == rule_or_field
    with pytest.raises(NotFound):
        feedback(receiver, giver, infraction_id="no-such-infraction")
    infraction = receiver.record_infraction(
        policy, by=by, code="house-rule-hygiene", observed_at=days_ago(2), description="",
        reason="staff report")
    feedback(receiver, giver, infraction_id=infraction)
    infraction_version = next(e.originator_version for e in receiver.history
                              if isinstance(e, ev.InfractionRecorded))
    with pytest.raises(RuleViolation) as blocked:
        receiver.void_entry(policy, by=by, version=infraction_version, at=days_ago(0),
                            reason="entered in error")
    assert blocked.value.rule == "later-entries-depend"
    giver.discharge(policy, by=by, discharge_type="administrative-release", at=days_ago(0.5),
                    reason="released")
    with pytest.raises(RuleViolation) as gone:
        feedback(receiver, giver)
    assert gone.value.rule == "peer-not-active"


def test_a_refused_peer_command_never_makes_the_link(
        admit: Callable[..., Participant], policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    """The link (and its key) is made only once every rule has passed."""
    receiver, giver, elsewhere = admit(), admit(), admit(facility="SYN-FACILITY-B")
    made: list[int] = []

    def counted() -> tuple[c.PeerSeal, c.PeerSeal]:
        made.append(1)
        return seals()

    for peer, kind in [(elsewhere, "pull-up"), (giver, "shout"), (receiver, "pull-up")]:
        with pytest.raises((InvalidValue, RuleViolation)):
            c.record_peer_feedback(receiver, peer, by=by, kind=kind, behaviour="late",
                                   observed_at=days_ago(1), reason="peer report",
                                   seals=counted)
    with pytest.raises(RuleViolation):
        c.assign_mentor(receiver, giver, policy, by=by, at=days_ago(1), reason="pairing",
                        seals=counted)  # same stage: not senior
    assert made == []
    c.record_peer_feedback(receiver, giver, by=by, kind="affirmation", behaviour="kind",
                           observed_at=days_ago(1), reason="peer report", seals=counted)
    assert made == [1]


def test_a_mentor_is_an_active_senior_of_the_same_facility(
        admit: Callable[..., Participant], in_phase_2: Participant, policy: ProgramPolicy,
        by: Provenance, days_ago: DaysAgo) -> None:
    mentee, peer_same_stage = admit(), admit()
    elsewhere = admit(facility="SYN-FACILITY-B")

    def assign(mentor: Participant, who: Participant = mentee) -> str:
        return c.assign_mentor(who, mentor, policy, by=by, at=days_ago(1), reason="pairing",
                               seals=seals)

    for mentor, rule in [(peer_same_stage, "mentor-not-senior"),
                         (elsewhere, "mentor-not-in-facility")]:
        with pytest.raises(RuleViolation) as refused:
            assign(mentor)
        assert refused.value.rule == rule
    with pytest.raises(RuleViolation) as backwards:
        assign(mentee, who=in_phase_2)
    assert backwards.value.rule == "mentor-not-senior"
    mentor_id = assign(in_phase_2)
    assert mentee.state.mentorships[mentor_id]["side"] == "mentee"
    assert in_phase_2.state.mentorships[mentor_id]["side"] == "mentor"
    with pytest.raises(RuleViolation) as twice:
        assign(in_phase_2)
    assert twice.value.rule == "mentor-already-assigned"
    for p in (mentee, in_phase_2):
        c.end_mentor(p, by=by, mentor_id=mentor_id, at=days_ago(0), reason="mentee promoted")
        assert p.state.mentorships[mentor_id]["ended_on"] == days_ago(0).date().isoformat()
    with pytest.raises(RuleViolation) as ended:
        c.end_mentor(mentee, by=by, mentor_id=mentor_id, at=days_ago(0), reason="again")
    assert ended.value.rule == "mentor-ended"
    assigned = next(e.originator_version for e in mentee.history
                    if isinstance(e, ev.MentorAssigned))
    with pytest.raises(RuleViolation) as blocked:
        mentee.void_entry(policy, by=by, version=assigned, at=days_ago(0), reason="error")
    assert blocked.value.rule == "later-entries-depend"
    assign(in_phase_2)  # a new mentorship once the last one ended


# --- aftercare -------------------------------------------------------------------------

def discharged(p: Participant, policy: ProgramPolicy, by: Provenance, at: datetime) -> date:
    p.discharge(policy, by=by, discharge_type="successful-completion", at=at,
                reason="completed")
    return at.date()


def test_follow_ups_only_on_a_discharged_record_by_window(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    def follow_up(**kw: Any) -> str:
        fields = {"window": "30d", "at": days_ago(5), "method": "phone", "reached": True,
                  "outcomes": {"abstinent": True, "rearrested": False}, "reason": "scheduled",
                  **kw}
        return c.record_follow_up(admitted, policy, by=by, **fields)

    with pytest.raises(RuleViolation) as active:
        follow_up()
    assert active.value.rule == "follow-up-before-discharge"
    day = discharged(admitted, policy, by, days_ago(40))
    assert c.next_follow_up_due(admitted.state, policy) == {
        "window": "30d", "due_on": (day + timedelta(days=30)).isoformat()}
    for kw, field in [({"window": "45d"}, "window"),
                      ({"outcomes": {"happy": True}}, "outcomes.happy"),
                      ({"outcomes": {"abstinent": "yes"}}, "outcomes.abstinent"),
                      ({"reached": False}, "outcomes"),
                      ({"at": days_ago(50)}, "contacted_on")]:
        with pytest.raises(InvalidValue) as refused:
            follow_up(**kw)
        assert refused.value.field == field
    follow_up(reached=False, outcomes={})  # a try that did not reach the person
    assert c.next_follow_up_due(admitted.state, policy)["window"] == "30d"  # type: ignore[index]
    fid = follow_up()
    stored = admitted.state.follow_ups[fid]
    assert stored["outcomes"] == {"abstinent": True, "relapsed": None, "rearrested": False,
                                  "reincarcerated": None, "employed_or_in_school": None,
                                  "stably_housed": None, "in_aftercare": None}
    assert c.next_follow_up_due(admitted.state, policy) == {
        "window": "90d", "due_on": (day + timedelta(days=90)).isoformat()}
    version = admitted.version
    with pytest.raises(InvalidValue):
        admitted.correct_entry(policy, by=by, version=version, changes={"reached": False},
                               at=days_ago(0), reason="was a relative")
    admitted.correct_entry(policy, by=by, version=version,
                           changes={"outcomes": {**stored["outcomes"], "stably_housed": True}},
                           at=days_ago(0), reason="housing confirmed")
    assert admitted.state.follow_ups[fid]["outcomes"]["stably_housed"] is True


def test_recovery_supports_link_before_and_after_discharge(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    coach = c.link_recovery_support(admitted, by=by, kind="peer-recovery-coach",
                                    provider="Synthetic Recovery Org", at=days_ago(20),
                                    reason="re-entry plan")
    discharged(admitted, policy, by, days_ago(10))
    alumni = c.link_recovery_support(admitted, by=by, kind="alumni-group", provider=None,
                                     at=days_ago(5), reason="joined alumni")
    with pytest.raises(InvalidValue):
        c.link_recovery_support(admitted, by=by, kind="astrology", provider=None,
                                at=days_ago(5), reason="no")
    c.end_recovery_support(admitted, by=by, support_id=coach, at=days_ago(1), reason="done")
    with pytest.raises(RuleViolation):
        c.end_recovery_support(admitted, by=by, support_id=coach, at=days_ago(1), reason="x")
    with pytest.raises(NotFound):
        c.end_recovery_support(admitted, by=by, support_id="nope", at=days_ago(1), reason="x")
    supports = admitted.state.recovery_supports
    assert supports[coach]["ended_on"] == days_ago(1).date().isoformat()
    assert supports[alumni]["ended_on"] is None


# --- group sessions --------------------------------------------------------------------

def test_a_group_session_is_held_in_the_past_with_a_known_kind(
        policy: ProgramPolicy, by: Provenance, now: datetime) -> None:
    def hold(**kw: Any) -> GroupSession:
        fields = {"facility": FACILITY, "unit": None, "kind": "encounter",
                  "held_at": now - timedelta(hours=2), "duration_minutes": 90,
                  "facilitator_staff_id": "staff-f1", **kw}
        return GroupSession.hold(policy, by=by, **fields)

    held = hold()
    assert (held.session.kind, held.session.facility) == ("encounter", FACILITY)
    for kw, field in [({"held_at": now + timedelta(hours=2)}, "held_at"),
                      ({"kind": "karaoke"}, "kind"), ({"duration_minutes": 0},
                                                      "duration_minutes")]:
        with pytest.raises(InvalidValue) as refused:
            hold(**kw)
        assert refused.value.field == field


# --- writes to several records ---------------------------------------------------------

def test_a_roster_writes_every_accepted_record_in_one_save_and_refuses_per_record(
        ledger: TCLedger, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo,
        admission_fields: Callable[..., dict[str, Any]]) -> None:
    ids = [ledger.admit(policy, by, **admission_fields()).id for _ in range(3)]
    ledger.execute(ids[2], lambda p, pol: p.discharge(
        pol, by=by, discharge_type="administrative-release", at=days_ago(0.5), reason="out"))
    saves: list[int] = []
    original = ledger.save

    def counting_save(*objs: Any, **kw: Any) -> Any:
        saves.append(len(objs))
        return original(*objs, **kw)

    ledger.save = counting_save  # type: ignore[method-assign]
    meeting = session(days_ago(1))
    outcomes = ledger.execute_each({
        pid: (lambda p, pol: c.record_attendance(p, meeting, by=by, status="present"))
        for pid in ids})
    assert saves == [2]
    assert [type(outcomes[pid]).__name__ for pid in ids] == [
        "WriteResult", "WriteResult", "RuleViolation"]
    first = outcomes[ids[0]]
    assert not isinstance(first, DomainError) and first.position > 0
    assert ledger.participant(ids[0]).state.attendance[meeting.group_id]["status"] == "present"
    again = ledger.execute_each({
        pid: (lambda p, pol: c.record_attendance(p, meeting, by=by, status="present"))
        for pid in ids[:2]})
    assert saves == [2]  # nothing new to write: no transaction at all
    assert all(not isinstance(o, DomainError) and o.position == 0 for o in again.values())


def test_a_joint_command_writes_both_records_or_neither(
        ledger: TCLedger, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo,
        admission_fields: Callable[..., dict[str, Any]]) -> None:
    a = ledger.admit(policy, by, **admission_fields()).id
    b = ledger.admit(policy, by, **admission_fields()).id
    other = ledger.admit(policy, by, **admission_fields(facility="SYN-FACILITY-B")).id

    def feedback(to: Any, frm: Any) -> Any:
        return ledger.execute_together([to, frm], lambda ps: {
            "feedback_id": c.record_peer_feedback(
                ps[to], ps[frm], by=by, kind="affirmation", behaviour="kept the peace",
                observed_at=days_ago(1), reason="peer report", seals=seals)})

    results = feedback(a, b)
    assert results[a].version == 2 and results[b].version == 2
    with pytest.raises(RuleViolation):
        feedback(a, other)
    assert ledger.participant(a).version == 2 and ledger.participant(other).version == 1


def test_erasure_destroys_the_keys_of_every_peer_link(
        ledger: TCLedger, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo,
        admission_fields: Callable[..., dict[str, Any]], keys: Any) -> None:
    a = ledger.admit(policy, by, **admission_fields()).id
    b = ledger.admit(policy, by, **admission_fields()).id
    one, other = seals()
    ledger.execute_together([a, b], lambda ps: c.record_peer_feedback(
        ps[a], ps[b], by=by, kind="pull-up", behaviour="late to group",
        observed_at=days_ago(1), reason="peer report", seals=lambda: (one, other)))
    ledger.execute(a, lambda p, pol: p.void_entry(
        pol, by=by, version=2, at=days_ago(0), reason="wrong resident"))
    ledger.erase(a, by, "retention period ended")
    assert {str(k) for k in keys.destroyed} == {str(a), one.link_id}


def test_records_are_locked_once_each_in_one_order_whatever_the_order_asked() -> None:
    from uuid import UUID

    from domain.live import LiveRecords

    live: LiveRecords[object] = LiveRecords(10)
    a, b, same_stripe_as_a = UUID(int=5), UUID(int=3), UUID(int=5 + 256)
    assert live.locks([a, b]) == live.locks([b, a, same_stripe_as_a])
    assert len(live.locks([a, same_stripe_as_a])) == 1


def test_a_discharge_ends_each_open_mentorship_on_both_records(
        admit: Callable[..., Participant], in_phase_2: Participant, policy: ProgramPolicy,
        by: Provenance, days_ago: DaysAgo) -> None:
    mentee, mentor = admit(), in_phase_2
    mentor_id = c.assign_mentor(mentee, mentor, policy, by=by, at=days_ago(5),
                                reason="pairing", seals=seals)
    assert c.mentorships_ending(mentor) == []  # nothing pending: nothing ends
    # A discharge entered with a date before the mentorship began ends it on its first day.
    mentor.discharge(policy, by=by, discharge_type="administrative-release",
                     at=days_ago(10), reason="released")
    assert [m["mentor_id"] for m in c.mentorships_ending(mentor)] == [mentor_id]
    c.end_mentorships_with_discharge(mentor, {mentor_id: mentee})
    started = days_ago(5).date().isoformat()
    for p, why in ((mentor, "ended with this participant's discharge"),
                   (mentee, "ended with the other participant's discharge")):
        assert p.state.mentorships[mentor_id]["ended_on"] == started
        ended = p.pending_events[-1]
        assert isinstance(ended, ev.MentorEnded) and ended.reason == why
    assert c.mentorships_ending(mentor) == []  # all ended now
    # The other record erased (absent): only this side ends.
    lone, senior = admit(), admit()
    senior.promote(policy, by=Provenance("s", "supervisor", now=by.now), to_stage="phase-1",
                   at=days_ago(3), reason="criteria met", override=True)
    other = c.assign_mentor(lone, senior, policy, by=by, at=days_ago(1), reason="pairing",
                            seals=seals)
    lone.discharge(policy, by=by, discharge_type="administrative-release", at=days_ago(0),
                   reason="released")
    c.end_mentorships_with_discharge(lone, {})
    assert lone.state.mentorships[other]["ended_on"] is not None
    assert senior.state.mentorships[other]["ended_on"] is None
    c.end_mentorship_of_erased_peer(senior, other, by)
    assert senior.state.mentorships[other]["ended_on"] is not None
    c.end_mentorship_of_erased_peer(senior, other, by)  # already ended: nothing more
    assert sum(isinstance(e, ev.MentorEnded) for e in senior.pending_events) == 1
