"""A long generated history of one synthetic participant, written through HTTP.

Each step reads the record and picks, at random (seeded), a command the program's rules
allow: promotions (some early, by a supervisor's override), holds, regressions that revoke
privileges, privilege grants, suspensions, restorations and revocations, infractions (some
observed days before they are recorded: late entries) with graded sanctions that suspend
privileges and are later completed, failed or rescinded, drug tests with results and
confirmations, incentives and job functions, corrections and voids of earlier entries, and
one amendment request that is denied and answered by a statement of disagreement. It ends
with a discharge and a correction recorded after it.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import ok

HOUSE = ["house-rule-hygiene", "house-rule-lateness", "disrespect"]
MAJOR = ["contraband-minor", "threat", "positive-test"]
SANCTIONS = {"house": ["talk-to", "pull-up", "dealt-with", "learning-experience", "haircut"],
             "major": ["formal-warning", "ban", "loss-of-privilege", "behavioural-contract",
                       "general-meeting"]}


class HistoryWriter:
    def __init__(self, api: Any, seed: int, admitted_days_ago: int) -> None:
        self.api, self.rng = api, random.Random(seed)
        self.today = datetime.now(UTC).date()
        self.day = self.today - timedelta(days=admitted_days_ago)
        self.policy = ok(api.get("/programs/tc-default"), 200)
        self.stages = [s["code"] for s in self.policy["stages"]]
        self.stage = {s["code"]: s for s in self.policy["stages"]}
        admission = synthetic_admission(seed, days_ago=admitted_days_ago,
                                        reason="admitted on a synthetic referral")
        self.pid = ok(api.post("/participants", admission))["id"]
        self.base = f"/participants/{self.pid}"
        self.record: dict[str, Any] = {}
        self.specimens = 0
        self.amendment: str | None = None

    # --- plumbing ------------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any], role: str = "counselor") -> dict[str, Any]:
        return ok(self.api.post(f"{self.base}{path}", body, role=role))

    def read(self) -> dict[str, Any]:
        self.record = ok(self.api.get(self.base), 200)
        return self.record

    def history(self, *types: str) -> list[dict[str, Any]]:
        events = ok(self.api.get(f"{self.base}/history"), 200)["events"]
        superseded = {e["data"]["supersedes_version"] for e in events
                      if e["type"] in ("EntryCorrected", "EntryVoided")}
        return [e for e in events if e["type"] in types and e["version"] not in superseded]

    def on(self) -> str:
        return self.day.isoformat()

    def at(self, hour: int, back_days: int = 0) -> str:
        day = max(self.day - timedelta(days=back_days), date.fromisoformat(
            self.record["admitted_on"]))
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()

    # --- the steps -----------------------------------------------------------------------

    def write(self, events: int) -> str:
        steps = [self.promote, self.hold, self.regress, self.grant, self.suspend,
                 self.restore, self.revoke, self.infraction, self.close_sanction,
                 self.drug_test, self.incentive, self.job, self.correct, self.void,
                 self.amend]
        weights = [5, 1, 1, 6, 3, 3, 2, 6, 5, 6, 2, 2, 3, 2, 1]
        while self.read()["version"] < events:
            step = self.rng.choices(steps, weights)[0]
            if step():
                self.advance()
        self.post("/discharge", {"type": "successful-completion", "effective_on": self.on(),
                                 "reason": "completed the program",
                                 "aftercare_referral": "Synthetic Outpatient Clinic"})
        discharge = self.history("Discharged")[-1]
        self.post("/corrections", {"supersedes_version": discharge["version"],
                                   "action": "correct",
                                   "changes": {"aftercare_referral": "Synthetic Recovery House"},
                                   "reason": "referral recorded against the wrong provider"})
        return str(self.pid)

    def advance(self) -> None:
        latest = self.today - timedelta(days=2)
        self.day = min(latest, self.day + timedelta(days=self.rng.choice([0, 1, 1, 2, 3])))

    def days_in_stage(self) -> int:
        return (self.day - date.fromisoformat(self.record["stage_since"])).days

    def promote(self) -> bool:
        rank = self.stages.index(self.record["stage"])
        if rank == len(self.stages) - 1:
            return False
        until = self.record["stage_held_until"]
        held = self.record["stage_held"] and (until is None or self.on() < until)
        due = self.days_in_stage() >= self.stage[self.record["stage"]]["min_days"]
        if (due and not held) or self.rng.random() < 0.15:
            override = not due or held
            self.post("/stage-changes", {
                "direction": "promote", "to_stage": self.stages[rank + 1],
                "effective_on": self.on(), "override": override,
                "reason": "phase criteria met per peer and staff review"},
                role="supervisor" if override else "counselor")
            return True
        return False

    def hold(self) -> bool:
        if self.record["stage_held"]:
            return False
        until = (self.day + timedelta(days=self.rng.randint(5, 20))).isoformat()
        self.post("/stage-changes", {"direction": "hold", "until": until,
                                     "effective_on": self.on(),
                                     "reason": "held pending a treatment review"})
        return True

    def regress(self) -> bool:
        rank = self.stages.index(self.record["stage"])
        if rank == 0 or self.rng.random() < 0.5:
            return False
        self.post("/stage-changes", {"direction": "regress", "to_stage": self.stages[rank - 1],
                                     "effective_on": self.on(),
                                     "reason": "repeated behaviour concerns noted by staff"})
        return True

    def privileges(self, status: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.record["privilege_details"]
                if status is None or p["status"] == status]

    def grant(self) -> bool:
        held = {p["privilege"] for p in self.privileges()}
        allowed = [c for c in self.stage[self.record["stage"]]["privileges"] if c not in held]
        if not allowed:
            return False
        self.post("/privileges", {"action": "grant", "privilege": self.rng.choice(allowed),
                                  "effective_on": self.on(), "reason": "earned in stage"})
        return True

    def suspend(self) -> bool:
        active = self.privileges("active")
        if not active:
            return False
        self.post("/privileges", {"action": "suspend",
                                  "privilege": self.rng.choice(active)["privilege"],
                                  "effective_on": self.on(), "reason": "curfew missed"})
        return True

    def restore(self) -> bool:
        allowed = self.stage[self.record["stage"]]["privileges"]
        suspended = [p for p in self.privileges("suspended")
                     if p["suspended_by"] is None and p["privilege"] in allowed]
        if not suspended:
            return False
        self.post("/privileges", {"action": "restore",
                                  "privilege": self.rng.choice(suspended)["privilege"],
                                  "effective_on": self.on(), "reason": "conduct improved"})
        return True

    def revoke(self) -> bool:
        held = self.privileges()
        if not held:
            return False
        self.post("/privileges", {"action": "revoke",
                                  "privilege": self.rng.choice(held)["privilege"],
                                  "effective_on": self.on(), "reason": "misuse reported"})
        return True

    def infraction(self) -> bool:
        kind = "major" if self.rng.random() < 0.3 else "house"
        late = self.rng.choice([0, 0, 0, 4, 9])  # observed days before it is recorded
        found = self.post("/infractions", {
            "code": self.rng.choice(MAJOR if kind == "major" else HOUSE),
            "observed_at": self.at(10, back_days=late),
            "description": f"Synthetic incident {self.rng.randint(1, 999)}",
            "reason": "reported by staff"})
        self.post("/sanctions", {"sanction": self.rng.choice(SANCTIONS[kind]),
                                 "infraction_id": found["infraction_id"],
                                 "effective_on": self.on(),
                                 "due_on": (self.day + timedelta(days=14)).isoformat(),
                                 "reason": "graded response to the infraction"})
        return True

    def close_sanction(self) -> bool:
        if not self.record["open_sanctions"]:
            return False
        sanction = self.rng.choice(self.record["open_sanctions"])["sanction_id"]
        outcome = self.rng.choices(["completion", "failure", "rescission"], [6, 1, 1])[0]
        self.post(f"/sanctions/{sanction}/{outcome}", {"effective_on": self.on(),
                                                       "reason": "reviewed at community meeting"})
        return True

    def drug_test(self) -> bool:
        self.specimens += 1
        specimen = f"SPC-SYN-{self.specimens}"
        self.post("/specimens", {"specimen_id": specimen, "method": "urine",
                                 "test_reason": self.rng.choice(["random", "scheduled"]),
                                 "collected_at": self.at(8), "observed_by": "staff-obs-1"})
        positive = self.rng.random() < 0.25
        self.post(f"/specimens/{specimen}/result", {
            "result": "positive" if positive else "negative",
            "substances": [{"code": "thc", "level_ng_ml": 80}] if positive else [],
            "lab": "Synthetic Reference Lab", "resulted_at": self.at(15)})
        if positive:
            self.post(f"/specimens/{specimen}/confirmation", {
                "confirmed": self.rng.random() < 0.7, "method": "GC-MS",
                "substances": ["thc"], "effective_on": self.on()})
        return True

    def incentive(self) -> bool:
        self.post("/incentives", {"incentive": "extra phone time", "effective_on": self.on(),
                                  "reason": "affirmation from the community"})
        return True

    def job(self) -> bool:
        jobs = [j for j in self.record.get("job_functions", []) if j.get("ended_on") is None]
        if jobs and self.rng.random() < 0.5:
            self.post(f"/job-functions/{jobs[0]['job_id']}/end",
                      {"effective_on": self.on(), "reason": "rotation of job functions"})
        else:
            self.post("/job-functions", {"function": self.rng.choice(["expeditor", "crew"]),
                                         "effective_on": self.on(), "reason": "assigned"})
        return True

    def correct(self) -> bool:
        candidates = self.history("InfractionRecorded", "TestResulted", "SanctionImposed",
                                  "PrivilegeGranted")
        if not candidates:
            return False
        target = self.rng.choice(candidates)
        changes = {"InfractionRecorded": {"description": "Synthetic incident, as corrected"},
                   "TestResulted": {"lab": "Synthetic Second Lab"},
                   "SanctionImposed": {"due_on": (self.day + timedelta(days=21)).isoformat()},
                   "PrivilegeGranted": {"until": (self.today + timedelta(days=30)).isoformat()},
                   }[target["type"]]
        self.post("/corrections", {"supersedes_version": target["version"], "action": "correct",
                                   "changes": changes, "reason": "mistyped when recorded"})
        return True

    def void(self) -> bool:
        candidates = self.history("IncentiveAwarded", "JobFunctionAssigned", "PrivilegeGranted",
                                  "ResultConfirmed")
        self.rng.shuffle(candidates)
        for target in candidates:
            # An entry that later entries build on (or that another entry caused) may not
            # be voided on its own: the rules refuse it, and another candidate is tried.
            response = self.api.post(f"{self.base}/corrections", {
                "supersedes_version": target["version"], "action": "void",
                "reason": "entered on the wrong resident"})
            if response.status_code == 201:
                return True
            assert response.status_code == 409, response.text
            assert response.json()["rule"] in ("later-entries-depend", "entry-is-consequence"), \
                response.text
        return False

    def amend(self) -> bool:
        if self.amendment is None:
            target = self.history("InfractionRecorded")
            self.amendment = self.post("/amendment-requests", {
                "requested_change": "the incident did not happen as written",
                "target_version": target[0]["version"] if target else None,
                "reason": "participant's request under 164.526"})["amendment_id"]
            return True
        if self.record["amendments"][0]["status"] == "requested":
            self.post(f"/amendment-requests/{self.amendment}/denial",
                      {"reason": "the entry is accurate and complete"})
            return True
        if self.record["amendments"][0]["disagreement"] is None:
            self.post(f"/amendment-requests/{self.amendment}/disagreement",
                      {"statement": "the participant disagrees with the record",
                       "reason": "statement of disagreement filed"})
            return True
        return False


def write_long_history(api: Any, seed: int = 41, events: int = 300,
                       admitted_days_ago: int = 500) -> str:
    """Admits a synthetic participant and writes at least `events` events; returns the id."""
    return HistoryWriter(api, seed, admitted_days_ago).write(events)
