"""Looking up the first answer to a request that carried an Idempotency-Key.

Answers are written by the event recorder in the same transaction as the events (see
`infra.recorders.IdempotencyRecord`); this side only reads them back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.sql import SqlStore


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    status: int
    body: dict[str, Any]


class IdempotencyStore:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def find(self, actor_id: str, key: str) -> StoredAnswer | None:
        row = self._store.fetch_one(
            "SELECT request_hash, status, body FROM tcledger_idempotency"
            " WHERE actor_id = ? AND idempotency_key = ?", (actor_id, key))
        if row is None:
            return None
        return StoredAnswer(row["request_hash"], int(row["status"]), json.loads(row["body"]))
