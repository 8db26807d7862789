"""Which participant a specimen was collected from, for labs that know only the specimen id.

The id is stored as a keyed blind-index digest, never in clear (a specimen id tied to a
record says that person is drug-tested). The index follows the log like a view: each
`SpecimenCollected` adds its digest and stream; the position it reached is kept in the
same transaction, so two processes catching up at once write each row once. An ingest
catches the index up before it looks, so a specimen collected a moment ago is found.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, OperationalError, StoredEvent
from eventsourcing.utils import get_topic

from domain.errors import ParticipantErased
from domain.events import SpecimenCollected
from infra.blind_index import BlindIndex
from infra.log_reader import LogReader
from infra.sql import SqlStore

NAME = "specimen-index"
TOPIC = get_topic(SpecimenCollected)
TABLES = (
    "CREATE TABLE IF NOT EXISTS tcledger_specimen_index ("
    " digest TEXT NOT NULL, participant_id TEXT NOT NULL, position BIGINT NOT NULL,"
    " PRIMARY KEY (digest, participant_id))",
    "CREATE TABLE IF NOT EXISTS tcledger_integration_position ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
)


class SpecimenIndex:
    def __init__(self, store: SqlStore, log: LogReader, mapper: Mapper[UUID],
                 index: BlindIndex) -> None:
        self._store, self._log, self._mapper, self._blind = store, log, mapper, index
        self._lock = threading.Lock()
        with store.transaction() as cur:
            for statement in TABLES if store.create_tables else ():
                cur.execute(statement)
            cur.execute(store.sql("SELECT name FROM tcledger_integration_position"
                                  " WHERE name = ?"), (NAME,))
            if cur.fetchone() is None:
                cur.execute(store.sql("INSERT INTO tcledger_integration_position"
                                      " (name, position) VALUES (?, 0)"), (NAME,))

    def participants(self, specimen_id: str) -> list[UUID]:
        """The streams that collected a specimen of this id (one, unless two records
        reuse an id), after catching up with the log."""
        self.catch_up()
        rows = self._store.fetch_all(
            "SELECT participant_id FROM tcledger_specimen_index WHERE digest = ?"
            " ORDER BY position", (self._digest(specimen_id),))
        return [UUID(row["participant_id"]) for row in rows]

    def catch_up(self, batch: int = 1000) -> None:
        with self._lock:
            while True:
                try:
                    done = self._index(batch)
                except OperationalError as exc:
                    if "locked" in str(exc):
                        return  # SQLite: another process is writing the index now
                    raise
                if done < batch:
                    return

    def _digest(self, specimen_id: str) -> str:
        return self._blind.digest("SPECIMEN", specimen_id)

    def _index(self, batch: int) -> int:
        after = self._position()
        head = self._log.head()  # commit order: all at or below it is visible now
        notes = self._log.batch(after, batch, [TOPIC])
        reached = notes[-1].id if notes else after
        if len(notes) < batch:
            reached = max(reached, head)  # the next scan starts at the head, not far behind
        if reached == after:
            return 0
        rows: list[tuple[Any, ...]] = []
        for note in notes:
            try:
                event = self._mapper.to_domain_event(StoredEvent(
                    note.originator_id, note.originator_version, note.topic, note.state))
            except ParticipantErased:
                continue  # nothing of an erased record is indexed
            assert isinstance(event, SpecimenCollected)
            rows.append((self._digest(event.specimen_id), str(event.originator_id), note.id))
        sql = self._store.sql
        lock = " FOR UPDATE" if self._store.postgres else ""
        with self._store.transaction() as cur:
            cur.execute(sql("UPDATE tcledger_integration_position SET position = position"
                            " WHERE name = ?"), (NAME,))
            cur.execute(sql("SELECT position FROM tcledger_integration_position WHERE name = ?"
                            + lock), (NAME,))
            if int(cur.fetchone()["position"]) != after:
                return 0  # another process got there first
            if rows:
                cur.executemany(sql(
                    "INSERT INTO tcledger_specimen_index (digest, participant_id, position)"
                    " VALUES (?, ?, ?) ON CONFLICT (digest, participant_id) DO NOTHING"), rows)
            cur.execute(sql("UPDATE tcledger_integration_position SET position = ?"
                            " WHERE name = ?"), (reached, NAME))
        return len(notes)

    def _position(self) -> int:
        row = self._store.fetch_one(
            "SELECT position FROM tcledger_integration_position WHERE name = ?", (NAME,))
        return int(row["position"]) if row else 0
