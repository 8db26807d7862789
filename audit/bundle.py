"""Audit bundles: one participant's stored events with their leaves, inclusion proofs, a
signed tree head and the public key, checkable with no database and no network.

The bundle proves that each event's stored record (stream id, version, type, ciphertext)
is the leaf at its index in the signed tree. The `recorded` field of each event is the
exporting server's decoding of that ciphertext for the reader's convenience: the proofs
cover the ciphertext, not that decoding (checking it needs the participant's key).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from audit import merkle
from audit.ledger import EventRows, Ledger, leaf_bytes
from audit.signing import HEAD_FORMAT, TreeHead, key_id, load_public_pem
from domain.errors import ParticipantErased, ParticipantNotFound
from projections.timeline import describe, jsonable

BUNDLE_FORMAT = "tcledger-audit-bundle-v1"

Decode = Callable[[int], dict[str, Any] | None]  # version -> decoded event, or None


class BundleError(Exception):
    pass


def record_decoder(ledger: Any, participant: UUID) -> Decode | None:
    """The participant's events as the history shows them, by version, for a bundle's
    `recorded` fields; None for an erased (or unknown) participant: the proofs stand, the
    content is gone."""
    try:
        decoded = {e.originator_version: jsonable(describe(e))
                   for e in ledger.history(participant)}
    except (ParticipantErased, ParticipantNotFound):
        return None
    return decoded.get


def build_bundle(ledger: Ledger, rows: EventRows, participant: UUID,
                 decode: Decode | None = None) -> dict[str, Any]:
    stored = rows.stream(participant)
    if not stored:
        raise BundleError(f"no stored events for {participant}")
    ledger.catch_up()
    head = ledger.sign_head()
    leaves = {leaf["version"]: leaf for leaf in ledger.leaves(participant)}
    missing = [r.version for r in stored if r.version not in leaves]
    if missing or any(leaves[r.version]["leaf_index"] >= head.tree_size for r in stored):
        raise BundleError("the ledger has not yet witnessed every event of this participant")
    paths = ledger.inclusions([leaves[r.version]["leaf_index"] for r in stored], head.tree_size)
    assert ledger.signer is not None
    return {
        "format": BUNDLE_FORMAT,
        "participant": str(participant),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "leaf_format": "stream id (16) | version (u64 BE) | len(type) (u16 BE) | type (UTF-8)"
                       " | len(ciphertext) (u32 BE) | ciphertext; leaf hash SHA-256(0x00 | leaf)",
        "tree_head": head.as_json(),
        "public_key": ledger.signer.public_pem,
        "events": [{
            "version": r.version, "position": r.position, "type": r.topic,
            "ciphertext": base64.b64encode(r.state).decode(),
            "leaf_index": leaves[r.version]["leaf_index"],
            "leaf_hash": leaves[r.version]["leaf_hash"].hex(),
            "path": [p.hex() for p in path],
            "recorded": decode(r.version) if decode is not None else None,
        } for r, path in zip(stored, paths, strict=True)],
    }


def verify_bundle(bundle: dict[str, Any], pinned_key_pem: str | None = None) -> list[str]:
    """Every problem found, in order; an empty list means the bundle verifies."""
    try:
        if bundle.get("format") != BUNDLE_FORMAT:
            return [f"not a {BUNDLE_FORMAT} bundle"]
        public_key = load_public_pem(bundle["public_key"])
        if pinned_key_pem is not None and key_id(load_public_pem(pinned_key_pem)) != key_id(
                public_key):
            return ["the bundle is signed with another key than the one pinned"]
        head = TreeHead.from_json(bundle["tree_head"])
        if bundle["tree_head"].get("format", HEAD_FORMAT.decode()) != HEAD_FORMAT.decode():
            return ["unknown tree head format"]
        participant = UUID(bundle["participant"])
        events = bundle["events"]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"malformed bundle: {type(exc).__name__}: {exc}"]
    except Exception as exc:  # a key that does not load, say
        return [f"malformed bundle: {exc}"]
    problems: list[str] = []
    if not head.verify(public_key):
        problems.append(f"the tree head signature does not verify (key {head.key_id})")
    if not events:
        problems.append("the bundle holds no events")
    for n, event in enumerate(events, start=1):
        try:
            version = int(event["version"])
            ciphertext = base64.b64decode(event["ciphertext"], validate=True)
            leaf = merkle.leaf_hash(leaf_bytes(participant, version, str(event["type"]),
                                               ciphertext))
            index = int(event["leaf_index"])
            path = [bytes.fromhex(p) for p in event["path"]]
            claimed = bytes.fromhex(event["leaf_hash"])
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"event #{n}: malformed ({type(exc).__name__})")
            continue
        if version != n:
            problems.append(f"event #{n}: version {version} where {n} was expected "
                            "(an event is missing or out of order)")
        if leaf != claimed:
            problems.append(f"event version {version}: its record does not hash to its leaf")
        if not merkle.verify_inclusion(leaf, index, head.tree_size, path, head.root_hash):
            problems.append(f"event version {version}: not included at leaf {index} of the "
                            f"signed tree of size {head.tree_size}")
    return problems
