"""What the feed names and for how long, through HTTP on SQLite and PostgreSQL: a client
receives the identifiers of the systems it was given (DOC by default), and a consent that
ends with an event (discharge, release) stops at that event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.integration_clients import PAROLE, IntegrationClient, in_a_year, kinds
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok

IDS = {"SID": {"value": "SYN-SID-4410", "issuer": "SYN-STATE"},
       "FBI": {"value": "SYN-FBI-99812", "issuer": "SYN-FEDERAL"}}


def admit(api, seed: int, **overrides) -> str:
    return ok(api.post("/participants", synthetic_admission(seed, days_ago=90,
                                                            **overrides)))["id"]


def consent(api, pid: str, categories: list[str], **ends) -> str:
    return ok(api.post(f"/participants/{pid}/consents", {
        "recipient": PAROLE, "purpose": "parole supervision", "categories": categories,
        **(ends or {"expires_on": in_a_year()})}))["consent_id"]


def collect(api, pid: str, specimen: str) -> dict:
    return ok(api.post(f"/participants/{pid}/specimens", {
        "specimen_id": specimen, "method": "urine", "test_reason": "random",
        "collected_at": moment_ago(0)}))


def test_events_name_the_participant_by_the_id_systems_the_client_was_given(api) -> None:
    pid = admit(api, 401, external_ids=IDS)
    consent(api, pid, ["admission-and-status"])
    default = IntegrationClient(api, PAROLE, ["admission-and-status"])
    events = default.drain()
    assert kinds(events) == ["participant-admitted"]
    named = events[0].get_data()["participant"]
    assert named["id"] == pid
    assert set(named["external_ids"]) == {"DOC"}  # neither SID nor FBI
    assert named["external_ids"]["DOC"]["value"].startswith("SYN-")

    created = ok(api.post("/admin/integrations", {
        "recipient": PAROLE, "categories": ["admission-and-status"],
        "external_id_systems": ["sid", "DOC", "SID"]}, role="admin"))
    assert created["external_id_systems"] == ["SID", "DOC"]  # once each, as admissions name
    both = api.client.get("/feed", headers={"Authorization": f"Bearer {created['token']}"})
    assert set(both.json()[0]["data"]["participant"]["external_ids"]) == {"SID", "DOC"}
    none = ok(api.post("/admin/integrations", {
        "recipient": PAROLE, "categories": ["admission-and-status"],
        "external_id_systems": []}, role="admin"))
    bare = api.client.get("/feed", headers={"Authorization": f"Bearer {none['token']}"})
    assert bare.json()[0]["data"]["participant"] == {"id": pid, "external_ids": {}}
    listed = ok(api.get("/admin/integrations", role="admin"), 200)["items"]
    assert [c["external_id_systems"] for c in listed] == [["DOC"], ["SID", "DOC"], []]


def test_bad_id_systems_are_refused_and_create_no_client(api) -> None:
    for systems in (["DOC", "no spaces"], ["9DOC"], [f"S{i}" for i in range(11)],
                    "DOC"):
        refused = api.post("/admin/integrations", {
            "recipient": PAROLE, "categories": ["discharge"],
            "external_id_systems": systems}, role="admin")
        assert refused.status_code == 422, systems
        assert refused.json()["errors"][0]["field"].startswith("external_id_systems")
    assert ok(api.get("/admin/integrations", role="admin"), 200)["items"] == []
    assert [t for t in api.services.tokens.list() if t["role"] == "integration"] == []


def test_a_consent_until_discharge_ends_with_the_discharge(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["drug-tests", "discharge", "aftercare"])
    pid = admit(api, 402)
    consent(api, pid, ["drug-tests", "discharge", "aftercare"], expiry_event="discharge")
    collect(api, pid, "SPC-402-1")
    assert kinds(parole.drain()) == ["specimen-collected"]
    ok(api.post(f"/participants/{pid}/discharge", {
        "type": "administrative-release", "reason": "released by the court"}))
    ok(api.post(f"/participants/{pid}/aftercare-handoffs", {
        "receiving_agency": "Synthetic Aftercare", "report": "synthetic report",
        "reason": "handoff"}))
    # The discharge notice goes; what the record holds after it does not.
    assert kinds(parole.drain()) == ["discharged"]
    everything, _ = parole.page("0", limit=1000)
    assert kinds(everything) == ["specimen-collected", "discharged"]
    # From the day after the discharge was recorded, nothing more under this consent.
    feed = api.client.app.state.integrations.feed
    client = api.client.app.state.integrations.clients.of(parole.token_id)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert feed.page(client, 0, 1000, tomorrow).events == []


def test_a_consent_until_release_outlasts_a_discharge_that_is_not_one(api) -> None:
    parole = IntegrationClient(api, PAROLE, ["discharge", "aftercare"])
    pid = admit(api, 403)
    consent(api, pid, ["discharge", "aftercare"], expiry_event="Release from custody")
    ok(api.post(f"/participants/{pid}/discharge", {
        "type": "therapeutic-termination", "reason": "synthetic"}))
    ok(api.post(f"/participants/{pid}/aftercare-handoffs", {
        "receiving_agency": "Synthetic Aftercare", "report": "synthetic report",
        "reason": "handoff"}))
    assert kinds(parole.drain()) == ["discharged", "aftercare-handoff-sent"]


def test_an_end_tcledger_cannot_see_needs_a_date(api) -> None:
    pid = admit(api, 404)
    version = ok(api.get(f"/participants/{pid}"), 200)["version"]
    refused = api.post(f"/participants/{pid}/consents", {
        "recipient": PAROLE, "purpose": "parole supervision", "categories": ["discharge"],
        "expiry_event": "completion of parole supervision"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "expiry_event"
    assert "discharge, release" in refused.json()["detail"]
    assert ok(api.get(f"/participants/{pid}"), 200)["version"] == version
    ok(api.post(f"/participants/{pid}/consents", {
        "recipient": PAROLE, "purpose": "parole supervision", "categories": ["discharge"],
        "expiry_event": "completion of parole supervision", "expires_on": in_a_year()}))
