"""Movements from the offender-management system through HTTP, on SQLite and PostgreSQL:
found by DOC number (the one active record), idempotent on the movement id, one answer per
NDJSON line, nothing written for a refused line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.e2e.integration_clients import PAROLE, IntegrationClient, in_a_year, kinds
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok

NDJSON = "application/x-ndjson"
OMS = "Synthetic Offender Management"


def admitted(api, seed: int, **overrides) -> tuple[str, str]:
    admission = synthetic_admission(seed, days_ago=90, **overrides)
    return ok(api.post("/participants", admission))["id"], admission["doc_number"]


def record(api, pid: str) -> dict:
    return ok(api.get(f"/participants/{pid}", role="auditor"), 200)


def movement(movement_id: str, doc: str, kind: str, **fields) -> dict:
    return {"movement_id": movement_id, "doc_number": doc, "kind": kind,
            "effective_at": moment_ago(1), **fields}


def test_transfer_release_date_and_release_each_once(api) -> None:
    oms = IntegrationClient(api, OMS, ["admission-and-status"], ("movements",))
    pid, doc = admitted(api, 301)
    transfer = movement("MV-1", doc, "transfer", facility="F-SOUTH", unit="U-9")
    first = oms.post("/ingest/movements", transfer)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == pid and first.json()["movement_id"] == "MV-1"
    assert (record(api, pid)["facility"], record(api, pid)["unit"]) == ("F-SOUTH", "U-9")
    again = oms.post("/ingest/movements", transfer)
    assert again.status_code == 200 and again.json() == first.json()
    changed = oms.post("/ingest/movements", {**transfer, "unit": "U-8"})
    assert changed.status_code == 409
    assert changed.json()["type"] == "urn:tcledger:problem:duplicate-movement-id"

    new_date = (datetime.now(UTC).date() + timedelta(days=400)).isoformat()
    ok(oms.post("/ingest/movements", movement("MV-2", doc, "release_date_changed",
                                              expected_release_on=new_date)))
    assert record(api, pid)["expected_release_on"] == new_date
    ok(oms.post("/ingest/movements", movement("MV-3", doc, "release_date_changed",
                                              expected_release_on=None)))
    assert record(api, pid)["expected_release_on"] is None

    terminated = oms.post("/ingest/movements", movement(
        "MV-4", doc, "released", discharge_type="therapeutic-termination"))
    assert terminated.status_code == 422  # the program's decision, not a movement
    assert terminated.json()["errors"][0]["field"] == "discharge_type"
    ok(oms.post("/ingest/movements", movement("MV-5", doc, "released")))
    released = record(api, pid)
    assert released["status"] == "discharged"
    assert released["discharge"]["type"] == "administrative-release"
    history = ok(api.get(f"/participants/{pid}/history", role="auditor"), 200)["events"]
    moved = [e for e in history if e["source"] == f"integration:{OMS}"]
    assert [e["type"] for e in moved] == ["ParticipantTransferred", "ReleaseDateChanged",
                                          "ReleaseDateChanged", "Discharged"]
    assert all(e["role"] == "integration" for e in moved)
    after = oms.post("/ingest/movements", movement("MV-6", doc, "transfer", facility="F-EAST",
                                                   unit="U-1"))
    assert after.status_code == 404  # no active record has that number any more
    assert doc not in after.text  # a DOC number is personal data: never echoed


def test_ndjson_movements_answer_each_line(api) -> None:
    oms = IntegrationClient(api, OMS, ["admission-and-status"], ("movements",))
    pid, doc = admitted(api, 302, unit="U-2")
    before = record(api, pid)["version"]
    lines = [
        json.dumps(movement("MV-10", doc, "transfer", facility="F-NORTH", unit="U-3")),  # 201
        json.dumps(movement("MV-11", "SYN-UNKNOWN", "release_date_changed",
                            expected_release_on=None)),                                # 404
        "not json",                                                                     # 400
        json.dumps(movement("MV-12", doc, "transfer", facility="F-NORTH")),             # 422
        json.dumps(movement("MV-13", doc, "transfer", facility="F-NORTH", unit="U-3")),  # 409
        json.dumps(movement("MV-14", doc, "release_date_changed")),                     # 422
        json.dumps(movement("MV-15", doc, "released", unit="U-1")),                     # 422
        None,                                                                           # 200
        json.dumps(movement("MV-16", doc, "teleport")),                                 # 422
    ]
    lines[7] = lines[0]  # the same movement again
    response = oms.post_raw("/ingest/movements", "\n".join(lines).encode(), NDJSON)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 404, 400, 422, 409, 422, 422, 200, 422]
    assert results[3]["problem"]["errors"][0]["field"] == "unit"
    assert results[4]["problem"]["rule"] == "transfer-to-same-unit"
    assert results[5]["problem"]["errors"][0]["field"] == "expected_release_on"
    assert results[6]["problem"]["errors"][0]["field"] == "unit"
    assert results[8]["problem"]["errors"][0]["field"] == "kind"
    assert record(api, pid)["version"] == before + 1


def test_a_doc_number_finds_the_one_active_record(api) -> None:
    oms = IntegrationClient(api, OMS, ["admission-and-status"], ("movements",))
    old, doc = admitted(api, 303)
    ok(api.post(f"/participants/{old}/discharge", {"type": "voluntary-withdrawal",
                                                   "reason": "left"}))
    readmitted, _ = admitted(api, 304, doc_number=doc)  # the same person, admitted again
    moved = ok(oms.post("/ingest/movements", movement("MV-20", doc, "release_date_changed",
                                                      expected_release_on=None)))
    assert moved["id"] == readmitted
    twin, _ = admitted(api, 305, doc_number=doc)  # a second active record: ambiguous
    versions = {p: record(api, p)["version"] for p in (readmitted, twin)}
    ambiguous = oms.post("/ingest/movements", movement("MV-21", doc, "release_date_changed",
                                                       expected_release_on=None))
    assert ambiguous.status_code == 409
    assert ambiguous.json()["type"] == "urn:tcledger:problem:ambiguous-doc-number"
    assert {p: record(api, p)["version"] for p in (readmitted, twin)} == versions


def test_movements_reach_a_consented_recipient(api) -> None:
    oms = IntegrationClient(api, OMS, ["admission-and-status"], ("movements",))
    parole = IntegrationClient(api, PAROLE, ["admission-and-status", "discharge"])
    pid, doc = admitted(api, 306)
    ok(api.post(f"/participants/{pid}/consents", {
        "recipient": PAROLE, "purpose": "parole supervision",
        "categories": ["admission-and-status", "discharge"], "expires_on": in_a_year()}))
    ok(oms.post("/ingest/movements", movement("MV-30", doc, "transfer", facility="F-SOUTH",
                                              unit="U-1", reason="bed space qx51")))
    ok(oms.post("/ingest/movements", movement("MV-31", doc, "released")))
    events = parole.drain()
    assert kinds(events) == ["participant-admitted", "participant-transferred", "discharged"]
    assert events[1].get_data()["facility"] == "F-SOUTH"
    assert "qx51" not in json.dumps([e.get_data() for e in events])


def test_the_openapi_document_describes_the_integration_endpoints(api) -> None:
    doc = ok(api.client.get("/openapi.json"), 200)
    for path, method in (("/feed", "get"), ("/ingest/lab-results", "post"),
                         ("/ingest/movements", "post"), ("/admin/integrations", "post")):
        assert method in doc["paths"][path]
    body = doc["paths"]["/ingest/movements"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-ndjson"}
    refs = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            refs.update(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    for ref in refs:  # every reference resolves inside the document
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref
