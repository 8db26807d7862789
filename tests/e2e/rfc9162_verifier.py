"""An independent verifier for tcledger's audit ledger.

Written from RFC 9162 section 2.1 (the RFC 6962 Merkle tree), RFC 8032 (Ed25519, checked
with the `cryptography` package) and the byte layouts published in audit/README.md, without
reading the server's implementation. It deliberately imports nothing from `audit`: it agrees
with the server only if both follow the same published text.

Every check raises `VerificationError` on failure, so a caller can assert rejection with
`pytest.raises(VerificationError)`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

HASH_SIZE = 32
HEAD_FORMAT = "tcledger-tree-head-v1"
BUNDLE_FORMAT = "tcledger-audit-bundle-v1"
HEAD_PREFIX = HEAD_FORMAT.encode("ascii") + b"\x00"  # 21 ASCII bytes || 0x00


class VerificationError(Exception):
    """A proof, leaf, signature or bundle did not verify."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------------------------------
# RFC 9162 2.1.1: the Merkle Tree Hash
# ---------------------------------------------------------------------------------------

def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0)."""
    return _sha256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right)


def largest_power_of_two_below(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    if n < 2:
        raise ValueError("defined only for n > 1")
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf inputs (not yet hashed), by the RFC recursion."""
    n = len(leaves)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = largest_power_of_two_below(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def _mth_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH where the leaf hashes are already known."""
    n = len(hashes)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return hashes[0]
    k = largest_power_of_two_below(n)
    return node_hash(_mth_of_hashes(hashes[:k]), _mth_of_hashes(hashes[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]), for generating reference proofs in tests."""
    return _path_h(m, [leaf_hash(d) for d in leaves])


def _path_h(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    n = len(hashes)
    if not 0 <= m < n:
        raise ValueError("m out of range")
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return _path_h(m, hashes[:k]) + [_mth_of_hashes(hashes[k:])]
    return _path_h(m - k, hashes[k:]) + [_mth_of_hashes(hashes[:k])]


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for reference proofs."""
    hashes = [leaf_hash(d) for d in leaves]
    if not 0 < m <= len(hashes):
        raise ValueError("m out of range")
    return _subproof(m, hashes, True)


def _subproof(m: int, hashes: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if b else [_mth_of_hashes(hashes)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return _subproof(m, hashes[:k], b) + [_mth_of_hashes(hashes[k:])]
    return _subproof(m - k, hashes[k:], False) + [_mth_of_hashes(hashes[:k])]


# ---------------------------------------------------------------------------------------
# RFC 9162 2.1.3.2: verifying an inclusion proof
# ---------------------------------------------------------------------------------------

def root_from_inclusion_proof(leaf_index: int, tree_size: int, leaf_h: bytes,
                              inclusion_path: Sequence[bytes]) -> bytes:
    """Steps 1-5 of RFC 9162 2.1.3.2, returning the computed root (or raising)."""
    if leaf_index < 0 or tree_size < 0:
        raise VerificationError("negative index or size")
    # 1. leaf_index >= tree_size: fail.
    if leaf_index >= tree_size:
        raise VerificationError(f"leaf_index {leaf_index} >= tree_size {tree_size}")
    _check_hash(leaf_h, "leaf hash")
    # 2.
    fn, sn = leaf_index, tree_size - 1
    # 3.
    r = leaf_h
    # 4.
    for p in inclusion_path:
        _check_hash(p, "path element")
        if sn == 0:
            raise VerificationError("inclusion path longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0.
    if sn != 0:
        raise VerificationError("inclusion path shorter than the tree requires")
    return r


def verify_inclusion(leaf_index: int, tree_size: int, leaf_h: bytes,
                     inclusion_path: Sequence[bytes], root: bytes) -> None:
    computed = root_from_inclusion_proof(leaf_index, tree_size, leaf_h, inclusion_path)
    if computed != root:
        raise VerificationError("inclusion proof does not lead to the root")


# ---------------------------------------------------------------------------------------
# RFC 9162 2.1.4.2: verifying a consistency proof
# ---------------------------------------------------------------------------------------

def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       consistency_path: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2.

    The RFC's algorithm is stated for 0 < first < second. The edge cases follow from the
    definition in 2.1.4.1 (PROOF(n, D[n]) is the empty list): first == second needs an
    empty proof and equal roots. first == 0 (the empty tree, which PROOF does not define)
    is accepted only with an empty proof; callers decide whether to ask for it at all.
    """
    _check_hash(first_hash, "first hash")
    _check_hash(second_hash, "second hash")
    for c in consistency_path:
        _check_hash(c, "path element")
    if first < 0 or second < 0 or first > second:
        raise VerificationError(f"bad sizes {first} > {second}")
    if first == second:
        if consistency_path:
            raise VerificationError("proof between equal sizes must be empty")
        if first_hash != second_hash:
            raise VerificationError("equal sizes with different roots")
        return
    if first == 0:
        if consistency_path:
            raise VerificationError("proof from the empty tree must be empty")
        if first_hash != _sha256(b""):
            raise VerificationError("the empty tree's root is SHA-256()")
        return
    # 1. empty path: fail.
    if not consistency_path:
        raise VerificationError("empty consistency proof")
    items = list(consistency_path)
    # 2. first an exact power of 2: prepend first_hash.
    if first & (first - 1) == 0:
        items.insert(0, first_hash)
    # 3.
    fn, sn = first - 1, second - 1
    # 4. while LSB(fn) set, shift both.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = items[0]
    # 6.
    for c in items[1:]:
        if sn == 0:
            raise VerificationError("consistency path longer than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if fr != first_hash:
        raise VerificationError("consistency proof does not rebuild the first root")
    if sr != second_hash:
        raise VerificationError("consistency proof does not rebuild the second root")
    if sn != 0:
        raise VerificationError("consistency path shorter than the trees require")


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is not {HASH_SIZE} bytes")


# ---------------------------------------------------------------------------------------
# audit/README.md section 1: the leaf
# ---------------------------------------------------------------------------------------

def serialise_leaf(stream_id: str | uuid.UUID, version: int, event_type: str,
                   ciphertext: bytes) -> bytes:
    """stream id (16) || version (u64) || len(type) (u16) || type || len(ct) (u32) || ct."""
    sid = stream_id if isinstance(stream_id, uuid.UUID) else uuid.UUID(stream_id)
    topic = event_type.encode("utf-8")
    if not 0 <= version < 2**64:
        raise VerificationError("version out of u64 range")
    if len(topic) >= 2**16 or len(ciphertext) >= 2**32:
        raise VerificationError("field too long for its length prefix")
    return (sid.bytes + struct.pack(">Q", version) + struct.pack(">H", len(topic)) + topic
            + struct.pack(">I", len(ciphertext)) + ciphertext)


# ---------------------------------------------------------------------------------------
# audit/README.md section 3: signed tree heads
# ---------------------------------------------------------------------------------------

def tree_head_message(tree_size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    _check_hash(root_hash, "root hash")
    return HEAD_PREFIX + struct.pack(">QQ", tree_size, timestamp_ms) + root_hash


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError("the public key is not an Ed25519 key")
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """First 8 bytes, in hex, of SHA-256 of the raw 32-byte public key."""
    return _sha256(raw_public_key(key))[:8].hex()


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"not base64: {exc}") from exc


def _hex32(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"{what} is not hex") from exc
    _check_hash(raw, what)
    return raw


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    timestamp: int
    root_hash: bytes
    signature: bytes
    key_id: str


def verify_tree_head(head: dict[str, Any], key: Ed25519PublicKey) -> TreeHead:
    """Check a signed head's documented fields and its Ed25519 signature."""
    if head.get("format") != HEAD_FORMAT:
        raise VerificationError(f"unknown head format {head.get('format')!r}")
    if head.get("signature_algorithm") != "Ed25519":
        raise VerificationError("unexpected signature algorithm")
    size, ts = head.get("tree_size"), head.get("timestamp")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**64:
        raise VerificationError("tree_size is not a u64")
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < 2**64:
        raise VerificationError("timestamp is not a u64")
    root = _hex32(head.get("root_hash", ""), "root_hash")
    signature = _b64(head.get("signature", ""))
    if len(signature) != 64:
        raise VerificationError("signature is not 64 bytes")
    if head.get("key_id") != key_id(key):
        raise VerificationError("key_id does not name this key")
    try:
        key.verify(signature, tree_head_message(size, ts, root))
    except InvalidSignature as exc:
        raise VerificationError("bad tree-head signature") from exc
    return TreeHead(size, ts, root, signature, head["key_id"])


# ---------------------------------------------------------------------------------------
# audit/README.md section 5: bundles
# ---------------------------------------------------------------------------------------

def verify_bundle(bundle: dict[str, Any], key: Ed25519PublicKey | None = None) -> TreeHead:
    """What README section 5 says verify-bundle checks, done independently.

    With `key` given (pinned, obtained elsewhere) the bundle's own key must be that key.
    """
    if bundle.get("format") != BUNDLE_FORMAT:
        raise VerificationError(f"unknown bundle format {bundle.get('format')!r}")
    own = load_public_key(bundle["public_key"])
    if key is not None and raw_public_key(own) != raw_public_key(key):
        raise VerificationError("the bundle's key is not the pinned key")
    head = verify_tree_head(bundle["tree_head"], key or own)
    participant = bundle["participant"]
    events = bundle["events"]
    for expected_version, event in enumerate(events, start=1):
        version = event["version"]
        if version != expected_version:
            raise VerificationError(f"versions not contiguous: {version} at {expected_version}")
        leaf = serialise_leaf(participant, version, event["type"], _b64(event["ciphertext"]))
        computed = leaf_hash(leaf)
        if computed != _hex32(event["leaf_hash"], "leaf_hash"):
            raise VerificationError(f"version {version}: rebuilt leaf differs from leaf_hash")
        verify_inclusion(event["leaf_index"], head.tree_size, computed,
                         [_hex32(p, "path") for p in event["path"]], head.root_hash)
    return head
