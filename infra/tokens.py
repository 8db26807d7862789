"""Bearer tokens: random secrets shown once, stored only as their SHA-256 hash.

A token names a person or an integration, its role, and (for counselors and supervisors)
the facility whose records it may see. Tokens carry 256 bits of randomness, so a plain
SHA-256 is the right hash here: a slow password hash would only slow every request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infra.sql import SqlStore

ROLES = ("counselor", "supervisor", "auditor", "integration", "admin")
FACILITY_ROLES = ("counselor", "supervisor")
TOKEN_PREFIX = "tcl_"


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class Caller:
    token_id: str
    name: str
    role: str
    facility: str | None

    @property
    def actor_id(self) -> str:
        return self.token_id


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenStore:
    """Tokens in the database, with each token seen recently kept in memory for a few seconds.

    A revocation takes effect at once in the process that revokes, and within
    `cache_seconds` in every other process.
    """

    def __init__(self, store: SqlStore, cache_seconds: float = 5.0) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._seen: dict[str, tuple[Caller, float]] = {}

    def create(self, *, role: str, name: str, facility: str | None = None,
               cur: Any = None) -> tuple[Caller, str]:
        """Issues a token; with `cur`, inside the caller's transaction (with its side rows)."""
        if role not in ROLES:
            raise TokenError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        if role in FACILITY_ROLES and not facility:
            raise TokenError(f"a {role} token needs a facility")
        if not name.strip():
            raise TokenError("a token needs a name")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        caller = Caller(secrets.token_hex(8), name.strip(), role, facility or None)
        statement = ("INSERT INTO tcledger_tokens (token_id, token_hash, name, role, facility,"
                     " created_at) VALUES (?, ?, ?, ?, ?, ?)")
        params = (caller.token_id, hash_token(secret), caller.name, role, caller.facility,
                  datetime.now(UTC).isoformat())
        if cur is None:
            self._store.execute(statement, params)
        else:
            cur.execute(self._store.sql(statement), params)
        return caller, secret

    def recently_seen(self, secret: str) -> Caller | None:
        """The caller of a token authenticated within the last few seconds, without I/O."""
        seen = self._seen.get(hash_token(secret))
        if seen is None or time.monotonic() - seen[1] > self._cache_seconds:
            return None
        return seen[0]

    def authenticate(self, secret: str) -> Caller | None:
        if not secret.startswith(TOKEN_PREFIX):
            return None
        digest = hash_token(secret)
        row = self._store.fetch_one(
            "SELECT token_id, name, role, facility FROM tcledger_tokens"
            " WHERE token_hash = ? AND revoked_at IS NULL", (digest,))
        if row is None:
            self._seen.pop(digest, None)
            return None
        caller = Caller(row["token_id"], row["name"], row["role"], row["facility"])
        if len(self._seen) > 10000:
            self._seen.clear()
        self._seen[digest] = (caller, time.monotonic())
        return caller

    def revoke(self, token_id: str) -> bool:
        before = self._store.fetch_one(
            "SELECT token_id FROM tcledger_tokens WHERE token_id = ? AND revoked_at IS NULL",
            (token_id,))
        if before is None:
            return False
        self._store.execute("UPDATE tcledger_tokens SET revoked_at = ? WHERE token_id = ?",
                            (datetime.now(UTC).isoformat(), token_id))
        self._seen = {k: v for k, v in self._seen.items() if v[0].token_id != token_id}
        return True

    def list(self) -> list[dict[str, str | None]]:
        rows = self._store.fetch_all(
            "SELECT token_id, name, role, facility, created_at, revoked_at FROM tcledger_tokens"
            " ORDER BY created_at")
        return [dict(row) for row in rows]

    def has_active_admin(self) -> bool:
        return self._store.fetch_one(
            "SELECT token_id FROM tcledger_tokens WHERE role = 'admin' AND revoked_at IS NULL"
        ) is not None
