"""Webhook subscriptions: where an integration client wants its events pushed, and the
secret that signs them.

A subscription belongs to one integration client (its token) and sees what the client sees:
the client's recipient and categories scope it, and `event_types` (CloudEvent `type`
values) can narrow it further. It receives the events recorded after it was made (its
`from_position` is the log's head then). The signing secret, Standard Webhooks `whsec_`
format, is shown once; the server keeps it sealed under a system key (AES-256-GCM, bound to
the subscription id) because it must sign with it. Deleting a subscription keeps its row
(an auditor can see where deliveries went) and cancels what it had not delivered yet; a
receiver that answers 410 Gone disables it until `tcledger webhooks redeliver
--subscription` turns it back on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, uuid5

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.disclosure import AMENDMENTS, DISCLOSABLE
from infra.keys import NONCE_BYTES, KeyStore
from infra.log_reader import LogReader
from infra.sql import SqlStore
from integrations.clients import IntegrationClient
from integrations.feed import cloudevent_type

SUBSCRIPTIONS = "tcledger_webhook_subscriptions"
OUTBOX = "tcledger_webhook_outbox"
SECRETS_STREAM = uuid5(NAMESPACE_URL, "urn:tcledger:webhook-secrets")
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 random bytes
MAX_URL = 2000
MAX_PER_CLIENT = 20
# CloudEvent type → the consent category it belongs to (None: amendments follow their entry).
EVENT_TYPES: dict[str, str | None] = {
    **{cloudevent_type(name): rule.category for name, rule in DISCLOSABLE.items()},
    **{cloudevent_type(name): None for name in AMENDMENTS}}


def tables(postgres: bool) -> tuple[str, ...]:
    blob, bigint = ("BYTEA", "BIGINT") if postgres else ("BLOB", "INTEGER")
    return (
        f"CREATE TABLE IF NOT EXISTS {SUBSCRIPTIONS} ("
        " subscription_id TEXT PRIMARY KEY, token_id TEXT NOT NULL, url TEXT NOT NULL,"
        f" event_types TEXT NOT NULL, secret {blob} NOT NULL, from_position {bigint} NOT NULL,"
        " created_at TEXT NOT NULL, idempotency_key TEXT, request_hash TEXT,"
        " disabled_at TEXT, disabled_reason TEXT, deleted_at TEXT)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {SUBSCRIPTIONS}_key"
        f" ON {SUBSCRIPTIONS} (token_id, idempotency_key)",
        # One row per (subscription, event): the body is the CloudEvent sealed under the
        # participant's data key. `state`: pending, delivered, dead, withheld, cancelled.
        f"CREATE TABLE IF NOT EXISTS {OUTBOX} ("
        f" subscription_id TEXT NOT NULL, position {bigint} NOT NULL,"
        " participant_id TEXT NOT NULL, version INTEGER NOT NULL, event_id TEXT NOT NULL,"
        f" event_type TEXT NOT NULL, category TEXT NOT NULL, body {blob} NOT NULL,"
        f" state TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at {bigint} NOT NULL,"
        f" lease_owner TEXT, lease_until {bigint}, last_status INTEGER, last_error TEXT,"
        " last_attempt_at TEXT, delivered_at TEXT, disclosed_at TEXT, created_at TEXT NOT NULL,"
        " PRIMARY KEY (subscription_id, position))",
        f"CREATE INDEX IF NOT EXISTS {OUTBOX}_due ON {OUTBOX} (state, next_attempt_at)",
        f"CREATE INDEX IF NOT EXISTS {OUTBOX}_queue"
        f" ON {OUTBOX} (subscription_id, participant_id, state, position)",
    )


class SubscriptionError(ValueError):
    """A subscription that cannot be made as asked; `field` names the input at fault."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


class KeyReused(Exception):
    """The Idempotency-Key was used before with another request."""


class TooMany(Exception):
    """The client has as many subscriptions as it may have."""


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    token_id: str
    url: str
    event_types: frozenset[str]
    from_position: int
    created_at: str
    disabled_at: str | None = None
    disabled_reason: str | None = None
    deleted_at: str | None = None

    @property
    def state(self) -> str:
        return "deleted" if self.deleted_at else "disabled" if self.disabled_at else "active"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.subscription_id, "url": self.url,
                "event_types": sorted(self.event_types), "state": self.state,
                "from_position": self.from_position, "created_at": self.created_at,
                "disabled_at": self.disabled_at, "disabled_reason": self.disabled_reason,
                "deleted_at": self.deleted_at}


@dataclass(frozen=True)
class Created:
    subscription: Subscription
    secret: str
    replayed: bool


class WebhookSubscriptions:
    def __init__(self, store: SqlStore, keys: KeyStore, log: LogReader) -> None:
        self._store = store
        self._keys = keys
        self._log = log
        if store.create_tables:
            with store.transaction() as cur:
                for statement in tables(store.postgres):
                    cur.execute(statement)

    def create(self, client: IntegrationClient, url: str, event_types: Sequence[str],
               idempotency_key: str | None = None) -> Created:
        url = valid_url(url)
        wanted = valid_event_types(client, event_types)
        request_hash = hashlib.sha256(json.dumps([url, sorted(wanted)]).encode()).hexdigest()
        if idempotency_key is not None:
            earlier = self._by_key(client.token_id, idempotency_key)
            if earlier is not None:
                subscription, stored_hash = earlier
                if stored_hash != request_hash:
                    raise KeyReused
                return Created(subscription, self.secret(subscription.subscription_id), True)
        if len(self.for_client(client.token_id)) >= MAX_PER_CLIENT:
            raise TooMany
        subscription_id = "whs_" + secrets.token_hex(12)
        secret = SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()
        sealed = self._seal(subscription_id, secret)
        subscription = Subscription(subscription_id, client.token_id, url, wanted,
                                    self._log.head(), _now())
        with self._store.transaction() as cur:
            cur.execute(self._store.sql(
                f"INSERT INTO {SUBSCRIPTIONS} (subscription_id, token_id, url, event_types,"
                " secret, from_position, created_at, idempotency_key, request_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (subscription_id, client.token_id, url, json.dumps(sorted(wanted)), sealed,
                 subscription.from_position, subscription.created_at, idempotency_key,
                 request_hash))
        return Created(subscription, secret, False)

    def of(self, subscription_id: str) -> Subscription | None:
        row = self._store.fetch_one(f"SELECT * FROM {SUBSCRIPTIONS} WHERE subscription_id = ?",
                                    (subscription_id,))
        return _subscription(row) if row is not None else None

    def for_client(self, token_id: str) -> list[Subscription]:
        """The client's subscriptions that are not deleted, oldest first."""
        rows = self._store.fetch_all(
            f"SELECT * FROM {SUBSCRIPTIONS} WHERE token_id = ? AND deleted_at IS NULL"
            " ORDER BY created_at, subscription_id", (token_id,))
        return [_subscription(r) for r in rows]

    def all(self) -> list[Subscription]:
        rows = self._store.fetch_all(
            f"SELECT * FROM {SUBSCRIPTIONS} ORDER BY created_at, subscription_id")
        return [_subscription(r) for r in rows]

    def live(self) -> list[Subscription]:
        """The subscriptions that take new events: neither deleted nor disabled."""
        rows = self._store.fetch_all(
            f"SELECT * FROM {SUBSCRIPTIONS} WHERE deleted_at IS NULL AND disabled_at IS NULL"
            " ORDER BY created_at, subscription_id")
        return [_subscription(r) for r in rows]

    def delete(self, token_id: str, subscription_id: str) -> bool:
        """Ends a client's subscription; what it had not delivered is cancelled with it."""
        now = _now()
        with self._store.transaction() as cur:
            cur.execute(self._store.sql(
                f"UPDATE {SUBSCRIPTIONS} SET deleted_at = ? WHERE subscription_id = ?"
                " AND token_id = ? AND deleted_at IS NULL RETURNING subscription_id"),
                (now, subscription_id, token_id))
            if not cur.fetchall():
                return False
            cur.execute(self._store.sql(
                f"UPDATE {OUTBOX} SET state = 'cancelled', lease_owner = NULL,"
                " last_error = 'subscription deleted' WHERE subscription_id = ?"
                " AND state = 'pending'"), (subscription_id,))
        return True

    def disable(self, subscription_id: str, reason: str) -> None:
        self._store.execute(
            f"UPDATE {SUBSCRIPTIONS} SET disabled_at = ?, disabled_reason = ?"
            " WHERE subscription_id = ? AND disabled_at IS NULL",
            (_now(), reason, subscription_id))

    def enable(self, subscription_id: str) -> None:
        self._store.execute(
            f"UPDATE {SUBSCRIPTIONS} SET disabled_at = NULL, disabled_reason = NULL"
            " WHERE subscription_id = ?", (subscription_id,))

    def secret(self, subscription_id: str) -> str:
        row = self._store.fetch_one(
            f"SELECT secret FROM {SUBSCRIPTIONS} WHERE subscription_id = ?", (subscription_id,))
        if row is None:
            raise LookupError(subscription_id)
        sealed = bytes(row["secret"])
        key = self._keys.system_key(SECRETS_STREAM)
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                    _secret_aad(subscription_id))
        return plain.decode("ascii")

    def _seal(self, subscription_id: str, secret: str) -> bytes:
        key = self._keys.system_key(SECRETS_STREAM)
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, secret.encode("ascii"),
                                           _secret_aad(subscription_id))

    def _by_key(self, token_id: str, key: str) -> tuple[Subscription, str] | None:
        row = self._store.fetch_one(
            f"SELECT * FROM {SUBSCRIPTIONS} WHERE token_id = ? AND idempotency_key = ?",
            (token_id, key))
        return (_subscription(row), str(row["request_hash"])) if row is not None else None


def valid_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials or fragment."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise SubscriptionError("url", f"a URL has 1 to {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SubscriptionError("url", "not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise SubscriptionError("url", "only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise SubscriptionError("url", "the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise SubscriptionError("url", "credentials in the URL would be stored in clear; "
                                       "receivers check the signature instead")
    if parts.fragment:
        raise SubscriptionError("url", "a URL with a #fragment cannot be posted to")
    if port == 0:
        raise SubscriptionError("url", "port 0 cannot be posted to")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise SubscriptionError("url", "the URL has spaces or control characters")
    return url


def valid_event_types(client: IntegrationClient, given: Sequence[str]) -> frozenset[str]:
    """Known CloudEvent types that this client can ever receive (empty: all of them)."""
    for event_type in given:
        if event_type not in EVENT_TYPES:
            raise SubscriptionError("event_types", f"unknown event type {event_type!r}; "
                                    "expected one of " + ", ".join(sorted(EVENT_TYPES)))
        category = EVENT_TYPES[event_type]
        if category is not None and category not in client.categories:
            raise SubscriptionError("event_types", (
                f"{event_type} is in the category {category!r}, which this integration "
                "client does not receive"))
    return frozenset(given)


def _subscription(row: Any) -> Subscription:
    return Subscription(row["subscription_id"], row["token_id"], row["url"],
                        frozenset(json.loads(row["event_types"])), int(row["from_position"]),
                        row["created_at"], row["disabled_at"], row["disabled_reason"],
                        row["deleted_at"])


def _secret_aad(subscription_id: str) -> bytes:
    return b"tcledger/webhook-secret/v1|" + subscription_id.encode("ascii")


def _now() -> str:
    return datetime.now(UTC).isoformat()
