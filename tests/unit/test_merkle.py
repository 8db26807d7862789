"""RFC 9162 hashing and proofs against the published RFC 6962 test vectors, and against the
RFC's recursive definitions written out naively, for every tree shape up to 64 leaves."""

from __future__ import annotations

import hashlib

import pytest

from audit.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_path,
    inclusion_path,
    leaf_hash,
    needed,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference leaves and the root of each tree size 1..8
# (published with RFC 6962's reference implementations; used here as data).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
CT_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
CT_CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


@pytest.fixture(scope="module")
def ct_tree() -> MemoryTree:
    return MemoryTree([leaf_hash(leaf) for leaf in CT_LEAVES])


# --- the RFC's definitions, written out as recursion over lists ----------------------------

def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    if m == len(leaves):
        return [] if whole else [mth(leaves)]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


SYNTHETIC = [leaf_hash(f"leaf-{i}".encode()) for i in range(64)]


def test_hash_prefixes_and_empty_tree() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == CT_ROOTS[0]
    assert MemoryTree().root() == EMPTY_ROOT


def test_roots_match_the_published_vectors(ct_tree: MemoryTree) -> None:
    for size in range(1, 9):
        assert ct_tree.root(size) == CT_ROOTS[size - 1], size


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_inclusion_proofs_match_the_published_vectors(
        ct_tree: MemoryTree, index: int, size: int, expected: list[str]) -> None:
    proof = ct_tree.inclusion(index, size)
    assert [p.hex() for p in proof] == expected
    assert verify_inclusion(ct_tree.node(0, index), index, size, proof, CT_ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "expected"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_published_vectors(
        ct_tree: MemoryTree, first: int, second: int, expected: list[str]) -> None:
    proof = ct_tree.consistency(first, second)
    assert [p.hex() for p in proof] == expected
    assert verify_consistency(first, second, CT_ROOTS[first - 1], CT_ROOTS[second - 1], proof)


def test_every_shape_agrees_with_the_rfc_definitions() -> None:
    tree = MemoryTree(SYNTHETIC)
    for n in range(1, 65):
        leaves = SYNTHETIC[:n]
        assert tree.root(n) == mth(leaves)
        for m in range(n):
            assert tree.inclusion(m, n) == path(m, leaves)
            assert verify_inclusion(leaves[m], m, n, tree.inclusion(m, n), mth(leaves))
        for m in range(1, n + 1):
            expected = subproof(m, leaves, True)
            assert tree.consistency(m, n) == expected
            assert verify_consistency(m, n, mth(SYNTHETIC[:m]), mth(leaves), expected)


def test_tampered_inclusion_proofs_are_refused() -> None:
    tree = MemoryTree(SYNTHETIC[:37])
    good_root = tree.root()
    for m in range(37):
        proof = tree.inclusion(m)
        leaf = SYNTHETIC[m]
        assert not verify_inclusion(leaf, m, 37, proof[:-1], good_root)
        assert not verify_inclusion(leaf, m, 37, [*proof, bytes(32)], good_root)
        assert not verify_inclusion(SYNTHETIC[(m + 1) % 37], m, 37, proof, good_root)
        assert not verify_inclusion(leaf, (m + 1) % 37, 37, proof, good_root)
        assert not verify_inclusion(leaf, m, 65, proof, good_root)  # a deeper tree
        flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
        assert not verify_inclusion(leaf, m, 37, flipped, good_root)
    assert not verify_inclusion(SYNTHETIC[0], 37, 37, [], good_root)
    assert not verify_inclusion(b"short", 0, 1, [], b"short")


def test_tampered_consistency_proofs_are_refused() -> None:
    tree = MemoryTree(SYNTHETIC[:40])
    for m in range(1, 40):
        proof = tree.consistency(m, 40)
        r1, r2 = tree.root(m), tree.root(40)
        assert verify_consistency(m, 40, r1, r2, proof)
        assert not verify_consistency(m, 40, r1, r2, proof[:-1])
        assert not verify_consistency(m, 40, r1, r2, [*proof, bytes(32)])
        assert not verify_consistency(m, 40, tree.root(m - 1) if m > 1 else bytes(32), r2, proof)
        assert not verify_consistency(m, 40, r1, tree.root(39), proof)
        flipped = [bytes([proof[0][0] ^ 0x80]) + proof[0][1:], *proof[1:]]
        assert not verify_consistency(m, 40, r1, r2, flipped)
    assert verify_consistency(5, 5, tree.root(5), tree.root(5), [])
    assert not verify_consistency(5, 5, tree.root(5), tree.root(6), [])
    assert verify_consistency(0, 8, EMPTY_ROOT, tree.root(8), [])
    assert not verify_consistency(8, 5, tree.root(8), tree.root(5), [])


def test_proofs_refuse_impossible_sizes() -> None:
    tree = MemoryTree(SYNTHETIC[:8])
    with pytest.raises(ValueError):
        inclusion_path(8, 8, tree.node)
    with pytest.raises(ValueError):
        consistency_path(9, 8, tree.node)


def test_a_dry_run_names_every_node_a_proof_reads() -> None:
    tree = MemoryTree(SYNTHETIC[:45])
    asked = needed(lambda nodes: inclusion_path(17, 45, nodes))
    fetched = {key: tree.node(*key) for key in asked}
    assert inclusion_path(17, 45, lambda lv, ix: fetched[(lv, ix)]) == tree.inclusion(17, 45)
    asked = needed(lambda nodes: consistency_path(13, 45, nodes))
    fetched = {key: tree.node(*key) for key in asked}
    assert consistency_path(13, 45, lambda lv, ix: fetched[(lv, ix)]) == tree.consistency(13, 45)
