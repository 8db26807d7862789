"""Snapshots of participants' records: a cold read starts from one, never trusting it alone.

A record with a long history is costly to replay (each event fetched, decrypted, decoded
and folded). A snapshot keeps the whole decoded record (state, history, amendments) as it
stood at one version, so that a read fetches one row and only the events after it. The
command side (`TCLedger`) decides when to keep one and checks each against the stream.

Format: the record pickled, compressed, then sealed with AES-256-GCM under the
participant's own data key; the associated data binds the ciphertext to the stream, the
version and the fingerprint of the code that folded it. So:
- nothing can be read without the keys, and erasing the participant (destroying the key)
  makes every snapshot of theirs unreadable, as it does their events;
- only this application, holding the keys, can make a snapshot that opens; the unpickler
  still admits only the classes a record is made of;
- a snapshot made by other code (another `domain/` fold, library or Python) is ignored:
  the fingerprint differs, and the record is replayed from its events instead.
One row per stream, replaced by a later version. The table is a cache: dropping it loses
nothing, and it is not part of the ledger.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import os
import pickle
import queue
import sys
import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import domain
from domain.errors import ParticipantErased
from domain.events import ParticipantEvent
from domain.participant import Participant
from infra.keys import NONCE_BYTES, KeyError_, KeyStore
from infra.sql import SqlStore

log = logging.getLogger("tcledger.snapshots")

FORMAT = b"tcledger/snapshot/v1"
PROTOCOL = 5

TABLES = (
    "CREATE TABLE IF NOT EXISTS tcledger_snapshots ("
    " stream_id TEXT PRIMARY KEY, version BIGINT NOT NULL, fingerprint TEXT NOT NULL,"
    " sealed {blob} NOT NULL, created_at TEXT NOT NULL)",
)
# A later version replaces an earlier one; a snapshot of other code is always replaced.
UPSERT = (
    "INSERT INTO tcledger_snapshots (stream_id, version, fingerprint, sealed, created_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET"
    " version = excluded.version, fingerprint = excluded.fingerprint,"
    " sealed = excluded.sealed, created_at = excluded.created_at"
    " WHERE excluded.version > tcledger_snapshots.version"
    " OR excluded.fingerprint <> tcledger_snapshots.fingerprint")

# What a record is made of: the aggregate, its events and state, and plain values.
ALLOWED_MODULES = ("domain.", "eventsourcing.")
ALLOWED_GLOBALS = {
    ("builtins", name) for name in
    ("dict", "list", "set", "frozenset", "tuple", "str", "bytes", "int", "float", "bool",
     "object", "getattr")} | {
    ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"), ("datetime", "datetime"),
    ("datetime", "date"), ("datetime", "timedelta"), ("datetime", "timezone"),
    ("decimal", "Decimal"), ("uuid", "UUID"), ("collections", "OrderedDict"),
    ("zoneinfo", "ZoneInfo")}


class SnapshotUnusable(Exception):
    """A snapshot that cannot be used as it stands; the stream is replayed instead."""


@cache
def fingerprint() -> str:
    """The code that folds a record: every module of `domain/`, the library, Python, this
    format. Any change to them makes earlier snapshots stale."""
    digest = hashlib.sha256(FORMAT)
    digest.update(f"|eventsourcing {installed_version('eventsourcing')}|python "
                  f"{sys.version_info[0]}.{sys.version_info[1]}|pickle {PROTOCOL}|".encode())
    root = Path(domain.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


class _RecordUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(ALLOWED_MODULES) or (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a record")


def _unpickle(data: bytes) -> Any:
    return _RecordUnpickler(io.BytesIO(data)).load()


def _history(events: bytes, version: int) -> list[ParticipantEvent]:
    """The events of a snapshot (authenticated with it), decoded when first needed."""
    history = _unpickle(events)
    if not isinstance(history, list) or len(history) != version:
        raise SnapshotUnusable("its events are not the record's")
    return history


def _aad(stream_id: UUID, version: int, mark: str) -> bytes:
    return FORMAT + b"|" + stream_id.bytes + version.to_bytes(8, "big") + b"|" + mark.encode()


class ParticipantSnapshots:
    """Keeps and finds participants' snapshots in the store's `tcledger_snapshots`."""

    def __init__(self, store: SqlStore, keys: KeyStore) -> None:
        self.store = store
        self.keys = keys
        if store.create_tables:
            with store.transaction() as cur:
                for statement in TABLES:
                    cur.execute(statement.format(blob="BYTEA" if store.postgres else "BLOB"))

    def latest(self, stream_id: UUID) -> Participant | None:
        """The stream's snapshot, or None when there is none this code can use. Raises
        ParticipantErased when the participant's key is gone."""
        row = self.store.fetch_one(
            "SELECT version, fingerprint, sealed FROM tcledger_snapshots WHERE stream_id = ?",
            (str(stream_id),))
        if row is None or row["fingerprint"] != fingerprint():
            return None
        try:
            return self.open(stream_id, int(row["version"]), bytes(row["sealed"]))
        except SnapshotUnusable as exc:
            log.warning("snapshot_unusable", extra={"stream_id": str(stream_id),
                                                    "problem": str(exc)})
            return None

    def keep(self, participant: Participant) -> None:
        """Stores the record as it stands (it must be as the stream replays it). Never
        raises: a snapshot that cannot be kept costs the next cold read time, nothing else."""
        stream_id, version = UUID(str(participant.id)), participant.version
        try:
            sealed = self.seal(participant)
            self.store.execute(UPSERT, (str(stream_id), version, fingerprint(), sealed,
                                        datetime.now(UTC).isoformat()))
        except ParticipantErased:
            return
        except Exception as exc:
            log.warning("snapshot_not_kept", extra={"stream_id": str(stream_id),
                                                    "error_type": type(exc).__name__})

    def discard(self, stream_id: UUID) -> None:
        """Removes a stream's snapshot (an erasure: it is unreadable already, its key gone)."""
        try:
            self.store.execute("DELETE FROM tcledger_snapshots WHERE stream_id = ?",
                               (str(stream_id),))
        except Exception as exc:
            log.warning("snapshot_not_discarded", extra={"stream_id": str(stream_id),
                                                         "error_type": type(exc).__name__})

    def seal(self, participant: Participant) -> bytes:
        """The record in two parts: its state (what showing it needs) with its last event,
        and its events, kept as bytes that are decoded only when a command needs them."""
        stream_id, version = UUID(str(participant.id)), participant.version
        if participant.pending_events:
            raise ValueError("a snapshot is of a saved record only")
        events = participant.history
        shell = copy.copy(participant)
        shell.__dict__.update(_history=None, _earlier=None, _last=None)
        parts = (shell, participant.last_event, pickle.dumps(events, protocol=PROTOCOL))
        plain = zlib.compress(pickle.dumps(parts, protocol=PROTOCOL), 1)
        nonce = os.urandom(NONCE_BYTES)
        key = self.keys.data_key(stream_id)
        return nonce + AESGCM(key).encrypt(nonce, plain, _aad(stream_id, version,
                                                              fingerprint()))

    def open(self, stream_id: UUID, version: int, sealed: bytes) -> Participant:
        try:
            key = self.keys.data_key(stream_id)
        except KeyError_ as exc:
            raise SnapshotUnusable("no data key") from exc
        try:
            plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                        _aad(stream_id, version, fingerprint()))
        except InvalidTag:
            raise SnapshotUnusable("does not authenticate here") from None
        try:
            record, last, events = _unpickle(zlib.decompress(plain))
        except Exception as exc:  # a class renamed since: replay instead
            raise SnapshotUnusable(f"does not load ({type(exc).__name__})") from None
        if not isinstance(record, Participant) or record.version != version \
                or record.id != stream_id or not isinstance(last, ParticipantEvent) \
                or last.originator_version != version or not isinstance(events, bytes):
            raise SnapshotUnusable("not the record it is filed as")
        record.defer_history(lambda: _history(events, version), last)
        return record


class SnapshotsBehind:
    """Makes the snapshots writes made due on one background thread, in order, after those
    writes have answered. A snapshot is a cache: one not made (the process stopped first,
    or the record was erased meanwhile) costs a longer cold read, nothing else; one made
    just as its record is erased is sealed under a key that is already gone."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, work: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="snapshots",
                                                daemon=True)
                self._thread.start()
            self._queue.put(work)

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            work()  # the work logs its own failures

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)
