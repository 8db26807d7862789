"""Each record's contribution to a view's de-identified counters, kept sealed.

A view of counters (the program statistics, the attendance of each group session) must
swap a record's old contribution for its new one when a correction changes the record,
and take it away when the record is erased, even after the participant's own key is gone.
So each record's contribution (which counters it adds to) is kept under a key of the
view's own, bound to the participant id: nothing in clear ties a participant to a counter.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.keys import NONCE_BYTES, KeyStore
from infra.sql import SqlStore

Fact = tuple[Any, ...]  # one counter a record adds to (JSON scalars only)


class SealedContributions:
    def __init__(self, keys: KeyStore, key_stream: UUID, table: str) -> None:
        self.keys = keys
        self.key_stream = key_stream
        self.table = table

    def prepare(self) -> None:
        """Makes the view's key before any transaction needs it (SQLite has one writer)."""
        self.keys.system_key(self.key_stream)

    def create_table(self, cur: Any, store: SqlStore) -> None:
        blob = "BYTEA" if store.postgres else "BLOB"
        cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ("
                    f" participant_id TEXT PRIMARY KEY, sealed {blob} NOT NULL)")

    def clear(self, cur: Any) -> None:
        cur.execute(f"DELETE FROM {self.table}")

    def replace(self, cur: Any, store: SqlStore,
                facts_of: dict[UUID, list[Fact]]) -> Counter[Fact]:
        """Keeps each record's new contribution (none: an erased record's is dropped) and
        returns how every counter changes, summed over the records."""
        before = self._read(cur, store, list(facts_of))
        change: Counter[Fact] = Counter()
        sealed, dropped = [], []
        for participant_id, facts in facts_of.items():
            change.update(facts)
            change.subtract(before.get(participant_id, []))
            if facts:
                sealed.append((str(participant_id), self._seal(participant_id, facts)))
            elif participant_id in before:
                dropped.append(str(participant_id))
        store.upsert_many(cur, self.table, ("participant_id", "sealed"), sealed,
                          "ON CONFLICT (participant_id) DO UPDATE SET sealed = excluded.sealed")
        store.delete_keys(cur, self.table, "participant_id", dropped)
        return Counter({fact: n for fact, n in change.items() if n})

    def _read(self, cur: Any, store: SqlStore, ids: list[UUID]) -> dict[UUID, list[Fact]]:
        found: dict[UUID, list[Fact]] = {}
        for start in range(0, len(ids), 500):
            chunk = [str(i) for i in ids[start:start + 500]]
            cur.execute(store.sql(f"SELECT participant_id, sealed FROM {self.table} "
                                  "WHERE participant_id IN ("
                                  + ", ".join("?" for _ in chunk) + ")"), chunk)
            for row in cur.fetchall():
                participant_id = UUID(row["participant_id"])
                found[participant_id] = self._open(participant_id, bytes(row["sealed"]))
        return found

    def _seal(self, participant_id: UUID, facts: list[Fact]) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        aead = AESGCM(self.keys.system_key(self.key_stream))
        return nonce + aead.encrypt(nonce, json.dumps(facts).encode(), participant_id.bytes)

    def _open(self, participant_id: UUID, sealed: bytes) -> list[Fact]:
        aead = AESGCM(self.keys.system_key(self.key_stream))
        plain = aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], participant_id.bytes)
        return [tuple(f) for f in json.loads(plain)]
