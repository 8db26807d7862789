"""The access log over HTTP: every read and write of a record, by whom, how, from where and
in answer to which request, itself an event of the ledger, and filterable by auditors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from audit import merkle
from audit.access import ACCESS_TOPIC
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import ok, run_lifecycle


def entries(api, **params) -> list[dict]:
    found: list[dict] = []
    cursor = None
    while True:
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        page = ok(api.get("/audit/access-log", role="auditor", params=query), 200)
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_writes_reads_and_denials_are_logged_with_who_what_and_which_request(api) -> None:
    pid = run_lifecycle(api, seed=21)["id"]
    read = api.get(f"/participants/{pid}")
    assert read.status_code == 200
    api.get(f"/participants/{pid}/timeline")
    bundle = api.get(f"/audit/participants/{pid}/bundle", role="auditor")
    assert bundle.status_code == 200
    elsewhere = api.client.get(f"/participants/{pid}",
                               headers=api.headers("counselor", facility="F-SOUTH"))
    assert elsewhere.status_code == 404

    log = entries(api, participant=pid)
    writes = [e for e in log if e["action"] == "write"]
    assert len(writes) == 14  # every command of the lifecycle, admission included
    assert writes[0]["what"] == "POST /participants" and writes[0]["status"] == 201
    assert all(e["role"] == "counselor" and e["facility"] == "F-NORTH" for e in writes)
    assert all(e["from"] == "testclient" for e in log)
    reads = [e for e in log if e["action"] == "read"]
    assert {e["what"] for e in reads} >= {
        "GET /participants/{participant_id}", "GET /participants/{participant_id}/history",
        "GET /participants/{participant_id}/timeline",
        "GET /audit/participants/{participant_id}/bundle"}
    mine = next(e for e in reads if e["request_id"] == read.headers["x-request-id"])
    assert mine["what"] == "GET /participants/{participant_id}"
    assert any(e["role"] == "auditor" for e in reads)  # auditors' reads are logged too
    denied = [e for e in log if e["action"] == "denied"]
    assert len(denied) == 1 and denied[0]["facility"] == "F-SOUTH"
    assert denied[0]["status"] == 404
    # Filters narrow it; pages never repeat or skip.
    assert len({(e["position"], e["participant"]) for e in log}) == len(log)
    assert all(e["action"] == "denied" for e in entries(api, participant=pid, action="denied"))
    actor = writes[0]["actor"]
    assert {e["actor"] for e in entries(api, actor=actor)} == {actor}
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert entries(api, participant=pid, **{"from": later.isoformat()}) == []
    bounded = entries(api, participant=pid, to=later.isoformat())
    assert bounded[:len(log)] == log
    # Reading the access log about a record is itself a logged read of that record.
    assert {e["what"] for e in bounded[len(log):]} == {"GET /audit/access-log"}


def test_a_commands_entry_is_committed_with_its_events(api) -> None:
    answer = ok(api.post("/participants", synthetic_admission(22, days_ago=30)))
    rows = api.services.store.fetch_all(
        "SELECT topic FROM tcledger_events ORDER BY "
        + ("notification_id" if api.services.settings.uses_postgres else "rowid"))
    topics = [r["topic"] for r in rows]
    # The admission, then its access entry: one append, nothing between.
    assert topics[-1] == ACCESS_TOPIC
    assert topics.count(ACCESS_TOPIC) == 1
    assert answer["position"] == len(topics) - 1


def test_a_caseload_page_logs_every_participant_it_shows(api) -> None:
    answers = [ok(api.post("/participants", synthetic_admission(30 + n, days_ago=40)))
               for n in range(3)]
    ids = [a["id"] for a in answers]
    page = ok(api.get("/participants", params={"min_position": answers[-1]["position"]}), 200)
    shown = {item["id"] for item in page["items"]}
    assert set(ids) <= shown
    for pid in ids:
        assert any(e["what"] == "GET /participants" for e in entries(api, participant=pid))


def test_entries_are_ledger_leaves_and_encrypted(api) -> None:
    pid = run_lifecycle(api, seed=23)["id"]
    api.get(f"/participants/{pid}")
    entry = entries(api, participant=pid)[-1]
    head = ok(api.post("/audit/tree-head", {}, role="auditor"), 201)
    from audit.ledger import EventRows
    services = api.services
    rows = EventRows(services.store, services.ledger.recorder.events_table_name)
    row = next(r for r in rows.all() if r.position == entry["position"])
    assert row.topic == ACCESS_TOPIC
    assert b"GET" not in row.state and pid.encode() not in row.state
    proof = ok(api.get("/audit/proofs/inclusion", role="auditor", params={
        "participant": str(row.stream_id), "version": 1}), 200)
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), proof["leaf_index"],
                                   proof["tree_size"], [bytes.fromhex(p) for p in proof["path"]],
                                   bytes.fromhex(proof["tree_head"]["root_hash"]))
    assert proof["tree_size"] >= head["tree_size"]


def test_a_record_is_not_shown_when_its_reading_cannot_be_logged(api, monkeypatch) -> None:
    pid = ok(api.post("/participants", synthetic_admission(24, days_ago=20)))["id"]

    def broken(_entry) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(api.client.app.state.access_log, "record", broken)
    answer = api.get(f"/participants/{pid}")
    assert answer.status_code == 503
    assert answer.json()["type"] == "urn:tcledger:problem:access-log-unavailable"
    assert "given_name" not in answer.text
    assert api.client.get("/health").status_code in (200, 503)  # no participant: not logged


def test_the_access_log_refuses_other_roles_and_bad_input(api) -> None:
    pid = str(UUID(int=5))
    for role in ("counselor", "supervisor"):
        assert api.get("/audit/access-log", role=role).status_code == 403
    for params in ({"from": "2026-01-01T00:00:00"}, {"cursor": "x"}, {"cursor": "5:nope"},
                   {"limit": 0}, {"limit": 5000}, {"participant": "nope"},
                   {"action": "deleted"}, {"to": "yesterday"}):
        answer = api.get("/audit/access-log", role="auditor", params=params)
        assert answer.status_code == 422, (params, answer.text)
    assert ok(api.get("/audit/access-log", role="auditor", params={"participant": pid}),
              200)["items"] == []
