"""The group sessions view: one row per session, with its attendance counted by status.

A session holds no personal data, and the view keeps in clear only what is filtered and
sorted (program, facility, unit, kind, time, length, whether a peer led it); its topic and
its staff facilitator are sealed under the session's own key like the other views' free
text. The counts come from the participants' own records (each attendance line is an
event on its participant's stream): each record's lines are kept sealed under the view's
own key, so that a correction moves a line from one status to another and an erasure
takes the record's lines away, as a rebuild (which cannot read the erased) would.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.attendance import STATUSES
from domain.groups import GroupHeld
from domain.participant import Participant
from infra.cipher import FieldSealer
from infra.keys import KeyStore
from infra.sql import SqlStore
from projections.contributions import Fact, SealedContributions
from projections.folding import Folded, RecordFolder
from projections.runner import LoggedEvent

SEALED = "group_session"
GROUPS_KEY_STREAM = uuid5(NAMESPACE_URL, "tcledger:group-attendance:v1")
SESSION_COLUMNS = ("group_id", "position", "program", "facility", "unit", "kind", "held_at",
                   "duration_minutes", "peer_led", "sealed")
COUNT_COLUMNS = ("group_id", "status", "n")
ADD_COUNTS = ("ON CONFLICT (group_id, status) DO UPDATE SET "
              "n = tcledger_group_counts.n + excluded.n")


def contribution(p: Participant) -> list[Fact]:
    """The sessions a record counts at, each with its line's status (corrections applied,
    voided lines left out by the fold)."""
    return sorted((entry["group_id"], entry["status"]) for entry in p.state.attendance.values())


class GroupSessionsView:
    name = "group_sessions"

    def __init__(self, keys: KeyStore, sealer: FieldSealer, records: RecordFolder) -> None:
        self.sealer = sealer
        self.contributions = SealedContributions(keys, GROUPS_KEY_STREAM,
                                                 "tcledger_group_contributions")
        self.records = records  # shared with the other views of the same records
        self._pending: Folded = {}

    def reset(self) -> None:
        self.records.reset()

    def rebuilding(self, on: bool) -> None:
        self.records.hold_all(on)

    def prepare(self) -> None:
        self.contributions.prepare()

    def create_tables(self, cur: Any, store: SqlStore) -> None:
        blob, bigint = ("BYTEA", "BIGINT") if store.postgres else ("BLOB", "INTEGER")
        cur.execute("CREATE TABLE IF NOT EXISTS tcledger_group_sessions ("
                    f" group_id TEXT PRIMARY KEY, position {bigint} NOT NULL,"
                    " program TEXT NOT NULL, facility TEXT NOT NULL, unit TEXT,"
                    " kind TEXT NOT NULL, held_at TEXT NOT NULL,"
                    " duration_minutes INTEGER NOT NULL, peer_led INTEGER NOT NULL,"
                    f" sealed {blob} NOT NULL)")
        # A page is a facility's sessions in time order, read from an index in that order.
        cur.execute("CREATE INDEX IF NOT EXISTS tcledger_group_sessions_facility"
                    " ON tcledger_group_sessions (facility, held_at, position)")
        cur.execute("CREATE TABLE IF NOT EXISTS tcledger_group_counts ("
                    " group_id TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,"
                    " PRIMARY KEY (group_id, status))")
        self.contributions.create_table(cur, store)

    def clear(self, cur: Any, store: SqlStore) -> None:
        cur.execute("DELETE FROM tcledger_group_sessions")
        cur.execute("DELETE FROM tcledger_group_counts")
        self.contributions.clear(cur)

    def apply(self, cur: Any, store: SqlStore, batch: Sequence[LoggedEvent]) -> None:
        """Sessions are written at once; the counts when the runner flushes, once for every
        record the transaction touched."""
        sessions = [self._session_row(e, e.event) for e in batch
                    if isinstance(e.event, GroupHeld)]
        store.upsert_many(cur, "tcledger_group_sessions", SESSION_COLUMNS, sessions,
                          "ON CONFLICT (group_id) DO NOTHING")
        self._pending.update(self.records.fold_batch(batch))

    def flush(self, cur: Any, store: SqlStore) -> None:
        pending = self._pending
        self.discard()
        change = self.contributions.replace(cur, store, {
            pid: contribution(p) if p is not None else [] for pid, p in pending.items()})
        deltas = [(group_id, status, n) for (group_id, status), n in sorted(change.items())]
        store.upsert_many(cur, "tcledger_group_counts", COUNT_COLUMNS, deltas, ADD_COUNTS)
        if any(n < 0 for *_, n in deltas):
            cur.execute("DELETE FROM tcledger_group_counts WHERE n = 0")

    def discard(self) -> None:
        """Forgets what was applied but not flushed (its transaction rolled back)."""
        self._pending = {}

    def _session_row(self, entry: LoggedEvent, e: GroupHeld) -> tuple[Any, ...]:
        sealed = self.sealer.seal(entry.stream_id, SEALED, json.dumps({
            "topic": e.topic, "facilitator_staff_id": e.facilitator_staff_id},
            sort_keys=True).encode())
        return (str(entry.stream_id), entry.position, e.program, e.facility, e.unit, e.kind,
                e.held_at.astimezone(UTC).isoformat(), e.duration_minutes,
                1 if e.peer_led else 0, sealed)


# --- queries ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionsQuery:
    facility: str | None = None
    unit: str | None = None
    kind: str | None = None
    first_day: date | None = None
    last_day: date | None = None
    after: tuple[str, int] | None = None  # (held_at, position) of the last row seen
    limit: int = 50


def find_sessions(store: SqlStore, sealer: FieldSealer,
                  query: SessionsQuery) -> list[dict[str, Any]]:
    """A page of sessions in the order they were held (one more than asked: the caller
    knows there is a next page), each with its attendance counts."""
    where: list[str] = []
    params: list[Any] = []
    if query.after is not None:
        where.append("(held_at > ? OR (held_at = ? AND position > ?))")
        params += [query.after[0], query.after[0], query.after[1]]
    for column in ("facility", "unit", "kind"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.first_day is not None:  # held_at is UTC ISO text: a day sorts before its times
        where.append("held_at >= ?")
        params.append(query.first_day.isoformat())
    if query.last_day is not None:
        where.append("held_at < ?")
        params.append((query.last_day + timedelta(days=1)).isoformat())
    rows = [dict(r) for r in store.fetch_all(
        "SELECT * FROM tcledger_group_sessions"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY held_at, position LIMIT ?", (*params, query.limit + 1))]
    counts: dict[str, Counter[str]] = {r["group_id"]: Counter() for r in rows}
    if rows:
        marks = ", ".join("?" for _ in rows)
        for c in store.fetch_all("SELECT group_id, status, n FROM tcledger_group_counts "
                                 f"WHERE group_id IN ({marks})", list(counts)):
            counts[c["group_id"]][c["status"]] += int(c["n"])
    return [session_view(r, counts[r["group_id"]], sealer) for r in rows]


def session_view(row: dict[str, Any], counts: Counter[str],
                 sealer: FieldSealer) -> dict[str, Any]:
    group_id = UUID(row["group_id"])
    sealed = json.loads(sealer.open(group_id, SEALED, bytes(row["sealed"])))
    attendance: dict[str, Any] = {status: counts[status] for status in STATUSES}
    attendance["attended"] = counts["present"] + counts["late"]
    attendance["total"] = sum(counts[s] for s in STATUSES)
    return {"group_id": row["group_id"], "program": row["program"],
            "facility": row["facility"], "unit": row["unit"], "kind": row["kind"],
            "held_at": row["held_at"], "duration_minutes": int(row["duration_minutes"]),
            "facilitator": {"peer": True} if row["peer_led"] else
            {"staff": sealed["facilitator_staff_id"]},
            "topic": sealed["topic"], "attendance": attendance,
            "_cursor": [row["held_at"], int(row["position"])]}
