"""GET /groups over HTTP on SQLite and PostgreSQL: sessions with their attendance counted by
status, filters, keyset pages, the facility scope of the token, and counts that follow
corrections, voids and erasures. All people are synthetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.test_bad_input import invalid, problem
from tests.e2e.test_community import admit, ok, roster

NOW = datetime.now(UTC)


def session(api: Any, kind: str, days: float, facility: str = "F-NORTH", unit: str = "U-1",
            **extra: Any) -> str:
    body = {"facility": facility, "unit": unit, "kind": kind,
            "held_at": (NOW - timedelta(days=days)).isoformat(), "duration_minutes": 45,
            "facilitator": {"staff": "staff-f1"}, "topic": "synthetic topic", **extra}
    r = api.client.post("/groups", json=body, headers=api.headers("counselor", facility))
    return str(ok(r)["group_id"])


def sessions(api: Any, role: str = "counselor", facility: str = "F-NORTH",
             **params: Any) -> Any:
    return api.client.get("/groups", params=params, headers=api.headers(role, facility))


def test_sessions_are_listed_with_their_attendance_and_filtered(api):
    people = [admit(api, 3000 + n) for n in range(4)]
    south = admit(api, 3010, facility="F-SOUTH")
    seminar = session(api, "seminar", 3)
    meeting = session(api, "community-meeting", 2, unit="U-2")
    empty = session(api, "encounter", 1)
    southern = session(api, "seminar", 2, facility="F-SOUTH")
    ok(roster(api, seminar, list(zip(people, ["present", "late", "excused", "absent"],
                                     strict=True))), 200)
    ok(roster(api, meeting, [(p, "present") for p in people]), 200)
    last = ok(api.client.post(f"/groups/{southern}/attendance", json={"records": [
        {"participant_id": south, "status": "late"}]},
        headers=api.headers("counselor", "F-SOUTH")), 200)["position"]

    page = ok(sessions(api, min_position=last), 200)
    assert [s["group_id"] for s in page["items"]] == [seminar, meeting, empty]
    assert page["next_cursor"] is None
    first = page["items"][0]
    assert first["attendance"] == {"present": 1, "late": 1, "excused": 1, "absent": 1,
                                   "attended": 2, "total": 4}
    assert (first["kind"], first["facility"], first["unit"], first["duration_minutes"]) == (
        "seminar", "F-NORTH", "U-1", 45)
    assert first["facilitator"] == {"staff": "staff-f1"}
    assert first["topic"] == "synthetic topic"
    assert page["items"][1]["attendance"]["present"] == 4
    assert page["items"][2]["attendance"]["total"] == 0
    # Filters: unit, kind, days (UTC, inclusive).
    assert [s["group_id"] for s in ok(sessions(api, unit="U-2"), 200)["items"]] == [meeting]
    assert [s["group_id"] for s in ok(sessions(api, kind="seminar"), 200)["items"]] == [
        seminar]
    day = (NOW - timedelta(days=2)).date().isoformat()
    assert [s["group_id"] for s in ok(sessions(api, **{"from": day, "to": day}), 200)[
        "items"]] == [meeting]
    # The token's facility scopes the list; an auditor sees every facility.
    assert ok(sessions(api, facility="F-SOUTH"), 200)["items"][0]["group_id"] == southern
    assert ok(api.client.get("/groups", params={"facility": "F-SOUTH"},
                             headers=api.headers("counselor")), 200)["items"] == []
    everything = ok(sessions(api, role="auditor"), 200)["items"]
    assert {s["group_id"] for s in everything} == {seminar, meeting, empty, southern}
    assert ok(api.client.get("/groups", params={"facility": "F-SOUTH"},
                             headers=api.headers("auditor")), 200)["items"][0][
        "attendance"]["late"] == 1


def test_pages_follow_each_other_with_the_cursor_and_bad_queries_are_refused(api):
    made = [session(api, "morning-meeting", 10 - n * 0.5) for n in range(7)]
    seen, cursor, head = [], None, api.services.log.head()
    while True:
        params = {"limit": 3, "min_position": head, **({"cursor": cursor} if cursor else {})}
        page = ok(sessions(api, **params), 200)
        seen += [s["group_id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    invalid(sessions(api, cursor="not-a-cursor"), "cursor")
    invalid(sessions(api, cursor="WyJ4IiwgdHJ1ZV0="), "cursor")  # ["x", true]
    invalid(sessions(api, **{"from": "2026-02-01", "to": "2026-01-01"}), "from")
    invalid(sessions(api, limit=0), "limit")
    invalid(sessions(api, **{"from": "yesterday"}), "from")
    problem(sessions(api, role="admin"), 403)
    problem(api.client.get("/groups"), 401)


def test_counts_follow_corrections_voids_and_erasures(api):
    a, b, c = (admit(api, 3100 + n) for n in range(3))
    group = session(api, "process-group", 1)
    ok(roster(api, group, [(a, "present"), (b, "present"), (c, "absent")]), 200)
    history = ok(api.get(f"/participants/{a}/history"), 200)["events"]
    line = next(e["version"] for e in history if e["type"] == "GroupAttended")
    ok(api.post(f"/participants/{a}/corrections", {
        "supersedes_version": line, "action": "correct", "changes": {"status": "late"},
        "reason": "came in after the start"}))
    history = ok(api.get(f"/participants/{c}/history"), 200)["events"]
    line = next(e["version"] for e in history if e["type"] == "GroupMissed")
    ok(api.post(f"/participants/{c}/corrections", {
        "supersedes_version": line, "action": "void", "reason": "entered on the wrong roster"}))
    last = ok(api.post(f"/admin/participants/{b}/erasure", {"reason": "court order"},
                       role="admin"))["position"]
    [shown] = ok(sessions(api, min_position=last), 200)["items"]
    assert shown["attendance"] == {"present": 0, "late": 1, "excused": 0, "absent": 0,
                                   "attended": 1, "total": 1}


def test_listing_sessions_reads_no_record_and_is_no_access_log_entry(api):
    """Like the statistics, the list names no participant: the access log (who read whose
    record) has nothing to record for it; the roster that wrote the counts is logged."""
    from tests.e2e.test_community import all_access

    pid = admit(api, 3200)
    group = session(api, "seminar", 1)
    ok(roster(api, group, [(pid, "present")]), 200)
    before = len(all_access(api))
    ok(sessions(api, min_position=api.services.log.head()), 200)
    assert len(all_access(api)) == before
    assert any(e.route == "/groups/{group_id}/attendance" and e.participant_ids == [pid]
               for e in all_access(api))
