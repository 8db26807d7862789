"""`tcledger audit verify`: recompute every leaf from the event table and check it against
the ledger and the signed tree heads, trusting neither the database nor its administrators.

What the database holds is compared three ways:
- each stored event, in log order, against the ledger's leaf at the same index (names the
  first event that was altered, deleted, inserted or moved);
- the tree recomputed from the events alone against every signed head (catches a ledger
  rewritten to match altered events: nobody without the private key can re-sign it);
- each head's Ed25519 signature against the public key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import merkle
from audit.ledger import EventRows, LeafNotFound, Ledger
from audit.signing import TreeHead


@dataclass
class Finding:
    what: str
    leaf_index: int | None = None
    position: int | None = None
    stream_id: str | None = None
    version: int | None = None

    def describe(self) -> str:
        where = []
        if self.leaf_index is not None:
            where.append(f"leaf {self.leaf_index}")
        if self.position is not None:
            where.append(f"log position {self.position}")
        if self.stream_id is not None:
            where.append(f"stream {self.stream_id} version {self.version}")
        return f"{self.what} ({', '.join(where)})" if where else self.what


@dataclass
class Report:
    events: int = 0
    leaves: int = 0
    heads: int = 0
    pending: int = 0  # events stored after the ledger's end: not yet witnessed
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class _Frontier:
    """The running root of a tree being appended to, one leaf at a time: the roots of its
    perfect subtrees, largest first (RFC 9162's tree, built as a compact range)."""

    def __init__(self) -> None:
        self.size = 0
        self.stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        stack, value, n = self.stack, leaf, self.size
        sha256 = hashlib.sha256
        while n & 1:
            value = sha256(b"\x01" + stack.pop() + value).digest()
            n >>= 1
        stack.append(value)
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        value = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            value = merkle.node_hash(left, value)
        return value


def _changed(event: tuple[int, bytes], index: int,
             witnessed_at: Callable[[int], tuple[str | None, int | None]]) -> Finding:
    stream, version = _describe_leaf(event[1])
    was = witnessed_at(index)
    what = ("the stored event differs from the leaf the ledger witnessed (altered)"
            if was == (stream, version) else
            "the event at this position is another stream's or version's than the ledger "
            f"witnessed there ({was[0]} version {was[1]}): moved or swapped")
    return Finding(what, index, event[0], stream, version)


def _describe_leaf(leaf: bytes) -> tuple[str, int]:
    return str(UUID(bytes=leaf[:16])), int.from_bytes(leaf[16:24], "big")


def verify(ledger: Ledger, rows: EventRows, public_key: Ed25519PublicKey,
           progress: Callable[[int], None] | None = None, every: int = 100_000) -> Report:
    """One fast pass over the events (rebuild the tree, check every signed head and the
    ledger's own root); only when something disagrees, a second pass that compares event
    by event with the ledger's leaves to name the first bad one."""
    heads = sorted(ledger.heads(), key=lambda h: h.tree_size)
    size = ledger.state()[0]
    checkpoints = {h.tree_size: h.root_hash for h in heads}
    checkpoints.setdefault(size, b"")
    roots: dict[int, bytes] = {}
    frontier = _Frontier()
    append, sha256 = frontier.append, hashlib.sha256
    sizes = iter(sorted(n for n in checkpoints if n > 0))
    next_checkpoint, next_progress, count = next(sizes, -1), every, 0
    if 0 in checkpoints:
        roots[0] = frontier.root()
    for _, leaf in rows.leaf_stream():
        count += 1
        if count > size:
            continue  # stored after the ledger's last leaf: pending
        append(sha256(b"\x00" + leaf).digest())
        if count == next_checkpoint:
            roots[count] = frontier.root()
            next_checkpoint = next(sizes, -1)
        if count == next_progress:
            next_progress += every
            if progress is not None:
                progress(count)
    try:
        stored_root = ledger.root(size)
    except LeafNotFound:
        stored_root = None
    clean = (count >= size and roots.get(size) == stored_root
             and all(roots.get(h.tree_size) == h.root_hash for h in heads)
             and all(h.verify(public_key) for h in heads))
    if clean:
        return Report(events=size, leaves=size, heads=len(heads), pending=count - size)
    report = _compare(ledger, rows, public_key, heads, progress, every)
    if report.ok:
        report.findings.append(Finding(
            "the ledger's stored subtree hashes disagree with its own leaves (the ledger "
            "tables were changed)"))
    return report


def _compare(ledger: Ledger, rows: EventRows, public_key: Ed25519PublicKey,
             heads: list[TreeHead], progress: Callable[[int], None] | None,
             every: int) -> Report:
    report = Report()
    for head in heads:
        if not head.verify(public_key):
            report.findings.append(Finding(
                f"the signature of the tree head at size {head.tree_size} does not verify"))
    report.heads = len(heads)
    checkpoints = {h.tree_size: h for h in heads}
    frontier = _Frontier()
    first: Finding | None = None

    def witnessed_at(index: int) -> tuple[str | None, int | None]:
        row = ledger.stored_leaves(index - 1, 1)
        return (row[0]["stream_id"], row[0]["version"]) if row else (None, None)

    def check_head() -> None:
        head = checkpoints.get(frontier.size)
        if head is not None and frontier.root() != head.root_hash:
            report.findings.append(Finding(
                f"the events recompute to a different root than the signed tree head at "
                f"size {head.tree_size}: the log was changed after it was signed"))

    check_head()
    sha256 = hashlib.sha256
    append = frontier.append
    sizes = iter([size for size in sorted(checkpoints) if size > 0])
    next_checkpoint = next(sizes, -1)
    next_progress = every
    events = rows.leaf_stream()
    stored = ledger.witnessed()
    event = next(events, None)
    expected = next(stored, None)
    while event is not None or expected is not None:
        if event is not None and expected is not None and event[0] == expected[1]:
            # The common case, kept short: the event is where the ledger saw it.
            leaf = sha256(b"\x00" + event[1]).digest()
            if leaf != expected[2] and first is None:
                first = _changed(event, expected[0], witnessed_at)
            append(leaf)
            report.events += 1
            expected = next(stored, None)
            event = next(events, None)
        elif expected is None:
            assert event is not None
            report.pending += 1  # stored after the ledger's last leaf: not yet witnessed
            event = next(events, None)
            continue
        elif event is None or event[0] > expected[1]:
            index, witnessed_position, witnessed_hash = expected
            if first is None:
                stream, version = witnessed_at(index)
                first = Finding("an event the ledger witnessed is gone from the event table "
                                "(deleted, truncated or renumbered)", index,
                                witnessed_position, stream, version)
            # The tree goes on over what the ledger says was there.
            append(witnessed_hash or bytes(32))
            expected = next(stored, None)
        else:
            if first is None:
                stream, version = _describe_leaf(event[1])
                first = Finding("an event sits in the log where the ledger witnessed none "
                                "(inserted)", expected[0], event[0], stream, version)
            event = next(events, None)
            continue
        if frontier.size == next_checkpoint:
            check_head()
            next_checkpoint = next(sizes, -1)
        if frontier.size == next_progress:
            next_progress += every
            if progress is not None:
                progress(frontier.size)
    report.leaves = frontier.size
    if heads and heads[-1].tree_size > frontier.size:
        report.findings.append(Finding(
            f"signed tree heads reach size {heads[-1].tree_size}, but the log and the "
            f"ledger hold only {frontier.size} leaves (the tail was removed)"))
    if first is not None:
        report.findings.insert(0, first)
    return report
