"""The ledger over HTTP, checked as an outside auditor would: signed heads verified with the
served public key, proofs verified with the RFC 9162 algorithms, bundles verified offline."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from audit import merkle
from audit.ledger import leaf_bytes
from audit.signing import head_message
from tests.e2e.scenario import ok, run_lifecycle


def verified_head(api, body: dict) -> dict:
    key = load_pem_public_key(api.get("/audit/public-key", role="auditor").content)
    message = head_message(body["tree_size"], body["timestamp"], bytes.fromhex(body["root_hash"]))
    key.verify(base64.b64decode(body["signature"]), message)  # type: ignore[union-attr]
    return body


def test_heads_and_proofs_verify_with_only_the_public_key(api) -> None:
    first = run_lifecycle(api, seed=3)
    head1 = verified_head(api, ok(api.post("/audit/tree-head", {}, role="auditor"), 201))
    second = run_lifecycle(api, seed=4)
    head2 = verified_head(api, ok(api.post("/audit/tree-head", {}, role="auditor"), 201))
    assert head2["tree_size"] > head1["tree_size"]
    assert ok(api.get("/audit/tree-head", role="auditor"), 200) == head2
    again = ok(api.get("/audit/tree-head", role="auditor",
                       params={"tree_size": head1["tree_size"]}), 200)
    assert again == head1  # the head of an earlier size, as signed then

    proof = ok(api.get("/audit/proofs/consistency", role="auditor",
                       params={"first": head1["tree_size"], "second": head2["tree_size"]}), 200)
    assert merkle.verify_consistency(head1["tree_size"], head2["tree_size"],
                                     bytes.fromhex(head1["root_hash"]),
                                     bytes.fromhex(head2["root_hash"]),
                                     [bytes.fromhex(p) for p in proof["path"]])

    history = ok(api.get(f"/participants/{first['id']}/history"), 200)
    versions = [item["version"] for item in history["events"]]
    assert len(versions) > 10
    for version in versions:
        answer = ok(api.get("/audit/proofs/inclusion", role="auditor", params={
            "participant": first["id"], "version": version}), 200)
        head = verified_head(api, answer["tree_head"])
        assert merkle.verify_inclusion(
            bytes.fromhex(answer["leaf_hash"]), answer["leaf_index"], answer["tree_size"],
            [bytes.fromhex(p) for p in answer["path"]], bytes.fromhex(head["root_hash"]))
    # A proof against an older tree that already held the event.
    answer = ok(api.get("/audit/proofs/inclusion", role="auditor", params={
        "participant": first["id"], "version": 1, "tree_size": head1["tree_size"]}), 200)
    assert merkle.verify_inclusion(
        bytes.fromhex(answer["leaf_hash"]), answer["leaf_index"], head1["tree_size"],
        [bytes.fromhex(p) for p in answer["path"]], bytes.fromhex(head1["root_hash"]))
    # The second participant's events came after the first head.
    late = api.get("/audit/proofs/inclusion", role="auditor", params={
        "participant": second["id"], "version": 1, "tree_size": head1["tree_size"]})
    assert late.status_code == 409
    assert late.json()["type"] == "urn:tcledger:problem:leaf-after-tree-size"


def test_the_leaf_is_the_documented_bytes_of_the_stored_record(api) -> None:
    pid = run_lifecycle(api, seed=5)["id"]
    bundle = ok(api.get(f"/audit/participants/{pid}/bundle", role="auditor"), 200)
    from uuid import UUID
    for event in bundle["events"]:
        leaf = leaf_bytes(UUID(pid), event["version"], event["type"],
                          base64.b64decode(event["ciphertext"]))
        assert merkle.leaf_hash(leaf).hex() == event["leaf_hash"]
        assert leaf[:16] == UUID(pid).bytes
        assert int.from_bytes(leaf[16:24], "big") == event["version"]


def test_a_bundle_verifies_offline_and_a_changed_byte_fails(api, tmp_path: Path) -> None:
    pid = run_lifecycle(api, seed=6)["id"]
    bundle = ok(api.get(f"/audit/participants/{pid}/bundle", role="auditor"), 200)
    assert bundle["events"][0]["recorded"]["type"] == "ParticipantAdmitted"
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    key = tmp_path / "key.pem"
    key.write_bytes(api.get("/audit/public-key", role="auditor").content)

    def verify(*extra: str) -> subprocess.CompletedProcess[str]:
        # No TCLEDGER_* settings, no database: a fresh process with only the file.
        return subprocess.run([sys.executable, "-m", "infra.cli", "audit", "verify-bundle",
                               str(path), *extra], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, cwd=Path(__file__).parents[2],
                              timeout=60)

    good = verify("--public-key", str(key))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "bundle verified" in good.stdout

    raw = bytearray(base64.b64decode(bundle["events"][2]["ciphertext"]))
    raw[10] ^= 0x01
    bundle["events"][2]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    path.write_text(json.dumps(bundle))
    bad = verify()
    assert bad.returncode == 1
    assert "event version 3" in bad.stdout

    bundle = ok(api.get(f"/audit/participants/{pid}/bundle", role="auditor"), 200)
    bundle["tree_head"]["root_hash"] = "00" * 32
    path.write_text(json.dumps(bundle))
    assert "signature does not verify" in verify().stdout
    path.write_text(json.dumps(bundle)[:-40])
    assert verify().returncode == 2


def test_an_erased_participant_stays_provable_without_content(api) -> None:
    pid = run_lifecycle(api, seed=8)["id"]
    ok(api.post(f"/admin/participants/{pid}/erasure", {"reason": "retention period over"},
                role="admin"), 201)
    bundle = ok(api.get(f"/audit/participants/{pid}/bundle", role="auditor"), 200)
    assert all(e["recorded"] is None for e in bundle["events"])
    from audit.bundle import verify_bundle
    assert verify_bundle(bundle) == []


def test_audit_endpoints_refuse_other_roles_and_bad_input(api) -> None:
    pid = run_lifecycle(api, seed=9)["id"]
    for role in ("counselor", "supervisor"):
        assert api.get("/audit/tree-head", role=role).status_code == 403
        assert api.get(f"/audit/participants/{pid}/bundle", role=role).status_code == 403
    assert api.client.get("/audit/tree-head").status_code == 401
    size = ok(api.get("/audit/tree-head", role="auditor"), 200)["tree_size"]
    cases = [
        ("/audit/tree-head", {"tree_size": size + 1000}, 404),
        ("/audit/tree-head", {"tree_size": "many"}, 422),
        ("/audit/proofs/inclusion", {"participant": pid, "version": 999}, 404),
        ("/audit/proofs/inclusion", {"participant": "not-a-uuid", "version": 1}, 422),
        ("/audit/proofs/inclusion", {"participant": pid, "version": 0}, 422),
        ("/audit/proofs/inclusion", {"participant": pid}, 422),
        ("/audit/proofs/inclusion", {"participant": pid, "version": 1,
                                     "tree_size": size + 1000}, 404),
        ("/audit/proofs/consistency", {"first": 5, "second": 3}, 400),
        ("/audit/proofs/consistency", {"first": 0, "second": 3}, 422),
        ("/audit/proofs/consistency", {"first": 1, "second": size + 1000}, 404),
        ("/audit/participants/00000000-0000-4000-8000-000000000000/bundle", {}, 404),
    ]
    heads_before = len(api.services.store.fetch_all("SELECT tree_size FROM tcledger_ledger_heads"))
    for path, params, status in cases:
        answer = api.get(path, role="auditor", params=params)
        assert answer.status_code == status, (path, params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    heads_after = len(api.services.store.fetch_all("SELECT tree_size FROM tcledger_ledger_heads"))
    assert heads_after == heads_before  # a refused request signs nothing


def test_health_shows_the_ledger(api) -> None:
    run_lifecycle(api, seed=10)
    api.post("/audit/tree-head", {}, role="auditor")
    body = api.client.get("/health").json()
    ledger = next(p for p in body["projections"] if p["name"] == "ledger")
    assert ledger["tree_size"] >= 1 and ledger["signed_tree_size"] >= 1
    assert ledger["stalled"] is False
