"""Group commit: batches form under concurrency, and one conflict fails one append only."""

from __future__ import annotations

import threading
import time

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from infra.group_commit import Append, GroupCommitter


def event(stream: str, version: int = 1) -> StoredEvent:
    return StoredEvent(stream, version, "topic", b"x")


class FakeStore:
    def __init__(self, delay: float = 0.0, conflicting: set[str] | None = None,
                 broken: bool = False) -> None:
        self.delay, self.conflicting, self.broken = delay, conflicting or set(), broken
        self.batches: list[int] = []
        self.next_id = 1
        self.lock = threading.Lock()

    def write(self, batch: list[Append]) -> None:
        time.sleep(self.delay)
        if self.broken:
            raise OperationalError("database went away")
        if any(a.events[0].originator_id in self.conflicting for a in batch):
            raise IntegrityError("duplicate (stream, version)")
        with self.lock:
            self.batches.append(len(batch))
            for append in batch:
                append.ids = list(range(self.next_id, self.next_id + len(append.events)))
                self.next_id += len(append.events)


def run_concurrently(committer: GroupCommitter, streams: list[str]) -> dict[str, object]:
    outcomes: dict[str, object] = {}

    def one(stream: str) -> None:
        try:
            outcomes[stream] = committer.submit([event(stream)], {})
        except Exception as exc:  # noqa: BLE001 - the outcome is what is tested
            outcomes[stream] = exc

    threads = [threading.Thread(target=one, args=(s,)) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_a_lone_append_is_written_at_once():
    store = FakeStore()
    assert GroupCommitter(store.write).submit([event("a"), event("a", 2)], {}) == [1, 2]
    assert store.batches == [1]


def test_concurrent_appends_share_transactions():
    store = FakeStore(delay=0.01)
    outcomes = run_concurrently(GroupCommitter(store.write), [f"s{i}" for i in range(16)])
    ids = sorted(i for v in outcomes.values() for i in v)  # type: ignore[union-attr]
    assert ids == list(range(1, 17))
    assert len(store.batches) < 16 and max(store.batches) > 1


def test_a_conflict_fails_only_its_own_append():
    store = FakeStore(delay=0.01, conflicting={"s3"})
    outcomes = run_concurrently(GroupCommitter(store.write), [f"s{i}" for i in range(8)])
    assert isinstance(outcomes.pop("s3"), IntegrityError)
    assert all(isinstance(v, list) and len(v) == 1 for v in outcomes.values())


def test_a_broken_store_fails_every_append_of_the_batch():
    committer = GroupCommitter(FakeStore(broken=True).write)
    with pytest.raises(OperationalError):
        committer.submit([event("a")], {})
    outcomes = run_concurrently(committer, ["b", "c"])
    assert all(isinstance(v, OperationalError) for v in outcomes.values())
