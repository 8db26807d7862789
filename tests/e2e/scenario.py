"""A full participant lifecycle driven through HTTP, reused by the lifecycle, at-rest and
logging tests. Returns the personal values it wrote, for tests that look for leaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.people import synthetic_admission

REASONS = {
    "admit": "Referred after a synthetic sentencing hearing zq7",
    "promote": "Met every phase criterion per peer review zq8",
    "regress": "Repeated contraband concerns noted by staff zq9",
    "sanction": "Learning experience for hygiene lapse zq10",
    "discharge": "Therapeutic termination after repeated violations zq11",
    "correct": "Description mistyped by recording officer zq12",
}


def days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


def moment_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def run_lifecycle(api: Any, seed: int = 7) -> dict[str, Any]:
    admission = synthetic_admission(seed, days_ago=200, reason=REASONS["admit"])
    pid = ok(api.post("/participants", admission))["id"]
    base = f"/participants/{pid}"
    ok(api.post(f"{base}/privileges", {"action": "grant", "privilege": "commissary",
                                       "effective_on": days_ago(190), "reason": "earned"}))
    ok(api.post(f"{base}/stage-changes", {"direction": "promote", "to_stage": "phase-1",
                                          "effective_on": days_ago(150),
                                          "reason": REASONS["promote"]}))
    ok(api.post(f"{base}/privileges", {"action": "grant", "privilege": "recreation",
                                       "effective_on": days_ago(140), "reason": "earned"}))
    infraction = ok(api.post(f"{base}/infractions", {
        "code": "house-rule-hygiene", "observed_at": moment_ago(100),
        "description": "Bunk area left unkempt twice", "reason": "reported by peer"}))
    sanction = ok(api.post(f"{base}/sanctions", {
        "sanction": "learning-experience", "infraction_id": infraction["infraction_id"],
        "due_on": days_ago(90), "effective_on": days_ago(100),
        "reason": REASONS["sanction"]}))
    ok(api.post(f"{base}/sanctions/{sanction['sanction_id']}/completion",
                {"reason": "essay delivered at community meeting", "effective_on": days_ago(95)}))
    ok(api.post(f"{base}/stage-changes", {"direction": "regress", "to_stage": "orientation",
                                          "effective_on": days_ago(60),
                                          "reason": REASONS["regress"]}))
    ok(api.post(f"{base}/specimens", {"specimen_id": f"SPC-{seed}-1", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(30),
                                      "observed_by": "staff-obs-2"}))
    ok(api.post(f"{base}/specimens/SPC-{seed}-1/result", {
        "result": "positive", "substances": [{"code": "synthetic-cannabinoids",
                                              "level_ng_ml": 42}],
        "lab": "Synthetic Reference Lab", "resulted_at": moment_ago(28)}))
    ok(api.post(f"{base}/specimens/SPC-{seed}-1/confirmation", {
        "confirmed": True, "method": "LC-MS-MS", "substances": ["synthetic-cannabinoids"]}))
    consent = ok(api.post(f"{base}/consents", {
        "recipient": "Synthetic Parole Office", "purpose": "parole supervision",
        "categories": ["discharge", "drug-tests"], "expires_on": days_ago(-365)}))
    history = ok(api.get(f"{base}/history"), 200)["events"]
    infraction_version = next(e["version"] for e in history
                              if e["type"] == "InfractionRecorded")
    ok(api.post(f"{base}/corrections", {
        "supersedes_version": infraction_version, "action": "correct",
        "changes": {"description": "Bunk area left unkempt once"},
        "reason": REASONS["correct"]}))
    before_discharge = datetime.now(UTC).isoformat()
    ok(api.post(f"{base}/discharge", {"type": "therapeutic-termination",
                                      "reason": REASONS["discharge"],
                                      "aftercare_referral": "Synthetic Outpatient Clinic"}))
    return {"id": pid, "admission": admission, "consent_id": consent["consent_id"],
            "before_discharge": before_discharge,
            "secrets": [admission["given_name"], admission["family_name"],
                        admission["doc_number"], "synthetic-cannabinoids",
                        "Bunk area left unkempt", *REASONS.values()]}
