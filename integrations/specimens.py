"""Which participant a specimen was collected from, for labs that know only the specimen id.

The id is stored as a keyed blind-index digest, never in clear (a specimen id tied to a
record says that person is drug-tested). The index follows the log like a view: each
`SpecimenCollected` adds its digest and stream; the position it reached is kept in the
same transaction, so two processes catching up at once write each row once. An ingest
catches the index up before it looks, so a specimen collected a moment ago is found.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper
from eventsourcing.utils import get_topic

from domain.events import SpecimenCollected
from infra.blind_index import BlindIndex
from infra.log_reader import LogReader
from infra.sql import SqlStore
from infra.topic_index import TopicIndex

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
        self._store, self._blind = store, index
        if store.create_tables:
            with store.transaction() as cur:
                for statement in TABLES:
                    cur.execute(statement)
        self._index = TopicIndex(
            store, log.recorder, mapper, name=NAME, topic=TOPIC,
            positions="tcledger_integration_position", rows_of=self._rows,
            insert="INSERT INTO tcledger_specimen_index (digest, participant_id, position)"
                   " VALUES (?, ?, ?) ON CONFLICT (digest, participant_id) DO NOTHING")

    def participants(self, specimen_id: str) -> list[UUID]:
        """The streams that collected a specimen of this id (one, unless two records
        reuse an id), after catching up with the log."""
        self.catch_up()
        rows = self._store.fetch_all(
            "SELECT participant_id FROM tcledger_specimen_index WHERE digest = ?"
            " ORDER BY position", (self._digest(specimen_id),))
        return [UUID(row["participant_id"]) for row in rows]

    def catch_up(self, batch: int = 1000) -> None:
        self._index.catch_up(batch)

    def _rows(self, position: int, event: Any) -> list[tuple[Any, ...]]:
        assert isinstance(event, SpecimenCollected)
        return [(self._digest(event.specimen_id), str(event.originator_id), position)]

    def _digest(self, specimen_id: str) -> str:
        return self._blind.digest("SPECIMEN", specimen_id)

