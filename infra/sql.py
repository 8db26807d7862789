"""Our own tables (keys, tokens, idempotency answers) on the event store's own connections.

The `eventsourcing` datastores already pool connections to the same SQLite file or
PostgreSQL database; tcledger's side tables use them too, with `?` placeholders rewritten
for PostgreSQL. This is the only place that knows the two dialects differ in that way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class SqlStore:
    def __init__(self, datastore: Any, *, postgres: bool) -> None:
        self.datastore = datastore
        self.postgres = postgres

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cur:
            yield cur

    def fetch_one(self, statement: str, params: Sequence[Any] = ()) -> Any:
        with self.datastore.transaction(commit=False) as cur:
            cur.execute(self.sql(statement), params)
            return cur.fetchone()

    def fetch_all(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as cur:
            cur.execute(self.sql(statement), params)
            return list(cur.fetchall())

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cur:
            cur.execute(self.sql(statement), params)
