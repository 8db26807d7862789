"""Program statistics through HTTP agree with what was written, and survive corrections,
erasure and a rebuild."""

from __future__ import annotations

from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import days_ago, moment_ago, ok


def stats(api, position, role="supervisor", **params):
    return api.client.get("/programs/tc-default/stats",
                          params={"min_position": position, "from": days_ago(400),
                                  "to": days_ago(0), **params},
                          headers=api.headers(role))


def test_statistics_of_a_generated_facility(api):
    ids = [ok(api.post("/participants", synthetic_admission(s, days_ago=200)))["id"]
           for s in range(6)]
    supervisor = {"role": "supervisor"}
    for pid in ids[:4]:
        ok(api.post(f"/participants/{pid}/stage-changes", {
            "direction": "promote", "to_stage": "phase-1", "effective_on": days_ago(150),
            "reason": "criteria met"}, **supervisor))
    ok(api.post(f"/participants/{ids[0]}/stage-changes", {
        "direction": "promote", "to_stage": "phase-2", "effective_on": days_ago(50),
        "reason": "criteria met"}, **supervisor))
    for n, (pid, result) in enumerate(zip(ids, ["positive", "negative", "negative",
                                                "negative", "refused"], strict=False)):
        ok(api.post(f"/participants/{pid}/specimens", {
            "specimen_id": f"SPC-ST{n}", "method": "urine", "test_reason": "random",
            "collected_at": moment_ago(3)}))
        ok(api.post(f"/participants/{pid}/specimens/SPC-ST{n}/result", {
            "result": result, "substances": ["thc"] if result == "positive" else []}))
    infraction = ok(api.post(f"/participants/{ids[1]}/infractions", {
        "code": "contraband-minor", "observed_at": moment_ago(20), "reason": "search"}))
    ok(api.post(f"/participants/{ids[1]}/sanctions", {
        "sanction": "loss-of-privilege", "infraction_id": infraction["infraction_id"],
        "effective_on": days_ago(19), "reason": "graded response"}))
    ok(api.post(f"/participants/{ids[2]}/discharge", {
        "type": "successful-completion", "effective_on": days_ago(5), "reason": "completed"}))
    last = ok(api.post(f"/participants/{ids[3]}/discharge", {
        "type": "voluntary-withdrawal", "effective_on": days_ago(4), "reason": "left"}))
    other = ok(api.post("/participants", synthetic_admission(90, facility="F-SOUTH"),
                        facility="F-SOUTH"))

    figures = ok(stats(api, other["position"]), 200)
    assert figures["facility"] == "F-NORTH" and figures["admissions"] == 6
    assert figures["census_by_stage"] == {"orientation": 2, "phase-1": 1, "phase-2": 1}
    assert figures["discharges_by_type"] == {"successful-completion": 1,
                                             "voluntary-withdrawal": 1}
    assert figures["completion_rate"] == 0.5
    assert figures["median_days_per_stage"] == {"orientation": 50.0, "phase-1": 100.0}
    assert figures["tests_by_result"] == {"negative": 3, "positive": 1, "refused": 1}
    assert figures["positive_rate"] == 0.2
    assert figures["sanctions_by_severity"] == {"4": 1}
    assert ok(stats(api, last["position"], role="auditor"), 200)["admissions"] == 7

    # A correction replaces what the record counted; an erasure takes it away.
    history = ok(api.get(f"/participants/{ids[0]}/history"), 200)["events"]
    resulted = next(e["version"] for e in history if e["type"] == "TestResulted")
    ok(api.post(f"/participants/{ids[0]}/corrections", {
        "supersedes_version": resulted, "action": "correct",
        "changes": {"result": "negative", "substances": []}, "reason": "lab error"}))
    erased = ok(api.post(f"/admin/participants/{ids[4]}/erasure", {"reason": "retention"},
                         role="admin"))
    after = ok(stats(api, erased["position"]), 200)
    assert after["tests_by_result"] == {"negative": 4}
    assert after["admissions"] == 5 and after["positive_rate"] == 0.0

    runner = api.client.app.state.runner
    before = api.services.store.fetch_all(
        "SELECT * FROM tcledger_stats_counts ORDER BY program, facility, day, measure, code, "
        "value")
    runner.rebuild()
    rebuilt = api.services.store.fetch_all(
        "SELECT * FROM tcledger_stats_counts ORDER BY program, facility, day, measure, code, "
        "value")
    assert [dict(r) for r in rebuilt] == [dict(r) for r in before]


def test_statistics_scope_and_inputs(api):
    assert stats(api, 0, facility="F-SOUTH").status_code == 403
    assert stats(api, 0, role="admin").status_code == 403
    bad = api.client.get("/programs/tc-default/stats", params={"from": "2026-05-01",
                                                             "to": "2026-01-01"},
                         headers=api.headers("auditor"))
    assert bad.status_code == 422
    assert api.client.get("/programs/nope/stats",
                          headers=api.headers("auditor")).status_code == 404
