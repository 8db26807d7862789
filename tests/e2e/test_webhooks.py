"""Webhooks through HTTP on SQLite and PostgreSQL, delivered by the server's own worker
(thread mode) to a real local receiver: subscriptions, signed CloudEvents, consent scoping
judged when the event is recorded and again when it leaves, receiver faults, dead letters
and redelivery. Every delivery is verified with the Standard Webhooks library and parsed
with the CloudEvents SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.conftest import make_settings
from tests.e2e.integration_clients import PAROLE, IntegrationClient, in_a_year, kinds
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok
from tests.e2e.webhook_receiver import Receiver, always, ids_per_participant

FAST = {"webhook_retry_schedule": "0,0.1,0.2,0.3", "webhook_timeout": 0.5,
        "webhook_poll_interval": 0.02}
DISCHARGED = "tcledger.participant.discharged"


@pytest.fixture
def settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("pg_database") if store_kind == "postgres" else ""
    return make_settings(tmp_path, url, **FAST)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.stop()


def subscribe(client: IntegrationClient, url: str, **body: object) -> dict:
    return ok(client.post("/webhooks/subscriptions", {"url": url, **body}))


def admit(api, seed: int) -> str:
    return ok(api.post("/participants", synthetic_admission(seed, days_ago=120)))["id"]


def consent(api, pid: str, categories: list[str]) -> str:
    return ok(api.post(f"/participants/{pid}/consents", {
        "recipient": PAROLE, "purpose": "parole supervision", "categories": categories,
        "expires_on": in_a_year()}))["consent_id"]


def grant(api, pid: str, privilege: str = "commissary", action: str = "grant") -> dict:
    return ok(api.post(f"/participants/{pid}/privileges", {
        "action": action, "privilege": privilege, "reason": "earned"}))


def specimen(api, pid: str, specimen_id: str) -> dict:
    return ok(api.post(f"/participants/{pid}/specimens", {
        "specimen_id": specimen_id, "method": "urine", "test_reason": "random",
        "collected_at": moment_ago(0)}))


def deliveries(client: IntegrationClient, subscription_id: str, **params: object) -> list:
    response = client.api.client.get(f"/webhooks/subscriptions/{subscription_id}/deliveries",
                                     params=params, headers=client.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_signed_cloudevents_reach_the_receiver_as_the_feed_shows_them(api, receiver) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress", "drug-tests", "discharge"])
    created = subscribe(parole, receiver.url)
    assert created["secret"].startswith("whsec_") and created["state"] == "active"
    listed = parole.api.client.get("/webhooks/subscriptions", headers=parole.headers).json()
    assert [s["id"] for s in listed["items"]] == [created["id"]]
    assert "secret" not in json.dumps(listed)

    pid = admit(api, 301)
    consent(api, pid, ["stage-progress", "drug-tests", "discharge"])
    grant(api, pid)
    specimen(api, pid, "SPC-301")
    ok(api.post(f"/participants/{pid}/discharge", {"type": "therapeutic-termination",
                                                  "reason": "Contraband found qx77"}))
    receiver.wait(lambda: "discharged" in kinds(receiver.events(created["secret"])))
    events = receiver.events(created["secret"])
    # The admission came before the consent: not pushed. The discharge's privilege
    # revocations come with it (stage-progress).
    assert kinds(events)[:2] == ["privilege-granted", "specimen-collected"]
    assert "discharged" in kinds(events)
    assert ids_per_participant(events)[pid] == sorted(ids_per_participant(events)[pid])
    assert "qx77" not in json.dumps([e.get_data() for e in events])
    # The body is the feed's CloudEvent, field for field.
    feed, _ = parole.page("0", limit=100)
    by_id = {e.get_id(): e for e in feed}
    for event in events:
        assert event.get_data() == by_id[event.get_id()].get_data()
        assert event.get_type() == by_id[event.get_id()].get_type()
    rows = deliveries(parole, created["id"])
    assert {r["state"] for r in rows} == {"delivered"} and len(rows) == len(events)
    assert all(r["attempts"] == 1 and r["last_status"] == 204 for r in rows)


def test_event_types_narrow_and_delete_stops_deliveries(api, receiver) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress", "discharge"])
    narrow = subscribe(parole, receiver.url, event_types=[DISCHARGED])
    pid = admit(api, 302)
    consent(api, pid, ["stage-progress", "discharge"])
    grant(api, pid)
    ok(api.post(f"/participants/{pid}/discharge", {"type": "therapeutic-termination",
                                                  "reason": "r"}))
    receiver.wait(lambda: len(receiver.delivered()) >= 1)
    assert kinds(receiver.events(narrow["secret"])) == ["discharged"]

    other = subscribe(parole, receiver.url)
    gone = parole.api.client.delete(f"/webhooks/subscriptions/{other['id']}",
                                    headers=parole.headers)
    assert gone.status_code == 204
    again = parole.api.client.delete(f"/webhooks/subscriptions/{other['id']}",
                                     headers=parole.headers)
    assert again.status_code == 404
    pid2 = admit(api, 303)
    consent(api, pid2, ["stage-progress"])
    grant(api, pid2)
    api.client.app.state.runner.wait_for(api.services.log.head(), 10)
    assert deliveries(parole, other["id"]) == []  # deleted before the event: nothing queued


def test_consent_judged_at_the_event_and_again_at_delivery(api, receiver) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress", "drug-tests"])
    sub = subscribe(parole, receiver.url)
    pid = admit(api, 304)
    grant(api, pid, "commissary")  # before any consent: never queued
    consent_id = consent(api, pid, ["stage-progress"])
    grant(api, pid, "phone-basic")  # consented
    specimen(api, pid, "SPC-304-1")  # drug-tests: not consented
    receiver.wait(lambda: len(receiver.delivered()) >= 1)

    receiver.stop()  # the receiver is down while the consent is revoked
    grant(api, pid, "commissary", "revoke")  # queued under the consent, not delivered yet
    api.client.app.state.runner.wait_for(api.services.log.head(), 10)
    ok(api.post(f"/participants/{pid}/consents/{consent_id}/revocation",
                {"reason": "withdrawn"}))
    grant(api, pid, "phone-basic", "revoke")  # after the revocation: never queued
    receiver.start()

    def settled() -> bool:
        return all(r["state"] != "pending" for r in deliveries(parole, sub["id"]))
    receiver.wait(settled)
    events = receiver.events(sub["secret"])
    assert [e.get_data()["privilege"] for e in events] == ["phone-basic"]
    rows = deliveries(parole, sub["id"])
    assert [r["state"] for r in rows] == ["delivered", "withheld"]
    assert "consent" in rows[1]["last_error"]
    assert deliveries(parole, sub["id"], state="withheld")[0]["id"] == rows[1]["id"]


def test_outage_500s_and_slow_answers_lose_nothing_and_keep_order(api, receiver) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress"])
    sub = subscribe(parole, receiver.url)
    pids = [admit(api, 310 + i) for i in range(3)]
    for pid in pids:
        consent(api, pid, ["stage-progress"])
    calls = {"n": 0}

    def flaky(headers: dict[str, str], body: bytes) -> tuple[int, float]:
        calls["n"] += 1
        if calls["n"] % 3 == 1:
            return 500, 0.0
        if calls["n"] % 3 == 2:
            return 200, 1.0  # slower than the 0.5 s timeout: a failure to the sender
        return 200, 0.0
    receiver.behaviour = flaky
    for privilege, action in (("commissary", "grant"), ("phone-basic", "grant"),
                              ("commissary", "revoke")):
        for pid in pids:
            grant(api, pid, privilege, action)
    expected = {pid: 3 for pid in pids}

    def all_delivered() -> bool:
        states = [r["state"] for r in deliveries(parole, sub["id"])]
        return len(states) == 9 and set(states) <= {"delivered", "dead"}
    receiver.wait(all_delivered, 60)
    rows = deliveries(parole, sub["id"])
    dead = [r for r in rows if r["state"] == "dead"]
    receiver.behaviour = always(200)
    if dead:  # the schedule is short: a row may have run out of attempts
        assert all(r["attempts"] == 4 and r["last_error"] for r in dead)
        assert api.client.app.state.integrations.webhooks.deliveries.redeliver(
            subscription_id=sub["id"]) == len(dead)
        receiver.wait(lambda: all(r["state"] == "delivered"
                                  for r in deliveries(parole, sub["id"])))
    events = receiver.events(sub["secret"])
    assert {pid: len(v) for pid, v in ids_per_participant(events).items()} == expected
    if not dead:  # nothing redelivered: every participant's events arrived in order
        for versions in ids_per_participant(events).values():
            assert versions == sorted(versions)
    # Duplicates (a slow answer counted as failed) carry the same webhook-id and body.
    bodies: dict[str, bytes] = {}
    for r in receiver.delivered():
        assert bodies.setdefault(r.headers["webhook-id"], r.body) == r.body


def test_dead_letters_after_the_schedule_then_redelivery(api, receiver) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress"])
    sub = subscribe(parole, receiver.url)
    pid = admit(api, 320)
    consent(api, pid, ["stage-progress"])
    receiver.behaviour = always(503)
    grant(api, pid, "commissary")
    grant(api, pid, "phone-basic")
    receiver.wait(lambda: len(deliveries(parole, sub["id"], state="dead")) == 2)
    dead = deliveries(parole, sub["id"], state="dead")
    assert [r["attempts"] for r in dead] == [4, 4]
    assert all(r["last_status"] == 503 and r["last_error"] == "HTTP 503" for r in dead)
    # The first dead letter did not hold the second back for ever: it was tried after it.
    assert receiver.delivered() == []
    receiver.behaviour = always(200)
    redeliver = api.client.app.state.integrations.webhooks.deliveries.redeliver
    assert redeliver(delivery=(sub["id"], dead[0]["position"])) == 1
    receiver.wait(lambda: len(receiver.delivered()) == 1)
    assert redeliver() == 1  # all dead letters
    receiver.wait(lambda: len(receiver.delivered()) == 2)
    events = receiver.events(sub["secret"])
    assert [e.get_data()["privilege"] for e in events] == ["commissary", "phone-basic"]


def test_410_gone_disables_the_subscription(api, receiver) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress"])
    sub = subscribe(parole, receiver.url)
    pid = admit(api, 321)
    consent(api, pid, ["stage-progress"])
    receiver.behaviour = always(410)
    grant(api, pid)
    receiver.wait(lambda: len(deliveries(parole, sub["id"], state="dead")) == 1)
    found = parole.api.client.get(f"/webhooks/subscriptions/{sub['id']}",
                                  headers=parole.headers).json()
    assert found["state"] == "disabled" and "410" in found["disabled_reason"]
    assert len(receiver.requests) == 1


def test_bad_subscriptions_are_refused_and_write_nothing(api, receiver) -> None:
    parole = IntegrationClient(api, PAROLE, ["stage-progress"])
    path = "/webhooks/subscriptions"
    cases = [
        ({"url": "ftp://example.test/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "http:///nohost"}, "url"),
        ({"url": "https://user:pw@example.test/hook"}, "url"),
        ({"url": receiver.url, "event_types": ["tcledger.participant.nothing"]},
         "event_types"),
        ({"url": receiver.url, "event_types": [DISCHARGED]}, "event_types"),  # no category
        ({"url": receiver.url, "extra": 1}, "extra"),
        ({}, "url"),
    ]
    for body, field in cases:
        response = parole.post(path, body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in json.dumps(response.json()["errors"]), (body, response.json())
    assert api.client.post(path, json={"url": receiver.url}).status_code == 401
    assert api.post(path, {"url": receiver.url}).status_code == 403  # a counselor
    admin = api.client.post(path, json={"url": receiver.url},
                            headers=api.headers("admin"))
    assert admin.status_code == 403
    listed = api.client.get(path, headers=parole.headers).json()["items"]
    assert listed == []

    first = parole.post(path, {"url": receiver.url}, **{})
    keyed = parole.api.client.post(path, json={"url": receiver.url},
                                   headers={**parole.headers, "Idempotency-Key": "k-1"})
    replay = parole.api.client.post(path, json={"url": receiver.url},
                                    headers={**parole.headers, "Idempotency-Key": "k-1"})
    assert first.status_code == 201 and keyed.status_code == 201
    assert replay.status_code == 200 and replay.json() == keyed.json()
    reused = parole.api.client.post(path, json={"url": receiver.url + "/other"},
                                    headers={**parole.headers, "Idempotency-Key": "k-1"})
    assert reused.status_code == 422
    assert len(api.client.get(path, headers=parole.headers).json()["items"]) == 2

    other = IntegrationClient(api, "Synthetic Sheriff", ["stage-progress"])
    mine = keyed.json()["id"]
    assert other.api.client.delete(f"{path}/{mine}", headers=other.headers).status_code == 404
    assert other.api.client.get(f"{path}/{mine}/deliveries",
                                headers=other.headers).status_code == 404
    assert api.client.get(f"{path}/{mine}/deliveries",
                          headers=api.headers("admin")).status_code == 200
    assert parole.api.client.get(f"{path}/{mine}/deliveries", params={"state": "lost"},
                                 headers=parole.headers).status_code == 422
