"""Group commit: concurrent appends in one process share one transaction and one WAL flush.

The event table is locked for each appending transaction (so that log positions follow
commit order, which readers of the log rely on), which would otherwise let one command
commit per disk flush. Here the first caller to find the writer free becomes the leader
and writes every append queued so far in a single transaction; the others wait and read
their own outcome. A conflict in a batch is retried one append at a time, so only the
append that conflicts fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent


@dataclass
class Append:
    events: Sequence[StoredEvent]
    side: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    ids: list[int] = field(default_factory=list)
    error: BaseException | None = None


WriteBatch = Callable[[list[Append]], None]


class GroupCommitter:
    def __init__(self, write_batch: WriteBatch, max_batch: int = 100) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._pending: list[Append] = []
        self._mutex = threading.Lock()
        self._writer = threading.Lock()

    def submit(self, events: Sequence[StoredEvent], side: dict[str, Any]) -> list[int]:
        append = Append(events, side)
        with self._mutex:
            self._pending.append(append)
        while not append.done.is_set():
            with self._writer:
                if append.done.is_set():
                    break
                with self._mutex:
                    batch = self._pending[:self._max_batch]
                    del self._pending[:self._max_batch]
                self._write(batch)
        if append.error is not None:
            raise append.error
        return append.ids

    def _write(self, batch: list[Append]) -> None:
        try:
            self._write_batch(batch)
        except IntegrityError as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for append in batch:
                    self._write_alone(append)
        except BaseException as exc:
            for append in batch:
                append.error = exc
        finally:
            for append in batch:
                append.done.set()

    def _write_alone(self, append: Append) -> None:
        try:
            self._write_batch([append])
        except BaseException as exc:
            append.error = exc
