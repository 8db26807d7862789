"""What the views keep of community life: the first day a record falls below its
attendance requirement (so that a row holds no "now"), the record's community flags, and
the de-identified counters a record adds to the statistics. Synthetic people."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import attendance as a
from domain import community as c
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance
from domain.summary import flags
from projections.stats import contribution, follow_ups_by_window

ADMITTED = date(2026, 1, 10)
KINDS = ("morning-meeting", "seminar")

lines_strategy = st.lists(st.tuples(
    st.integers(min_value=0, max_value=80).map(
        lambda n: (ADMITTED + timedelta(days=n)).isoformat()),
    st.sampled_from(KINDS), st.sampled_from(a.STATUSES)), max_size=60)
weekly_strategy = st.fixed_dictionaries({k: st.integers(min_value=0, max_value=7)
                                         for k in KINDS})


@settings(max_examples=300, deadline=None)
@given(lines=lines_strategy, weekly=weekly_strategy,
       later=st.integers(min_value=0, max_value=60))
def test_the_first_day_below_agrees_with_the_window_on_every_later_day(
        lines: list[a.Line], weekly: dict[str, int], later: int) -> None:
    """From the latest line (or the admission) on, "below today" is exactly "today is on
    or after the first day below": the one date the caseload row keeps."""
    first = a.first_day_below(lines, weekly, ADMITTED)
    latest = max([ADMITTED, *(date.fromisoformat(d) for d, _, _ in lines)])
    today = latest + timedelta(days=later)
    shown = a.summary(a.recent(lines), weekly, ADMITTED, today, "orientation")
    assert shown == a.summary(lines, weekly, ADMITTED, today, "orientation")
    assert bool(shown["below_requirement"]) == (first is not None and first <= today)
    assert (first is None) == (not any(weekly.values()))


def test_the_first_day_below_for_a_new_admission_and_after_attendance() -> None:
    weekly = {"morning-meeting": 5}
    # Admitted today: nothing is required on the first day, one meeting on the second.
    assert a.first_day_below([], weekly, ADMITTED) == ADMITTED + timedelta(days=1)
    daily = [((ADMITTED + timedelta(days=n)).isoformat(), "morning-meeting", "present")
             for n in range(28)]
    # Every day for four weeks: below only once the oldest meetings leave the window.
    first = a.first_day_below(daily, weekly, ADMITTED)
    assert first is not None and first > ADMITTED + timedelta(days=27)
    assert a.first_day_below(daily, {}, ADMITTED) is None
    assert a.first_day_below(daily, weekly, None) is None


def test_a_line_is_dated_in_utc_like_today() -> None:
    entry = {"held_at": "2026-03-01T23:30:00-05:00", "kind": "seminar", "status": "late"}
    assert a.line_of(entry) == ("2026-03-02", "seminar", "late")


def test_an_active_record_below_its_requirement_is_flagged(
        admit: Callable[..., Participant], policy: ProgramPolicy, by: Provenance,
        now: datetime) -> None:
    newcomer = admit(admitted_on=now.date())
    assert "attendance_below_requirement" not in flags(newcomer.state, policy, now.date())
    tomorrow = now.date() + timedelta(days=1)
    assert "attendance_below_requirement" in flags(newcomer.state, policy, tomorrow)


def test_a_discharged_record_is_flagged_when_a_follow_up_window_comes(
        admit: Callable[..., Participant], policy: ProgramPolicy, by: Provenance,
        now: datetime) -> None:
    p = admit()
    p.discharge(policy, by=by, discharge_type="successful-completion",
                at=now - timedelta(days=31), reason="completed")
    assert flags(p.state, policy, now.date() - timedelta(days=2)) == []
    assert flags(p.state, policy, now.date()) == ["follow_up_due"]
    c.record_follow_up(p, policy, by=by, window="30d", at=now - timedelta(days=1),
                       method="phone", reached=False, outcomes={}, reason="scheduled")
    assert flags(p.state, policy, now.date()) == ["follow_up_due"]  # not reached yet
    c.record_follow_up(p, policy, by=by, window="30d", at=now, method="phone", reached=True,
                       outcomes={"abstinent": True}, reason="scheduled")
    assert flags(p.state, policy, now.date()) == []  # the 90-day window has not come


def test_a_record_adds_attendance_and_one_follow_up_per_window_to_the_statistics(
        admit: Callable[..., Participant], policy: ProgramPolicy, by: Provenance,
        now: datetime) -> None:
    p = admit()
    for n, status in enumerate(["present", "late", "excused", "absent"]):
        c.record_attendance(p, c.Session(f"G-{n}", "seminar", p.state.facility,
                                         now - timedelta(days=n + 40)), by=by, status=status)
    p.discharge(policy, by=by, discharge_type="successful-completion",
                at=now - timedelta(days=35), reason="completed")
    tries = [(now - timedelta(days=5), False, {}),
             (now - timedelta(days=4), True, {"abstinent": True, "relapsed": False}),
             (now - timedelta(days=3), False, {})]  # a later call not answered
    for at, reached, outcomes in tries:
        c.record_follow_up(p, policy, by=by, window="30d", at=at, method="phone",
                           reached=reached, outcomes=outcomes, reason="scheduled")
    counted = follow_ups_by_window(p.state)
    assert list(counted) == ["30d"] and counted["30d"]["reached"] is True
    facts = contribution(p, policy)
    mine = [f[3:] for f in facts if f[3] in ("attendance", "follow_up", "follow_up_outcome")]
    assert ("attendance", "seminar/excused", 0) in mine and len(
        [f for f in mine if f[0] == "attendance"]) == 4
    assert [f for f in mine if f[0] == "follow_up"] == [("follow_up", "30d", 1)]
    outcomes = {f[1]: f[2] for f in mine if f[0] == "follow_up_outcome"}
    assert outcomes["30d/abstinent"] == 1 and outcomes["30d/relapsed"] == 0
    assert outcomes["30d/in_aftercare"] == 2  # unknown
    assert len(outcomes) == len(c.OUTCOMES)
    # Each window's due date after the discharge, with whether it was followed up there:
    # 2 reached, 1 attempted only, 0 not at all.
    discharged = (now - timedelta(days=35)).date()
    assert sorted((f[2], f[4], f[5]) for f in facts if f[3] == "follow_up_due") == sorted(
        ((discharged + timedelta(days=w.days)).isoformat(), w.code, 2 if w.code == "30d" else 0)
        for w in policy.follow_up_windows)


def test_attendance_counts_under_the_session_facility_after_a_transfer(
        admit: Callable[..., Participant], policy: ProgramPolicy, by: Provenance,
        now: datetime) -> None:
    p = admit()
    home = p.state.facility
    c.record_attendance(p, c.Session("G-1", "seminar", home, now - timedelta(days=3)), by=by,
                        status="present")
    p.transfer(by=by, facility="F-ELSEWHERE", unit="U-9", at=now - timedelta(days=1),
               reason="moved")
    c.record_attendance(p, c.Session("G-2", "seminar", "F-ELSEWHERE", now), by=by,
                        status="late")
    lines = sorted((f[1], f[4]) for f in contribution(p, policy) if f[3] == "attendance")
    assert lines == [("F-ELSEWHERE", "seminar/late"), (home, "seminar/present")]
    assert {f[1] for f in contribution(p, policy) if f[3] == "admission"} == {"F-ELSEWHERE"}
