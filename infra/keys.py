"""Key management: per-stream data keys, wrapped by the key-encryption key (KEK).

Each participant stream gets a random AES-256 data key on its first event. Data keys are
stored only wrapped (AES-256-GCM under the KEK, bound to the stream id), so the database
alone reveals nothing. Destroying a data key (crypto-shredding) leaves a tombstone row, so
that "erased" is distinguishable from "never existed". Rotation re-wraps, never re-encrypts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.errors import ParticipantErased
from infra.sql import SqlStore

NONCE_BYTES = 12


class KeyError_(Exception):
    """A key problem that is not the caller's fault; messages carry no key material."""


class KeyEncryptionKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KeyError_("the key-encryption key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"tcledger-kek-id" + key).hexdigest()[:16]

    @classmethod
    def from_base64(cls, text: str) -> KeyEncryptionKey:
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except ValueError:
            raise KeyError_("the key-encryption key is not valid base64") from None

    @classmethod
    def from_file(cls, path: Path) -> KeyEncryptionKey:
        try:
            return cls.from_base64(path.read_text(encoding="ascii"))
        except OSError as exc:
            raise KeyError_(f"cannot read the key file {path}: {exc.strerror}") from None

    @staticmethod
    def generate_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(base64.b64encode(AESGCM.generate_key(256)).decode() + "\n")

    def wrap(self, stream_id: UUID, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, _wrap_aad(stream_id))

    def unwrap(self, stream_id: UUID, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                      _wrap_aad(stream_id))
        except InvalidTag:
            raise KeyError_(f"the data key of stream {stream_id} does not unwrap under "
                            "this KEK (wrong key, or the row was tampered with)") from None


def _wrap_aad(stream_id: UUID) -> bytes:
    return b"tcledger/data-key/v1|" + stream_id.bytes


class KeyStore:
    """Data keys by stream id, unwrapped on first use and kept in memory until destroyed."""

    def __init__(self, kek: KeyEncryptionKey, store: SqlStore | None = None) -> None:
        self._kek = kek
        self._attached = store
        self._cache: dict[UUID, bytes] = {}
        self._lock = threading.Lock()

    def attach(self, store: SqlStore) -> None:
        """Gives the store once the event store's connections exist (they are made together)."""
        self._attached = store

    @property
    def _store(self) -> SqlStore:
        assert self._attached is not None, "KeyStore.attach() was not called"
        return self._attached

    @property
    def kek_id(self) -> str:
        return self._kek.key_id

    def data_key(self, stream_id: UUID) -> bytes:
        cached = self._cache.get(stream_id)
        if cached is not None:
            return cached
        row = self._store.fetch_one(
            "SELECT wrapped, kek_id FROM tcledger_data_keys WHERE stream_id = ?",
            (str(stream_id),))
        if row is None:
            raise KeyError_(f"stream {stream_id} has no data key")
        if row["wrapped"] is None:
            raise ParticipantErased(stream_id)
        key = self._kek.unwrap(stream_id, bytes(row["wrapped"]))
        with self._lock:
            self._cache[stream_id] = key
        return key

    def load(self, stream_ids: list[UUID]) -> None:
        """Unwraps the keys of many streams with one read (a caseload page), so that
        opening each row does not cost a query. Erased and unknown streams are left for
        `data_key` to report."""
        missing = [str(s) for s in stream_ids if s not in self._cache]
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            rows = self._store.fetch_all(
                "SELECT stream_id, wrapped FROM tcledger_data_keys WHERE wrapped IS NOT NULL"
                f" AND stream_id IN ({', '.join('?' * len(chunk))})", chunk)
            found = {UUID(r["stream_id"]): self._kek.unwrap(UUID(r["stream_id"]),
                                                            bytes(r["wrapped"])) for r in rows}
            with self._lock:
                for stream_id, key in found.items():
                    self._cache.setdefault(stream_id, key)

    def preload(self) -> int:
        """Unwraps every live data key in one read, for a run that will need most of them
        (a rebuild): one query instead of one per stream. Returns how many."""
        rows = self._store.fetch_all(
            "SELECT stream_id, wrapped FROM tcledger_data_keys WHERE wrapped IS NOT NULL")
        found = {}
        for row in rows:
            stream_id = UUID(row["stream_id"])
            found[stream_id] = self._kek.unwrap(stream_id, bytes(row["wrapped"]))
        with self._lock:
            for stream_id, key in found.items():
                self._cache.setdefault(stream_id, key)
        return len(found)

    def system_key(self, stream_id: UUID) -> bytes:
        """A key that is not a participant's (the blind index), made on first use."""
        try:
            return self.data_key(stream_id)
        except KeyError_:
            try:
                return self._create(stream_id)
            except KeyError_:  # another process made it first
                return self.data_key(stream_id)

    def data_key_for_new_event(self, stream_id: UUID, version: int) -> bytes:
        if version == 1 and stream_id not in self._cache:
            return self._create(stream_id)
        return self.data_key(stream_id)

    def _create(self, stream_id: UUID) -> bytes:
        key = AESGCM.generate_key(256)
        with self._store.transaction() as cur:
            cur.execute(self._store.sql(
                "SELECT wrapped FROM tcledger_data_keys WHERE stream_id = ?"), (str(stream_id),))
            if cur.fetchone() is not None:
                raise KeyError_(f"stream {stream_id} already has a data key")
            cur.execute(self._store.sql(
                "INSERT INTO tcledger_data_keys (stream_id, kek_id, wrapped, created_at) "
                "VALUES (?, ?, ?, ?)"),
                (str(stream_id), self._kek.key_id, self._kek.wrap(stream_id, key), _now()))
        with self._lock:
            self._cache[stream_id] = key
        return key

    def destroy_data_key(self, stream_id: UUID) -> None:
        with self._store.transaction() as cur:
            cur.execute(self._store.sql(
                "UPDATE tcledger_data_keys SET wrapped = NULL, destroyed_at = ? "
                "WHERE stream_id = ? AND wrapped IS NOT NULL"), (_now(), str(stream_id)))
        with self._lock:
            self._cache.pop(stream_id, None)

    def check_readable(self, stream_id: UUID) -> None:
        if self.is_destroyed(stream_id):
            with self._lock:
                self._cache.pop(stream_id, None)
            raise ParticipantErased(stream_id)

    def destroyed(self, stream_ids: list[UUID]) -> set[UUID]:
        """Which of these streams' keys are destroyed, asked of the database in one read
        (another process may have erased since a key was cached)."""
        found: set[UUID] = set()
        ids = [str(s) for s in dict.fromkeys(stream_ids)]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(UUID(r["stream_id"]) for r in self._store.fetch_all(
                "SELECT stream_id FROM tcledger_data_keys WHERE wrapped IS NULL"
                f" AND stream_id IN ({', '.join('?' * len(chunk))})", chunk))
        with self._lock:
            for stream_id in found:
                self._cache.pop(stream_id, None)
        return found

    def is_destroyed(self, stream_id: UUID) -> bool:
        row = self._store.fetch_one(
            "SELECT wrapped FROM tcledger_data_keys WHERE stream_id = ?", (str(stream_id),))
        return row is not None and row["wrapped"] is None

    def rotate(self, new_kek: KeyEncryptionKey) -> int:
        """Re-wraps every live data key under a new KEK; events are never touched."""
        count = 0
        with self._store.transaction() as cur:
            cur.execute(self._store.sql(
                "SELECT stream_id, wrapped FROM tcledger_data_keys WHERE wrapped IS NOT NULL"))
            for row in list(_rows(cur)):
                stream_id = UUID(row["stream_id"])
                key = self._kek.unwrap(stream_id, bytes(row["wrapped"]))
                cur.execute(self._store.sql(
                    "UPDATE tcledger_data_keys SET wrapped = ?, kek_id = ? WHERE stream_id = ?"),
                    (new_kek.wrap(stream_id, key), new_kek.key_id, str(stream_id)))
                count += 1
        self._kek = new_kek
        return count


def _rows(cur: Any) -> Iterator[dict[str, Any]]:
    yield from cur.fetchall()


def _now() -> str:
    return datetime.now(UTC).isoformat()
