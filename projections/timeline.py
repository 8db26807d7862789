"""The timeline view: one row per fact of a participant, in the order things happened.

In clear: the kind of fact, when it happened and was recorded, the recorder's role and
whether a later correction or void superseded it (the event table shows as much). What
the fact says, who recorded it and why is sealed under the participant's key. An
erasure deletes the participant's rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from domain.errors import ParticipantErased
from domain.events import METADATA_FIELDS, EntryCorrected, EntryVoided, ParticipantEvent
from domain.retention import RecordErased
from infra.cipher import FieldSealer
from infra.sql import SqlStore
from projections.runner import LoggedEvent

SEALED = "timeline"
SKIPPED = {"originator_id", "originator_version", "timestamp", "originator_topic",
           *METADATA_FIELDS}


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    return value


def describe(e: ParticipantEvent) -> dict[str, Any]:
    """An event as JSON: its own fields under `data`, its metadata beside them."""
    data = {f.name: jsonable(getattr(e, f.name)) for f in dataclasses.fields(e)
            if f.name not in SKIPPED}
    return {"version": e.originator_version, "type": type(e).__name__, "data": data,
            "actor": e.actor_id, "role": e.actor_role, "recorded_at": jsonable(e.timestamp),
            "effective_at": jsonable(e.effective_at), "reason": e.reason, "source": e.source,
            "correlation_id": e.correlation_id, "causation_id": e.causation_id,
            "late_entry": e.effective_at.date() < e.timestamp.date()}


class TimelineView:
    name = "timeline"

    def __init__(self, sealer: FieldSealer) -> None:
        self.sealer = sealer

    def create_tables(self, cur: Any, store: SqlStore) -> None:
        blob, bigint = ("BYTEA", "BIGINT") if store.postgres else ("BLOB", "INTEGER")
        cur.execute("CREATE TABLE IF NOT EXISTS tcledger_timeline ("
                    " participant_id TEXT NOT NULL, version INTEGER NOT NULL,"
                    f" position {bigint} NOT NULL, type TEXT NOT NULL,"
                    " effective_at TEXT NOT NULL, recorded_at TEXT NOT NULL, role TEXT NOT NULL,"
                    " superseded_by INTEGER, supersession TEXT,"
                    f" sealed {blob} NOT NULL, PRIMARY KEY (participant_id, version))")

    def clear(self, cur: Any, store: SqlStore) -> None:
        cur.execute("DELETE FROM tcledger_timeline")

    def apply(self, cur: Any, store: SqlStore, batch: Sequence[LoggedEvent]) -> None:
        rows: list[tuple[Any, ...]] = []
        supersessions: list[tuple[Any, ...]] = []
        for entry in batch:
            if isinstance(entry.event, RecordErased):
                self._flush(cur, store, rows, supersessions)
                self._erase(cur, store, str(entry.event.participant_id))
            elif isinstance(entry.event, ParticipantEvent):
                self._row(entry, entry.event, rows, supersessions)
        self._flush(cur, store, rows, supersessions)

    def _row(self, entry: LoggedEvent, e: ParticipantEvent, rows: list[tuple[Any, ...]],
             supersessions: list[tuple[Any, ...]]) -> None:
        key = str(entry.stream_id)
        try:
            sealed = self.sealer.seal(entry.stream_id, SEALED,
                                      json.dumps(describe(e), sort_keys=True).encode())
        except ParticipantErased:
            return  # erased since it was read; the erasure's own entry clears the rest
        rows.append((key, e.originator_version, entry.position, type(e).__name__,
                     e.effective_at.isoformat(), e.timestamp.isoformat(), e.actor_role, sealed))
        if isinstance(e, EntryCorrected | EntryVoided):
            kind = "voided" if isinstance(e, EntryVoided) else "corrected"
            supersessions.append((e.originator_version, kind, key, e.supersedes_version))

    @staticmethod
    def _flush(cur: Any, store: SqlStore, rows: list[tuple[Any, ...]],
               supersessions: list[tuple[Any, ...]]) -> None:
        if rows:
            cur.executemany(store.sql(
                "INSERT INTO tcledger_timeline (participant_id, version, position, type, "
                "effective_at, recorded_at, role, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), rows)
        if supersessions:
            cur.executemany(store.sql(
                "UPDATE tcledger_timeline SET superseded_by = ?, supersession = ? "
                "WHERE participant_id = ? AND version = ?"), supersessions)
        rows.clear()
        supersessions.clear()

    @staticmethod
    def _erase(cur: Any, store: SqlStore, participant_id: str) -> None:
        cur.execute(store.sql("DELETE FROM tcledger_timeline WHERE participant_id = ?"),
                    (participant_id,))


def read_timeline(store: SqlStore, sealer: FieldSealer, participant_id: UUID,
                  order: str = "effective") -> list[dict[str, Any]]:
    column = "effective_at" if order == "effective" else "position"
    rows = store.fetch_all(
        "SELECT version, position, superseded_by, supersession, sealed FROM tcledger_timeline "
        f"WHERE participant_id = ? ORDER BY {column}, version", (str(participant_id),))
    found = []
    for row in rows:
        item = json.loads(sealer.open(participant_id, SEALED, bytes(row["sealed"])))
        item.update(position=row["position"], superseded_by=row["superseded_by"],
                    supersession=row["supersession"])
        found.append(item)
    return found
