"""Community life read back through the views, over HTTP on SQLite and PostgreSQL: the
caseload's attendance, mentor, supports and next follow-up, its two community flags, and
the program statistics' attendance rates and follow-up figures. Synthetic people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import days_ago, ok

TODAY = datetime.now(UTC).date()


def admit(api: Any, seed: int, days: int, facility: str = "F-NORTH") -> str:
    return ok(api.client.post("/participants", json=synthetic_admission(
        seed, days_ago=days, facility=facility), headers=api.headers("counselor", facility)))[
            "id"]


def session(api: Any, kind: str, hours: float, lines: list[tuple[str, str]]) -> Any:
    held = (datetime.now(UTC) - timedelta(hours=hours)).isoformat()
    group = ok(api.post("/groups", {"facility": "F-NORTH", "unit": "U-1", "kind": kind,
                                    "held_at": held, "facilitator": {"staff": "staff-f1"}}))
    return ok(api.post(f"/groups/{group['group_id']}/attendance", {
        "records": [{"participant_id": p, "status": s} for p, s in lines]}), 200)


def caseload(api: Any, position: int, **params: Any) -> dict[str, dict[str, Any]]:
    page = ok(api.client.get("/participants", params={"min_position": position, "limit": 500,
                                                      **params},
                             headers=api.headers("counselor")), 200)
    return {item["id"]: item for item in page["items"]}


def discharge(api: Any, pid: str, days: int) -> Any:
    return ok(api.post(f"/participants/{pid}/discharge", {
        "type": "successful-completion", "effective_on": days_ago(days),
        "reason": "completed"}))


def follow_up(api: Any, pid: str, window: str, days: int, reached: bool,
              **outcomes: bool | None) -> Any:
    return ok(api.post(f"/participants/{pid}/follow-ups", {
        "window": window, "contacted_on": days_ago(days), "method": "phone",
        "reached": reached, "outcomes": outcomes, "reason": "scheduled follow-up"}))


def test_the_caseload_shows_community_life_and_filters_by_its_flags(api):
    newcomer = admit(api, 2000, days=0)      # nothing required yet on the first day
    keeping_up = admit(api, 2001, days=1)    # one morning meeting required by today
    lapsed = admit(api, 2002, days=60)       # no group at all in four weeks
    senior = admit(api, 2003, days=60)
    due, not_yet = admit(api, 2004, days=100), admit(api, 2005, days=100)
    ok(api.post(f"/participants/{senior}/stage-changes", {
        "direction": "promote", "to_stage": "phase-1", "reason": "criteria met"}))
    session(api, "morning-meeting", 1, [(keeping_up, "late"), (lapsed, "absent")])
    mentor = ok(api.post(f"/participants/{newcomer}/mentors", {
        "mentor_participant_id": senior, "reason": "senior resident pairing"}))
    support = ok(api.post(f"/participants/{newcomer}/recovery-supports", {
        "kind": "mutual-aid", "provider": "Synthetic Fellowship", "reason": "plan"}))
    discharge(api, due, 40)
    last = discharge(api, not_yet, 5)["position"]

    rows = caseload(api, last)
    kept = rows[keeping_up]["attendance"]["kinds"]["morning-meeting"]
    assert (kept["late"], kept["attended"], kept["required"], kept["below_requirement"]) == (
        1, 1, 1, False)
    assert rows[lapsed]["attendance"]["kinds"]["morning-meeting"]["absent"] == 1
    assert rows[lapsed]["attendance"]["below_requirement"]
    assert rows[newcomer]["mentor"] == {
        "mentor_id": mentor["mentor_id"], "side": "mentee", "peer": {"id": senior},
        "started_on": TODAY.isoformat(), "ended_on": None}
    [coach] = rows[newcomer]["recovery_supports"]
    assert (coach["support_id"], coach["kind"], coach["provider"]) == (
        support["support_id"], "mutual-aid", "Synthetic Fellowship")
    thirty = (TODAY - timedelta(days=40) + timedelta(days=30)).isoformat()
    assert rows[due]["next_follow_up_due"] == {"window": "30d", "due_on": thirty}
    assert rows[newcomer]["next_follow_up_due"] is None
    # The caseload says what the record says.
    for pid, row in rows.items():
        record = ok(api.get(f"/participants/{pid}"), 200)
        for field in ("flags", "attendance", "mentor", "next_follow_up_due"):
            assert row[field] == record[field], (pid, field)

    below = caseload(api, last, flag="attendance_below_requirement")
    assert lapsed in below and senior in below
    assert newcomer not in below and keeping_up not in below and due not in below
    assert set(caseload(api, last, flag="follow_up_due")) == {due}
    assert caseload(api, last, flag=["follow_up_due", "attendance_below_requirement"]) == {}
    assert set(caseload(api, last, flag="attendance_below_requirement", status="discharged")) \
        == set()

    # Reached at 30 days: the next window (90 days) has not come.
    done = follow_up(api, due, "30d", 1, True, abstinent=True)["position"]
    assert caseload(api, done, flag="follow_up_due") == {}
    assert caseload(api, done)[due]["next_follow_up_due"]["window"] == "90d"
    # Erasing the mentor ends the mentorship on the mentee's record, which then says only
    # "a peer"; no row of the mentor is left.
    erased = ok(api.post(f"/admin/participants/{senior}/erasure", {"reason": "court order"},
                         role="admin"))["position"]
    rows = caseload(api, erased)
    assert senior not in rows
    assert rows[newcomer]["mentor"] is None
    [ended] = ok(api.get(f"/participants/{newcomer}"), 200)["mentorships"]
    assert ended["peer"] == {"id": None, "label": "a peer"} and ended["ended_on"]
    assert senior not in str(rows)


def test_program_statistics_count_attendance_by_kind_and_follow_ups_by_window(api):
    people = [admit(api, 2100 + n, days=150) for n in range(4)]
    session(api, "seminar", 30, [(people[0], "present"), (people[1], "late"),
                                 (people[2], "excused"), (people[3], "absent")])
    last = session(api, "community-meeting", 20, [(p, "present") for p in people])["position"]
    for pid in people:
        discharge(api, pid, 100)
    # 30 days: three people followed up, two reached (one at the second call).
    follow_up(api, people[0], "30d", 65, True, abstinent=True, employed_or_in_school=False)
    follow_up(api, people[1], "30d", 66, False)
    follow_up(api, people[1], "30d", 64, True, abstinent=False, relapsed=True)
    follow_up(api, people[2], "30d", 60, False)
    last = follow_up(api, people[0], "90d", 5, True, in_aftercare=True)["position"]

    figures = ok(api.client.get("/programs/tc-default/stats", params={
        "min_position": last, "from": days_ago(200), "to": days_ago(0)},
        headers=api.headers("supervisor")), 200)
    seminar = figures["attendance_by_kind"]["seminar"]
    assert (seminar["present"], seminar["late"], seminar["excused"], seminar["absent"]) == (
        1, 1, 1, 1)
    assert seminar["attended"] == 2 and seminar["rate"] == round(2 / 3, 4)
    assert seminar["excused_share"] == 0.25
    assert figures["attendance_by_kind"]["community-meeting"]["rate"] == 1.0
    assert figures["attendance_by_kind"]["encounter"]["rate"] is None  # none held
    windows = figures["follow_ups_by_window"]
    assert list(windows) == ["30d", "90d", "180d", "365d"]
    thirty = windows["30d"]
    assert (thirty["followed_up"], thirty["reached"], thirty["reached_share"]) == (
        3, 2, round(2 / 3, 4))
    assert thirty["outcomes"]["abstinent"] == {"true": 1, "false": 1, "unknown": 0,
                                               "share": 0.5}
    assert thirty["outcomes"]["relapsed"] == {"true": 1, "false": 0, "unknown": 1,
                                              "share": 0.5}
    assert windows["90d"]["outcomes"]["in_aftercare"]["share"] == 1.0
    assert windows["180d"] == {**windows["180d"], "followed_up": 0, "reached_share": None}
    # Due in the period: the 30- and 90-day windows of all four (discharged 100 days ago),
    # not yet the later ones; the share of them followed up (tried) and reached.
    assert {k: thirty[k] for k in ("due", "due_followed_up", "due_reached",
                                   "due_followed_up_share", "due_reached_share")} == {
        "due": 4, "due_followed_up": 3, "due_reached": 2, "due_followed_up_share": 0.75,
        "due_reached_share": 0.5}
    assert (windows["90d"]["due"], windows["90d"]["due_followed_up_share"]) == (4, 0.25)
    assert (windows["180d"]["due"], windows["180d"]["due_followed_up_share"]) == (0, None)
    # Only the period's days count: the 30-day calls were before it.
    recent = ok(api.client.get("/programs/tc-default/stats", params={
        "min_position": last, "from": days_ago(10), "to": days_ago(0)},
        headers=api.headers("supervisor")), 200)
    assert recent["follow_ups_by_window"]["30d"]["followed_up"] == 0
    assert recent["follow_ups_by_window"]["90d"]["reached"] == 1

    # A correction replaces what the record counted; an erasure takes it away.
    history = ok(api.get(f"/participants/{people[1]}/history"), 200)["events"]
    reached = [e["version"] for e in history if e["type"] == "FollowUpRecorded"][-1]
    ok(api.post(f"/participants/{people[1]}/corrections", {
        "supersedes_version": reached, "action": "void", "reason": "wrong person"}))
    last = ok(api.post(f"/admin/participants/{people[3]}/erasure", {"reason": "retention"},
                       role="admin"))["position"]
    after = ok(api.client.get("/programs/tc-default/stats", params={
        "min_position": last, "from": days_ago(200), "to": days_ago(0)},
        headers=api.headers("supervisor")), 200)
    assert after["follow_ups_by_window"]["30d"]["reached"] == 1
    assert after["follow_ups_by_window"]["30d"]["followed_up"] == 3  # the first call stays
    assert after["follow_ups_by_window"]["30d"]["due"] == 3  # the erased person is gone
    assert after["follow_ups_by_window"]["30d"]["due_reached"] == 1
    assert after["attendance_by_kind"]["seminar"]["absent"] == 0
    assert after["attendance_by_kind"]["community-meeting"]["present"] == 3


def test_attendance_is_counted_where_the_session_was_held_after_a_transfer(api):
    moved = admit(api, 2200, days=60)
    stayed = admit(api, 2201, days=60)
    session(api, "seminar", 30, [(moved, "present"), (stayed, "absent")])
    last = ok(api.post(f"/participants/{moved}/transfers", {
        "facility": "F-SOUTH", "unit": "U-2", "reason": "moved to another facility"},
        role="supervisor"))["position"]

    def seminar(facility: str) -> dict[str, Any]:
        figures = ok(api.client.get("/programs/tc-default/stats", params={
            "min_position": last, "from": days_ago(10), "to": days_ago(0)},
            headers=api.headers("supervisor", facility)), 200)
        return dict(figures["attendance_by_kind"]["seminar"])

    north, south = seminar("F-NORTH"), seminar("F-SOUTH")
    assert (north["present"], north["absent"]) == (1, 1)
    assert (south["present"], south["absent"]) == (0, 0)
