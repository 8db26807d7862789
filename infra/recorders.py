"""The event recorders: the library's, plus immutability and same-transaction side records.

Both stores get the same two additions:
- the stored events refuse UPDATE and DELETE (a trigger), so history can only grow;
- an idempotency answer passed as `record_with={"idempotency": ...}` is written in the
  same transaction as the events, so a retried request can never record a fact twice.
tcledger's own tables are created here too, beside the events they belong with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import ClientCursor
from psycopg.pq import TransactionStatus
from psycopg.rows import args_row
from psycopg.sql import SQL, Composable, Identifier, Literal

from infra.group_commit import Append, GroupCommitter

SIDE_TABLES = (
    "CREATE TABLE IF NOT EXISTS tcledger_data_keys ("
    " stream_id TEXT PRIMARY KEY, kek_id TEXT NOT NULL, wrapped {blob},"
    " created_at TEXT NOT NULL, destroyed_at TEXT)",
    "CREATE TABLE IF NOT EXISTS tcledger_tokens ("
    " token_id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    " role TEXT NOT NULL, facility TEXT, created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE TABLE IF NOT EXISTS tcledger_idempotency ("
    " actor_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, request_hash TEXT NOT NULL,"
    " status INTEGER NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY (actor_id, idempotency_key))",
)

INSERT_IDEMPOTENCY = (
    "INSERT INTO tcledger_idempotency"
    " (actor_id, idempotency_key, request_hash, status, body, created_at)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p})")

IMMUTABLE_MESSAGE = "tcledger: stored events are immutable"


class LogEntry(NamedTuple):
    """A log position and the event it holds, without the event: for readers that pass
    over most entries or hold the decoded events already."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str


@dataclass(frozen=True)
class IdempotencyRecord:
    """The first answer to a request, kept so that its retries get the same answer."""

    actor_id: str
    key: str
    request_hash: str
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    def row(self, position: int | None) -> tuple[Any, ...]:
        body = dict(self.body)
        if position is not None:
            body["position"] = position
        return (self.actor_id, self.key, self.request_hash, self.status,
                json.dumps(body, sort_keys=True), datetime.now(UTC).isoformat())


EVENTS_TABLE = "tcledger_events"


class SQLiteEventRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = EVENTS_TABLE) -> None:
        # The same table name as on PostgreSQL, where the library derives it from the app.
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        table = self.events_table_name
        return [*super().construct_create_table_statements(),
                *(s.format(blob="BLOB") for s in SIDE_TABLES),
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE}'); END",
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE}'); END"]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        also = kwargs.get("also")
        if also:
            super()._insert_events(c, also)
        record = kwargs.get("idempotency")
        if isinstance(record, IdempotencyRecord):
            c.execute(INSERT_IDEMPOTENCY.format(p="?"), record.row(ids[-1] if ids else None))
        return ids

    def select_entries(self, after: int, limit: int, topics: Sequence[str]) -> list[LogEntry]:
        """The log's entries of these topics after a position, in order, without payloads."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id, originator_version, topic FROM"
                      f" {self.events_table_name} WHERE rowid > ? AND topic IN"
                      f" ({', '.join('?' * len(topics))}) ORDER BY rowid LIMIT ?",
                      [after, *topics, limit])
            return [LogEntry(row[0], UUID(row[1]), row[2], row[3]) for row in c.fetchall()]

    def last_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The last version of each of these streams that has one, in one read per 500."""
        found: dict[UUID, int] = {}
        ids = [s.hex for s in stream_ids]
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                c.execute(f"SELECT originator_id, max(originator_version) FROM"
                          f" {self.events_table_name} WHERE originator_id IN"
                          f" ({', '.join('?' * len(chunk))}) GROUP BY originator_id", chunk)
                found.update((UUID(row[0]), row[1]) for row in c.fetchall())
        return found

    def positions(self, stream_id: UUID) -> dict[int, int]:
        """Global log position of each version of a stream."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT originator_version, rowid FROM {self.events_table_name}"
                      " WHERE originator_id = ?", (stream_id.hex,))
            return {row[0]: row[1] for row in c.fetchall()}


class PostgresEventRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *,
                 events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self._group = GroupCommitter(self._write_batch)
        self._insert_statements: dict[tuple[int, bool], Composable] = {}
        self._statement_texts: dict[tuple[Any, ...], bytes] = {}
        # Appenders take one transaction-scoped advisory lock, so that the global order of
        # notification ids is the order of commits (a reader that asks for everything after
        # the last id it saw can never miss a later commit). The library's LOCK TABLE ... IN
        # EXCLUSIVE MODE does the same but needs UPDATE, DELETE or TRUNCATE privilege, and
        # the application's role has only INSERT and SELECT on the events (DESIGN.md).
        lock_key = int.from_bytes(hashlib.sha256(
            b"tcledger-append|" + events_table_name.encode()).digest()[:8], "big", signed=True)
        self._lock_statement = SQL("SELECT pg_advisory_xact_lock({key})").format(
            key=Literal(lock_key))
        schema, table = Identifier(datastore.schema), Identifier(events_table_name)
        # The answer's position is the notification id of the append's last event, read
        # inside the same transaction.
        self._insert_answer = SQL(
            "INSERT INTO {schema}.tcledger_idempotency (actor_id, idempotency_key, "
            "request_hash, status, body, created_at) VALUES (%s, %s, %s, %s, "
            "jsonb_set(%s::jsonb, '{{position}}', to_jsonb((SELECT notification_id FROM "
            "{schema}.{table} WHERE originator_id = %s AND originator_version = %s)))::text, "
            "%s)").format(schema=schema, table=table)
        function = Identifier(f"{events_table_name}_refuse_change")
        self.sql_create_statements.extend([
            *(SQL(s.format(blob="BYTEA")) for s in SIDE_TABLES),  # type: ignore[list-item]
            SQL("CREATE OR REPLACE FUNCTION {schema}.{function}() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '" + IMMUTABLE_MESSAGE
                + " (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege'; END $$"
                ).format(schema=schema, function=function),
            SQL("CREATE OR REPLACE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON "
                "{schema}.{table} FOR EACH ROW EXECUTE FUNCTION {schema}.{function}()").format(
                trigger=Identifier(f"{events_table_name}_immutable_rows"), schema=schema,
                table=table, function=function),
            SQL("CREATE OR REPLACE TRIGGER {trigger} BEFORE TRUNCATE ON {schema}.{table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{function}()").format(
                trigger=Identifier(f"{events_table_name}_no_truncate"), schema=schema,
                table=table, function=function),
        ])

    def select_entries(self, after: int, limit: int, topics: Sequence[str]) -> list[LogEntry]:
        """The log's entries of these topics after a position, in order, without payloads."""
        with self.datastore.transaction(commit=False) as curs:
            entries = curs.connection.cursor(row_factory=args_row(LogEntry))
            # Made straight from each row: no dict per row (thousands per page).
            entries.execute(SQL(
                "SELECT notification_id, originator_id, originator_version, topic"
                " FROM {schema}.{table} WHERE notification_id > %s AND topic = ANY(%s)"
                " ORDER BY notification_id LIMIT %s"
            ).format(schema=Identifier(self.datastore.schema),
                     table=Identifier(self.events_table_name)),
                (after, list(topics), limit), prepare=True)
            return entries.fetchall()

    def last_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The last version of each of these streams that has one, in one read (each a
        one-row backward scan of the primary key)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL(
                "SELECT s.id, (SELECT max(originator_version) FROM {schema}.{table}"
                " WHERE originator_id = s.id) AS version FROM unnest(%s::uuid[]) AS s(id)"
            ).format(schema=Identifier(self.datastore.schema),
                     table=Identifier(self.events_table_name)), (list(stream_ids),))
            return {row["id"]: row["version"] for row in curs.fetchall()
                    if row["version"] is not None}

    def positions(self, stream_id: UUID) -> dict[int, int]:
        """Global log position of each version of a stream."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT originator_version, notification_id FROM {schema}.{table}"
                             " WHERE originator_id = %s").format(
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.events_table_name)), (stream_id,))
            return {row["originator_version"]: row["notification_id"] for row in curs.fetchall()}

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if kwargs.get("tracking") is not None:
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        if not stored_events:
            return []
        return self._group.submit(stored_events, kwargs)

    def _write_batch(self, batch: list[Append]) -> None:
        """One round trip: BEGIN, lock, each append's rows and side records, COMMIT.

        Sent as one multi-statement simple query with client-side binding: a pipeline of
        prepared statements costs more in psycopg's Python than the database spends. Each
        statement's text is rendered once (composing SQL costs more than binding it).
        """
        statements: list[bytes] = [b"BEGIN", self._text(("lock",))]
        params: list[Any] = []
        for append in batch:
            statements.append(self._text(("rows", len(append.events), True)))
            params.extend(_row_params(append.events))
            also = append.side.get("also")
            if also:  # rows committed with these, whose ids nobody waits for
                statements.append(self._text(("rows", len(also), False)))
                params.extend(_row_params(also))
            record = append.side.get("idempotency")
            if isinstance(record, IdempotencyRecord):
                last = append.events[-1]
                actor, key, digest, status, body, created = record.row(None)
                statements.append(self._text(("answer",)))
                params.extend((actor, key, digest, status, body, last.originator_id,
                               last.originator_version, created))
        statements.append(b"COMMIT")
        with self.datastore.get_connection() as conn:
            cursor = ClientCursor(conn)
            try:
                cursor.execute(b"; ".join(statements), params)
                returned = []
                while True:
                    if cursor.description is not None:
                        returned.append(cursor.fetchall())
                    if not cursor.nextset():
                        break
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise
        returned = returned[1:]  # the lock's own (empty) answer
        for append, rows in zip(batch, returned, strict=True):
            # In insertion order: one append may hold several streams (a roster), whose
            # versions do not follow the order of their rows.
            ordered = sorted(rows, key=lambda r: r["notification_id"])
            append.ids = [row["notification_id"] for row in ordered]

    def _text(self, shape: tuple[Any, ...]) -> bytes:
        """A statement of the batch, rendered once per shape: the lock, an append's rows
        (how many, answering their ids or not), an idempotency answer."""
        text = self._statement_texts.get(shape)
        if text is None:
            if shape[0] == "lock":
                statement: Composable = self._lock_statement
            elif shape[0] == "answer":
                statement = self._insert_answer
            else:
                statement = self._insert_rows(shape[1], returning=shape[2])
            text = statement.as_bytes(None)
            if len(self._statement_texts) < 1024:
                self._statement_texts[shape] = text
        return text

    def _insert_rows(self, count: int, returning: bool = True) -> Composable:
        statement = self._insert_statements.get((count, returning))
        if statement is None:
            statement = SQL("INSERT INTO {schema}.{table} (originator_id, originator_version, "
                            "topic, state) VALUES {rows}{returning}").format(
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.events_table_name),
                rows=SQL(", ").join([SQL("(%s, %s, %s, %s)")] * count),
                returning=SQL(" RETURNING originator_version, notification_id" if returning
                              else ""))
            self._insert_statements[(count, returning)] = statement
        return statement


def _row_params(events: Sequence[StoredEvent]) -> list[Any]:
    params: list[Any] = []
    for e in events:
        params.extend((e.originator_id, e.originator_version, e.topic, e.state))
    return params
