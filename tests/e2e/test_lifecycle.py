"""A participant's whole record through HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import ok, run_lifecycle


def test_full_lifecycle(api):
    done = run_lifecycle(api)
    pid = done["id"]
    record = ok(api.get(f"/participants/{pid}"), 200)
    assert record["status"] == "discharged"
    assert record["stage"] == "orientation"
    assert record["discharge"]["type"] == "therapeutic-termination"
    assert record["discharge"]["reinstatement_eligible_on"] is not None
    assert record["privileges"] == []  # discharge ends every privilege
    assert record["given_name"] == done["admission"]["given_name"]
    infraction = record["infractions"][0]
    assert infraction["description"] == "Bunk area left unkempt once"  # corrected
    specimen = record["specimens"][0]
    assert specimen["result"] == "positive" and specimen["confirmation"]["confirmed"]

    events = ok(api.get(f"/participants/{pid}/history"), 200)["events"]
    types = [e["type"] for e in events]
    assert types[0] == "ParticipantAdmitted" and types[-1] == "Discharged"
    # Regression revoked the privilege phase-1 allowed and orientation does not.
    regressed = types.index("StageRegressed")
    assert types[regressed + 1] == "PrivilegeRevoked"
    assert events[regressed + 1]["data"]["privilege"] == "recreation"
    # History keeps the original and the correction.
    original = next(e for e in events if e["type"] == "InfractionRecorded")
    assert original["data"]["description"] == "Bunk area left unkempt twice"
    correction = next(e for e in events if e["type"] == "EntryCorrected")
    assert correction["data"]["supersedes_version"] == original["version"]
    for event in events:
        assert event["actor"] and event["role"] == "counselor" and event["source"] == "api"
        assert event["recorded_at"] and event["effective_at"] and event["correlation_id"]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    promoted = next(e for e in events if e["type"] == "StagePromoted")
    assert promoted["late_entry"] is True

    # The record as it stood before the discharge was recorded.
    earlier = ok(api.client.get(f"/participants/{pid}", params={"as_of": done["before_discharge"]},
                                headers=api.headers("counselor")), 200)
    assert earlier["status"] == "active"
    assert earlier["version"] < record["version"]

    # A discharged record takes corrections and consent, nothing else.
    refused = api.post(f"/participants/{pid}/privileges",
                       {"action": "grant", "privilege": "commissary", "reason": "x"})
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:tcledger:rule:participant-discharged"
    ok(api.post(f"/participants/{pid}/consents/{done['consent_id']}/revocation",
                {"reason": "participant withdrew consent"}))


def test_erasure_shreds_one_participant_only(api):
    done = run_lifecycle(api)
    other = ok(api.post("/participants", synthetic_admission(99)))["id"]
    pid = done["id"]
    hold = ok(api.post(f"/admin/participants/{pid}/legal-holds",
                       {"matter": "synthetic civil matter", "reason": "litigation"}, role="admin"))
    refused = api.post(f"/admin/participants/{pid}/erasure", {"reason": "retention expired"},
                       role="admin")
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:tcledger:rule:legal-hold-open"
    ok(api.post(f"/admin/participants/{pid}/legal-holds/{hold['hold_id']}/release",
                {"reason": "matter closed"}, role="admin"))
    erased = ok(api.post(f"/admin/participants/{pid}/erasure", {"reason": "retention expired"},
                         role="admin"))
    assert erased["erased"] is True

    for path in (f"/participants/{pid}", f"/participants/{pid}/history"):
        gone = api.get(path)
        assert gone.status_code == 410, gone.text
        assert gone.json()["type"] == "urn:tcledger:problem:erased"
    assert api.post(f"/participants/{pid}/consents", {
        "recipient": "x", "purpose": "y", "categories": ["discharge"],
        "expires_on": "2999-01-01"}).status_code == 410
    # Even with every in-memory copy dropped, the key is gone from the store.
    api.services.keys._cache.clear()
    api.services.ledger.forget(pid)
    assert api.get(f"/participants/{pid}").status_code == 410
    assert ok(api.get(f"/participants/{other}"), 200)["status"] == "active"
    listed = ok(api.get("/participants", params={"min_position": erased["position"]}),
                200)["items"]
    assert [p["id"] for p in listed] == [other]
    record = api.services.ledger.erasure_of(__import__("uuid").UUID(pid))
    assert record is not None and record.reason == "retention expired"


def test_write_answers_and_etags(api):
    first = ok(api.post("/participants", synthetic_admission(3)))
    pid = first["id"]
    read = api.get(f"/participants/{pid}")
    etag = read.headers["etag"]
    granted = api.post(f"/participants/{pid}/privileges",
                       {"action": "grant", "privilege": "commissary", "reason": "earned"},
                       **{"If-Match": etag})
    assert granted.status_code == 201
    body = granted.json()
    assert body["version"] == first["version"] + 1 and body["position"] > first["position"]
    assert granted.headers["etag"] == f'"{body["version"]}"'
    stale = api.post(f"/participants/{pid}/privileges",
                     {"action": "revoke", "privilege": "commissary", "reason": "x"},
                     **{"If-Match": etag})
    assert stale.status_code == 412


def test_programs_and_health(api):
    programs = ok(api.get("/programs"), 200)["items"]
    assert programs[0]["code"] == "tc-default"
    assert [s["code"] for s in programs[0]["stages"]][0] == "orientation"
    assert ok(api.get("/programs/tc-default"), 200)["sanctions"]
    assert api.get("/programs/nope").status_code == 404
    health = api.client.get("/health")
    assert health.status_code == 200 and health.json()["database"]["status"] == "ok"


def test_reads_wait_for_min_position(api, monkeypatch):
    written = ok(api.post("/participants", synthetic_admission(5)))
    pid = written["id"]
    got = api.client.get(f"/participants/{pid}", params={"min_position": written["position"]},
                         headers=api.headers("counselor"))
    assert got.status_code == 200 and got.json()["version"] == written["version"]
    monkeypatch.setattr("api.deps.MIN_POSITION_WAIT_SECONDS", 0.1)
    ahead = api.client.get(f"/participants/{pid}/history",
                           params={"min_position": written["position"] + 1000},
                           headers=api.headers("counselor"))
    assert ahead.status_code == 503 and ahead.headers["retry-after"] == "1"
    assert ahead.json()["type"] == "urn:tcledger:problem:position-not-reached"
    bad = api.client.get("/participants", params={"min_position": -1},
                         headers=api.headers("counselor"))
    assert bad.status_code == 422


def test_timeline_in_the_order_things_happened(api):
    done = run_lifecycle(api)
    pid = done["id"]
    head = api.services.log.head()
    entries = ok(api.client.get(f"/participants/{pid}/timeline",
                                params={"min_position": head},
                                headers=api.headers("counselor")), 200)["entries"]
    history = ok(api.get(f"/participants/{pid}/history"), 200)["events"]
    assert sorted(e["version"] for e in entries) == [e["version"] for e in history]
    effective = [e["effective_at"] for e in entries]
    assert effective == sorted(effective)
    infraction = next(e for e in entries if e["type"] == "InfractionRecorded")
    assert infraction["supersession"] == "corrected" and infraction["superseded_by"]
    assert infraction["reason"] == "reported by peer"
    recorded = ok(api.client.get(f"/participants/{pid}/timeline",
                                 params={"order": "recorded"},
                                 headers=api.headers("counselor")), 200)["entries"]
    assert [e["version"] for e in recorded] == [e["version"] for e in history]
    assert api.client.get(f"/participants/{pid}/timeline",
                          headers=api.headers("counselor", facility="F-SOUTH")).status_code == 404
    erased = ok(api.post(f"/admin/participants/{pid}/erasure", {"reason": "retention"},
                         role="admin"))
    api.client.app.state.runner.wait_for(erased["position"], 5)
    left = api.services.store.fetch_all(
        "SELECT count(*) AS n FROM tcledger_timeline WHERE participant_id = ?", (pid,))
    assert left[0]["n"] == 0
