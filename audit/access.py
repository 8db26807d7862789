"""The access log: who read or wrote which participant's record, when, how and from where.

Each entry is an event of its own (a stream of one, so writers never contend) in the same
event table as the records: append-only under the same trigger, encrypted under the
access log's system key, and a leaf of the ledger like every other event. A command's
entry is committed in the same transaction as the command's events; a read's entry is
committed before the read is answered (a read whose entry cannot be written is refused).
An index table, kept by a follower of the log like a view, serves the auditors' filters
and can be rebuilt from the entries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from infra.sql import SqlStore
from infra.topic_index import TopicIndex

ACTIONS = ("read", "write", "denied", "failed", "disclosure")

TABLES = (
    "CREATE TABLE IF NOT EXISTS tcledger_access_log ("
    " position BIGINT NOT NULL, participant_id TEXT NOT NULL, at TEXT NOT NULL,"
    " actor_id TEXT NOT NULL, role TEXT NOT NULL, facility TEXT, action TEXT NOT NULL,"
    " method TEXT NOT NULL, route TEXT NOT NULL, status INTEGER NOT NULL,"
    " request_id TEXT NOT NULL, remote TEXT, recipient TEXT, events TEXT,"
    " PRIMARY KEY (position, participant_id))",
    "CREATE INDEX IF NOT EXISTS tcledger_access_log_participant"
    " ON tcledger_access_log (participant_id, position)",
    "CREATE INDEX IF NOT EXISTS tcledger_access_log_actor"
    " ON tcledger_access_log (actor_id, position)",
    "CREATE INDEX IF NOT EXISTS tcledger_access_log_at ON tcledger_access_log (at)",
    "CREATE TABLE IF NOT EXISTS tcledger_access_log_position ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
)


@dataclass(frozen=True)
class AccessRecorded(DomainEvent):
    """One request's access to one or more participants' records."""

    participant_ids: list[str]
    actor_id: str
    role: str
    facility: str | None
    action: str
    method: str
    route: str
    status: int
    request_id: str
    remote: str | None
    recipient: str | None = None  # for a disclosure: the outside system that received it
    # For a disclosure: each event handed out (participant, version, position, type,
    # category, consent). Entries written before this field existed decode with None.
    events: list[dict[str, Any]] | None = None


ACCESS_TOPIC = get_topic(AccessRecorded)


@dataclass(frozen=True)
class Access:
    """What a request did to which records, before it is an event."""

    participant_ids: Sequence[str]
    actor_id: str
    role: str
    facility: str | None
    action: str
    method: str
    route: str
    status: int
    request_id: str
    remote: str | None
    recipient: str | None = None
    events: Sequence[dict[str, Any]] | None = None

    def event(self) -> AccessRecorded:
        return AccessRecorded(
            originator_id=uuid4(), originator_version=1, timestamp=datetime.now(UTC),
            participant_ids=[str(p) for p in self.participant_ids], actor_id=self.actor_id,
            role=self.role, facility=self.facility, action=self.action, method=self.method,
            route=self.route, status=self.status, request_id=self.request_id,
            remote=self.remote, recipient=self.recipient,
            events=[dict(e) for e in self.events] if self.events is not None else None)


class AccessLog:
    """Writes access entries (through the event recorder, so that they are ledger leaves)
    and keeps the index the auditors query."""

    NAME = "access-log"

    def __init__(self, store: SqlStore, recorder: Any, mapper: Mapper[UUID]) -> None:
        self.store = store
        self.recorder = recorder
        self.mapper = mapper
        if store.create_tables:
            with store.transaction() as cur:
                for statement in TABLES:
                    cur.execute(statement)
                _add_events_column(store, cur)
        self.index = TopicIndex(
            store, recorder, mapper, name=self.NAME, topic=ACCESS_TOPIC,
            positions="tcledger_access_log_position", rows_of=_index_rows,
            insert="INSERT INTO tcledger_access_log (position, participant_id, at, actor_id,"
                   " role, facility, action, method, route, status, request_id, remote,"
                   " recipient, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    def stored(self, access: Access) -> StoredEvent:
        """The encrypted entry, for a caller that commits it with its own events."""
        return self.mapper.to_stored_event(access.event())

    def record(self, access: Access) -> int:
        """Commits one entry now; returns its log position."""
        ids = self.recorder.insert_events([self.stored(access)])
        return int(ids[-1]) if ids else 0

    # --- the index ----------------------------------------------------------------------

    def position(self) -> int:
        return self.index.position()

    def catch_up(self, batch: int = 1000) -> int:
        return self.index.catch_up(batch)

    def query(self, *, participant: str | None = None, actor: str | None = None,
              since: datetime | None = None, until: datetime | None = None,
              action: str | None = None, after: tuple[int, str] = (0, ""), limit: int = 100
              ) -> list[dict[str, Any]]:
        """Entries in log order, one per participant an entry names; keyset pages after
        (position, participant)."""
        where: list[str] = ["(position > ? OR (position = ? AND participant_id > ?))"]
        params: list[Any] = [after[0], after[0], after[1]]
        for column, value in (("participant_id", participant), ("actor_id", actor),
                              ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(since.astimezone(UTC).isoformat())
        if until is not None:
            where.append("at < ?")
            params.append(until.astimezone(UTC).isoformat())
        rows = self.store.fetch_all(
            "SELECT position, participant_id, at, actor_id, role, facility, action, method,"
            " route, status, request_id, remote, recipient, events FROM tcledger_access_log"
            " WHERE "
            + " AND ".join(where) + " ORDER BY position, participant_id LIMIT ?",
            [*params, limit])
        return [{"position": int(r["position"]), "participant": r["participant_id"],
                 "at": r["at"], "actor": r["actor_id"], "role": r["role"],
                 "facility": r["facility"], "action": r["action"],
                 "what": f"{r['method']} {r['route']}", "status": int(r["status"]),
                 "request_id": r["request_id"], "from": r["remote"],
                 **({"recipient": r["recipient"]} if r["recipient"] else {}),
                 **({"events": json.loads(r["events"])} if r["events"] else {})} for r in rows]


def _events_of(event: AccessRecorded, participant_id: str) -> str | None:
    """The disclosed events of one participant, as the index keeps them (JSON)."""
    if event.events is None:
        return None
    return json.dumps([e for e in event.events if e.get("participant") == participant_id])


def _index_rows(position: int, event: Any) -> list[tuple[Any, ...]]:
    """One index row per participant an entry names."""
    assert isinstance(event, AccessRecorded)
    return [(position, pid, event.timestamp.isoformat(), event.actor_id, event.role,
             event.facility, event.action, event.method, event.route, event.status,
             event.request_id, event.remote, event.recipient, _events_of(event, pid))
            for pid in dict.fromkeys(event.participant_ids)]


def _add_events_column(store: SqlStore, cur: Any) -> None:
    """Indexes made before disclosures named their events lack the column: add it."""
    if store.postgres:  # look first: ALTER TABLE would lock the index even as a no-op
        cur.execute("SELECT column_name AS name FROM information_schema.columns WHERE"
                    " table_schema = current_schema() AND table_name = 'tcledger_access_log'")
    else:
        cur.execute("SELECT name FROM pragma_table_info('tcledger_access_log')")
    if "events" not in {row["name"] for row in cur.fetchall()}:
        cur.execute("ALTER TABLE tcledger_access_log ADD COLUMN events TEXT")
