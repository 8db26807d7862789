"""A polling reader of the global event log, the same on SQLite and PostgreSQL.

Positions follow commit order on both stores (SQLite has one writer; on PostgreSQL every
appending transaction locks the event table), so a reader that asks for everything after
the last position it has seen can never pass over an event that commits later. Positions
may have gaps (a rolled-back append still consumed its ids): read with "> last", never by
counting. The library's subscriptions need PostgreSQL's LISTEN/NOTIFY; this needs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from eventsourcing.persistence import ApplicationRecorder, Notification


class LogReader:
    def __init__(self, recorder: ApplicationRecorder, batch_size: int = 1000) -> None:
        self._recorder = recorder
        self._batch_size = batch_size

    @property
    def recorder(self) -> ApplicationRecorder:
        return self._recorder

    def head(self) -> int:
        """The position of the last committed event, 0 for an empty log."""
        return self._recorder.max_notification_id() or 0

    def batch(self, after: int, limit: int | None = None,
              topics: Sequence[str] = ()) -> Sequence[Notification]:
        return self._recorder.select_notifications(
            start=after, limit=limit or self._batch_size, topics=topics,
            inclusive_of_start=False)

    def read(self, after: int = 0, topics: Sequence[str] = ()) -> Iterator[Notification]:
        """Every event after a position, in log order, until the current end of the log."""
        while True:
            notes = self.batch(after, topics=topics)
            yield from notes
            if len(notes) < self._batch_size:
                return
            after = notes[-1].id

    def wait_for(self, position: int, timeout: float, interval: float = 0.02) -> bool:
        """Polls until the log holds `position`; False when the timeout passes first."""
        deadline = time.monotonic() + timeout
        while self.head() < position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True
