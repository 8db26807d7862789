"""An outside auditor's checks of the audit ledger, through HTTP only.

The verifier (tests/e2e/rfc9162_verifier.py) was written from RFC 9162 / RFC 6962, RFC 8032
and audit/README.md without reading the server's ledger code; nothing here imports `audit`.
First the verifier's own primitives are held to the published RFC 6962 and RFC 8032 test
vectors, then the server's heads, proofs and bundles are held to the verifier.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.e2e import rfc9162_verifier as v
from tests.e2e.scenario import ok, run_lifecycle

AUDITOR = "auditor"

# ---------------------------------------------------------------------------------------
# RFC 6962 test vectors (the certificate-transparency reference suite)
# ---------------------------------------------------------------------------------------

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]

EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ROOTS = {  # MTH(D[0:n]) for n = 1..8
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

INCLUSION_VECTORS = [  # (leaf index, tree size, path)
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

CONSISTENCY_VECTORS = [  # (first, second, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _h(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in values]


def test_mth_matches_the_rfc6962_vectors() -> None:
    assert v.mth([]).hex() == EMPTY_ROOT
    for n, root in ROOTS.items():
        assert v.mth(LEAVES[:n]).hex() == root, n
    assert v.leaf_hash(b"").hex() == ROOTS[1]
    assert v.node_hash(v.leaf_hash(LEAVES[0]), v.leaf_hash(LEAVES[1])).hex() == ROOTS[2]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_matches_the_rfc6962_vectors(index: int, size: int,
                                               expected: list[str]) -> None:
    assert [p.hex() for p in v.path(index, LEAVES[:size])] == expected
    root = bytes.fromhex(ROOTS[size])
    v.verify_inclusion(index, size, v.leaf_hash(LEAVES[index]), _h(expected), root)
    with pytest.raises(v.VerificationError):
        v.verify_inclusion(index, size, v.leaf_hash(b"not the leaf"), _h(expected), root)
    if expected:
        with pytest.raises(v.VerificationError):
            v.verify_inclusion(index, size, v.leaf_hash(LEAVES[index]), _h(expected[:-1]), root)
        bad = _h(expected)
        bad[0] = _flip(bad[0], 31)
        with pytest.raises(v.VerificationError):
            v.verify_inclusion(index, size, v.leaf_hash(LEAVES[index]), bad, root)


@pytest.mark.parametrize(("first", "second", "expected"), CONSISTENCY_VECTORS)
def test_consistency_matches_the_rfc6962_vectors(first: int, second: int,
                                                 expected: list[str]) -> None:
    assert [p.hex() for p in v.proof(first, LEAVES[:second])] == expected
    r1, r2 = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    v.verify_consistency(first, second, r1, r2, _h(expected))
    if first != second:
        with pytest.raises(v.VerificationError):
            v.verify_consistency(first, second, _flip(r1, 0), r2, _h(expected))
        with pytest.raises(v.VerificationError):
            v.verify_consistency(first, second, r1, _flip(r2, 0), _h(expected))
        with pytest.raises(v.VerificationError):
            v.verify_consistency(first, second, r1, r2, _h(expected[:-1]))


def test_every_proof_of_small_trees_verifies_and_every_tamper_fails() -> None:
    """PATH/PROOF from the RFC recursion against the 2.1.3.2/2.1.4.2 verifiers, n <= 20."""
    leaves = [bytes([i]) * (i % 5) for i in range(20)]
    for n in range(1, 21):
        root = v.mth(leaves[:n])
        for m in range(n):
            p = v.path(m, leaves[:n])
            v.verify_inclusion(m, n, v.leaf_hash(leaves[m]), p, root)
            for i in range(len(p)):
                with pytest.raises(v.VerificationError):
                    v.verify_inclusion(m, n, v.leaf_hash(leaves[m]),
                                       p[:i] + [_flip(p[i], 7)] + p[i + 1:], root)
            with pytest.raises(v.VerificationError):
                v.verify_inclusion(m, n, v.leaf_hash(leaves[m]), p + [root], root)
            if n > 1:
                with pytest.raises(v.VerificationError):
                    v.verify_inclusion((m + 1) % n, n, v.leaf_hash(leaves[m]), p, root)
        for m in range(1, n + 1):
            c = v.proof(m, leaves[:n])
            first_root = v.mth(leaves[:m])
            v.verify_consistency(m, n, first_root, root, c)
            for i in range(len(c)):
                with pytest.raises(v.VerificationError):
                    v.verify_consistency(m, n, first_root, root,
                                         c[:i] + [_flip(c[i], 3)] + c[i + 1:])
            if m < n:
                with pytest.raises(v.VerificationError):
                    v.verify_consistency(m, n, first_root, root, c + [root])


def test_ed25519_matches_rfc8032_test_1() -> None:
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
        "39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    key = Ed25519PrivateKey.from_private_bytes(secret)
    assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == public
    assert key.sign(b"") == signature
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"")


def test_leaf_and_head_layouts_match_the_readme_example() -> None:
    sid = "5b1c0000-0000-4000-8000-000000000000"
    leaf = v.serialise_leaf(sid, 3, "domain.events:PrivilegeGranted", b"\xab" * 120)
    assert leaf == (bytes.fromhex("5b1c0000000040008000000000000000")
                    + bytes.fromhex("0000000000000003") + bytes.fromhex("001e")
                    + b"domain.events:PrivilegeGranted" + bytes.fromhex("00000078")
                    + b"\xab" * 120)
    message = v.tree_head_message(1234, 1795000000000, b"\x11" * 32)
    assert message[:22] == b"tcledger-tree-head-v1\x00"
    assert len(message) == 21 + 1 + 8 + 8 + 32
    assert message[22:30] == (1234).to_bytes(8, "big")
    assert message[30:38] == (1795000000000).to_bytes(8, "big")


# ---------------------------------------------------------------------------------------
# Against the server, through HTTP only
# ---------------------------------------------------------------------------------------

def _public_key(api: Any) -> Ed25519PublicKey:
    response = api.get("/audit/public-key", role=AUDITOR)
    assert response.status_code == 200, response.text
    assert "BEGIN PUBLIC KEY" in response.text
    return v.load_public_key(response.text)


def _sign_head(api: Any) -> dict[str, Any]:
    response = api.post("/audit/tree-head", {}, role=AUDITOR)
    assert response.status_code in (200, 201), response.text
    head: dict[str, Any] = response.json()
    return head


def _head_at(api: Any, size: int) -> dict[str, Any]:
    return ok(api.get("/audit/tree-head", role=AUDITOR, params={"tree_size": size}), 200)


def _bundle(api: Any, pid: str) -> dict[str, Any]:
    return ok(api.get(f"/audit/participants/{pid}/bundle", role=AUDITOR), 200)


def _check_head(head: dict[str, Any], key: Ed25519PublicKey) -> v.TreeHead:
    checked = v.verify_tree_head(head, key)
    # README 3: timestamp is ms since the epoch; timestamp_iso is the same instant.
    iso = datetime.fromisoformat(head["timestamp_iso"])
    assert iso.utcoffset() is not None
    assert round(iso.timestamp() * 1000) == head["timestamp"]
    return checked


def _history(api: Any, key: Ed25519PublicKey, seeds: tuple[int, ...] = (11, 12, 13),
             ) -> tuple[list[str], dict[int, v.TreeHead]]:
    """Run lifecycles, signing a head after each; return participants and checked heads."""
    heads: dict[int, v.TreeHead] = {}
    pids: list[str] = []
    for seed in seeds:
        pids.append(run_lifecycle(api, seed=seed)["id"])
        checked = _check_head(_sign_head(api), key)
        if checked.tree_size in heads:  # README 3: a size signed once keeps its head
            assert heads[checked.tree_size] == checked
        heads[checked.tree_size] = checked
    latest = max(heads)
    for size in (1, 2, 3, 4, 5, 7, 8, 16, latest // 2, latest - 1):
        if 0 < size <= latest:
            heads[size] = _check_head(_head_at(api, size), key)
    return pids, heads


def test_signed_heads_over_time(api: Any) -> None:
    key = _public_key(api)
    pids, heads = _history(api, key)
    sizes = sorted(heads)
    assert len(sizes) >= 6
    assert all(h.key_id == v.key_id(key) for h in heads.values())
    # README 3: asking again for a size already signed answers the very same head.
    for size in sizes:
        again = _check_head(_head_at(api, size), key)
        assert again == heads[size]
    # The latest head never goes backwards.
    latest = _check_head(ok(api.get("/audit/tree-head", role=AUDITOR), 200), key)
    assert latest.tree_size >= max(sizes)
    # A head re-signed over another size or time does not verify.
    head = ok(api.get("/audit/tree-head", role=AUDITOR, params={"tree_size": sizes[0]}), 200)
    for field, value in (("tree_size", head["tree_size"] + 1),
                         ("timestamp", head["timestamp"] + 1)):
        with pytest.raises(v.VerificationError):
            v.verify_tree_head({**head, field: value}, key)


def test_empty_tree_head(api: Any) -> None:
    """RFC 9162 2.1.1: MTH({}) = SHA-256(); a signed head of size 0 must carry it."""
    key = _public_key(api)
    response = api.get("/audit/tree-head", role=AUDITOR, params={"tree_size": 0})
    if response.status_code == 200:
        head = _check_head(response.json(), key)
        assert head.tree_size == 0
        assert head.root_hash.hex() == EMPTY_ROOT
    else:  # not offering a head of size 0 is allowed; a wrong one is not
        assert response.status_code in (404, 422), response.text


def test_consistency_between_every_pair_of_heads(api: Any) -> None:
    key = _public_key(api)
    _, heads = _history(api, key, seeds=(21, 22))
    sizes = sorted(heads)
    for first, second in itertools.combinations_with_replacement(sizes, 2):
        body = ok(api.get("/audit/proofs/consistency", role=AUDITOR,
                          params={"first": first, "second": second}), 200)
        one = _check_head(body["first_tree_head"], key)
        two = _check_head(body["second_tree_head"], key)
        # The heads the proof names are the heads this auditor kept.
        assert one == heads[first] and two == heads[second], (first, second)
        path = _h(body["path"])
        v.verify_consistency(first, second, heads[first].root_hash, heads[second].root_hash,
                             path)
        if first < second:
            with pytest.raises(v.VerificationError):  # a rewritten earlier log
                v.verify_consistency(first, second, _flip(heads[first].root_hash, 5),
                                     heads[second].root_hash, path)
            for i in range(len(path)):
                with pytest.raises(v.VerificationError):
                    v.verify_consistency(first, second, heads[first].root_hash,
                                         heads[second].root_hash,
                                         path[:i] + [_flip(path[i], 9)] + path[i + 1:])
    # Sizes the wrong way round are refused, not answered with a proof.
    response = api.get("/audit/proofs/consistency", role=AUDITOR,
                       params={"first": sizes[-1], "second": sizes[0]})
    assert response.status_code in (400, 409, 422), response.text


def test_inclusion_of_every_event(api: Any) -> None:
    key = _public_key(api)
    pids, heads = _history(api, key, seeds=(31, 32))
    seen_leaves: dict[int, tuple[str, int]] = {}
    positions: dict[int, int] = {}
    for pid in pids:
        bundle = _bundle(api, pid)
        for event in bundle["events"]:
            own_leaf = v.leaf_hash(v.serialise_leaf(pid, event["version"], event["type"],
                                                    base64.b64decode(event["ciphertext"])))
            # Without tree_size: the head the server names.
            body = ok(api.get("/audit/proofs/inclusion", role=AUDITOR,
                              params={"participant": pid, "version": event["version"]}), 200)
            head = _check_head(body["tree_head"], key)
            assert body["tree_size"] == head.tree_size
            assert bytes.fromhex(body["leaf_hash"]) == own_leaf
            assert body["leaf_index"] == event["leaf_index"]
            assert body["position"] == event["position"]
            v.verify_inclusion(body["leaf_index"], head.tree_size, own_leaf,
                               _h(body["path"]), head.root_hash)
            # README 4: "the latest signed head that holds the event": never beyond the latest.
            latest = _check_head(ok(api.get("/audit/tree-head", role=AUDITOR), 200), key)
            assert 0 <= body["leaf_index"] < head.tree_size
            assert head.tree_size <= latest.tree_size
            index = body["leaf_index"]
            assert index not in seen_leaves, "two events share a leaf"
            seen_leaves[index] = (pid, event["version"])
            positions[index] = body["position"]
            # Against every kept head large enough to hold it, and refused for the others.
            for size, kept in heads.items():
                response = api.get("/audit/proofs/inclusion", role=AUDITOR,
                                   params={"participant": pid, "version": event["version"],
                                           "tree_size": size})
                if size <= index:
                    assert response.status_code in (404, 409, 422), response.text
                    continue
                body = ok(response, 200)
                assert _check_head(body["tree_head"], key) == kept
                v.verify_inclusion(index, size, own_leaf, _h(body["path"]), kept.root_hash)
                with pytest.raises(v.VerificationError):
                    v.verify_inclusion(index, size, _flip(own_leaf, 0), _h(body["path"]),
                                       kept.root_hash)
    # README 1: leaf indexes follow the log's order, so they follow positions.
    by_index = [positions[i] for i in sorted(positions)]
    assert by_index == sorted(by_index) and len(set(by_index)) == len(by_index)


def test_roots_of_small_trees_match_our_own_mth(api: Any) -> None:
    """The first participant's first events are the first leaves: their MTH is ours."""
    key = _public_key(api)
    pid = run_lifecycle(api, seed=41)["id"]
    _sign_head(api)
    events = _bundle(api, pid)["events"]
    own = {e["leaf_index"]: v.serialise_leaf(pid, e["version"], e["type"],
                                             base64.b64decode(e["ciphertext"]))
           for e in events}
    prefix = 0
    while prefix in own:
        prefix += 1
    assert prefix >= 1, "the admission is not leaf 0"
    for size in range(1, prefix + 1):
        head = _check_head(_head_at(api, size), key)
        assert head.root_hash == v.mth([own[i] for i in range(size)]), size


def test_bundle_verifies_and_every_tamper_is_rejected(api: Any) -> None:
    key = _public_key(api)
    pids, heads = _history(api, key, seeds=(51, 52))
    for pid in pids:
        bundle = _bundle(api, pid)
        assert bundle["participant"] == pid
        head = v.verify_bundle(bundle, key)
        assert head.tree_size >= 1
        assert [e["version"] for e in bundle["events"]] == list(
            range(1, len(bundle["events"]) + 1))
        # The bundle's head is consistent with every head kept earlier.
        for size, kept in heads.items():
            if size <= head.tree_size:
                body = ok(api.get("/audit/proofs/consistency", role=AUDITOR,
                                  params={"first": size, "second": head.tree_size}), 200)
                v.verify_consistency(size, head.tree_size, kept.root_hash, head.root_hash,
                                     _h(body["path"]))
    bundle = _bundle(api, pids[0])
    events = bundle["events"]
    assert len(events) >= 3 and any(e["path"] for e in events)

    tampered: list[tuple[str, dict[str, Any]]] = []

    def variant(name: str) -> dict[str, Any]:
        copied = copy.deepcopy(bundle)
        tampered.append((name, copied))
        return copied

    for n, event in enumerate(events):
        raw = base64.b64decode(event["ciphertext"])
        for at in (0, 1, len(raw) // 2, len(raw) - 1):
            b = variant(f"ciphertext byte {at} of v{event['version']}")
            b["events"][n]["ciphertext"] = base64.b64encode(_flip(raw, at)).decode()
        b = variant(f"ciphertext truncated v{event['version']}")
        b["events"][n]["ciphertext"] = base64.b64encode(raw[:-1]).decode()
        for i, element in enumerate(event["path"]):
            b = variant(f"path[{i}] of v{event['version']}")
            b["events"][n]["path"][i] = _flip(bytes.fromhex(element), i).hex()
        if event["path"]:
            b = variant(f"path shortened v{event['version']}")
            b["events"][n]["path"] = event["path"][:-1]
            b = variant(f"path lengthened v{event['version']}")
            b["events"][n]["path"] = event["path"] + [event["path"][-1]]
        b = variant(f"version v{event['version']}")
        b["events"][n]["version"] = event["version"] ^ 0x01
        b = variant(f"type v{event['version']}")
        t = event["type"]
        b["events"][n]["type"] = t[:-1] + chr(ord(t[-1]) ^ 0x01)
        b = variant(f"leaf_hash v{event['version']}")
        b["events"][n]["leaf_hash"] = _flip(bytes.fromhex(event["leaf_hash"]), 31).hex()
        b = variant(f"leaf_index v{event['version']}")
        b["events"][n]["leaf_index"] = event["leaf_index"] ^ 0x01
    root = bytes.fromhex(bundle["tree_head"]["root_hash"])
    for at in (0, 16, 31):
        b = variant(f"root byte {at}")
        b["tree_head"]["root_hash"] = _flip(root, at).hex()
    signature = base64.b64decode(bundle["tree_head"]["signature"])
    for at in (0, 31, 32, 63):
        b = variant(f"signature byte {at}")
        b["tree_head"]["signature"] = base64.b64encode(_flip(signature, at)).decode()
    b = variant("tree_size")
    b["tree_head"]["tree_size"] = bundle["tree_head"]["tree_size"] + 1
    b = variant("timestamp")
    b["tree_head"]["timestamp"] = bundle["tree_head"]["timestamp"] ^ 0x01
    pid_bytes = bytearray(bytes.fromhex(pids[0].replace("-", "")))
    pid_bytes[15] ^= 0x01
    b = variant("participant")
    b["participant"] = str(uuid.UUID(bytes=bytes(pid_bytes)))
    b = variant("event dropped (a gap)")
    del b["events"][1]
    b = variant("events swapped")
    b["events"][0], b["events"][1] = b["events"][1], b["events"][0]
    b = variant("format")
    b["format"] = "tcledger-audit-bundle-v2"

    for name, candidate in tampered:
        with pytest.raises(v.VerificationError):
            v.verify_bundle(candidate, key)
            pytest.fail(f"accepted a bundle with its {name} altered")

    # A bundle signed by another key: internally consistent, but not the pinned key.
    forger = Ed25519PrivateKey.generate()
    forged = copy.deepcopy(bundle)
    forged["public_key"] = forger.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    forged_key_id = hashlib.sha256(forger.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)).digest()[:8].hex()
    forged["tree_head"]["key_id"] = forged_key_id
    forged["tree_head"]["signature"] = base64.b64encode(forger.sign(v.tree_head_message(
        forged["tree_head"]["tree_size"], forged["tree_head"]["timestamp"], root))).decode()
    v.verify_bundle(forged)  # self-consistent only
    with pytest.raises(v.VerificationError):
        v.verify_bundle(forged, key)


def test_erased_participant_bundle_still_verifies(api: Any) -> None:
    """README 1 and 5: erasure destroys the key, not the leaves; `recorded` becomes null."""
    key = _public_key(api)
    pid = run_lifecycle(api, seed=61)["id"]
    run_lifecycle(api, seed=62)
    _sign_head(api)
    before = _bundle(api, pid)
    v.verify_bundle(before, key)
    ok(api.post(f"/admin/participants/{pid}/erasure",
                {"reason": "synthetic erasure request"}, role="admin"), 201)
    _sign_head(api)
    after = _bundle(api, pid)
    v.verify_bundle(after, key)
    assert [(e["leaf_index"], e["leaf_hash"], e["ciphertext"]) for e in after["events"]] == [
        (e["leaf_index"], e["leaf_hash"], e["ciphertext"]) for e in before["events"]]
    assert all(e["recorded"] is None for e in after["events"])
    first, second = before["tree_head"]["tree_size"], after["tree_head"]["tree_size"]
    body = ok(api.get("/audit/proofs/consistency", role=AUDITOR,
                      params={"first": first, "second": second}), 200)
    v.verify_consistency(first, second, bytes.fromhex(before["tree_head"]["root_hash"]),
                         bytes.fromhex(after["tree_head"]["root_hash"]), _h(body["path"]))


def test_head_timestamps_are_plausible_milliseconds(api: Any) -> None:
    """README 3: milliseconds since the epoch, not seconds or microseconds."""
    key = _public_key(api)
    head = _check_head(_sign_head(api), key)
    when = datetime.fromtimestamp(head.timestamp / 1000, UTC)
    assert 2020 <= when.year <= 2100


def test_signing_again_without_growth_answers_the_same_head(api: Any) -> None:
    """README 3: a size signed once keeps its head, also through POST /audit/tree-head."""
    key = _public_key(api)
    run_lifecycle(api, seed=71)
    one = _check_head(_sign_head(api), key)
    two = _check_head(_sign_head(api), key)
    if one.tree_size == two.tree_size:
        assert one == two
    else:
        assert two.tree_size > one.tree_size
        assert _check_head(_head_at(api, one.tree_size), key) == one


@pytest.mark.parametrize("version", [2**63, 2**64 - 1, 2**64])
def test_out_of_range_version_is_a_problem_not_a_crash(api: Any, store_kind: str, version: int,
                                                       request: pytest.FixtureRequest) -> None:
    """Found by this verifier and fixed: a version beyond SQLite's signed 64-bit INTEGER
    (>= 2**63; README 1 makes versions u64) made GET /audit/proofs/inclusion answer 500 on
    SQLite. Versions and sizes past 2**62 are now refused as invalid on both stores."""
    pid = run_lifecycle(api, seed=81)["id"]
    response = api.get("/audit/proofs/inclusion", role=AUDITOR,
                       params={"participant": pid, "version": version})
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
