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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import merkle
from audit.ledger import EventRows, Ledger, StoredRow
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
    """The running root of a tree being appended to, one leaf at a time."""

    def __init__(self) -> None:
        self.size = 0
        self.levels: dict[int, bytes] = {}

    def append(self, leaf: bytes) -> None:
        level, value = 0, leaf
        while level in self.levels:
            value = merkle.node_hash(self.levels.pop(level), value)
            level += 1
        self.levels[level] = value
        self.size += 1

    def root(self) -> bytes:
        if not self.levels:
            return merkle.EMPTY_ROOT
        ordered = sorted(self.levels)
        value = self.levels[ordered[0]]
        for level in ordered[1:]:
            value = merkle.node_hash(self.levels[level], value)
        return value


def _stored(ledger: Ledger, batch: int) -> Iterator[dict[str, Any]]:
    after = -1
    while True:
        rows = ledger.stored_leaves(after, batch)
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1]["leaf_index"]


def verify(ledger: Ledger, rows: EventRows, public_key: Ed25519PublicKey,
           progress: Callable[[int], None] | None = None, batch: int = 10000) -> Report:
    report = Report()
    heads = ledger.heads()
    for head in heads:
        if not head.verify(public_key):
            report.findings.append(Finding(
                f"the signature of the tree head at size {head.tree_size} does not verify"))
    pending_heads: list[TreeHead] = sorted(heads, key=lambda h: h.tree_size)
    report.heads = len(heads)
    ledger_size = ledger.size
    stored = _stored(ledger, batch)
    frontier = _Frontier()
    first_leaf_problem: Finding | None = None

    def check_heads() -> None:
        while pending_heads and pending_heads[0].tree_size == frontier.size:
            head = pending_heads.pop(0)
            if frontier.root() != head.root_hash:
                report.findings.append(Finding(
                    f"the events recompute to a different root than the signed tree head at "
                    f"size {head.tree_size}: the log was changed after it was signed"))

    check_heads()
    expected = next(stored, None)
    events = rows.all(batch)
    event: StoredRow | None = next(events, None)
    while event is not None or expected is not None:
        if expected is None:
            assert event is not None
            if frontier.size < ledger_size:  # pragma: no cover - stored leaves ran out early
                first_leaf_problem = first_leaf_problem or Finding(
                    "the ledger's leaf records end before its recorded size")
            report.pending += 1
            event = next(events, None)
            continue
        index = expected["leaf_index"]
        if event is None or event.position > expected["position"]:
            first_leaf_problem = first_leaf_problem or Finding(
                "an event the ledger witnessed is gone from the event table (deleted, "
                "truncated or renumbered)", index, expected["position"],
                expected["stream_id"], expected["version"])
            # The tree is still computed over what the ledger says was there.
            frontier.append(expected["leaf_hash"] or bytes(32))
            expected = next(stored, None)
        elif event.position < expected["position"]:
            first_leaf_problem = first_leaf_problem or Finding(
                "an event sits in the log where the ledger witnessed none (inserted)",
                index, event.position, str(event.stream_id), event.version)
            event = next(events, None)
            continue
        else:
            leaf = event.leaf_hash()
            if (str(event.stream_id), event.version) != (
                    expected["stream_id"], expected["version"]):
                first_leaf_problem = first_leaf_problem or Finding(
                    "the event at this position belongs to another stream or version than "
                    "the ledger witnessed (moved or swapped)", index, event.position,
                    str(event.stream_id), event.version)
            elif leaf != expected["leaf_hash"]:
                first_leaf_problem = first_leaf_problem or Finding(
                    "the stored event differs from the leaf the ledger witnessed (altered)",
                    index, event.position, str(event.stream_id), event.version)
            frontier.append(leaf)
            report.events += 1
            expected = next(stored, None)
            event = next(events, None)
        report.leaves = frontier.size
        check_heads()
        if progress is not None and frontier.size % batch == 0:
            progress(frontier.size)
    if pending_heads:
        report.findings.append(Finding(
            f"signed tree heads reach size {pending_heads[-1].tree_size}, but the log and "
            f"ledger hold only {frontier.size} leaves (the tail was removed)"))
    if first_leaf_problem is not None:
        report.findings.insert(0, first_leaf_problem)
    return report
