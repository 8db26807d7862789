"""Builds the running system from Settings: stores, keys, the command side, tokens.

Infrastructure is chosen here by configuration (SQLite file or PostgreSQL URL) and nowhere
else; everything downstream receives ready objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse
from uuid import UUID

from domain.application import TCLedger
from domain.policy import PolicyBook, default_policy, load_policy
from infra.blind_index import BlindIndex
from infra.cipher import EncryptedMapper, FieldSealer
from infra.idempotency import IdempotencyStore
from infra.keys import KeyEncryptionKey, KeyError_, KeyStore
from infra.log_reader import LogReader
from infra.peers import PeerLinks
from infra.recorders import LogEntry
from infra.settings import Settings
from infra.snapshots import ParticipantSnapshots, SnapshotsBehind
from infra.sql import SqlStore
from infra.tokens import TokenStore

log = logging.getLogger("tcledger")


class PositionIndex(Protocol):
    def positions(self, stream_id: UUID) -> dict[int, int]: ...

    def last_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]: ...

    def select_entries(self, after: int, limit: int, topics: Sequence[str]
                       ) -> list[LogEntry]: ...


@dataclass
class Services:
    settings: Settings
    policies: PolicyBook
    keys: KeyStore
    ledger: TCLedger
    store: SqlStore
    tokens: TokenStore
    idempotency: IdempotencyStore
    generated_dev_key: bool
    sealer: FieldSealer
    index: BlindIndex

    @property
    def log(self) -> LogReader:
        return LogReader(self.ledger.recorder)

    @property
    def recorder(self) -> PositionIndex:
        return self.ledger.recorder  # type: ignore[return-value]

    def close(self) -> None:
        self.ledger.close()


def load_policies(settings: Settings) -> PolicyBook:
    paths = settings.policy_paths
    return PolicyBook([load_policy(p) for p in paths] if paths else [default_policy()])


def resolve_kek(settings: Settings) -> tuple[KeyEncryptionKey, bool]:
    """The KEK from the environment or a key file; in development, a generated key file."""
    if settings.kek:
        return KeyEncryptionKey.from_base64(settings.kek), False
    if settings.kek_file is not None:
        return KeyEncryptionKey.from_file(settings.kek_file), False
    if settings.env == "production":
        raise KeyError_("production needs TCLEDGER_KEK or TCLEDGER_KEK_FILE")
    path = settings.var_dir / "dev-kek.key"
    generated = not path.exists()
    if generated:
        KeyEncryptionKey.generate_file(path)
    return KeyEncryptionKey.from_file(path), generated


def persistence_env(settings: Settings) -> dict[str, str]:
    env = {"CREATE_TABLE": "y" if settings.create_tables else "n"}
    if settings.uses_postgres:
        url = urlparse(settings.database_url)
        env.update({
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "infra.recorders:PostgresEventRecorder",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_POOL_SIZE": str(settings.pg_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(settings.pg_pool_size),
            "POSTGRES_CONNECT_TIMEOUT": "5",
        })
    else:
        Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
        env.update({
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "APPLICATION_RECORDER_TOPIC": "infra.recorders:SQLiteEventRecorder",
            "SQLITE_DBNAME": str(settings.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "10",
        })
    return env


def build(settings: Settings) -> Services:
    policies = load_policies(settings)
    kek, generated = resolve_kek(settings)
    keys = KeyStore(kek)
    ledger = TCLedger(policies, keys, env=persistence_env(settings), mapper=EncryptedMapper(keys),
                      live_records=settings.aggregate_cache_size, peers=PeerLinks(keys))
    store = SqlStore(ledger.factory.datastore,  # type: ignore[attr-defined]
                     postgres=settings.uses_postgres, create_tables=settings.create_tables)
    keys.attach(store)
    ledger.keep_snapshots(ParticipantSnapshots(store, keys), settings.snapshot_interval,
                          SnapshotsBehind())
    return Services(settings, policies, keys, ledger, store,
                    TokenStore(store, settings.token_cache_seconds),
                    IdempotencyStore(store), generated, FieldSealer(keys), BlindIndex(keys))
