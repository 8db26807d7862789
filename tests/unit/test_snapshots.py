"""The command side's use of snapshots, with an in-memory snapshot store: when one is kept,
that a read folds only the events after it, and that the stream is the judge."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from domain.application import TCLedger
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance


class FakeSnapshots:
    """Keeps deep copies, as a store that serialises them would."""

    def __init__(self) -> None:
        self.kept: dict[UUID, Participant] = {}
        self.keeps: list[tuple[UUID, int]] = []
        self.discarded: list[UUID] = []

    def latest(self, stream_id: UUID) -> Participant | None:
        found = self.kept.get(stream_id)
        return copy.deepcopy(found) if found is not None else None

    def keep(self, participant: Participant) -> None:
        self.kept[participant.id] = copy.deepcopy(participant)
        self.keeps.append((participant.id, participant.version))

    def discard(self, stream_id: UUID) -> None:
        self.kept.pop(stream_id, None)
        self.discarded.append(stream_id)


@pytest.fixture
def snapshots(ledger: TCLedger) -> FakeSnapshots:
    store = FakeSnapshots()
    ledger.keep_snapshots(store, 5)
    return store


def infraction(by: Provenance, at: datetime, note: str = "entry") -> Callable[..., Any]:
    def command(p: Participant, policy: ProgramPolicy) -> None:
        p.record_infraction(policy, by=by, code="house-rule-hygiene", observed_at=at,
                            description=f"synthetic {note}", reason="peer report")
    return command


def grow(ledger: TCLedger, pid: UUID, by: Provenance, at: datetime, count: int) -> None:
    for n in range(count):
        ledger.execute(pid, infraction(by, at, f"entry {n}"))


@pytest.fixture
def pid(ledger: TCLedger, policy: ProgramPolicy, by: Provenance,
        admission_fields: Callable[..., dict[str, Any]]) -> UUID:
    return ledger.admit(policy, by, **admission_fields()).id


def test_a_snapshot_is_kept_when_a_write_passes_the_interval(
        ledger: TCLedger, snapshots: FakeSnapshots, pid: UUID, by: Provenance,
        days_ago: Callable[[float], datetime]) -> None:
    grow(ledger, pid, by, days_ago(1), 3)
    assert snapshots.keeps == []  # version 4
    grow(ledger, pid, by, days_ago(1), 1)
    assert snapshots.keeps == [(pid, 5)]  # made from the stream: the whole replay was long
    grow(ledger, pid, by, days_ago(1), 4)
    # At 10: the replay from the snapshot at 5 folded 5 events, enough for another.
    grow(ledger, pid, by, days_ago(1), 1)
    assert snapshots.keeps == [(pid, 5), (pid, 10)]


def test_a_cold_read_folds_only_what_follows_the_snapshot(
        ledger: TCLedger, snapshots: FakeSnapshots, pid: UUID, by: Provenance,
        days_ago: Callable[[float], datetime]) -> None:
    grow(ledger, pid, by, days_ago(1), 6)  # snapshot at 5, head at 7
    kept = snapshots.kept[pid]
    kept.state.unit = "FROM-SNAPSHOT"  # marks a record that started from the snapshot
    ledger.forget(pid)
    read = ledger.participant(pid)
    assert read.version == 7 and read.state.unit == "FROM-SNAPSHOT"
    assert len(read.history) == 7 and read.history == ledger._load(pid).history


def test_the_stream_disowns_a_snapshot_whose_last_event_differs(
        ledger: TCLedger, snapshots: FakeSnapshots, pid: UUID, by: Provenance,
        days_ago: Callable[[float], datetime]) -> None:
    grow(ledger, pid, by, days_ago(1), 6)
    forged = snapshots.kept[pid]
    forged.state.unit = "FORGED"
    object.__setattr__(forged.history[-1], "reason", "not what was recorded")
    ledger.forget(pid)
    read = ledger.participant(pid)
    assert read.state.unit != "FORGED" and read.version == 7
    assert all(e.reason != "not what was recorded" for e in read.history)


def test_a_snapshot_ahead_of_the_stream_or_past_a_version_asked_for_is_not_used(
        ledger: TCLedger, snapshots: FakeSnapshots, pid: UUID, by: Provenance,
        days_ago: Callable[[float], datetime]) -> None:
    grow(ledger, pid, by, days_ago(1), 4)  # snapshot at 5 = head
    snapshots.kept[pid].state.unit = "FROM-SNAPSHOT"
    assert ledger.participant(pid, version=3).state.unit != "FROM-SNAPSHOT"
    assert ledger.participant(pid, version=3).version == 3
    ahead = snapshots.kept[pid]
    object.__setattr__(ahead, "version", 9)  # as if the log lost its last events
    ledger.forget(pid)
    read = ledger.participant(pid)
    assert read.version == 5 and read.state.unit != "FROM-SNAPSHOT"


def test_erasure_discards_the_snapshot(ledger: TCLedger, snapshots: FakeSnapshots, pid: UUID,
                                       by: Provenance,
                                       days_ago: Callable[[float], datetime]) -> None:
    grow(ledger, pid, by, days_ago(1), 5)
    assert pid in snapshots.kept
    ledger.erase(pid, by, "retention period ended")
    assert snapshots.discarded == [pid] and pid not in snapshots.kept


class Queued:
    """A `later` that holds the work until the test runs it."""

    def __init__(self) -> None:
        self.work: list[Callable[[], None]] = []
        self.closed = False

    def __call__(self, work: Callable[[], None]) -> None:
        self.work.append(work)

    def close(self) -> None:
        self.closed = True


def test_a_snapshot_a_write_made_due_is_made_later_not_before_the_answer(
        ledger: TCLedger, pid: UUID, by: Provenance,
        days_ago: Callable[[float], datetime]) -> None:
    store, later = FakeSnapshots(), Queued()
    ledger.keep_snapshots(store, 5, later)
    grow(ledger, pid, by, days_ago(1), 4)  # version 5: due
    assert store.keeps == [] and len(later.work) == 1  # the write answered without it
    later.work.pop()()
    assert store.keeps == [(pid, 5)]
    ledger.close()
    assert later.closed


def test_snapshots_behind_runs_work_in_order_and_stops_on_close() -> None:
    from infra.snapshots import SnapshotsBehind

    behind, done = SnapshotsBehind(), []
    for n in range(5):
        behind(lambda n=n: done.append(n))
    behind.close()
    assert done == [0, 1, 2, 3, 4]
    behind(lambda: done.append(99))  # after close: dropped, not run
    assert done == [0, 1, 2, 3, 4]
