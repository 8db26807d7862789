"""Community life through HTTP on SQLite and PostgreSQL: group sessions and whole rosters,
peer feedback and mentors (and what erasing a peer leaves), follow-ups and recovery
supports, and the record's community part. All people are synthetic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.persistence import StoredEvent

from audit.access import ACCESS_TOPIC
from tests.e2e.integration_clients import IntegrationClient
from tests.e2e.people import synthetic_admission
from tests.e2e.test_bad_input import invalid, problem, writes_nothing


def ok(r: Any, status: int = 201) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def admit(api: Any, seed: int, facility: str = "F-NORTH", **overrides: Any) -> str:
    r = api.client.post("/participants", json=synthetic_admission(seed, facility=facility,
                                                                  **overrides),
                        headers=api.headers("counselor", facility))
    return str(ok(r)["id"])


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def hold(api: Any, kind: str = "community-meeting", held_at: str | None = None,
         **extra: Any) -> str:
    body = {"facility": "F-NORTH", "unit": "U-1", "kind": kind,
            "held_at": held_at or hours_ago(2), "duration_minutes": 60,
            "facilitator": {"staff": "staff-f1"}, "topic": "house business", **extra}
    return str(ok(api.post("/groups", body))["group_id"])


def roster(api: Any, group: str, lines: list[tuple[str, str]], **headers: str) -> Any:
    return api.post(f"/groups/{group}/attendance",
                    {"records": [{"participant_id": p, "status": s} for p, s in lines]},
                    **headers)


def record(api: Any, pid: str) -> Any:
    return ok(api.get(f"/participants/{pid}"), 200)


def test_programs_serve_group_kinds_requirements_and_follow_up_windows(api):
    [program] = ok(api.get("/programs"), 200)["items"]
    assert "community-meeting" in {k["code"] for k in program["group_kinds"]}
    assert program["stages"][0]["groups_per_week"]["morning-meeting"] == 5
    assert [w["days"] for w in program["follow_up_windows"]] == [30, 90, 180, 365]


def test_a_roster_of_forty_is_written_at_once_with_a_result_per_record(api):
    members = [admit(api, 1000 + n) for n in range(40)]
    discharged = admit(api, 1100)
    ok(api.post(f"/participants/{discharged}/discharge",
                {"type": "administrative-release", "reason": "released"}))
    elsewhere = admit(api, 1101, facility="F-SOUTH")
    newcomer = admit(api, 1102, admitted_on=datetime.now(UTC).date().isoformat())
    unknown = "00000000-0000-4000-8000-000000000000"
    group = hold(api, held_at=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    statuses = ["present", "late", "excused", "absent"]
    lines = [(p, statuses[n % 4]) for n, p in enumerate(members)]
    bad = [(discharged, "present"), (elsewhere, "present"), (newcomer, "present"),
           (unknown, "present"), (members[0], "asleep")]
    got = ok(roster(api, group, lines[1:] + bad), 200)
    assert (got["recorded"], got["unchanged"], got["refused"]) == (39, 0, 5)
    assert got["position"] > 0
    by_id = {r["participant_id"]: r for r in got["results"]}
    assert [by_id[p]["status"] for p, _ in bad] == [409, 404, 409, 404, 422]
    assert by_id[discharged]["problem"]["rule"] == "participant-discharged"
    assert by_id[newcomer]["problem"]["rule"] == "effective-before-admission"
    assert by_id[members[0]]["problem"]["errors"][0]["field"] == "records[43].status"
    assert all(by_id[p]["result"] == "recorded" and by_id[p]["version"] == 3
               for p, _ in lines[1:])
    assert record(api, members[1])["version"] == 3
    assert record(api, members[0])["version"] == 2  # nothing written for a refused line
    # The views keep up past a session's own stream and show the attendance.
    timeline = ok(api.get(f"/participants/{members[1]}/timeline",
                          params={"min_position": got["position"]}), 200)["entries"]
    assert "GroupAttended" in [e["type"] for e in timeline]
    caseload = ok(api.get("/participants", params={"min_position": got["position"],
                                                   "limit": 100}), 200)["items"]
    assert members[1] in {item["id"] for item in caseload}

    # The same roster again is a replay: nothing written, each line "unchanged".
    with writes_nothing(api, members[1]):
        again = ok(roster(api, group, lines[1:]), 200)
    assert (again["recorded"], again["unchanged"]) == (0, 39)
    # A different status for a line already taken is refused, alone.
    changed = ok(roster(api, group, [(members[1], "absent"), (members[0], "present")]), 200)
    assert [r["result"] for r in changed["results"]] == ["refused", "recorded"]
    assert changed["results"][0]["problem"]["rule"] == "attendance-already-recorded"
    # The roster's access log entry, committed with its events, names every line.
    entry = last_access(api)
    assert entry.action == "write" and entry.route == "/groups/{group_id}/attendance"
    assert set(entry.participant_ids) == {members[1], members[0]}
    history = ok(api.get(f"/participants/{members[1]}/history"), 200)["events"]
    attended = [e for e in history if e["type"] == "GroupAttended"]
    assert [e["data"]["status"] for e in attended] == ["late"]
    assert attended[0]["data"]["group_id"] == group



def last_access(api: Any) -> Any:
    column = "notification_id" if api.services.settings.uses_postgres else "rowid"
    row = api.services.store.fetch_one(
        f"SELECT originator_id, originator_version, topic, state FROM tcledger_events"
        f" WHERE topic = ? ORDER BY {column} DESC LIMIT 1", (ACCESS_TOPIC,))
    mapper = api.client.app.state.access_log.mapper
    return mapper.to_domain_event(StoredEvent(
        row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])))


def test_a_roster_retried_with_its_idempotency_key_gets_the_first_answer(api):
    people = [admit(api, 1200 + n) for n in range(3)]
    group = hold(api)
    first = ok(roster(api, group, [(p, "present") for p in people],
                      **{"Idempotency-Key": "roster-1"}), 200)
    with writes_nothing(api):
        again = ok(roster(api, group, [(p, "present") for p in people],
                          **{"Idempotency-Key": "roster-1"}), 200)
    assert again["results"] == first["results"] and again["recorded"] == 3
    problem(roster(api, group, [(people[0], "absent")], **{"Idempotency-Key": "roster-1"}),
            422, "urn:tcledger:problem:idempotency-key-reused")


def test_a_session_retried_with_its_idempotency_key_is_recorded_once(api):
    body = {"facility": "F-NORTH", "kind": "seminar", "held_at": hours_ago(1),
            "facilitator": {"staff": "staff-f1"}}
    first = ok(api.post("/groups", body, **{"Idempotency-Key": "session-1"}))
    with writes_nothing(api):
        again = ok(api.post("/groups", body, **{"Idempotency-Key": "session-1"}), 200)
    assert again["group_id"] == first["group_id"]


def test_bad_sessions_and_rosters_are_refused_whole_and_write_nothing(api):
    pid = admit(api, 1300)
    group = hold(api)
    future = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    base = {"facility": "F-NORTH", "kind": "encounter", "held_at": hours_ago(1),
            "facilitator": {"staff": "staff-f1"}}
    with writes_nothing(api, pid):
        invalid(api.post("/groups", {**base, "held_at": future}), "held_at")
        invalid(api.post("/groups", {**base, "kind": "karaoke"}), "kind")
        invalid(api.post("/groups", {**base, "held_at": "2026-01-01T09:00:00"}), "held_at")
        invalid(api.post("/groups", {**base, "facilitator": {"participant": pid,
                                                             "staff": "staff-f1"}}),
                "facilitator")
        invalid(api.post("/groups", {**base, "facilitator": {}}), "facilitator")
        invalid(api.post("/groups", {**base, "facilitator": {"participant": "x"}}),
                "facilitator.participant")
        invalid(api.post("/groups", {**base, "held_at": future,
                                     "facilitator": {"participant": pid}}), "held_at")
        invalid(api.post("/groups", {**base, "duration_minutes": 0}), "duration_minutes")
        problem(api.post("/groups", {**base, "facility": "F-SOUTH"}), 403)
        invalid(roster(api, group, [(pid, "present"), (pid, "late")]),
                "records[1].participant_id")
        invalid(roster(api, group, [("not-a-uuid", "present")]), "records[0].participant_id")
        invalid(api.post(f"/groups/{group}/attendance", {"records": []}), "records")
        problem(roster(api, "00000000-0000-4000-8000-000000000000", [(pid, "present")]), 404)
        problem(api.client.post(f"/groups/{group}/attendance",
                                json={"records": [{"participant_id": pid, "status": "present"}]},
                                headers=api.headers("counselor", "F-SOUTH")), 404)
        problem(api.post("/groups", base, role="auditor"), 403)


def test_peer_feedback_names_the_peer_until_the_peer_is_erased(api):
    receiver, giver, other = admit(api, 1400), admit(api, 1401), admit(api, 1402)
    infraction = ok(api.post(f"/participants/{receiver}/infractions", {
        "code": "house-rule-hygiene", "observed_at": hours_ago(5), "reason": "peer report",
        "reporter_kind": "peer"}))["infraction_id"]
    answer = ok(api.post(f"/participants/{receiver}/peer-feedback", {
        "kind": "pull-up", "from_participant": giver, "behaviour": "left the bunk unmade",
        "observed_at": hours_ago(5), "infraction_id": infraction, "reason": "house rule"}))
    assert answer["id"] == receiver and answer["feedback_id"]
    events = ok(api.get(f"/participants/{receiver}/history"), 200)["events"]
    assert (events[-1]["type"], events[-1]["position"]) == ("PeerFeedbackRecorded",
                                                            answer["position"])
    ok(api.post(f"/participants/{other}/peer-feedback", {
        "kind": "affirmation", "from_participant": giver, "behaviour": "welcomed a newcomer",
        "observed_at": hours_ago(3), "reason": "peer report"}))
    received = record(api, receiver)["peer_feedback"]
    assert received == [{"feedback_id": answer["feedback_id"], "kind": "pull-up",
                         "side": "received", "peer": {"id": giver},
                         "behaviour": "left the bunk unmade",
                         "observed_at": received[0]["observed_at"],
                         "infraction_id": infraction}]
    given = record(api, giver)["peer_feedback"]
    assert [(f["side"], f["peer"]) for f in given] == [("given", {"id": receiver}),
                                                        ("given", {"id": other})]
    # Neither record holds the other's id, even decrypted: only the sealed link.
    assert giver not in json.dumps(ok(api.get(f"/participants/{receiver}/history"), 200))
    assert receiver not in json.dumps(ok(api.get(f"/participants/{giver}/history"), 200))

    ok(api.post(f"/admin/participants/{giver}/erasure", {"reason": "court order"},
                role="admin"))
    for pid in (receiver, other):
        [feedback] = record(api, pid)["peer_feedback"]
        assert feedback["peer"] == {"id": None, "label": "a peer"}
        assert giver not in json.dumps(record(api, pid))
        replay = ok(api.get(f"/audit/participants/{pid}/replay", role="auditor"), 200)
        assert giver not in json.dumps(replay)


def key_rows(api: Any) -> int:
    return int(api.services.store.fetch_one(
        "SELECT COUNT(*) AS n FROM tcledger_data_keys")["n"])


def test_peer_feedback_refusals_write_nothing_on_either_record(api):
    a, b = admit(api, 1500), admit(api, 1501)
    south = admit(api, 1502, facility="F-SOUTH")
    body = {"kind": "pull-up", "from_participant": b, "behaviour": "late to group",
            "observed_at": hours_ago(2), "reason": "peer report"}
    keys = key_rows(api)
    with writes_nothing(api, a), writes_nothing(api, b):
        invalid(api.post(f"/participants/{a}/peer-feedback", {**body, "from_participant": a}),
                "from_participant")
        invalid(api.post(f"/participants/{a}/peer-feedback", {**body, "kind": "shout"}), "kind")
        invalid(api.post(f"/participants/{a}/peer-feedback", {**body, "from_participant": "x"}),
                "from_participant")
        problem(api.post(f"/participants/{a}/peer-feedback", {**body, "infraction_id": "nope"}),
                404)
        problem(api.post(f"/participants/{a}/peer-feedback", {**body, "from_participant": south}),
                404)
        invalid(api.post(f"/participants/{a}/peer-feedback",
                         {**body, "observed_at": (datetime.now(UTC) + timedelta(days=1))
                          .isoformat()}), "observed_at")
        problem(api.post(f"/participants/{a}/mentors", {
            "mentor_participant_id": b, "reason": "pairing"}), 409)  # not senior
    assert key_rows(api) == keys  # no link key was made for a refused command
    ok(api.post(f"/participants/{a}/peer-feedback", body))
    assert key_rows(api) == keys + 1


def test_a_mentor_is_a_senior_of_the_facility_and_ends_on_both_records(api):
    mentee, senior, peer = admit(api, 1600), admit(api, 1601), admit(api, 1602)
    ok(api.post(f"/participants/{senior}/stage-changes",
                {"direction": "promote", "to_stage": "phase-1", "reason": "criteria met"}))
    with writes_nothing(api, mentee), writes_nothing(api, peer):
        refused = problem(api.post(f"/participants/{mentee}/mentors", {
            "mentor_participant_id": peer, "reason": "pairing"}), 409)
    assert refused["rule"] == "mentor-not-senior"
    assigned = ok(api.post(f"/participants/{mentee}/mentors", {
        "mentor_participant_id": senior, "reason": "pairing"}))
    mentor_id = assigned["mentor_id"]
    mine = record(api, mentee)
    assert mine["mentor"]["peer"] == {"id": senior} and mine["mentor"]["mentor_id"] == mentor_id
    assert [m["peer"] for m in record(api, senior)["mentees"]] == [{"id": mentee}]
    problem(api.post(f"/participants/{mentee}/mentors", {
        "mentor_participant_id": senior, "reason": "again"}), 409,
        "urn:tcledger:rule:mentor-already-assigned")
    ok(api.post(f"/participants/{mentee}/mentors/{mentor_id}/end", {"reason": "promoted"}))
    assert record(api, mentee)["mentor"] is None
    assert record(api, senior)["mentees"] == []
    assert record(api, senior)["mentorships"][0]["ended_on"] is not None
    problem(api.post(f"/participants/{mentee}/mentors/{mentor_id}/end", {"reason": "again"}),
            409, "urn:tcledger:rule:mentor-ended")
    problem(api.post(f"/participants/{mentee}/mentors/unknown/end", {"reason": "x"}), 404)


def test_aftercare_follow_ups_after_discharge_and_recovery_supports(api):
    pid = admit(api, 1700)
    coach = ok(api.post(f"/participants/{pid}/recovery-supports", {
        "kind": "peer-recovery-coach", "provider": "Synthetic Recovery Org",
        "reason": "re-entry plan"}))["support_id"]
    follow_up = {"window": "30d", "method": "phone", "reached": True,
                 "outcomes": {"abstinent": True, "rearrested": False, "stably_housed": None},
                 "reason": "scheduled follow-up"}
    with writes_nothing(api, pid):
        problem(api.post(f"/participants/{pid}/follow-ups", follow_up), 409,
                "urn:tcledger:rule:follow-up-before-discharge")
    assert record(api, pid)["next_follow_up_due"] is None
    ok(api.post(f"/participants/{pid}/discharge",
                {"type": "successful-completion", "reason": "completed"}))
    due = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    assert record(api, pid)["next_follow_up_due"] == {"window": "30d", "due_on": due}
    with writes_nothing(api, pid):
        invalid(api.post(f"/participants/{pid}/follow-ups", {**follow_up, "window": "45d"}),
                "window")
        invalid(api.post(f"/participants/{pid}/follow-ups",
                         {**follow_up, "outcomes": {"lottery": True}}), "outcomes.lottery")
        invalid(api.post(f"/participants/{pid}/follow-ups",
                         {**follow_up, "outcomes": {"abstinent": "yes"}}), "outcomes.abstinent")
        invalid(api.post(f"/participants/{pid}/follow-ups", {**follow_up, "reached": False}),
                "outcomes")
        invalid(api.post(f"/participants/{pid}/recovery-supports",
                         {"kind": "astrology", "reason": "x"}), "kind")
    ok(api.post(f"/participants/{pid}/follow-ups", follow_up))
    alumni = ok(api.post(f"/participants/{pid}/recovery-supports", {
        "kind": "alumni-group", "reason": "joined after discharge"}))["support_id"]
    ok(api.post(f"/participants/{pid}/recovery-supports/{coach}/end", {"reason": "done"}))
    mine = record(api, pid)
    assert mine["next_follow_up_due"]["window"] == "90d"
    [done] = mine["follow_ups"]
    assert done["reached"] is True and done["outcomes"]["abstinent"] is True
    assert done["outcomes"]["employed_or_in_school"] is None
    supports = {s["support_id"]: s for s in mine["recovery_supports"]}
    assert supports[coach]["ended_on"] is not None and supports[alumni]["ended_on"] is None


def test_the_record_shows_attendance_against_the_stage_requirement(api):
    pid = admit(api, 1800)
    for day in range(3):
        group = hold(api, "morning-meeting",
                     (datetime.now(UTC) - timedelta(days=day, hours=1)).isoformat())
        ok(roster(api, group, [(pid, "present" if day else "late")]), 200)
    attendance = record(api, pid)["attendance"]
    assert attendance["days"] == 28 and attendance["stage"] == "orientation"
    mm = attendance["kinds"]["morning-meeting"]
    assert (mm["attended"], mm["late"], mm["required"], mm["below_requirement"]) == (
        3, 1, 20, True)
    assert "morning-meeting" in attendance["below_requirement"]


def test_a_discharge_ends_the_mentorships_on_both_records_at_once(api):
    mentee, senior, other_mentee = admit(api, 1650), admit(api, 1651), admit(api, 1652)
    ok(api.post(f"/participants/{senior}/stage-changes",
                {"direction": "promote", "to_stage": "phase-1", "reason": "criteria met"}))
    first = ok(api.post(f"/participants/{mentee}/mentors", {
        "mentor_participant_id": senior, "reason": "pairing"}))["mentor_id"]
    second = ok(api.post(f"/participants/{other_mentee}/mentors", {
        "mentor_participant_id": senior, "reason": "pairing"}))["mentor_id"]
    assert len(record(api, senior)["mentees"]) == 2
    # A stale If-Match is refused before anything is written on any record.
    with writes_nothing(api, senior), writes_nothing(api, mentee):
        problem(api.post(f"/participants/{senior}/discharge", {
            "type": "administrative-release", "reason": "released"},
            **{"If-Match": '"1"'}), 412)
    done = ok(api.post(f"/participants/{senior}/discharge", {
        "type": "administrative-release", "reason": "released"}))
    for pid, mentor_id in ((mentee, first), (other_mentee, second)):
        mine = record(api, pid)
        assert mine["mentor"] is None  # no discharged mentor is shown
        [m] = mine["mentorships"]
        assert m["mentor_id"] == mentor_id and m["ended_on"] == datetime.now(UTC).date() \
            .isoformat()
        last = ok(api.get(f"/participants/{pid}/history"), 200)["events"][-1]
        assert last["type"] == "MentorEnded" and last["data"]["mentor_id"] == mentor_id
        assert last["reason"] == "ended with the other participant's discharge"
        assert last["position"] < done["position"]  # committed with the discharge
    history = ok(api.get(f"/participants/{senior}/history"), 200)["events"]
    assert [e["type"] for e in history[-3:]] == ["Discharged", "MentorEnded", "MentorEnded"]
    assert history[-1]["position"] == done["position"] and done["version"] == history[-1][
        "version"]
    assert record(api, senior)["mentees"] == []
    # The discharge's access log entries name every record it wrote on.
    entries = all_access(api)
    named = {pid for e in entries if e.route == "/participants/{participant_id}/discharge"
             for pid in e.participant_ids}
    assert named == {senior, mentee, other_mentee}


def test_a_mentee_discharged_by_a_release_movement_leaves_the_mentor_without_a_mentee(api):
    admission = synthetic_admission(1660)
    mentee = str(ok(api.post("/participants", admission))["id"])
    senior = admit(api, 1661)
    ok(api.post(f"/participants/{senior}/stage-changes",
                {"direction": "promote", "to_stage": "phase-1", "reason": "criteria met"}))
    ok(api.post(f"/participants/{mentee}/mentors", {
        "mentor_participant_id": senior, "reason": "pairing"}))
    oms = IntegrationClient(api, "Synthetic Offender Management", ["discharge"],
                            ("movements",))
    ok(oms.post("/ingest/movements", {
        "movement_id": "MV-MENTEE", "doc_number": admission["doc_number"],
        "kind": "released", "effective_at": hours_ago(1)}))
    assert record(api, mentee)["status"] == "discharged"
    assert record(api, senior)["mentees"] == []
    assert record(api, senior)["mentorships"][0]["ended_on"] is not None
    assert record(api, mentee)["mentor"] is None


def test_erasing_a_mentor_ends_the_mentorship_on_the_mentee_record(api):
    mentee, senior = admit(api, 1670), admit(api, 1671)
    ok(api.post(f"/participants/{senior}/stage-changes",
                {"direction": "promote", "to_stage": "phase-1", "reason": "criteria met"}))
    ok(api.post(f"/participants/{mentee}/mentors", {
        "mentor_participant_id": senior, "reason": "pairing"}))
    ok(api.post(f"/admin/participants/{senior}/erasure", {"reason": "court order"},
                role="admin"))
    mine = record(api, mentee)
    assert mine["mentor"] is None
    [m] = mine["mentorships"]
    assert m["peer"] == {"id": None, "label": "a peer"} and m["ended_on"] is not None
    last = ok(api.get(f"/participants/{mentee}/history"), 200)["events"][-1]
    assert last["type"] == "MentorEnded" and last["role"] == "admin"
    assert senior not in json.dumps(mine)


def all_access(api: Any) -> list[Any]:
    mapper = api.client.app.state.access_log.mapper
    return [mapper.to_domain_event(StoredEvent(
        r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"])))
        for r in api.services.store.fetch_all(
            "SELECT originator_id, originator_version, topic, state FROM tcledger_events"
            " WHERE topic = ?", (ACCESS_TOPIC,))]


def test_a_peer_led_group_is_recorded_on_the_peer_record_with_the_session(api):
    peer, member = admit(api, 1680), admit(api, 1681)
    body = {"facility": "F-NORTH", "unit": "U-1", "kind": "encounter",
            "held_at": hours_ago(3), "facilitator": {"participant": peer},
            "topic": "peer-led encounter"}
    held = ok(api.post("/groups", body))
    group = held["group_id"]
    ok(roster(api, group, [(member, "present")]), 200)
    # The session holds only that a peer led it; the peer's record holds the leading.
    [shown] = ok(api.get("/groups", params={"min_position": api.services.log.head()}),
                 200)["items"]
    assert shown["facilitator"] == {"peer": True} and peer not in json.dumps(shown)
    led = record(api, peer)["groups_facilitated"]
    assert [(g["group_id"], g["kind"]) for g in led] == [(group, "encounter")]
    event = ok(api.get(f"/participants/{peer}/history"), 200)["events"][-1]
    assert event["type"] == "GroupFacilitated" and event["position"] < held["position"]
    session_state = api.services.ledger.group(__import__("uuid").UUID(group))
    assert session_state.peer_led and session_state.facilitator_staff_id is None
    # Refused, with nothing written on the peer's record and no session: a discharged
    # peer, one of another facility, an unknown one, one admitted after the session.
    gone, south = admit(api, 1682), admit(api, 1683, facility="F-SOUTH")
    ok(api.post(f"/participants/{gone}/discharge", {"type": "administrative-release",
                                                    "reason": "released"}))
    late = admit(api, 1684, admitted_on=datetime.now(UTC).date().isoformat())
    early = {**body, "held_at": (datetime.now(UTC) - timedelta(days=2)).isoformat()}
    before = len(ok(api.get("/groups", params={"min_position": api.services.log.head()}),
                    200)["items"])
    for who, status, rule in ((gone, 409, "participant-discharged"), (south, 404, None),
                              ("00000000-0000-4000-8000-000000000000", 404, None),
                              (late, 409, "effective-before-admission")):
        with writes_nothing(api, *([who] if status == 409 else [])):
            refused = problem(api.post("/groups", {**early, "facilitator": {
                "participant": who}}), status)
        assert refused.get("rule") == rule
    assert len(ok(api.get("/groups", params={"min_position": api.services.log.head()}),
                  200)["items"]) == before
