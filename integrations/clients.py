"""Integration clients: an `integration` token bound to a recipient and its subscriptions.

The recipient is the name a participant's consent must give for this client to receive
anything about them; the categories are what the client asked to receive (consent
categories); `ingests` names what it may push in (a lab's results, the offender-management
system's movements), so that a parole office cannot write lab results. A client is a side
row of its token, created in the same transaction, so that no token of this kind exists
without its recipient. Revoking the token ends it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.participant import CONSENT_CATEGORIES
from infra.sql import SqlStore
from infra.tokens import TokenStore

TABLE = ("CREATE TABLE IF NOT EXISTS tcledger_integrations ("
         " token_id TEXT PRIMARY KEY, recipient TEXT NOT NULL, categories TEXT NOT NULL,"
         " ingests TEXT NOT NULL, created_at TEXT NOT NULL)")
INGESTS = ("lab-results", "movements")
MAX_RECIPIENT = 200


class ClientError(ValueError):
    """A client that cannot be created as asked; `field` names the input at fault."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


@dataclass(frozen=True)
class IntegrationClient:
    token_id: str
    name: str
    recipient: str
    categories: frozenset[str]
    ingests: frozenset[str] = frozenset()

    def as_json(self) -> dict[str, object]:
        return {"token_id": self.token_id, "name": self.name, "recipient": self.recipient,
                "categories": sorted(self.categories), "ingests": sorted(self.ingests)}


class IntegrationClients:
    def __init__(self, store: SqlStore, tokens: TokenStore) -> None:
        self._store = store
        self._tokens = tokens
        if store.create_tables:
            store.execute(TABLE)

    def create(self, *, recipient: str, categories: list[str], ingests: Sequence[str] | None = None,
               name: str | None = None) -> tuple[IntegrationClient, str]:
        """Issues the client's token; the secret is returned once and stored only hashed."""
        recipient = " ".join(recipient.split())
        if not recipient or len(recipient) > MAX_RECIPIENT:
            raise ClientError("recipient", f"a recipient has 1 to {MAX_RECIPIENT} characters")
        ingests = ingests or []
        if not categories and not ingests:
            raise ClientError("categories", "subscribe to a category or ingest something")
        _known("categories", categories, CONSENT_CATEGORIES)
        _known("ingests", ingests, INGESTS)
        subscribed, pushes = sorted(set(categories)), sorted(set(ingests))
        with self._store.transaction() as cur:
            caller, secret = self._tokens.create(role="integration", name=name or recipient,
                                                 cur=cur)
            cur.execute(self._store.sql(
                "INSERT INTO tcledger_integrations (token_id, recipient, categories, ingests,"
                " created_at) VALUES (?, ?, ?, ?, ?)"),
                (caller.token_id, recipient, json.dumps(subscribed), json.dumps(pushes),
                 datetime.now(UTC).isoformat()))
        return IntegrationClient(caller.token_id, caller.name, recipient,
                                 frozenset(subscribed), frozenset(pushes)), secret

    def of(self, token_id: str) -> IntegrationClient | None:
        row = self._store.fetch_one(
            "SELECT i.token_id, t.name, i.recipient, i.categories, i.ingests"
            " FROM tcledger_integrations i JOIN tcledger_tokens t ON t.token_id = i.token_id"
            " WHERE i.token_id = ? AND t.revoked_at IS NULL", (token_id,))
        return _client(row) if row is not None else None

    def list(self) -> list[IntegrationClient]:
        rows = self._store.fetch_all(
            "SELECT i.token_id, t.name, i.recipient, i.categories, i.ingests"
            " FROM tcledger_integrations i JOIN tcledger_tokens t ON t.token_id = i.token_id"
            " WHERE t.revoked_at IS NULL ORDER BY i.created_at")
        return [_client(row) for row in rows]


def _client(row: Any) -> IntegrationClient:
    return IntegrationClient(row["token_id"], row["name"], row["recipient"],
                             frozenset(json.loads(row["categories"])),
                             frozenset(json.loads(row["ingests"])))


def _known(field: str, given: Sequence[str], known: tuple[str, ...]) -> None:
    unknown = [g for g in given if g not in known]
    if unknown:
        raise ClientError(field, f"unknown value {unknown[0]!r}; expected one of "
                                 f"{', '.join(known)}")
