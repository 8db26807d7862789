"""Corrections and voids through HTTP keep the record consistent: the corrected state shows
what the first entry's rules would allow, or the amendment is a clear 4xx that wrote nothing.
Runs on SQLite and PostgreSQL through the `api` fixture; all people are synthetic."""

from __future__ import annotations

from typing import Any

from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import days_ago, moment_ago, ok
from tests.e2e.test_bad_input import invalid, problem, writes_nothing


def admitted(api: Any, seed: int) -> tuple[str, str]:
    pid = ok(api.post("/participants", synthetic_admission(seed, days_ago=200)))["id"]
    return pid, f"/participants/{pid}"


def history(api: Any, pid: str) -> list[dict[str, Any]]:
    return ok(api.get(f"/participants/{pid}/history"), 200)["events"]  # type: ignore[no-any-return]


def version_of(api: Any, pid: str, kind: str) -> int:
    return [e["version"] for e in history(api, pid) if e["type"] == kind][-1]


def amend(api: Any, base: str, version: int, action: str = "correct",
          **changes: Any) -> Any:
    return api.post(f"{base}/corrections", {"supersedes_version": version, "action": action,
                                            "changes": changes, "reason": "entered wrongly"})


def test_a_positive_corrected_to_negative_names_no_substance(api):
    pid, base = admitted(api, 301)
    ok(api.post(f"{base}/specimens", {"specimen_id": "SYN-SPC-301", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(6)}))
    ok(api.post(f"{base}/specimens/SYN-SPC-301/result", {
        "result": "positive", "substances": [{"code": "thc", "level_ng_ml": 80}],
        "lab": "Synthetic Reference Lab", "resulted_at": moment_ago(5)}))
    resulted = version_of(api, pid, "TestResulted")

    with writes_nothing(api, pid):
        body = problem(amend(api, base, resulted, result="negative",
                             substances=[{"code": "thc", "level_ng_ml": 80}]), 409,
                       "urn:tcledger:rule:result-substances-inconsistent")
        assert body["rule"] == "result-substances-inconsistent"

    written = ok(amend(api, base, resulted, result="negative"))
    record = ok(api.get(f"/participants/{pid}"), 200)
    assert record["version"] == written["version"]
    (specimen,) = record["specimens"]
    assert (specimen["result"], specimen["validity"], specimen["substances"]) == (
        "negative", "valid", [])
    assert "result_unconfirmed" not in record["flags"]
    correction = history(api, pid)[-1]
    assert correction["type"] == "EntryCorrected"
    assert correction["data"]["changes"] == {"result": "negative", "substances": []}


def test_a_discharge_type_correction_rederives_its_category(api):
    pid, base = admitted(api, 302)
    ok(api.post(f"{base}/discharge", {"type": "successful-completion",
                                      "effective_on": days_ago(10),
                                      "reason": "program completed"}))
    discharged = version_of(api, pid, "Discharged")

    with writes_nothing(api, pid):
        invalid(amend(api, base, discharged, category="therapeutic"), "changes.category")

    ok(amend(api, base, discharged, discharge_type="therapeutic-termination"))
    discharge = ok(api.get(f"/participants/{pid}"), 200)["discharge"]
    assert discharge["type"] == "therapeutic-termination"
    assert (discharge["category"], discharge["successful"]) == ("therapeutic", False)
    assert discharge["reinstatement_eligible_on"] is not None

    with writes_nothing(api, pid):
        problem(amend(api, base, discharged, effective_at=moment_ago(300)), 409,
                "urn:tcledger:rule:effective-before-admission")


def test_voiding_a_promotion_revokes_the_later_stages_privileges(api):
    pid, base = admitted(api, 303)
    for stage, when in (("phase-1", 170), ("phase-2", 80)):
        ok(api.post(f"{base}/stage-changes", {"direction": "promote", "to_stage": stage,
                                              "effective_on": days_ago(when),
                                              "reason": "criteria met"}))
    for privilege in ("recreation", "tv-room"):
        ok(api.post(f"{base}/privileges", {"action": "grant", "privilege": privilege,
                                           "effective_on": days_ago(70), "reason": "earned"}))
    first, second = [e["version"] for e in history(api, pid) if e["type"] == "StagePromoted"]

    with writes_nothing(api, pid):
        body = problem(amend(api, base, first, action="void"), 409,
                       "urn:tcledger:rule:later-entries-depend")
        assert f"version {second}" in body["detail"]

    written = ok(amend(api, base, second, action="void"))
    record = ok(api.get(f"/participants/{pid}"), 200)
    assert record["version"] == written["version"]
    assert record["stage"] == "phase-1"
    assert record["privileges"] == ["recreation"]  # tv-room is not allowed in phase-1
    voided, revoked = history(api, pid)[-2:]
    assert (voided["type"], voided["data"]["supersedes_version"]) == ("EntryVoided", second)
    assert revoked["type"] == "PrivilegeRevoked"
    assert revoked["data"]["privilege"] == "tv-room"
    assert revoked["data"]["caused_by"] == f"entry-voided:v{voided['version']}"

    with writes_nothing(api, pid):  # the revocation goes only with the void that caused it
        problem(amend(api, base, revoked["version"], action="void"), 409,
                "urn:tcledger:rule:entry-is-consequence")
