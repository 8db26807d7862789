"""Acceptance, as a corrections system sees the feed, on SQLite and PostgreSQL.

The receiver below knows nothing of tcledger but its HTTP contract: it pages through the
feed with the cursor in small pages, parses every event with the CloudEvents SDK, retries a
page now and then as a client that lost an answer would, and keeps each event once by its
id. Meanwhile staff record a life for several participants whose consents to this recipient
are given, given late, revoked, expired by a corrected date and ended by a discharge, mid-
stream. The test states beforehand which entries the recipient is entitled to at the time
it reads, and checks that exactly those arrive, in log order, once each; and that the
access log accounts for every one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from tests.e2e.integration_clients import PAROLE, parse_batch
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok

CATEGORIES = ["stage-progress", "drug-tests", "discharge", "aftercare", "sanctions"]


class CorrectionsSystem:
    """A separate receiver: the cursor it keeps, the events it has, nothing else."""

    def __init__(self, http: Any, token: str, page_size: int) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}",
                        "accept": "application/cloudevents-batch+json"}
        self.page_size = page_size
        self.cursor: str | None = None  # the start of the log
        self.received: list[CloudEvent] = []
        self.seen: set[str] = set()
        self.requests = 0

    def _page(self, cursor: str | None) -> tuple[list[CloudEvent], str]:
        params = {"limit": self.page_size, **({"after": cursor} if cursor else {})}
        response = self.http.get("/feed", params=params, headers=self.headers)
        self.requests += 1
        assert response.status_code == 200, response.text
        return parse_batch(response.content), response.headers["next-cursor"]

    def poll(self) -> None:
        """Pages until the feed has nothing more; every third page is asked twice."""
        while True:
            events, following = self._page(self.cursor)
            if self.requests % 3 == 0:
                again, _ = self._page(self.cursor)  # the answer "lost": ask again
                assert [e.get_id() for e in again] == [e.get_id() for e in events]
            for event in events:
                if event.get_id() not in self.seen:  # deduplicated by id
                    self.seen.add(event.get_id())
                    self.received.append(event)
            done = following == self.cursor or not events
            self.cursor = following
            if done:
                return


class Life:
    """Staff's side: each entry written, and whether the recipient is owed it."""

    def __init__(self, api: Any, receiver: CorrectionsSystem) -> None:
        self.api = api
        self.receiver = receiver
        self.owed: list[str] = []
        self.withheld: list[str] = []
        self.order: list[str] = []  # every disclosable entry, in the order written

    def admit(self, seed: int) -> str:
        body = synthetic_admission(seed, days_ago=120)
        return str(ok(self.api.post("/participants", body))["id"])

    def write(self, pid: str, path: str, body: dict[str, Any], owed: bool) -> str:
        """One entry; the receiver reads the feed straight after, as a tailing one does."""
        version = ok(self.api.post(f"/participants/{pid}/{path}", body))["version"]
        event_id = f"{pid}/{version}"
        (self.owed if owed else self.withheld).append(event_id)
        self.order.append(event_id)
        self.receiver.poll()
        return event_id

    def quietly(self, pid: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """An entry never disclosed (consents, corrections)."""
        written = ok(self.api.post(f"/participants/{pid}/{path}", body))
        self.receiver.poll()
        return written

    def consent(self, pid: str, categories: list[str], **ends: Any) -> str:
        return str(self.quietly(pid, "consents", {
            "recipient": PAROLE, "purpose": "parole supervision", "categories": categories,
            **(ends or {"expires_on": (datetime.now(UTC).date()
                                       + timedelta(days=200)).isoformat()})})["consent_id"])


def grant(privilege: str) -> dict[str, Any]:
    return {"action": "grant", "privilege": privilege, "reason": "earned in stage"}


def specimen(specimen_id: str) -> dict[str, Any]:
    return {"specimen_id": specimen_id, "method": "urine", "test_reason": "random",
            "collected_at": moment_ago(0)}


def test_a_corrections_system_receives_exactly_what_consent_allows(api) -> None:
    created = ok(api.post("/admin/integrations", {"recipient": PAROLE,
                                                  "categories": CATEGORIES}, role="admin"))
    receiver = CorrectionsSystem(api.client, created["token"], page_size=2)
    life = Life(api, receiver)
    steady, late, ending, revoking, lapsing, never = (life.admit(500 + i) for i in range(6))
    receiver.poll()
    assert receiver.received == []  # admissions: no consent, not subscribed

    # Consent in force throughout: drug tests and stage progress, not sanctions.
    life.consent(steady, ["drug-tests", "stage-progress"])
    life.write(steady, "privileges", grant("commissary"), owed=True)
    life.write(steady, "specimens", specimen("SPC-ACC-1"), owed=True)
    life.write(steady, "infractions", {"code": "house-rule-hygiene",
                                       "observed_at": moment_ago(0),
                                       "description": "bunk", "reason": "seen"}, owed=False)
    # Given late: what came before it was passed over by this tailing receiver.
    before_consent = life.write(late, "privileges", grant("commissary"), owed=False)
    life.consent(late, ["stage-progress"])
    life.write(late, "privileges", grant("phone-basic"), owed=True)
    # Ended by the discharge: the notice goes, what follows it does not.
    life.consent(ending, ["drug-tests", "discharge", "aftercare"], expiry_event="discharge")
    life.write(ending, "specimens", specimen("SPC-ACC-2"), owed=True)
    # Revoked mid-stream.
    given = life.consent(revoking, ["stage-progress", "drug-tests"])
    life.write(revoking, "privileges", grant("commissary"), owed=True)
    life.quietly(revoking, f"consents/{given}/revocation", {"reason": "withdrawn"})
    life.write(revoking, "specimens", specimen("SPC-ACC-3"), owed=False)
    # Expired mid-stream: the signed form's date, corrected to yesterday.
    lapses = life.consent(lapsing, ["stage-progress"])
    life.write(lapsing, "privileges", grant("commissary"), owed=True)
    history = ok(api.get(f"/participants/{lapsing}/history"), 200)["events"]
    consent_version = next(e["version"] for e in history if e["type"] == "ConsentGiven"
                           and e["data"]["consent_id"] == lapses)
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    life.quietly(lapsing, "corrections", {
        "supersedes_version": consent_version, "action": "correct",
        "changes": {"expires_on": yesterday}, "reason": "the form says it ended yesterday"})
    life.write(lapsing, "privileges", grant("phone-basic"), owed=False)
    # Another recipient's consent does not make this one's.
    life.quietly(never, "consents", {"recipient": "Synthetic Sheriff", "purpose": "custody",
                                     "categories": CATEGORIES, "expires_on": moment_ago(-30)[:10]})
    life.write(never, "privileges", grant("commissary"), owed=False)
    # Interleaved with the rest: the discharge, then an aftercare hand-off after it.
    life.write(steady, "privileges", grant("phone-basic"), owed=True)
    life.write(ending, "discharge", {"type": "administrative-release",
                                     "reason": "released by the court"}, owed=True)
    life.write(ending, "aftercare-handoffs", {"receiving_agency": "Synthetic Aftercare",
                                              "report": "synthetic", "reason": "handoff"},
               owed=False)
    life.write(steady, "specimens", specimen("SPC-ACC-4"), owed=True)

    got = [e.get_id() for e in receiver.received]
    assert got == life.owed  # exactly these, in log order, once each
    assert not set(got) & set(life.withheld)
    positions = [e.get_extension("position") for e in receiver.received]
    assert positions == sorted(positions)
    assert {e.get_type().removeprefix("tcledger.participant.") for e in receiver.received} \
        == {"privilege-granted", "specimen-collected", "discharged"}

    # The accounting of disclosures names every event handed out, and nothing else.
    entries = ok(api.get("/audit/access-log", role="auditor",
                         params={"actor": created["token_id"], "action": "disclosure",
                                 "limit": 500}), 200)["items"]
    logged = {f"{e['participant']}/{e['version']}" for entry in entries
              for e in entry["events"]}
    assert logged == set(got)

    # A receiver starting over today is judged by today's consents: the late consent now
    # opens the earlier entry; the revoked and lapsed ones open nothing any more.
    fresh = CorrectionsSystem(api.client, created["token"], page_size=1000)
    fresh.poll()
    again = [e.get_id() for e in fresh.received]
    revoked_or_lapsed = {e for e in got if e.split("/")[0] in (revoking, lapsing)}
    now_owed = (set(got) - revoked_or_lapsed) | {before_consent}
    assert again == [e for e in life.order if e in now_owed]
