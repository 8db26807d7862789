"""RFC 9162 Merkle tree hashing, proofs and their verification: pure functions, no storage.

A tree of n leaves is addressed by perfect subtrees: node (level, index) covers the leaves
[index * 2**level, (index + 1) * 2**level). The proof algorithms ask a `Nodes` callable for
the hashes of such aligned, complete subtrees only; how they are stored is the caller's
business (see audit.ledger, which keeps every one of them, so that no proof rebuilds the
tree). Definitions and verification algorithms follow RFC 9162 sections 2.1.1 to 2.1.4.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Nodes = Callable[[int, int], bytes]  # (level, index) -> hash of that perfect subtree


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(lo: int, hi: int, nodes: Nodes) -> bytes:
    """MTH of the leaves [lo, hi), where lo is aligned to the largest power of two below
    hi - lo (true of every range the RFC's recursion visits)."""
    size = hi - lo
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        return nodes(level, lo >> level)
    k = split(size)
    return node_hash(range_hash(lo, lo + k, nodes), range_hash(lo + k, hi, nodes))


def root(size: int, nodes: Nodes) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hash(0, size, nodes)


def inclusion_path(index: int, size: int, nodes: Nodes) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            path.append(range_hash(lo + k, hi, nodes))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k, nodes))
            lo = lo + k
    path.reverse()
    return path


def consistency_path(first: int, second: int, nodes: Nodes) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1: SUBPROOF(m, D[n], true)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    path: list[bytes] = []
    lo, hi, m, whole = 0, second, first, True
    while True:
        if m == hi - lo:
            if not whole:
                path.append(range_hash(lo, hi, nodes))
            break
        k = split(hi - lo)
        if m <= k:
            path.append(range_hash(lo + k, hi, nodes))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k, nodes))
            lo, m, whole = lo + k, m - k, False
    path.reverse()
    return path


def needed(compute: Callable[[Nodes], object]) -> set[tuple[int, int]]:
    """The (level, index) nodes a computation asks for, found by a dry run: lets a store
    fetch them all in one query before the real run."""
    asked: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        asked.add((level, index))
        return bytes(HASH_BYTES)

    compute(record)
    return asked


# --- verification (RFC 9162 2.1.3.2 and 2.1.4.2) ------------------------------------------

def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies; ValueError when the proof is malformed."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    if len(leaf) != HASH_BYTES or any(len(p) != HASH_BYTES for p in path):
        raise ValueError("hashes must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ValueError("proof longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof shorter than the tree is deep")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                     expected_root: bytes) -> bool:
    try:
        return root_from_inclusion(leaf, index, size, path) == expected_root
    except ValueError:
        return False


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       path: Sequence[bytes]) -> bool:
    if not 0 <= first <= second or any(len(p) != HASH_BYTES for p in path):
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    if not path:
        return False
    proof = list(path)
    if first & (first - 1) == 0:  # a power of two: the first tree is a node of the second
        proof.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


class MemoryTree:
    """Every perfect subtree of a list of leaf hashes, in memory: for tests, bundles and
    the offline verifier (the store-backed ledger answers the same `nodes` questions)."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level, index, value = 0, len(self.levels[0]) - 1, leaf
        while index & 1:
            value = node_hash(self.levels[level][index - 1], value)
            level, index = level + 1, index >> 1
            if len(self.levels) == level:
                self.levels.append([])
            self.levels[level].append(value)

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root(self.size if size is None else size, self.node)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_path(index, self.size if size is None else size, self.node)

    def consistency(self, first: int, second: int | None = None) -> list[bytes]:
        return consistency_path(first, self.size if second is None else second, self.node)
