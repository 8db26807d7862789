"""An index of one kind of event: follows the log for one topic and writes rows for each
entry of it, with its own position in the same transaction (exactly once, resumable).

Positions follow commit order, so every entry at or below the head read before a scan is
visible to it: when a scan finds no more entries of its topic, the index moves to that
head and the next scan starts there, however long the log grew without one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import Mapper, Notification, OperationalError, StoredEvent

from domain.errors import ParticipantErased
from infra.sql import SqlStore

# The rows of one decoded entry (position, event) -> rows for the index table.
RowsOf = Callable[[int, Any], Sequence[tuple[Any, ...]]]


class TopicIndex:
    def __init__(self, store: SqlStore, recorder: Any, mapper: Mapper[Any], *, name: str,
                 topic: str, positions: str, insert: str, rows_of: RowsOf) -> None:
        """`positions` names a (name, position) table; `insert` is the statement one row
        is written with (with `?` placeholders)."""
        self.store, self.recorder, self.mapper = store, recorder, mapper
        self.name, self.topic, self.positions = name, topic, positions
        self.insert, self.rows_of = insert, rows_of
        self._lock = threading.Lock()
        with store.transaction() as cur:
            cur.execute(store.sql(f"SELECT name FROM {positions} WHERE name = ?"), (name,))
            if cur.fetchone() is None:
                cur.execute(store.sql(f"INSERT INTO {positions} (name, position) "
                                      "VALUES (?, 0)"), (name,))

    def position(self) -> int:
        row = self.store.fetch_one(f"SELECT position FROM {self.positions} WHERE name = ?",
                                   (self.name,))
        return int(row["position"]) if row else 0

    def catch_up(self, batch: int = 1000) -> int:
        total = 0
        with self._lock:
            while True:
                try:
                    done = self._index(batch)
                except OperationalError as exc:
                    if "locked" in str(exc):
                        return total  # SQLite: another process writes this index now
                    raise
                total += done
                if done < batch:
                    return total

    def _index(self, batch: int) -> int:
        after = self.position()
        head = self.recorder.max_notification_id() or 0
        notes: Sequence[Notification] = self.recorder.select_notifications(
            start=after, limit=batch, topics=[self.topic], inclusive_of_start=False)
        reached = notes[-1].id if notes else after
        if len(notes) < batch:
            reached = max(reached, head)
        if reached == after:
            return 0
        rows: list[tuple[Any, ...]] = []
        for note in notes:
            try:
                event = self.mapper.to_domain_event(StoredEvent(
                    note.originator_id, note.originator_version, note.topic, note.state))
            except ParticipantErased:
                continue  # nothing of an erased record is indexed
            rows.extend(self.rows_of(note.id, event))
        sql = self.store.sql
        lock = " FOR UPDATE" if self.store.postgres else ""
        with self.store.transaction() as cur:
            # Take the index's lock first: the row on PostgreSQL, the writer on SQLite.
            cur.execute(sql(f"UPDATE {self.positions} SET position = position WHERE name = ?"),
                        (self.name,))
            cur.execute(sql(f"SELECT position FROM {self.positions} WHERE name = ?" + lock),
                        (self.name,))
            if int(cur.fetchone()["position"]) != after:
                return 0  # another process got there first
            if rows:
                cur.executemany(sql(self.insert), rows)
            cur.execute(sql(f"UPDATE {self.positions} SET position = ? WHERE name = ?"),
                        (reached, self.name))
        return len(notes)
