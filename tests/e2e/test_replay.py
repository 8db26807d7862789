"""The audit replay over HTTP, on SQLite and PostgreSQL: it agrees with `as_of` reads at
every event of a long generated history, pages without losing or repeating an event, shows
corrections and voids against what they supersede, and refuses what reads refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.long_history import write_long_history
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import ok

PAGE_FIELDS = ("version", "type", "data", "actor", "role", "recorded_at", "effective_at",
               "reason", "source", "correlation_id", "causation_id", "late_entry", "position")


def replay_page(api: Any, pid: str, role: str = "auditor", **params: Any) -> dict[str, Any]:
    return ok(api.client.get(f"/audit/participants/{pid}/replay", params=params,
                             headers=api.headers(role)), 200)


def whole_replay(api: Any, pid: str, limit: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = replay_page(api, pid, after_version=after, limit=limit)
        assert len(page["events"]) <= limit
        events += page["events"]
        after = page["next_after_version"]
    return events


def as_of(api: Any, pid: str, moment: str) -> dict[str, Any]:
    return ok(api.client.get(f"/participants/{pid}", params={"as_of": moment},
                             headers=api.headers("auditor")), 200)


def seen_at(times: list[datetime], k: int) -> int:
    """Index of the last event an as_of read at event k's recorded time includes: as_of
    folds the stream up to the first event recorded after that time, so an event sharing
    the same instant is included too."""
    j = k
    while j + 1 < len(times) and times[j + 1] <= times[k]:
        j += 1
    return j


def test_replay_agrees_with_as_of_at_every_event(api):
    pid = write_long_history(api, seed=41, events=300)
    events = whole_replay(api, pid, limit=37)
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) > 300

    times = [datetime.fromisoformat(e["recorded_at"]) for e in events]
    # as_of cuts the stream at the first event recorded after the moment asked for, so the
    # two agree at every event only while recorded times do not go back along the stream.
    assert times == sorted(times)
    for k, event in enumerate(events):
        assert event["state"]["version"] == event["version"]
        assert event["state"]["recorded_at"] == event["recorded_at"]
        assert as_of(api, pid, event["recorded_at"]) == events[seen_at(times, k)]["state"], \
            f"version {event['version']} ({event['type']})"

    current = ok(api.get(f"/participants/{pid}", role="auditor"), 200)
    assert events[-1]["state"]["version"] == current["version"]
    assert events[-1]["state"]["specimens"] == current["specimens"]

    # The generated history exercises what the replay must show.
    types = {e["type"] for e in events}
    assert {"StagePromoted", "StageRegressed", "StageHeld", "PrivilegeGranted",
            "PrivilegeSuspended", "PrivilegeRestored", "PrivilegeRevoked",
            "InfractionRecorded", "SanctionImposed", "SanctionCompleted", "SpecimenCollected",
            "TestResulted", "ResultConfirmed", "EntryCorrected", "EntryVoided",
            "AmendmentRequested", "AmendmentDenied", "DisagreementFiled",
            "Discharged"} <= types
    assert any(e["late_entry"] for e in events)
    assert any(e["data"].get("override") for e in events if e["type"] == "StagePromoted")


def test_replay_shows_what_history_shows_and_pages_alike(api):
    pid = write_long_history(api, seed=43, events=120, admitted_days_ago=300)
    walked = whole_replay(api, pid, limit=11)
    assert whole_replay(api, pid, limit=200) == walked
    # A page asked for out of order (no checkpoint to start from) folds to the same states.
    assert replay_page(api, pid, after_version=57, limit=5)["events"] == walked[57:62]

    history = ok(api.get(f"/participants/{pid}/history", role="auditor"), 200)["events"]
    assert [{f: e[f] for f in PAGE_FIELDS} for e in walked] == history


def test_corrections_and_voids_show_what_they_supersede(api):
    pid = write_long_history(api, seed=47, events=150, admitted_days_ago=300)
    events = whole_replay(api, pid, limit=200)
    by_version = {e["version"]: e for e in events}
    amended = [e for e in events if e["type"] in ("EntryCorrected", "EntryVoided")]
    assert {e["supersedes"]["action"] for e in amended} == {"correct", "void"}

    for entry in events:
        if entry["type"] not in ("EntryCorrected", "EntryVoided"):
            assert entry["supersedes"] is None
        for mark in entry["superseded_by"]:
            later = by_version[mark["version"]]
            assert later["version"] > entry["version"]
            assert later["supersedes"]["version"] == entry["version"]

    for entry in amended:
        replaced = entry["supersedes"]
        original = by_version[replaced["version"]]
        assert replaced["type"] == original["type"]
        assert replaced["data"] == original["data"]
        assert replaced["effective_at"] == original["effective_at"]
        assert {"version": entry["version"], "action": replaced["action"]} \
            in original["superseded_by"]
        if replaced["action"] == "void":
            assert replaced["changes"] == {}
            continue
        assert {k: v["after"] for k, v in replaced["changes"].items()} \
            == entry["data"]["changes"]
        for name, change in replaced["changes"].items():
            assert change["before"] == replaced["in_effect"][name]

    # The discharge's referral, corrected after the discharge: before and after, side by side.
    fixed = amended[-1]["supersedes"]
    assert fixed["type"] == "Discharged"
    assert fixed["changes"] == {"aftercare_referral": {
        "before": "Synthetic Outpatient Clinic", "after": "Synthetic Recovery House"}}
    before, after = events[-2]["state"], events[-1]["state"]
    assert before["discharge"]["aftercare_referral"] == "Synthetic Outpatient Clinic"
    assert after["discharge"]["aftercare_referral"] == "Synthetic Recovery House"


def test_a_correction_changes_the_states_from_its_own_version_on(api):
    pid = ok(api.post("/participants", synthetic_admission(51, days_ago=40)))["id"]
    base = f"/participants/{pid}"
    infraction = ok(api.post(f"{base}/infractions", {
        "code": "house-rule-lateness", "reason": "reported by staff",
        "observed_at": (datetime.now(UTC) - timedelta(days=20)).isoformat(),
        "description": "Late to morning meeting"}))
    ok(api.post(f"{base}/corrections", {
        "supersedes_version": infraction["version"], "action": "correct",
        "changes": {"description": "Late to the evening seminar"},
        "reason": "the meeting was misnamed"}))
    ok(api.post(f"{base}/corrections", {
        "supersedes_version": infraction["version"], "action": "correct",
        "changes": {"description": "Late to the evening seminar by ten minutes"},
        "reason": "the length was left out"}))
    events = replay_page(api, pid)["events"]
    recorded, first, second = events[-3:]
    assert recorded["late_entry"] is True  # observed 20 days before it was recorded

    def described(event: dict[str, Any]) -> str:
        return str(event["state"]["infractions"][0]["description"])

    assert described(recorded) == "Late to morning meeting"
    assert described(first) == "Late to the evening seminar"
    assert described(second) == "Late to the evening seminar by ten minutes"
    assert [m["version"] for m in recorded["superseded_by"]] \
        == [first["version"], second["version"]]
    assert second["supersedes"]["data"]["description"] == "Late to morning meeting"
    assert second["supersedes"]["in_effect"]["description"] == "Late to the evening seminar"
    assert second["supersedes"]["changes"] == {"description": {
        "before": "Late to the evening seminar",
        "after": "Late to the evening seminar by ten minutes"}}
    # Before the correction was recorded, the record showed the original: so does as_of.
    assert as_of(api, pid, recorded["recorded_at"])["infractions"][0]["description"] \
        == "Late to morning meeting"


def test_the_last_page_ends_the_walk(api):
    pid = ok(api.post("/participants", synthetic_admission(53)))["id"]
    version = ok(api.get(f"/participants/{pid}"), 200)["version"]
    page = replay_page(api, pid, limit=1)
    assert page["version"] == version and page["next_after_version"] == (
        1 if version > 1 else None)
    response = api.client.get(f"/audit/participants/{pid}/replay",
                              headers=api.headers("auditor"))
    assert response.headers["etag"] == f'"{version}"'
    end = replay_page(api, pid, after_version=version)
    assert end["events"] == [] and end["next_after_version"] is None


# --- who may read, and bad input -----------------------------------------------------------

@pytest.fixture
def pid(api):
    return ok(api.post("/participants", synthetic_admission(61)))["id"]


def problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == kind
    return body


@pytest.mark.parametrize("role", ["auditor", "supervisor"])
def test_auditors_and_the_facility_supervisor_may_replay(api, pid, role):
    assert replay_page(api, pid, role=role)["events"][0]["type"] == "ParticipantAdmitted"


@pytest.mark.parametrize("role", ["counselor", "integration", "admin"])
def test_other_roles_are_403(api, pid, role):
    problem(api.client.get(f"/audit/participants/{pid}/replay", headers=api.headers(role)),
            403, "urn:tcledger:problem:forbidden")


def test_without_a_token_it_is_401(api, pid):
    problem(api.client.get(f"/audit/participants/{pid}/replay"), 401,
            "urn:tcledger:problem:unauthenticated")


def test_another_facility_supervisor_gets_404(api, pid):
    problem(api.client.get(f"/audit/participants/{pid}/replay",
                           headers=api.headers("supervisor", facility="F-SOUTH")),
            404, "urn:tcledger:problem:not-found")


def test_an_unknown_participant_is_404(api):
    problem(api.client.get("/audit/participants/00000000-0000-4000-8000-000000000000/replay",
                           headers=api.headers("auditor")), 404,
            "urn:tcledger:problem:not-found")


def test_a_malformed_participant_id_is_422(api):
    body = problem(api.client.get("/audit/participants/not-a-uuid/replay",
                                  headers=api.headers("auditor")), 422,
                   "urn:tcledger:problem:validation")
    assert body["errors"][0]["field"] == "participant_id"


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"),
    ({"limit": 201}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"after_version": -1}, "after_version"),
    ({"after_version": "first"}, "after_version"),
    ({"after_version": 2 ** 40}, "after_version"),
    ({"after_version": 999}, "after_version"),
], ids=["limit-0", "limit-201", "limit-text", "after-negative", "after-text", "after-huge",
        "after-beyond-the-record"])
def test_a_bad_page_is_422_naming_the_field(api, pid, params, field):
    body = problem(api.client.get(f"/audit/participants/{pid}/replay", params=params,
                                  headers=api.headers("auditor")), 422,
                   "urn:tcledger:problem:validation")
    assert [e["field"].removeprefix("query.") for e in body["errors"]] == [field]


@pytest.mark.parametrize("role", ["auditor", "supervisor"])
def test_an_erased_participant_is_410(api, pid, role):
    replay_page(api, pid, limit=1)  # leaves a checkpoint behind
    ok(api.post(f"/admin/participants/{pid}/erasure", {"reason": "retention expired"},
                role="admin"))
    problem(api.client.get(f"/audit/participants/{pid}/replay", params={"after_version": 1},
                           headers=api.headers(role)), 410, "urn:tcledger:problem:erased")
