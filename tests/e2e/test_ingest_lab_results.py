"""Lab results pushed in through HTTP, on SQLite and PostgreSQL: found by specimen, idempotent
on the lab's result id, one answer per NDJSON line, nothing written for a refused line."""

from __future__ import annotations

import json
import threading

from tests.e2e.integration_clients import LAB, PAROLE, IntegrationClient
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok

NDJSON = "application/x-ndjson"


def admitted_with_specimen(api, seed: int, specimen_id: str) -> str:
    pid = ok(api.post("/participants", synthetic_admission(seed, days_ago=60)))["id"]
    ok(api.post(f"/participants/{pid}/specimens", {
        "specimen_id": specimen_id, "method": "urine", "test_reason": "random",
        "collected_at": moment_ago(2)}))
    return pid


def screen(result_id: str, specimen_id: str, result: str = "negative", **more) -> dict:
    return {"result_id": result_id, "specimen_id": specimen_id, "result": result,
            "lab": "Synthetic Reference Lab", "resulted_at": moment_ago(1), **more}


def version_of(api, pid: str) -> int:
    return ok(api.get(f"/participants/{pid}"), 200)["version"]


def test_one_result_is_recorded_once_by_its_specimen(api) -> None:
    lab = IntegrationClient(api, LAB, ["drug-tests"], ("lab-results",))
    pid = admitted_with_specimen(api, 201, "SPC-201")
    body = screen("LR-1", "SPC-201", "positive",
                  substances=[{"code": "synthetic-cannabinoids", "level_ng_ml": 80}])
    first = lab.post("/ingest/lab-results", body)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["id"] == pid and answer["result_id"] == "LR-1"
    assert first.headers["etag"] == f'"{answer["version"]}"'
    specimen = ok(api.get(f"/participants/{pid}"), 200)["specimens"][0]
    assert specimen["result"] == "positive" and specimen["lab"] == "Synthetic Reference Lab"
    event = ok(api.get(f"/participants/{pid}/history"), 200)["events"][-1]
    assert event["type"] == "TestResulted" and event["role"] == "integration"
    assert event["source"] == f"integration:{LAB}"

    again = lab.post("/ingest/lab-results", body)  # a retry: the first answer, nothing new
    assert again.status_code == 200 and again.json() == answer
    assert version_of(api, pid) == answer["version"]

    changed = lab.post("/ingest/lab-results", {**body, "result": "negative", "substances": []})
    assert changed.status_code == 409
    assert changed.json()["type"] == "urn:tcledger:problem:duplicate-result-id"
    assert version_of(api, pid) == answer["version"]

    writes = ok(api.get("/audit/access-log", role="auditor",
                        params={"participant": pid, "actor": lab.token_id}), 200)["items"]
    assert [(w["action"], w["what"]) for w in writes] == [("write", "POST /ingest/lab-results")]


def test_ndjson_answers_each_line_and_writes_nothing_for_a_refused_one(api) -> None:
    lab = IntegrationClient(api, LAB, ["drug-tests"], ("lab-results",))
    first = admitted_with_specimen(api, 202, "SPC-202")
    second = admitted_with_specimen(api, 203, "SPC-203")
    gone = admitted_with_specimen(api, 204, "SPC-204")
    ok(api.post(f"/participants/{gone}/discharge", {"type": "voluntary-withdrawal",
                                                     "reason": "left the program"}))
    positive = screen("LR-10", "SPC-202", "positive",
                      substances=[{"code": "synthetic-cannabinoids", "level_ng_ml": 80}])
    lines = [
        json.dumps(positive),                                          # 1 recorded
        json.dumps(screen("LR-11", "SPC-203")),                        # 2 recorded
        "{not json",                                                   # 3 malformed
        json.dumps(screen("LR-12", "SPC-NOWHERE")),                    # 4 unknown specimen
        json.dumps(positive),                                          # 5 the same again
        json.dumps({**positive, "lab": "Another Lab"}),                # 6 same id, changed
        json.dumps({k: v for k, v in screen("LR-13", "SPC-203").items()
                    if k != "resulted_at"}),                           # 7 a field missing
        json.dumps({"result_id": "LR-14", "specimen_id": "SPC-202", "kind": "confirmation",
                    "confirmed": True, "method": "LC-MS-MS",
                    "substances": ["synthetic-cannabinoids"],
                    "resulted_at": moment_ago(0)}),                    # 8 confirmation
        json.dumps(screen("LR-15", "SPC-204")),                        # 9 discharged record
        json.dumps(screen("LR-16", "SPC-203", kind="confirmation")),   # 10 wrong fields
        "[1, 2]",                                                      # 11 not an object
        json.dumps(screen("LR-17", "SPC-203", "positive")),            # 12 already resulted
        "",
    ]
    before = {pid: version_of(api, pid) for pid in (first, second, gone)}
    response = lab.post_raw("/ingest/lab-results", "\n".join(lines).encode(), NDJSON)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["line"], r["status"]) for r in results] == [
        (1, 201), (2, 201), (3, 400), (4, 404), (5, 200), (6, 409), (7, 422), (8, 201),
        (9, 409), (10, 422), (11, 400), (12, 409)]
    assert response.json()["recorded"] == 3 and response.json()["replayed"] == 1
    by_line = {r["line"]: r for r in results}
    assert by_line[4]["problem"]["title"] == "Unknown specimen"
    assert by_line[6]["problem"]["type"] == "urn:tcledger:problem:duplicate-result-id"
    assert by_line[7]["problem"]["errors"][0]["field"] == "resulted_at"
    assert by_line[9]["problem"]["rule"] == "participant-discharged"
    assert by_line[10]["problem"]["errors"][0]["field"] in ("result", "confirmed")
    assert by_line[12]["problem"]["rule"] == "specimen-already-resulted"
    assert by_line[5]["id"] == by_line[1]["id"] == first
    after = {pid: version_of(api, pid) for pid in (first, second, gone)}
    attempts = ok(api.get("/audit/access-log", role="auditor",
                          params={"participant": gone, "actor": lab.token_id}), 200)["items"]
    assert [(a["action"], a["status"]) for a in attempts] == [("failed", 409)]
    assert after == {first: before[first] + 2, second: before[second] + 1,
                     gone: before[gone]}

    # The whole push again: every recorded line replays, nothing is written twice.
    replay = lab.post_raw("/ingest/lab-results", "\n".join(lines).encode(), NDJSON)
    statuses = {r["line"]: r["status"] for r in replay.json()["results"]}
    assert statuses[1] == statuses[2] == statuses[8] == 200
    assert {pid: version_of(api, pid) for pid in (first, second, gone)} == after


def test_an_ingested_result_reaches_a_consented_recipient(api) -> None:
    lab = IntegrationClient(api, LAB, ["drug-tests"], ("lab-results",))
    parole = IntegrationClient(api, PAROLE, ["drug-tests"])
    pid = admitted_with_specimen(api, 205, "SPC-205")
    ok(api.post(f"/participants/{pid}/consents", {
        "recipient": PAROLE, "purpose": "parole supervision", "categories": ["drug-tests"],
        "expires_on": "2099-01-01"}))
    ok(lab.post("/ingest/lab-results", screen("LR-20", "SPC-205")))
    events = parole.drain()
    assert [e.get_type() for e in events][-1] == "tcledger.participant.test-resulted"
    assert events[-1].get_data()["result"] == "negative"
    assert lab.drain() == []  # the lab's recipient is named by no consent


def test_bad_requests_are_clear_and_write_nothing(api) -> None:
    lab = IntegrationClient(api, LAB, ["drug-tests"], ("lab-results",))
    pid = admitted_with_specimen(api, 206, "SPC-206")
    twin = admitted_with_specimen(api, 207, "SPC-206")  # two records reuse one specimen id
    before = {p: version_of(api, p) for p in (pid, twin)}
    ambiguous = lab.post("/ingest/lab-results", screen("LR-30", "SPC-206"))
    assert ambiguous.status_code == 409
    assert ambiguous.json()["type"] == "urn:tcledger:problem:ambiguous-specimen"
    wrong_type = lab.post_raw("/ingest/lab-results", b"result_id=1", "text/plain")
    assert wrong_type.status_code == 415
    malformed = lab.post_raw("/ingest/lab-results", b"{", "application/json")
    assert malformed.status_code == 400
    assert malformed.headers["content-type"].startswith("application/problem+json")
    empty = lab.post_raw("/ingest/lab-results", b"\n\n", NDJSON)
    assert empty.status_code == 422
    too_many = lab.post_raw("/ingest/lab-results", b"{}\n" * 1001, NDJSON)
    assert too_many.status_code == 413
    unknown_field = lab.post("/ingest/lab-results", {**screen("LR-31", "SPC-206"),
                                                     "patient_name": "x"})
    assert unknown_field.status_code == 422
    assert api.post("/ingest/lab-results", screen("LR-32", "SPC-206")).status_code == 403
    plain = api.client.post("/ingest/lab-results", json=screen("LR-33", "SPC-206"),
                            headers=api.headers("integration"))
    assert plain.status_code == 403
    assert api.client.post("/ingest/lab-results", json={}).status_code == 401
    parole = IntegrationClient(api, PAROLE, ["drug-tests"])  # receives, may not push
    refused = parole.post("/ingest/lab-results", screen("LR-34", "SPC-206"))
    assert refused.status_code == 403 and "may not push lab-results" in refused.text
    assert lab.post("/ingest/movements", {}).status_code == 403
    assert {p: version_of(api, p) for p in (pid, twin)} == before


def test_racing_pushes_of_one_result_record_it_once(api) -> None:
    lab = IntegrationClient(api, LAB, ["drug-tests"], ("lab-results",))
    pid = admitted_with_specimen(api, 208, "SPC-208")
    other = admitted_with_specimen(api, 209, "SPC-209")
    before = {p: version_of(api, p) for p in (pid, other)}
    same = screen("LR-40", "SPC-208")
    bodies = [same, same, screen("LR-40", "SPC-209")]  # the last reuses the id elsewhere
    start = threading.Barrier(len(bodies))
    answers: list = [None] * len(bodies)

    def push(i: int) -> None:
        start.wait()
        answers[i] = lab.post("/ingest/lab-results", bodies[i])

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(a.status_code for a in answers)
    after = {p: version_of(api, p) for p in (pid, other)}
    written = [p for p in (pid, other) if after[p] == before[p] + 1]
    assert len(written) == 1 and all(after[p] == before[p] for p in (pid, other)
                                     if p not in written)  # one result, written once
    assert statuses.count(201) == 1 and 409 in statuses
    assert set(statuses) <= {200, 201, 409}
