"""The consent-scoped feed through HTTP, on SQLite and PostgreSQL: what a corrections system
receives is its subscription ∩ the participant's consents in force, minimised, in log
order, with every event handed out recorded as a disclosure first."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

from tests.e2e.integration_clients import PAROLE, IntegrationClient, in_a_year, kinds
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok

SECRET_REASON = "Therapeutic termination after contraband found qx41"


def admit(api, seed: int) -> str:
    return ok(api.post("/participants", synthetic_admission(seed, days_ago=120)))["id"]


def consent(api, pid: str, categories: list[str], recipient: str = PAROLE) -> str:
    return ok(api.post(f"/participants/{pid}/consents", {
        "recipient": recipient, "purpose": "parole supervision", "categories": categories,
        "expires_on": in_a_year()}))["consent_id"]


def test_consent_given_revoked_and_given_again_mid_stream(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["drug-tests", "discharge", "stage-progress"])
    pid = admit(api, 101)
    base = f"/participants/{pid}"
    assert parole.drain() == []  # no consent yet: nothing, but the cursor moved on
    assert int(parole.cursor) > 0

    # Recipient named in other case and spacing is the same recipient.
    consent_id = consent(api, pid, ["drug-tests", "discharge"], "synthetic  parole OFFICE")
    ok(api.post(f"{base}/privileges", {"action": "grant", "privilege": "commissary",
                                       "reason": "earned"}))  # stage-progress: not consented
    ok(api.post(f"{base}/specimens", {"specimen_id": "SPC-101-1", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(1),
                                      "observed_by": "staff-observer-9"}))
    ok(api.post(f"{base}/specimens/SPC-101-1/result", {
        "result": "positive", "substances": [{"code": "synthetic-cannabinoids",
                                              "level_ng_ml": 40}], "lab": "Synthetic Lab"}))
    events = parole.drain()
    assert kinds(events) == ["specimen-collected", "test-resulted"]
    collected, resulted = events
    assert collected.get_subject() == pid
    assert collected.get_extension("category") == "drug-tests"
    data = collected.get_data()
    assert data["specimen_id"] == "SPC-101-1" and "observed_by" not in data
    assert data["participant"]["external_ids"]["DOC"]["value"].startswith("SYN-")
    assert "given_name" not in json.dumps(data)
    assert resulted.get_data()["substances"][0]["code"] == "synthetic-cannabinoids"
    assert "42 CFR part 2" in resulted.get_data()["notice"]

    ok(api.post(f"{base}/consents/{consent_id}/revocation", {"reason": "withdrawn"}))
    ok(api.post(f"{base}/specimens", {"specimen_id": "SPC-101-2", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(0)}))
    before = parole.cursor
    assert parole.drain() == []  # revoked: passed over
    assert int(parole.cursor) > int(before)

    consent(api, pid, ["discharge"])
    ok(api.post(f"{base}/discharge", {"type": "therapeutic-termination",
                                      "reason": SECRET_REASON,
                                      "aftercare_referral": "Synthetic Clinic"}))
    discharged = parole.drain()
    assert kinds(discharged) == ["discharged"]  # not the privileges the discharge revoked
    notice = discharged[0].get_data()
    assert notice["discharge_type"] == "therapeutic-termination"
    assert notice["effective_on"] == datetime.now(UTC).date().isoformat()
    assert set(notice) == {"participant", "effective_on", "discharge_type", "category",
                           "successful", "notice"}

    # Consent is judged when the feed is read: from the start, only what is allowed now.
    everything, _ = parole.page("0", limit=1000)
    assert kinds(everything) == ["discharged"]


def test_payloads_carry_no_reason_note_or_staff_identity(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["sanctions", "discharge", "stage-progress",
                                             "admission-and-status", "drug-tests",
                                             "treatment-participation", "aftercare"])
    pid = admit(api, 102)
    base = f"/participants/{pid}"
    consent(api, pid, ["sanctions", "discharge", "stage-progress", "admission-and-status",
                       "drug-tests", "treatment-participation", "aftercare"])
    infraction = ok(api.post(f"{base}/infractions", {
        "code": "house-rule-hygiene", "observed_at": moment_ago(2),
        "description": "Bunk left unkempt qx42", "reason": "peer report qx43"}))
    ok(api.post(f"{base}/sanctions", {"sanction": "learning-experience",
                                      "infraction_id": infraction["infraction_id"],
                                      "reason": "essay assigned qx44"}))
    ok(api.post(f"{base}/discharge", {"type": "therapeutic-termination",
                                      "reason": SECRET_REASON}))
    events = parole.drain()
    assert {"participant-admitted", "assessment-recorded", "infraction-recorded",
            "sanction-imposed", "discharged"} <= set(kinds(events))
    assert "consent-given" not in kinds(events)
    dumped = json.dumps([e.get_data() for e in events])
    for secret in ("qx41", "qx42", "qx43", "qx44", "staff-c1", "given_name",
                   "date_of_birth", "referral"):
        assert secret not in dumped
    actor = next(t["token_id"] for t in api.services.tokens.list() if t["role"] == "counselor")
    assert actor not in dumped


def test_corrections_and_voids_follow_the_entry_they_fix(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["drug-tests", "sanctions"])
    pid = admit(api, 103)
    base = f"/participants/{pid}"
    consent(api, pid, ["drug-tests", "sanctions"])
    ok(api.post(f"{base}/specimens", {"specimen_id": "SPC-103", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(1)}))
    ok(api.post(f"{base}/specimens/SPC-103/result", {"result": "negative", "lab": "Lab A"}))
    infraction = ok(api.post(f"{base}/infractions", {
        "code": "house-rule-hygiene", "observed_at": moment_ago(1),
        "description": "first wording", "reason": "seen"}))
    first = parole.drain()
    versions = {e.get_type(): e.get_extension("participantversion") for e in first}
    resulted_v = versions["tcledger.participant.test-resulted"]
    infraction_v = infraction["version"]
    ok(api.post(f"{base}/corrections", {"supersedes_version": resulted_v, "action": "correct",
                                        "changes": {"lab": "Lab B"}, "reason": "typo"}))
    # Only the description changes: the recipient never had it, so nothing to send.
    ok(api.post(f"{base}/corrections", {"supersedes_version": infraction_v,
                                        "action": "correct",
                                        "changes": {"description": "second wording"},
                                        "reason": "typo"}))
    ok(api.post(f"{base}/corrections", {"supersedes_version": infraction_v, "action": "void",
                                        "reason": "wrong resident"}))
    fixes = parole.drain()
    assert kinds(fixes) == ["entry-corrected", "entry-voided"]
    corrected, voided = fixes
    assert corrected.get_data()["supersedes"] == {"version": resulted_v, "type": "TestResulted"}
    assert corrected.get_data()["changes"] == {"lab": "Lab B"}
    assert corrected.get_extension("category") == "drug-tests"
    assert voided.get_data()["supersedes"]["version"] == infraction_v
    assert "wrong resident" not in json.dumps(voided.get_data())


def test_cursor_pages_are_stable_and_never_repeat_or_skip(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress", "admission-and-status"])
    other = IntegrationClient(api, "Synthetic Sheriff", ["admission-and-status"])
    pids = [admit(api, 110 + i) for i in range(3)]
    for pid in pids:
        consent(api, pid, ["stage-progress", "admission-and-status"])
        for privilege in ("commissary", "phone-basic"):
            ok(api.post(f"/participants/{pid}/privileges", {
                "action": "grant", "privilege": privilege, "reason": "earned"}))
    whole, end = parole.page("0", limit=1000)
    assert len(whole) == 9  # three admissions, six grants
    paged, cursor = [], "0"
    while True:
        events, following = parole.page(cursor, limit=2)
        assert len(events) <= 2
        paged.extend(events)
        if following == cursor:
            break
        again, again_cursor = parole.page(cursor, limit=2)  # the same page, the same answer
        assert [e.get_id() for e in again] == [e.get_id() for e in events]
        if len(events) == 2:
            assert again_cursor == following  # a full page ends at its last event
        else:  # the last page ends at the log's end, which the disclosures themselves grow
            assert int(again_cursor) >= int(following)
        cursor = following
    assert [e.get_id() for e in paged] == [e.get_id() for e in whole]
    assert int(cursor) >= int(end)
    positions = [e.get_extension("position") for e in paged]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert other.drain() == []  # its recipient is named by no consent
    # Object form for clients that prefer a plain JSON envelope.
    response = parole.api.client.get("/feed", params={"after": "0", "limit": 3},
                                     headers={**parole.headers, "accept": "application/json"})
    assert response.json()["next_cursor"] == response.headers["next-cursor"]
    assert len(response.json()["events"]) == 3


def test_long_poll_answers_when_a_visible_event_arrives(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress"])
    pid = admit(api, 120)
    consent(api, pid, ["stage-progress"])
    parole.drain()
    feed = api.client.app.state.integrations.feed
    looked = threading.Event()
    page = feed.page

    def watched_page(*args, **kwargs):
        found = page(*args, **kwargs)
        looked.set()
        return found

    feed.page = watched_page
    answer: dict = {}
    waiting = threading.Thread(target=lambda: answer.update(
        response=parole.get_feed(parole.cursor, wait=30)))
    waiting.start()
    assert looked.wait(30)  # the request looked, found nothing, and is waiting now
    ok(api.post(f"/participants/{pid}/privileges", {"action": "grant",
                                                   "privilege": "commissary",
                                                   "reason": "earned"}))
    waiting.join(60)
    assert not waiting.is_alive()
    response = answer["response"]
    assert response.status_code == 200
    assert [e["type"] for e in response.json()] == ["tcledger.participant.privilege-granted"]


def test_every_disclosure_is_in_the_access_log_before_the_page(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress"])
    pid = admit(api, 130)
    consent(api, pid, ["stage-progress"])
    ok(api.post(f"/participants/{pid}/privileges", {"action": "grant",
                                                   "privilege": "commissary",
                                                   "reason": "earned"}))
    response = parole.get_feed("0")
    events = response.json()
    assert len(events) == 1
    log = ok(api.get("/audit/access-log", role="auditor",
                     params={"participant": pid, "action": "disclosure"}), 200)["items"]
    assert len(log) == 1
    entry = log[0]
    assert entry["recipient"] == PAROLE and entry["actor"] == parole.token_id
    assert entry["role"] == "integration" and entry["what"] == "GET /feed"
    assert entry["request_id"] == response.headers["x-request-id"]
    assert [f"{e['participant']}/{e['version']}" for e in entry["events"]] == \
        [e["id"] for e in events]
    assert entry["events"][0]["type"] == "PrivilegeGranted"
    assert entry["events"][0]["consent"]

    # When the disclosure cannot be logged, nothing is disclosed.
    access_log = api.client.app.state.access_log
    original = access_log.record

    def broken(entry):
        raise OSError("disk full")

    access_log.record = broken
    try:
        refused = parole.get_feed("0")
    finally:
        access_log.record = original
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "tcledger.participant" not in refused.text


def test_expired_consent_discloses_nothing(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress"])
    pid = admit(api, 140)
    consent_id = consent(api, pid, ["stage-progress"])
    ok(api.post(f"/participants/{pid}/privileges", {"action": "grant",
                                                   "privilege": "commissary",
                                                   "reason": "earned"}))
    feed = api.client.app.state.integrations.feed
    client = api.client.app.state.integrations.clients.of(parole.token_id)
    today = datetime.now(UTC).date()
    assert len(feed.page(client, 0, 100, today).events) == 1  # the grant; admission not consented
    expired = feed.page(client, 0, 100, today + timedelta(days=366))
    assert expired.events == [] and expired.next_cursor >= feed.head()
    # Through HTTP: the consent's expiry corrected to yesterday ends it today.
    history = ok(api.get(f"/participants/{pid}/history"), 200)["events"]
    given = next(e["version"] for e in history if e["type"] == "ConsentGiven"
                 and e["data"]["consent_id"] == consent_id)
    ok(api.post(f"/participants/{pid}/corrections", {
        "supersedes_version": given, "action": "correct",
        "changes": {"expires_on": (today - timedelta(days=1)).isoformat()},
        "reason": "the signed form says it ended yesterday"}))
    assert parole.page("0")[0] == []


def test_erased_participants_yield_nothing(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["admission-and-status"])
    kept, erased = admit(api, 150), admit(api, 151)
    for pid in (kept, erased):
        consent(api, pid, ["admission-and-status"])
    ok(api.post(f"/admin/participants/{erased}/erasure", {"reason": "retention over"},
                role="admin"))
    events, _ = parole.page("0")
    assert [e.get_subject() for e in events] == [kept]


def test_who_may_read_the_feed_and_bad_queries(api) -> None:
    assert api.get("/feed").status_code == 403  # a counselor
    plain = api.client.get("/feed", headers=api.headers("integration"))
    assert plain.status_code == 403  # an integration token without a recipient
    assert plain.json()["type"] == "urn:tcledger:problem:not-an-integration-client"
    assert api.client.get("/feed").status_code == 401
    parole = IntegrationClient(api, PAROLE, ["discharge"])
    for params in ({"after": "-1"}, {"after": "x"}, {"after": str(2 ** 63)}, {"limit": 0},
                   {"limit": 1001}, {"wait": -1}, {"wait": 61}):
        response = parole.api.client.get("/feed", params=params, headers=parole.headers)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["field"] in params
    for body in ({"recipient": "", "categories": ["discharge"]},
                 {"recipient": "X", "categories": []},
                 {"recipient": "X", "categories": ["gossip"]},
                 {"recipient": "X", "categories": [], "ingests": ["gossip"]}):
        refused = api.post("/admin/integrations", body, role="admin")
        assert refused.status_code == 422, body
    assert api.post("/admin/integrations", {"recipient": "X", "categories": ["discharge"]},
                    role="auditor").status_code == 403
    listed = ok(api.get("/admin/integrations", role="admin"), 200)["items"]
    assert [(c["recipient"], c["ingests"]) for c in listed] == [(PAROLE, [])]
