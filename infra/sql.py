"""Our own tables (keys, tokens, idempotency answers) on the event store's own connections.

The `eventsourcing` datastores already pool connections to the same SQLite file or
PostgreSQL database; tcledger's side tables use them too, with `?` placeholders rewritten
for PostgreSQL. This is the only place that knows the two dialects differ in that way.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class SqlStore:
    def __init__(self, datastore: Any, *, postgres: bool, create_tables: bool = True) -> None:
        self.datastore = datastore
        self.postgres = postgres
        # False when the process runs as the restricted application role: the tables were
        # made by their owner (`tcledger db migrate`) and this role may not create any.
        self.create_tables = create_tables
        self._readers = threading.local()

    def _sqlite_reader(self) -> sqlite3.Connection | None:
        """SQLite: this thread's own connection for fetch_one/fetch_all, outside the
        library's pool. The pool hands out connections one thread at a time, so a thread
        that holds the writer and asks the pool for a reader (a key looked up while a view
        writes its batch) waits behind a thread that waits for that writer: a deadlock
        until the pool's timeout. WAL lets this connection read beside the writer."""
        if self.postgres:
            return None
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.datastore.pool.db_name, isolation_level=None,
                                   check_same_thread=True, timeout=10)
            conn.row_factory = sqlite3.Row
            self._readers.conn = conn
        return conn

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cur:
            yield cur

    def fetch_one(self, statement: str, params: Sequence[Any] = ()) -> Any:
        reader = self._sqlite_reader()
        if reader is not None:
            return reader.execute(statement, tuple(params)).fetchone()
        with self.datastore.transaction(commit=False) as cur:
            cur.execute(self.sql(statement), params)
            return cur.fetchone()

    def fetch_all(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        reader = self._sqlite_reader()
        if reader is not None:
            return list(reader.execute(statement, tuple(params)).fetchall())
        with self.datastore.transaction(commit=False) as cur:
            cur.execute(self.sql(statement), params)
            return list(cur.fetchall())

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cur:
            cur.execute(self.sql(statement), params)

    # --- many rows at once -------------------------------------------------------------
    # A view written a batch at a time sends its rows together. PostgreSQL takes many rows
    # fastest through COPY; SQLite, in process, through executemany.

    def insert_many(self, cur: Any, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.postgres and len(rows) >= COPY_THRESHOLD:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        cur.executemany(self.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                 f"({', '.join('?' for _ in columns)})"), rows)

    def upsert_many(self, cur: Any, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]], on_conflict: str) -> None:
        """Inserts rows, or updates them as `on_conflict` says (an `ON CONFLICT ...` clause
        naming `excluded`); the rows' keys must be distinct. On PostgreSQL, many rows go
        through COPY into a temporary table and one INSERT ... SELECT."""
        if not rows:
            return
        names = ", ".join(columns)
        if self.postgres and len(rows) >= COPY_THRESHOLD:
            staging = f"tcledger_staging_{table}"
            cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
                        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            cur.execute(f"DELETE FROM {staging}")  # left by an earlier call in this transaction
            with cur.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} "
                        f"{on_conflict}")
            return
        cur.executemany(self.sql(f"INSERT INTO {table} ({names}) VALUES "
                                 f"({', '.join('?' for _ in columns)}) {on_conflict}"), rows)

    def delete_keys(self, cur: Any, table: str, column: str, keys: Sequence[Any]) -> None:
        """Deletes the rows whose `column` is one of `keys`: one statement on PostgreSQL."""
        if not keys:
            return
        if self.postgres:
            cur.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (list(keys),))
        else:
            cur.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(k,) for k in keys])


COPY_THRESHOLD = 200  # below it, executemany's pipeline costs less than a COPY's set-up
