"""The outbox's rows as deliveries: claiming the next ones under a lease, recording what
each attempt did, the retry schedule, the dead letters and manual redelivery.

Order per participant: a row is claimed only when no earlier row of the same participant
for the same subscription is still pending (claimed elsewhere, due, or backing off); with
it, the following pending rows of that participant are claimed too, to be sent one after
the other. A lease (`lease_owner`, `lease_until`) keeps other workers off them; on
PostgreSQL the claim also skips rows another transaction has locked (`FOR UPDATE SKIP
LOCKED`), on SQLite the one writer serialises claims. A worker that dies leaves its lease to
run out: the rows are claimed again and sent again with the same `webhook-id`
(at-least-once). Dead letters do not hold back later rows: a receiver that refused one
event for days still gets the next ones (redelivering a dead letter later sends it after
them; the receiver can order by `position`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from infra.sql import SqlStore
from integrations.webhooks import OUTBOX, SUBSCRIPTIONS

STATES = ("pending", "delivered", "dead", "withheld", "cancelled")
JITTER = 0.2  # each retry delay is drawn from ±20% of the schedule's
MAX_RETRY_AFTER = 86400.0
FOLLOWERS = 9  # rows claimed behind each participant's head row, sent after it


@dataclass(frozen=True)
class Delivery:
    subscription_id: str
    position: int
    participant_id: UUID
    version: int
    event_id: str
    event_type: str
    category: str
    body: bytes
    attempts: int
    disclosed: bool

    @property
    def key(self) -> tuple[str, int]:
        return self.subscription_id, self.position


@dataclass(frozen=True)
class Outcome:
    """What one attempt did: `status` is the receiver's HTTP status, None when no answer."""

    delivery: Delivery
    ok: bool
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


class RetrySchedule:
    """Seconds before each attempt; the first is the delay after the event is queued."""

    def __init__(self, delays: Sequence[float], rng: random.Random | None = None) -> None:
        self.delays = tuple(delays)
        self._rng = rng or random.Random()

    @property
    def first(self) -> float:
        return self.delays[0]

    def after_failure(self, attempts: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after `attempts` attempts failed; None: no more."""
        if attempts >= len(self.delays):
            return None
        delay = self.delays[attempts] * self._rng.uniform(1 - JITTER, 1 + JITTER)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


class Deliveries:
    def __init__(self, store: SqlStore, schedule: RetrySchedule) -> None:
        self._store = store
        self.schedule = schedule

    # --- the worker's side ---------------------------------------------------------------

    def due(self, now_ms: int) -> bool:
        """Whether anything may be claimed now: a cheap read before a claim writes."""
        row = self._store.fetch_one(
            f"SELECT 1 AS due FROM {OUTBOX} WHERE state = 'pending' AND next_attempt_at <= ?"
            " AND (lease_until IS NULL OR lease_until < ?) LIMIT 1", (now_ms, now_ms))
        return row is not None

    def claim(self, owner: str, now_ms: int, limit: int, lease_ms: int
              ) -> list[list[Delivery]]:
        """Leases up to `limit` participants' next rows (each with its followers) and
        returns them grouped per participant and subscription, in log order."""
        skip = " FOR UPDATE OF o SKIP LOCKED" if self._store.postgres else ""
        heads = (
            f"SELECT o.subscription_id, o.position FROM {OUTBOX} o"
            f" JOIN {SUBSCRIPTIONS} s ON s.subscription_id = o.subscription_id"
            " WHERE o.state = 'pending' AND o.next_attempt_at <= ?"
            " AND (o.lease_until IS NULL OR o.lease_until < ?)"
            " AND s.disabled_at IS NULL AND s.deleted_at IS NULL"
            f" AND NOT EXISTS (SELECT 1 FROM {OUTBOX} e WHERE e.subscription_id ="
            " o.subscription_id AND e.participant_id = o.participant_id"
            " AND e.state = 'pending' AND e.position < o.position)"
            f" ORDER BY o.position LIMIT ?{skip}")
        until = now_ms + lease_ms
        with self._store.transaction() as cur:
            cur.execute(self._store.sql(
                f"UPDATE {OUTBOX} SET lease_owner = ?, lease_until = ?"
                f" WHERE (subscription_id, position) IN ({heads})"
                " RETURNING subscription_id, participant_id, position"),
                (owner, until, now_ms, now_ms, limit))
            claimed = [(r["subscription_id"], r["participant_id"], int(r["position"]))
                       for r in cur.fetchall()]
            # The rows behind each head: no other worker takes them while the head is
            # pending, so they are leased with it and sent after it.
            for subscription_id, participant_id, position in claimed:
                cur.execute(self._store.sql(
                    f"UPDATE {OUTBOX} SET lease_owner = ?, lease_until = ? WHERE"
                    " (subscription_id, position) IN (SELECT subscription_id, position"
                    f" FROM {OUTBOX} WHERE subscription_id = ? AND participant_id = ?"
                    " AND state = 'pending' AND position > ?"
                    " AND (lease_until IS NULL OR lease_until < ?) ORDER BY position LIMIT ?)"),
                    (owner, until, subscription_id, participant_id, position, now_ms,
                     FOLLOWERS))
            cur.execute(self._store.sql(
                "SELECT subscription_id, position, participant_id, version, event_id,"
                " event_type, category, body, attempts, disclosed_at"
                f" FROM {OUTBOX} WHERE lease_owner = ? AND lease_until = ?"
                " AND state = 'pending' ORDER BY position"), (owner, until))
            rows = cur.fetchall()
        groups: dict[tuple[str, str], list[Delivery]] = {}
        for r in rows:
            groups.setdefault((r["subscription_id"], r["participant_id"]), []).append(Delivery(
                r["subscription_id"], int(r["position"]), UUID(r["participant_id"]),
                int(r["version"]), r["event_id"], r["event_type"], r["category"],
                bytes(r["body"]), int(r["attempts"]), r["disclosed_at"] is not None))
        return list(groups.values())

    def mark_disclosed(self, owner: str, deliveries: Sequence[Delivery]) -> None:
        self._many("UPDATE {t} SET disclosed_at = ? WHERE subscription_id = ?"
                   " AND position = ? AND lease_owner = ?",
                   [(_now(), d.subscription_id, d.position, owner) for d in deliveries])

    def record(self, owner: str, outcomes: Sequence[Outcome], now_ms: int) -> list[Outcome]:
        """Writes each attempt's result; returns the outcomes that made a row dead."""
        now = _now()
        done, retry, dead = [], [], []
        died: list[Outcome] = []
        for o in outcomes:
            d = o.delivery
            attempts = d.attempts + 1
            if o.ok:
                done.append((attempts, o.status, now, now, d.subscription_id, d.position,
                             owner))
                continue
            delay = self.schedule.after_failure(attempts, o.retry_after)
            if delay is None or o.status == 410:
                died.append(o)
                dead.append((attempts, o.status, o.error, now, d.subscription_id,
                             d.position, owner))
            else:
                retry.append((attempts, now_ms + int(delay * 1000), o.status, o.error, now,
                              d.subscription_id, d.position, owner))
        with self._store.transaction() as cur:
            self._on(cur, "UPDATE {t} SET state = 'delivered', attempts = ?, last_status = ?,"
                          " last_error = NULL, last_attempt_at = ?, delivered_at = ?,"
                          " lease_owner = NULL, lease_until = NULL WHERE subscription_id = ?"
                          " AND position = ? AND lease_owner = ?", done)
            self._on(cur, "UPDATE {t} SET attempts = ?, next_attempt_at = ?, last_status = ?,"
                          " last_error = ?, last_attempt_at = ?, lease_owner = NULL,"
                          " lease_until = NULL WHERE subscription_id = ? AND position = ?"
                          " AND lease_owner = ?", retry)
            self._on(cur, "UPDATE {t} SET state = 'dead', attempts = ?, last_status = ?,"
                          " last_error = ?, last_attempt_at = ?, lease_owner = NULL,"
                          " lease_until = NULL WHERE subscription_id = ? AND position = ?"
                          " AND lease_owner = ?", dead)
        return died

    def withhold(self, owner: str, withheld: Sequence[tuple[Delivery, str]]) -> None:
        """Rows that may no longer leave (consent gone, record erased, client revoked)."""
        self._many("UPDATE {t} SET state = 'withheld', last_error = ?, lease_owner = NULL,"
                   " lease_until = NULL WHERE subscription_id = ? AND position = ?"
                   " AND lease_owner = ?",
                   [(why, d.subscription_id, d.position, owner) for d, why in withheld])

    def release(self, owner: str, deliveries: Sequence[Delivery]) -> None:
        """Gives back rows that were claimed but not attempted."""
        self._many("UPDATE {t} SET lease_owner = NULL, lease_until = NULL"
                   " WHERE subscription_id = ? AND position = ? AND lease_owner = ?",
                   [(d.subscription_id, d.position, owner) for d in deliveries])

    # --- operators and clients ----------------------------------------------------------

    def list(self, subscription_id: str | None = None, state: str | None = None,
             after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Rows in log order (never their bodies), for the CLI and the HTTP view."""
        where, params = ["position > ?"], list[Any]([after])
        if subscription_id is not None:
            where.append("subscription_id = ?")
            params.append(subscription_id)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        rows = self._store.fetch_all(
            "SELECT subscription_id, position, participant_id, version, event_id, event_type,"
            " category, state, attempts, next_attempt_at, last_status, last_error,"
            f" last_attempt_at, delivered_at, created_at FROM {OUTBOX}"
            f" WHERE {' AND '.join(where)} ORDER BY position, subscription_id LIMIT ?",
            [*params, limit])
        return [_listed(r) for r in rows]

    def redeliver(self, *, subscription_id: str | None = None,
                  delivery: tuple[str, int] | None = None) -> int:
        """Puts dead letters back in the queue (all of them, a subscription's or one) to be
        tried again now with a fresh schedule and disclosed again when sent."""
        where, params = ["state = 'dead'"], list[Any]()
        if subscription_id is not None:
            where.append("subscription_id = ?")
            params.append(subscription_id)
        if delivery is not None:
            where.append("subscription_id = ? AND position = ?")
            params.extend(delivery)
        with self._store.transaction() as cur:
            cur.execute(self._store.sql(
                f"UPDATE {OUTBOX} SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                " lease_owner = NULL, lease_until = NULL, disclosed_at = NULL"
                f" WHERE {' AND '.join(where)} RETURNING position"),
                [int(datetime.now(UTC).timestamp() * 1000), *params])
            return len(cur.fetchall())

    def _many(self, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            with self._store.transaction() as cur:
                self._on(cur, statement, rows)

    def _on(self, cur: Any, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            cur.executemany(self._store.sql(statement.format(t=OUTBOX)), rows)


def _listed(row: Any) -> dict[str, Any]:
    found = {k: row[k] for k in ("participant_id", "version", "event_id", "event_type",
                                 "category", "state", "attempts", "last_status", "last_error",
                                 "last_attempt_at", "delivered_at", "created_at")}
    found["id"] = f"{row['subscription_id']}/{row['position']}"
    found["subscription_id"] = row["subscription_id"]
    found["position"] = int(row["position"])
    found["next_attempt_at"] = datetime.fromtimestamp(
        int(row["next_attempt_at"]) / 1000, UTC).isoformat() if row["state"] == "pending" \
        else None
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat()
