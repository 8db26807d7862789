"""The timeline view: one row per fact of a participant, in the order things happened.

A row holds only what orders and links the facts, in clear: the kind of fact, when it
happened and was recorded, the recorder's role, its log position and whether a later
correction or void superseded it. What the fact says, who recorded it and why stays where
it already is, encrypted in the event itself: a timeline is read together with the
participant's stream (which the record's read decodes anyway), so a rebuild writes no
second sealed copy of every event. An erasure deletes the participant's rows (its events
can no longer be read either).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import cache
from typing import Any
from uuid import UUID

from domain.events import METADATA_FIELDS, EntryCorrected, EntryVoided, ParticipantEvent
from domain.retention import RecordErased
from infra.sql import SqlStore
from projections.runner import LoggedEvent

SKIPPED = {"originator_id", "originator_version", "timestamp", "originator_topic",
           *METADATA_FIELDS}


PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    if type(value) in PLAIN:  # most values: checked first, since every event has many
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    return value


@cache
def _own_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in SKIPPED)


def describe(e: ParticipantEvent) -> dict[str, Any]:
    """An event as JSON: its own fields under `data`, its metadata beside them."""
    data = {name: jsonable(getattr(e, name)) for name in _own_fields(type(e))}
    return {"version": e.originator_version, "type": type(e).__name__, "data": data,
            "actor": e.actor_id, "role": e.actor_role, "recorded_at": jsonable(e.timestamp),
            "effective_at": jsonable(e.effective_at), "reason": e.reason, "source": e.source,
            "correlation_id": e.correlation_id, "causation_id": e.causation_id,
            "late_entry": e.effective_at.date() < e.timestamp.date()}


class TimelineView:
    name = "timeline"
    partitioned = True  # rows of one participant each: a rebuild may split them

    def create_tables(self, cur: Any, store: SqlStore) -> None:
        bigint = "BIGINT" if store.postgres else "INTEGER"
        cur.execute("CREATE TABLE IF NOT EXISTS tcledger_timeline ("
                    " participant_id TEXT NOT NULL, version INTEGER NOT NULL,"
                    f" position {bigint} NOT NULL, type TEXT NOT NULL,"
                    " effective_at TEXT NOT NULL, recorded_at TEXT NOT NULL, role TEXT NOT NULL,"
                    " superseded_by INTEGER, supersession TEXT,"
                    " PRIMARY KEY (participant_id, version))")
        _drop_sealed_copies(cur, store)

    def __init__(self) -> None:
        self._rows = _Rows()  # the batch's rows, written when the runner flushes it

    def clear(self, cur: Any, store: SqlStore) -> None:
        cur.execute("DELETE FROM tcledger_timeline")

    def apply(self, cur: Any, store: SqlStore, batch: Sequence[LoggedEvent]) -> None:
        """Adds the page's rows to the batch's; a correction or void of an event of the
        same batch (a rebuild's batch holds most of them) marks the row before it is
        written instead of updating it afterwards."""
        rows, keys = self._rows, dict[UUID, str]()
        for entry in batch:
            e = entry.event
            if isinstance(e, RecordErased):
                rows.write(cur, store)
                self._erase(cur, store, str(e.participant_id))
            elif isinstance(e, ParticipantEvent):
                key = keys.get(entry.stream_id)
                if key is None:
                    key = keys[entry.stream_id] = str(entry.stream_id)
                rows.add([key, e.originator_version, entry.position, type(e).__name__,
                          e.effective_at.isoformat(), e.timestamp.isoformat(), e.actor_role,
                          None, None])
                if isinstance(e, EntryCorrected | EntryVoided):
                    kind = "voided" if isinstance(e, EntryVoided) else "corrected"
                    rows.supersede(key, e.supersedes_version, e.originator_version, kind)

    def flush(self, cur: Any, store: SqlStore) -> None:
        self._rows.write(cur, store)

    def discard(self) -> None:
        """Forgets what was applied but not flushed (its transaction rolled back)."""
        self._rows = _Rows()

    @staticmethod
    def _erase(cur: Any, store: SqlStore, participant_id: str) -> None:
        cur.execute(store.sql("DELETE FROM tcledger_timeline WHERE participant_id = ?"),
                    (participant_id,))


def _drop_sealed_copies(cur: Any, store: SqlStore) -> None:
    """A table made when rows carried a sealed copy of each event loses that column (the
    rows' other columns are unchanged; the copies were never read again)."""
    if store.postgres:  # looked up first: ALTER TABLE would lock the table at every start
        cur.execute("SELECT 1 FROM information_schema.columns WHERE table_schema ="
                    " current_schema() AND table_name = 'tcledger_timeline'"
                    " AND column_name = 'sealed'")
        found = cur.fetchone() is not None
    else:
        cur.execute("PRAGMA table_info(tcledger_timeline)")
        found = any(row[1] == "sealed" for row in cur.fetchall())
    if found:
        cur.execute("ALTER TABLE tcledger_timeline DROP COLUMN sealed")


COLUMNS = ("participant_id", "version", "position", "type", "effective_at", "recorded_at",
           "role", "superseded_by", "supersession")


class _Rows:
    """A batch's new rows; a correction or void of a row in the same batch is marked on the
    row before it is written, one of an earlier row becomes an UPDATE."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.index: dict[tuple[str, int], list[Any]] = {}
        self.updates: list[tuple[Any, ...]] = []

    def add(self, row: list[Any]) -> None:
        self.rows.append(row)
        self.index[(row[0], row[1])] = row

    def supersede(self, key: str, version: int, by: int, kind: str) -> None:
        row = self.index.get((key, version))
        if row is not None:
            row[7], row[8] = by, kind
        else:
            self.updates.append((by, kind, key, version))

    def write(self, cur: Any, store: SqlStore) -> None:
        store.insert_many(cur, "tcledger_timeline", COLUMNS, self.rows)
        if self.updates:
            cur.executemany(store.sql(
                "UPDATE tcledger_timeline SET superseded_by = ?, supersession = ? "
                "WHERE participant_id = ? AND version = ?"), self.updates)
        self.rows, self.index, self.updates = [], {}, []


def read_timeline(store: SqlStore, history: Iterable[ParticipantEvent], participant_id: UUID,
                  order: str = "effective") -> list[dict[str, Any]]:
    """The view's rows of a participant, in order, each with what its event says (from
    `history`, the participant's stream as the ledger decodes it); an event the view has
    not reached yet is not shown."""
    column = "effective_at" if order == "effective" else "position"
    rows = store.fetch_all(
        "SELECT version, position, superseded_by, supersession FROM tcledger_timeline "
        f"WHERE participant_id = ? ORDER BY {column}, version", (str(participant_id),))
    events = {e.originator_version: e for e in history}
    return [{**describe(events[row["version"]]), "position": row["position"],
             "superseded_by": row["superseded_by"], "supersession": row["supersession"]}
            for row in rows if row["version"] in events]
