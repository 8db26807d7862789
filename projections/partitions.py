"""Partitions of a rebuild: the participants split between processes by their id.

A view whose rows each belong to one participant (the summary, the statistics'
contributions, the timeline) can be rebuilt by several processes at once, each taking the
participants whose stream id falls in its partition (the id's last byte modulo the count:
random ids split evenly) and reading from the log only their entries, up to the head the
rebuild started from. Each partition commits its batches with its own position in
`tcledger_projection_parts`, so a process killed mid-way resumes where it stopped; when
every partition has reached the end, one transaction drops them and sets the view's own
position to that end. A process working on a partition holds a PostgreSQL advisory lock
for it (released by the server if the process dies), so that a runner finishing what a
dead one left never works on a partition another is still working on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from psycopg import sql

from domain.retention import RecordErased
from infra.sql import SqlStore

PARTS_TABLE = (
    "CREATE TABLE IF NOT EXISTS tcledger_projection_parts ("
    " name TEXT NOT NULL, part INTEGER NOT NULL, parts INTEGER NOT NULL,"
    " position BIGINT NOT NULL, until BIGINT NOT NULL, PRIMARY KEY (name, part))")

# An erasure is recorded on a stream of its own (domain.retention): every partition reads
# them, and each keeps those of its own participants.
ERASURE_TOPICS = (get_topic(RecordErased),)


@dataclass(frozen=True)
class Part:
    """Partition `index` of `count`, to be rebuilt up to log position `until`."""

    index: int
    count: int
    until: int

    def holds(self, participant_id: UUID) -> bool:
        return participant_id.bytes[15] % self.count == self.index


@dataclass(frozen=True)
class PartRow:
    name: str
    part: Part
    position: int

    @property
    def done(self) -> bool:
        return self.position >= self.part.until


def part_rows(store: SqlStore, names: Sequence[str]) -> list[PartRow]:
    if not names:
        return []
    rows = store.fetch_all(
        "SELECT name, part, parts, position, until FROM tcledger_projection_parts WHERE name IN ("
        + ", ".join("?" for _ in names) + ") ORDER BY part, name", list(names))
    return [PartRow(r["name"], Part(int(r["part"]), int(r["parts"]), int(r["until"])),
                    int(r["position"])) for r in rows]


class PartitionedLog:
    """Reads one partition's entries of the log (PostgreSQL), in log order."""

    def __init__(self, store: SqlStore, recorder: Any) -> None:
        self.store = store
        table = sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
        self.statement = sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM {} WHERE notification_id > %s AND notification_id <= %s"
            " AND (get_byte(uuid_send(originator_id), 15) %% %s = %s OR topic = ANY(%s))"
            " ORDER BY notification_id LIMIT %s").format(table)

    def batch(self, after: int, limit: int, part: Part) -> Sequence[Notification]:
        with self.store.datastore.transaction(commit=False) as cur:
            # A page is read while the rebuilding processes use the CPUs: parallel workers
            # for it only queue behind them (measured: 6x slower reads on 2 CPUs).
            cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cur.execute(self.statement, (after, part.until, part.count, part.index,
                                         list(ERASURE_TOPICS), limit))
            return [Notification(id=r["notification_id"], originator_id=r["originator_id"],
                                 originator_version=r["originator_version"], topic=r["topic"],
                                 state=r["state"]) for r in cur.fetchall()]


@contextmanager
def claimed(store: SqlStore, names: Sequence[str], index: int) -> Iterator[list[str]]:
    """Claims partition `index` of the named views for this process while the block runs:
    yields the names no other live process holds (advisory locks on one connection)."""
    with store.datastore.get_connection() as conn:
        keys = {name: _lock_key(name, index) for name in names}
        mine = [name for name, key in keys.items()
                if conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()["ok"]]
        try:
            yield mine
        finally:
            for name in mine:
                conn.execute("SELECT pg_advisory_unlock(%s)", (keys[name],))


def _lock_key(name: str, index: int) -> int:
    digest = hashlib.sha256(f"tcledger:projection-part:{name}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
