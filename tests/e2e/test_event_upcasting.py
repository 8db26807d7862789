"""A version 1 event, encrypted and stored as a version 1 writer stored it, is upcast when
read through the real (encrypting) mapper and served in today's shape over HTTP, on SQLite
and PostgreSQL. The stored ciphertext is never rewritten. Synthetic data only."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent

from domain.participant import Participant
from domain.provenance import Provenance
from infra.cipher import FORMAT_V1, associated_data
from infra.keys import NONCE_BYTES
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok


def store_version_1_review(services: Any, pid: UUID, specimen_id: str) -> StoredEvent:
    ledger = services.ledger
    scratch: Participant = ledger.participant(pid)
    scratch.review_result(by=Provenance("staff-mro-1", "counselor"), specimen_id=specimen_id,
                          outcome="explained", at=datetime.now(UTC), reason="prescribed",
                          medications=["ignored"])
    (event,) = scratch.collect_events()
    plain = Mapper.to_stored_event(ledger.mapper, event)  # the transcoder, before the cipher
    state = ledger.mapper.transcoder.decode(plain.state)
    del state["class_version"], state["medications"]
    state["medication"] = "SYN-BUPRENORPHINE"
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(services.keys.data_key(pid)).encrypt(
        nonce, ledger.mapper.transcoder.encode(state),
        associated_data(pid, plain.originator_version, plain.topic))
    stored = StoredEvent(plain.originator_id, plain.originator_version, plain.topic,
                         FORMAT_V1 + nonce + sealed)
    ledger.recorder.insert_events([stored])
    return stored


def test_a_stored_version_1_review_is_served_as_version_2(api):
    pid = ok(api.post("/participants", synthetic_admission(501)))["id"]
    base = f"/participants/{pid}"
    ok(api.post(f"{base}/specimens", {"specimen_id": "SYN-SPC-501", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(3)}))
    ok(api.post(f"{base}/specimens/SYN-SPC-501/result", {
        "result": "positive", "substances": [{"code": "buprenorphine", "level_ng_ml": 12}],
        "resulted_at": moment_ago(2)}))
    stored = store_version_1_review(api.services, UUID(pid), "SYN-SPC-501")

    (specimen,) = ok(api.get(base), 200)["specimens"]
    assert specimen["review"]["medications"] == ["SYN-BUPRENORPHINE"]
    event = ok(api.get(f"{base}/history"), 200)["events"][-1]
    assert event["type"] == "ResultReviewed"
    assert event["data"]["medications"] == ["SYN-BUPRENORPHINE"]
    assert "medication" not in event["data"]
    # Read, not rewritten: the stored record is byte for byte the version 1 ciphertext.
    (again,) = api.services.ledger.recorder.select_events(
        UUID(pid), gt=stored.originator_version - 1, lte=stored.originator_version)
    assert bytes(again.state) == bytes(stored.state)

    # A correction today names today's field.
    ok(api.post(f"{base}/corrections", {
        "supersedes_version": stored.originator_version, "action": "correct",
        "changes": {"medications": ["SYN-BUPRENORPHINE", "SYN-CLONAZEPAM"]},
        "reason": "second prescription found"}))
    (specimen,) = ok(api.get(base), 200)["specimens"]
    assert specimen["review"]["medications"] == ["SYN-BUPRENORPHINE", "SYN-CLONAZEPAM"]


def test_the_review_endpoint_takes_both_shapes_of_the_body(api):
    pid = ok(api.post("/participants", synthetic_admission(502)))["id"]
    base = f"/participants/{pid}"
    ok(api.post(f"{base}/specimens", {"specimen_id": "SYN-SPC-502", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(3)}))
    ok(api.post(f"{base}/specimens/SYN-SPC-502/result", {
        "result": "positive", "substances": [{"code": "methadone", "level_ng_ml": 400}],
        "resulted_at": moment_ago(2)}))
    ok(api.post(f"{base}/specimens/SYN-SPC-502/review", {
        "outcome": "explained", "medications": ["SYN-METHADONE"], "medication": "SYN-OTHER",
        "medication_assisted_treatment": True, "reason": "MAT programme"}))
    (specimen,) = ok(api.get(base), 200)["specimens"]
    assert specimen["review"]["medications"] == ["SYN-METHADONE", "SYN-OTHER"]
