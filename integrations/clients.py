"""Integration clients: an `integration` token bound to a recipient and its subscriptions.

The recipient is the name a participant's consent must give for this client to receive
anything about them; the categories are what the client asked to receive (consent
categories); `ingests` names what it may push in (a lab's results, the offender-management
system's movements), so that a parole office cannot write lab results;
`external_id_systems` names the identifier systems (DOC, SID, FBI, a deployment's own) whose
numbers its feed events carry beside tcledger's own participant id: by default the
corrections system's DOC number alone, since a recipient needs no more to find its person.
A client is a side row of its token, created in the same transaction, so that no token of
this kind exists without its recipient. Revoking the token ends it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.participant import CONSENT_CATEGORIES
from infra.sql import SqlStore
from infra.tokens import TokenStore

TABLE = ("CREATE TABLE IF NOT EXISTS tcledger_integrations ("
         " token_id TEXT PRIMARY KEY, recipient TEXT NOT NULL, categories TEXT NOT NULL,"
         " ingests TEXT NOT NULL, created_at TEXT NOT NULL,"
         " external_id_systems TEXT NOT NULL DEFAULT '[\"DOC\"]')")
INGESTS = ("lab-results", "movements")
MAX_RECIPIENT = 200
DEFAULT_ID_SYSTEMS = ("DOC",)
MAX_ID_SYSTEMS = 10
ID_SYSTEM = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}\Z")  # as admissions name them: DOC, SID
COLUMNS = ("SELECT i.token_id, t.name, i.recipient, i.categories, i.ingests,"
           " i.external_id_systems FROM tcledger_integrations i"
           " JOIN tcledger_tokens t ON t.token_id = i.token_id")


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
    external_id_systems: tuple[str, ...] = DEFAULT_ID_SYSTEMS

    def as_json(self) -> dict[str, object]:
        return {"token_id": self.token_id, "name": self.name, "recipient": self.recipient,
                "categories": sorted(self.categories), "ingests": sorted(self.ingests),
                "external_id_systems": list(self.external_id_systems)}


class IntegrationClients:
    def __init__(self, store: SqlStore, tokens: TokenStore) -> None:
        self._store = store
        self._tokens = tokens
        if store.create_tables:
            with store.transaction() as cur:
                cur.execute(TABLE)
                _add_id_systems_column(store, cur)

    def create(self, *, recipient: str, categories: list[str], ingests: Sequence[str] | None = None,
               name: str | None = None, external_id_systems: Sequence[str] | None = None
               ) -> tuple[IntegrationClient, str]:
        """Issues the client's token; the secret is returned once and stored only hashed."""
        recipient = " ".join(recipient.split())
        if not recipient or len(recipient) > MAX_RECIPIENT:
            raise ClientError("recipient", f"a recipient has 1 to {MAX_RECIPIENT} characters")
        ingests = ingests or []
        if not categories and not ingests:
            raise ClientError("categories", "subscribe to a category or ingest something")
        _known("categories", categories, CONSENT_CATEGORIES)
        _known("ingests", ingests, INGESTS)
        systems = _id_systems(DEFAULT_ID_SYSTEMS if external_id_systems is None
                              else external_id_systems)
        subscribed, pushes = sorted(set(categories)), sorted(set(ingests))
        with self._store.transaction() as cur:
            caller, secret = self._tokens.create(role="integration", name=name or recipient,
                                                 cur=cur)
            cur.execute(self._store.sql(
                "INSERT INTO tcledger_integrations (token_id, recipient, categories, ingests,"
                " created_at, external_id_systems) VALUES (?, ?, ?, ?, ?, ?)"),
                (caller.token_id, recipient, json.dumps(subscribed), json.dumps(pushes),
                 datetime.now(UTC).isoformat(), json.dumps(systems)))
        return IntegrationClient(caller.token_id, caller.name, recipient,
                                 frozenset(subscribed), frozenset(pushes), systems), secret

    def of(self, token_id: str) -> IntegrationClient | None:
        row = self._store.fetch_one(
            f"{COLUMNS} WHERE i.token_id = ? AND t.revoked_at IS NULL", (token_id,))
        return _client(row) if row is not None else None

    def list(self) -> list[IntegrationClient]:
        rows = self._store.fetch_all(
            f"{COLUMNS} WHERE t.revoked_at IS NULL ORDER BY i.created_at")
        return [_client(row) for row in rows]


def _client(row: Any) -> IntegrationClient:
    return IntegrationClient(row["token_id"], row["name"], row["recipient"],
                             frozenset(json.loads(row["categories"])),
                             frozenset(json.loads(row["ingests"])),
                             tuple(json.loads(row["external_id_systems"])))


def _id_systems(given: Sequence[str]) -> tuple[str, ...]:
    """Identifier systems as admissions name them (`DOC`, `SID`): kept in the order given,
    each once, compared without regard to case."""
    if len(given) > MAX_ID_SYSTEMS:
        raise ClientError("external_id_systems", f"at most {MAX_ID_SYSTEMS} systems")
    systems: dict[str, str] = {}
    for system in given:
        if not ID_SYSTEM.match(system):
            raise ClientError("external_id_systems", f"{system!r} is not an identifier "
                              "system's name (a letter, then letters, digits, - or _)")
        systems.setdefault(system.upper(), system.upper())
    return tuple(systems)


def _add_id_systems_column(store: SqlStore, cur: Any) -> None:
    """Clients made before the feed narrowed identifiers lack the column: add it, with
    the DOC number alone for them."""
    if store.postgres:
        cur.execute("SELECT column_name AS name FROM information_schema.columns WHERE"
                    " table_schema = current_schema() AND table_name = 'tcledger_integrations'")
    else:
        cur.execute("SELECT name FROM pragma_table_info('tcledger_integrations')")
    if "external_id_systems" not in {row["name"] for row in cur.fetchall()}:
        cur.execute("ALTER TABLE tcledger_integrations ADD COLUMN external_id_systems TEXT"
                    " NOT NULL DEFAULT '[\"DOC\"]'")


def _known(field: str, given: Sequence[str], known: tuple[str, ...]) -> None:
    unknown = [g for g in given if g not in known]
    if unknown:
        raise ClientError(field, f"unknown value {unknown[0]!r}; expected one of "
                                 f"{', '.join(known)}")
