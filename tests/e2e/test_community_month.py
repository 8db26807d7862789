"""A month of a generated community, driven through HTTP on SQLite and PostgreSQL, then read
back through the caseload and its flags, the records, the sessions and the statistics,
which must agree with what the test itself wrote; with a roster of every kind of bad
record, an erasure in the middle, and a rebuild compared with the live views.

Two units of F-NORTH, thirty residents (seniors in phase 1, three who lapse, three admitted
during the month), a morning meeting every day and a group per unit, peer feedback,
mentors, discharges during the month (a mentor and a mentee among them) and people
discharged long ago followed up at each window. All people are synthetic.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tests.e2e.people import synthetic_admission
from tests.e2e.test_bad_input import invalid, problem, writes_nothing
from tests.integration.test_projection_rebuild import digest

TODAY = datetime.now(UTC).date()
DAYS = 30
CYCLE = ["seminar", "psychoeducation", "seminar", "community-meeting", "seminar",
         "psychoeducation", "seminar"]
CREDITED = ("present", "late", "excused")
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def day(n: int) -> date:
    return TODAY - timedelta(days=n)


def moment(n: int, hour: int) -> datetime:
    return datetime.combine(day(n), time(hour), UTC)


def ok(r: Any, status: int = 201) -> Any:
    assert r.status_code == status, r.text
    return r.json()


@dataclass
class Resident:
    id: str
    unit: str
    admitted_on: date
    stage: str = "orientation"
    lapses: bool = False
    status: str = "active"
    discharged_on: date | None = None
    erased: bool = False
    mentor: str | None = None  # the mentor's id while the mentorship is open
    lines: list[tuple[str, str, str, str]] = field(default_factory=list)  # group, kind, day, status
    feedback: Counter[str] = field(default_factory=Counter)  # side -> count
    follow_ups: list[tuple[str, date, bool]] = field(default_factory=list)  # window, day, reached


class Month:
    """Drives the month through HTTP and keeps its own account of what was written."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.rng = random.Random(7)
        self.people: dict[str, Resident] = {}
        self.sessions: dict[str, tuple[str, str, Counter[str]]] = {}  # id -> kind, day, counts
        self.policy = api.services.policies.get("tc-default")
        self.home: set[str] = set()  # F-NORTH's residents of the month
        self.last = 0

    def post(self, path: str, body: Any, role: str = "counselor", status: int = 201,
             **headers: str) -> Any:
        answer = ok(self.api.post(path, body, role=role, **headers), status)
        self.last = max(self.last, int(answer.get("position") or 0))
        return answer

    def admit(self, seed: int, unit: str, days_ago: int, facility: str = "F-NORTH") -> str:
        body = synthetic_admission(seed, facility=facility, days_ago=days_ago, unit=unit)
        r = self.api.client.post("/participants", json=body,
                                 headers=self.api.headers("counselor", facility))
        pid = str(ok(r)["id"])
        self.people[pid] = Resident(pid, unit, day(days_ago))
        return pid

    def active(self, on: int, unit: str | None = None) -> list[Resident]:
        return [r for r in self.people.values()
                if r.status == "active" and not r.erased and r.admitted_on <= day(on)
                and (unit is None or r.unit == unit) and r.id in self.home]

    def status_of(self, r: Resident) -> str:
        roll = self.rng.random()
        if r.lapses:
            return "absent" if roll < 0.6 else "present"
        return "present" if roll < 0.85 else "late" if roll < 0.93 else "excused" \
            if roll < 0.97 else "absent"

    def session(self, kind: str, on: int, hour: int, unit: str | None,
                members: list[Resident]) -> str:
        group = self.post("/groups", {
            "facility": "F-NORTH", "unit": unit, "kind": kind,
            "held_at": moment(on, hour).isoformat(), "duration_minutes": 60,
            "facilitator": {"staff": "staff-f1"}})["group_id"]
        lines = [(r, self.status_of(r)) for r in members]
        answer = self.post(f"/groups/{group}/attendance", {"records": [
            {"participant_id": r.id, "status": s} for r, s in lines]}, status=200)
        assert answer["recorded"] == len(lines), answer
        self.last = max(self.last, answer["position"])
        counts: Counter[str] = Counter()
        for r, status in lines:
            r.lines.append((group, kind, day(on).isoformat(), status))
            counts[status] += 1
        self.sessions[group] = (kind, day(on).isoformat(), counts)
        return group

    def feedback(self, on: int) -> None:
        pair = self.rng.sample(self.active(on), 2)
        self.post(f"/participants/{pair[0].id}/peer-feedback", {
            "kind": self.rng.choice(["pull-up", "affirmation"]), "from_participant": pair[1].id,
            "behaviour": "synthetic behaviour", "observed_at": moment(on, 12).isoformat(),
            "reason": "peer report"})
        pair[0].feedback["received"] += 1
        pair[1].feedback["given"] += 1

    def discharge(self, r: Resident, on: int, kind: str = "administrative-release") -> None:
        self.post(f"/participants/{r.id}/discharge", {
            "type": kind, "effective_on": day(on).isoformat(), "reason": "synthetic"})
        r.status, r.discharged_on = "discharged", day(on)
        for other in self.people.values():  # mentorships end on both records
            if other.mentor == r.id:
                other.mentor = None
        r.mentor = None

    def follow_up(self, r: Resident, window: str, on: date, reached: bool) -> None:
        self.post(f"/participants/{r.id}/follow-ups", {
            "window": window, "contacted_on": on.isoformat(), "method": "phone",
            "reached": reached, "outcomes": {"abstinent": True} if reached else {},
            "reason": "scheduled follow-up"})
        r.follow_ups.append((window, on, reached))

    # --- what the month should show -------------------------------------------------

    def below_requirement(self, r: Resident) -> bool:
        weekly = dict(self.policy.stage(r.stage).groups_per_week)
        start = max(r.admitted_on, TODAY - timedelta(days=27))
        days = (TODAY - start).days + 1
        credited = Counter(kind for _, kind, on, status in r.lines
                           if status in CREDITED and on >= start.isoformat())
        return any(credited[k] < n * days // 7 for k, n in weekly.items())

    def next_due(self, r: Resident) -> tuple[str, date] | None:
        if r.discharged_on is None:
            return None
        reached = {w for w, _, ok_ in r.follow_ups if ok_}
        for w in self.policy.follow_up_windows:
            if w.code not in reached:
                return w.code, r.discharged_on + timedelta(days=w.days)
        return None

    def flags(self, r: Resident) -> set[str]:
        if r.status == "discharged":
            due = self.next_due(r)
            return {"follow_up_due"} if due and due[1] <= TODAY else set()
        return {"attendance_below_requirement"} if self.below_requirement(r) else set()


def run_the_month(api: Any) -> tuple[Month, dict[str, str]]:
    m = Month(api)
    units = ["U-1", "U-2"]
    residents = [m.admit(100 + n, units[n % 2], 120 - n) for n in range(24)]
    newcomers = [m.admit(200 + n, units[n % 2], d) for n, d in enumerate((20, 12, 5))]
    m.home = set(residents + newcomers)
    south = m.admit(300, "U-1", 90, facility="F-SOUTH")
    seniors = [m.people[p] for p in residents[:6]]
    for r in seniors:
        m.post(f"/participants/{r.id}/stage-changes", {
            "direction": "promote", "to_stage": "phase-1",
            "effective_on": day(50).isoformat(), "reason": "criteria met"})
        r.stage = "phase-1"
    for r in (m.people[p] for p in residents[6:9]):
        r.lapses = True
    # Discharged long ago, followed up at each window whose day has come.
    alumni = [m.admit(400 + n, "U-2", 500) for n in range(4)]
    plans = {400: {"30d": [True], "90d": [True], "180d": [False], "365d": [True]},
             200: {"30d": [True], "90d": [False, True], "180d": [True]},
             100: {"30d": [True]},
             45: {"30d": [False, True]}}
    for pid, (ago, plan) in zip(alumni, plans.items(), strict=True):
        r = m.people[pid]
        m.discharge(r, ago, "successful-completion")
        for w in m.policy.follow_up_windows:
            for n, reached in enumerate(plan.get(w.code, [])):
                m.follow_up(r, w.code, day(ago) + timedelta(days=w.days + 2 + n), reached)

    mentee_ids = [residents[9], residents[10], residents[11], residents[12]]
    erased = m.people[residents[13]]
    mentor_leaving = seniors[0]
    mentee_leaving = m.people[residents[10]]
    bad_roster = {}
    for on in range(DAYS, 0, -1):
        everyone = m.active(on)
        m.session("morning-meeting", on, 8, None, everyone)
        for unit in units:
            m.session(CYCLE[on % len(CYCLE)], on, 14, unit, m.active(on, unit))
        for _ in range(2):
            m.feedback(on)
        if on == 28:  # seniors mentor newer residents
            for senior, mentee in zip(seniors, mentee_ids, strict=False):
                m.post(f"/participants/{mentee}/mentors", {
                    "mentor_participant_id": senior.id, "started_on": day(on).isoformat(),
                    "reason": "senior resident pairing"})
                m.people[mentee].mentor = senior.id
        if on == 15:
            m.discharge(mentor_leaving, on)
        if on == 13:
            m.discharge(mentee_leaving, on, "therapeutic-termination")
        if on == 12:  # an erasure in the middle of the month
            m.post(f"/admin/participants/{erased.id}/erasure", {"reason": "court order"},
                   role="admin")
            erased.erased = True
        if on == 8:
            bad_roster = every_kind_of_bad_record(m, on, south, mentee_leaving, erased,
                                                  m.people[newcomers[2]])
    return m, bad_roster


def every_kind_of_bad_record(m: Month, on: int, south: str, discharged: Resident,
                             erased: Resident, newcomer: Resident) -> dict[str, str]:
    """A roster with each kind of refused line beside good ones: each refused alone, with
    nothing written for it; then requests refused whole."""
    api = m.api
    group = m.post("/groups", {
        "facility": "F-NORTH", "unit": "U-1", "kind": "process-group",
        "held_at": moment(on, 16).isoformat(), "facilitator": {"staff": "staff-f1"}})[
            "group_id"]
    good = m.active(on, "U-1")[:4]
    lines = [{"participant_id": r.id, "status": "present"} for r in good[:3]] + [
        {"participant_id": good[3].id, "status": "asleep"},        # unknown status
        {"participant_id": discharged.id, "status": "present"},    # discharged
        {"participant_id": south, "status": "present"},            # another facility
        {"participant_id": erased.id, "status": "present"},        # erased
        {"participant_id": newcomer.id, "status": "present"},      # not yet admitted then
        {"participant_id": UNKNOWN, "status": "present"}]          # no such record
    refused = [good[3].id, discharged.id, newcomer.id]
    before = {pid: version(api, pid) for pid in refused}
    answer = m.post(f"/groups/{group}/attendance", {"records": lines}, status=200)
    assert {pid: version(api, pid) for pid in refused} == before  # nothing written for them
    assert (answer["recorded"], answer["unchanged"], answer["refused"]) == (3, 0, 6)
    got = {r["participant_id"]: r for r in answer["results"]}
    expected = {good[3].id: (422, None), discharged.id: (409, "participant-discharged"),
                south: (404, None), erased.id: (410, None),
                newcomer.id: (409, "effective-before-admission"), UNKNOWN: (404, None)}
    for pid, (status, rule) in expected.items():
        assert got[pid]["result"] == "refused" and got[pid]["status"] == status, got[pid]
        assert got[pid]["problem"].get("rule") == rule
    assert got[good[3].id]["problem"]["errors"][0]["field"] == "records[3].status"
    for r in good[:3]:
        r.lines.append((group, "process-group", day(on).isoformat(), "present"))
    m.sessions[group] = ("process-group", day(on).isoformat(), Counter(present=3))
    # The same lines again change nothing; another status for a taken line is refused.
    with writes_nothing(api, good[0].id):
        again = m.post(f"/groups/{group}/attendance", {"records": lines[:3]}, status=200)
        assert again["unchanged"] == 3
        changed = m.post(f"/groups/{group}/attendance", {"records": [
            {"participant_id": good[0].id, "status": "absent"}]}, status=200)
        assert changed["results"][0]["problem"]["rule"] == "attendance-already-recorded"
        # Refused whole: a participant twice, a malformed id, no lines, a future session.
        invalid(api.post(f"/groups/{group}/attendance", {"records": [lines[0], lines[0]]}),
                "records[1].participant_id")
        invalid(api.post(f"/groups/{group}/attendance", {"records": [
            {"participant_id": "not-an-id", "status": "present"}]}),
            "records[0].participant_id")
        invalid(api.post(f"/groups/{group}/attendance", {"records": []}), "records")
        invalid(api.post("/groups", {
            "facility": "F-NORTH", "kind": "seminar", "facilitator": {"staff": "s"},
            "held_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}), "held_at")
        problem(api.post(f"/groups/{UNKNOWN}/attendance", {"records": lines[:1]}), 404)
    return {"group": group}


def version(api: Any, pid: str) -> int:
    return int(ok(api.get(f"/participants/{pid}", role="auditor"), 200)["version"])


def test_a_month_of_community_life_reads_back_as_written(api):
    m, _ = run_the_month(api)
    people = [r for r in m.people.values() if r.id in m.home or r.discharged_on]
    north = [r for r in people if not r.erased]

    # --- the caseload and its flags ---------------------------------------------------
    page = ok(api.client.get("/participants", params={"min_position": m.last, "limit": 500},
                             headers=api.headers("supervisor")), 200)
    rows = {item["id"]: item for item in page["items"]}
    assert set(rows) == {r.id for r in north}  # the erased record is gone
    flagged: dict[str, set[str]] = {"attendance_below_requirement": set(),
                                    "follow_up_due": set()}
    for r in north:
        row = rows[r.id]
        community = set(row["flags"]) & set(flagged)
        assert community == m.flags(r), (r, row["flags"])
        for flag in community:
            flagged[flag].add(r.id)
        assert row["status"] == r.status
        mentor = row["mentor"]
        assert (mentor["peer"]["id"] if mentor else None) == r.mentor, r
        due = m.next_due(r)
        assert row["next_follow_up_due"] == (
            None if due is None else {"window": due[0], "due_on": due[1].isoformat()})
        if r.status == "active":
            start = max(r.admitted_on, TODAY - timedelta(days=27)).isoformat()
            mine = Counter((kind, status) for _, kind, on, status in r.lines if on >= start)
            for kind, shown in row["attendance"]["kinds"].items():
                assert {s: shown[s] for s in ("present", "late", "excused", "absent")} == {
                    s: mine[(kind, s)] for s in ("present", "late", "excused", "absent")}
    active = [r for r in north if r.status == "active"]
    assert 0 < len(flagged["attendance_below_requirement"]) < len(active)
    assert flagged["follow_up_due"]  # some windows came with no follow-up reaching them
    for flag, expected in flagged.items():
        found = ok(api.client.get("/participants", params={
            "min_position": m.last, "limit": 500, "flag": flag},
            headers=api.headers("supervisor")), 200)["items"]
        assert {item["id"] for item in found} == expected, flag

    # --- the records ------------------------------------------------------------------
    for r in north:
        record = ok(api.get(f"/participants/{r.id}"), 200)
        sides = Counter(f["side"] for f in record["peer_feedback"])
        assert sides == r.feedback, r
        assert len(record["follow_ups"]) == len(r.follow_ups)
        still = [x["peer"]["id"] for x in record["mentorships"]
                 if x["side"] == "mentee" and x["ended_on"] is None]
        assert still == ([r.mentor] if r.mentor else [])
        assert sorted(record["flags"]) == sorted(rows[r.id]["flags"])
        gone = next(p.id for p in m.people.values() if p.erased)
        assert gone not in json.dumps(record)  # the erased peer shows as "a peer" only

    # --- the sessions -----------------------------------------------------------------
    sessions = ok(api.client.get("/groups", params={
        "min_position": m.last, "limit": 500, "from": day(DAYS).isoformat()},
        headers=api.headers("supervisor")), 200)["items"]
    erased_lines = Counter(group for r in m.people.values() if r.erased
                           for group, _, _, _ in r.lines)
    assert {s["group_id"] for s in sessions} == set(m.sessions)  # no refused one
    for s in sessions:
        kind, on, counts = m.sessions[s["group_id"]]
        gone = Counter(status for r in m.people.values() if r.erased
                       for group, _, _, status in r.lines if group == s["group_id"])
        assert (s["kind"], s["held_at"][:10]) == (kind, on)
        assert {k: s["attendance"][k] for k in ("present", "late", "excused", "absent")} == {
            k: counts[k] - gone[k] for k in ("present", "late", "excused", "absent")}
    assert sum(erased_lines.values()) > 0

    # --- the statistics ---------------------------------------------------------------
    figures = ok(api.client.get("/programs/tc-default/stats", params={
        "min_position": m.last, "from": day(DAYS).isoformat(), "to": TODAY.isoformat()},
        headers=api.headers("supervisor")), 200)
    lines = Counter((kind, status) for r in people if not r.erased
                    for _, kind, _, status in r.lines)
    for kind, shown in figures["attendance_by_kind"].items():
        assert {s: shown[s] for s in ("present", "late", "excused", "absent")} == {
            s: lines[(kind, s)] for s in ("present", "late", "excused", "absent")}, kind
    assert figures["discharges_by_type"] == {"administrative-release": 1,
                                             "therapeutic-termination": 1}
    first = day(DAYS)
    for w in m.policy.follow_up_windows:
        shown = figures["follow_ups_by_window"][w.code]
        counted = [counted_contact(r, w.code) for r in people if r.discharged_on]
        in_period = [c for c in counted if c is not None and first <= c[0] <= TODAY]
        assert (shown["followed_up"], shown["reached"]) == (
            len(in_period), sum(reached for _, reached in in_period)), w.code
        owed = [r for r in people if r.discharged_on and first <= r.discharged_on
                + timedelta(days=w.days) <= TODAY]
        assert shown["due"] == len(owed), w.code
        contacts = [counted_contact(r, w.code) for r in owed]
        assert shown["due_followed_up"] == sum(c is not None for c in contacts)
        assert shown["due_reached"] == sum(c is not None and c[1] for c in contacts)

    # --- a rebuild gives the same views -----------------------------------------------
    runner = api.client.app.state.runner
    runner.stop()
    runner.catch_up()
    live = digest(api.services)
    runner.rebuild()
    assert digest(api.services) == live


def counted_contact(r: Resident, window: str) -> tuple[date, bool] | None:
    """The contact that counts for a window: the last that reached, else the last tried."""
    tried = sorted((on, reached) for w, on, reached in r.follow_ups if w == window)
    hits = [t for t in tried if t[1]]
    return hits[-1] if hits else tried[-1] if tried else None
