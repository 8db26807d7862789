"""The projection runner: follows the global log and keeps each read model current.

Each projection reads the log after its own tracking position and writes a batch of view
changes and its new position in one transaction, so a crash between batches loses and
duplicates nothing. Two runners on one database cannot both apply a batch: the tracking
row is read for update (PostgreSQL) or the write transaction is serialised (SQLite), and
a runner whose position moved under it rolls back. Polling the log works the same on
SQLite and PostgreSQL (see infra.log_reader).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import structlog
from eventsourcing.persistence import Mapper, Notification, OperationalError, StoredEvent

from domain.errors import ParticipantErased
from infra.background import Repeating
from infra.log_reader import LogReader
from infra.sql import SqlStore

log = structlog.get_logger("tcledger.projections")

TRACKING_TABLE = (
    "CREATE TABLE IF NOT EXISTS tcledger_projection_positions ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at TEXT NOT NULL)")


@dataclass(frozen=True)
class LoggedEvent:
    """A log entry as a projection sees it: decoded, or `erased` when its key is gone."""

    position: int
    stream_id: UUID
    version: int
    topic: str
    event: Any | None

    @property
    def erased(self) -> bool:
        return self.event is None


# Log entries no view needs, left undecoded: the access log (audit.access) has its own index.
UNREAD_TOPIC_PREFIXES = ("audit.access:",)
UNREAD = object()  # stands in for an entry that was not decoded (not None: None is "erased")


class Projection(Protocol):
    """A read model. Optional hooks the runner calls when a projection has them:
    `flush(cur, store)` before a batch's position is written (a view that writes once per
    record rather than per event writes then), `discard()` when a batch rolled back,
    `reset()` when the view was cleared, `rebuilding(on)` around a rebuild. A projection
    with `rebuildable = False` is left out of a rebuild of all views."""

    name: str

    def create_tables(self, cur: Any, store: SqlStore) -> None: ...

    def clear(self, cur: Any, store: SqlStore) -> None: ...

    def apply(self, cur: Any, store: SqlStore, batch: Sequence[LoggedEvent]) -> None: ...


PAGE_SIZE = 5000  # log entries read and decoded at a time within one batch


class PositionMoved(Exception):
    """Another runner applied this batch first; ours is rolled back."""


class ProjectionRunner:
    def __init__(self, store: SqlStore, log_reader: LogReader, mapper: Mapper[UUID],
                 projections: Sequence[Projection], batch_size: int = 500,
                 rebuild_batch_size: int = 250_000,
                 preload_keys: Callable[[], object] | None = None) -> None:
        self.store = store
        self.log = log_reader
        self.mapper = mapper
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self.rebuild_batch_size = max(rebuild_batch_size, batch_size)
        self.preload_keys = preload_keys
        self._rebuilding = False
        self._stepping = threading.Lock()
        self._background = Repeating("tcledger-projections", self.catch_up, log,
                                     "projection_failed")
        with store.transaction() as cur:
            if store.create_tables:
                cur.execute(TRACKING_TABLE)
            for projection in projections:
                if store.create_tables:
                    projection.create_tables(cur, store)
                cur.execute(store.sql("SELECT name FROM tcledger_projection_positions "
                                      "WHERE name = ?"), (projection.name,))
                if cur.fetchone() is None:
                    cur.execute(store.sql("INSERT INTO tcledger_projection_positions "
                                          "(name, position, updated_at) VALUES (?, 0, ?)"),
                                (projection.name, _now()))

    # --- positions ---------------------------------------------------------------------

    def position(self, name: str) -> int:
        row = self.store.fetch_one(
            "SELECT position FROM tcledger_projection_positions WHERE name = ?", (name,))
        return int(row["position"]) if row else 0

    def status(self) -> list[dict[str, Any]]:
        head = self.log.head()
        rows = self.store.fetch_all(
            "SELECT name, position, updated_at FROM tcledger_projection_positions ORDER BY name")
        return [{"name": r["name"], "position": int(r["position"]),
                 "lag": max(head - int(r["position"]), 0), "updated_at": r["updated_at"]}
                for r in rows if r["name"] in self.projections]

    def wait_for(self, position: int, timeout: float, interval: float = 0.02) -> bool:
        """Polls until every projection includes `position` (read-your-writes)."""
        deadline = time.monotonic() + timeout
        while min((self.position(n) for n in self.projections), default=position) < position:
            if time.monotonic() >= deadline:
                return False
            self.catch_up()
            time.sleep(interval)
        return True

    # --- running -----------------------------------------------------------------------

    def step(self, *group: Projection, limit: int | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> int:
        """Applies the next batch of the log (up to `limit` entries) to projections that
        stand at the same position: decoded once, written in one transaction with the new
        position; returns how many log entries. A large batch is read and applied a page
        at a time; views that write per record (not per event) do so once, at the end."""
        # Views hold what a batch applied until it is flushed: one batch at a time per
        # runner, whichever thread asks (the background loop, or a read waiting for it).
        with self._stepping:
            return self._step(group, limit or self.batch_size, progress)

    def _step(self, group: Sequence[Projection], limit: int,
              progress: Callable[[str, int, int], None] | None) -> int:
        page = min(limit, PAGE_SIZE)
        after = self.position(group[0].name)
        first = self.log.batch(after, page)
        if not first:
            return 0
        lock = " FOR UPDATE" if self.store.postgres else ""
        done, last = 0, after
        try:
            with self.store.transaction() as cur:
                if self.store.postgres:
                    # A rebuild's batch computes for many seconds between statements (more
                    # on a busy machine) inside one transaction: more than the connection's
                    # 5 s idle-in-transaction limit, which is right for commands.
                    cur.execute("SET LOCAL idle_in_transaction_session_timeout = '10min'")
                for projection in group:
                    cur.execute(self.store.sql(
                        "SELECT position FROM tcledger_projection_positions WHERE name = ?"
                        + lock), (projection.name,))
                    row = cur.fetchone()
                    if row is None or int(row["position"]) != after:
                        raise PositionMoved(projection.name)
                for notes in self._pages(first, limit, page):
                    batch = [self._decode(n) for n in notes]
                    for projection in group:
                        projection.apply(cur, self.store, batch)
                    done, last = done + len(notes), notes[-1].id
                    if self._rebuilding:
                        # The records a rebuild holds only grow: keep the collector from
                        # tracing them again at every collection (unfrozen when it ends).
                        gc.freeze()
                    if progress is not None:
                        progress(", ".join(p.name for p in group), last, self.log.head())
                for projection in group:
                    _hook(projection, "flush", cur, self.store)
                    cur.execute(self.store.sql(
                        "UPDATE tcledger_projection_positions SET position = ?, "
                        "updated_at = ? WHERE name = ?"), (last, _now(), projection.name))
        except PositionMoved:
            self._discard(group)
            return 0
        except OperationalError as exc:
            self._discard(group)
            if "locked" not in str(exc):
                raise
            return 0  # SQLite: another runner is writing; the next step sees its position
        except BaseException:
            self._discard(group)
            raise
        return done

    def _pages(self, first: Sequence[Notification], limit: int,
               page: int) -> Iterator[Sequence[Notification]]:
        """A batch's pages of the log, up to `limit` entries: the next page is read (by
        the database, in another thread) while the current one is decoded and applied."""
        notes, done = first, 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcledger-log") as reader:
            while notes:
                done += len(notes)
                ahead = reader.submit(self.log.batch, notes[-1].id, min(page, limit - done)) \
                    if len(notes) == page and done < limit else None
                yield notes
                notes = ahead.result() if ahead is not None else []

    @staticmethod
    def _discard(group: Sequence[Projection]) -> None:
        for projection in group:
            _hook(projection, "discard")

    def chosen(self, only: str | Collection[str] | None) -> list[Projection]:
        names = {only} if isinstance(only, str) else set(only) if only is not None else None
        return [p for n, p in self.projections.items() if names is None or n in names]

    def catch_up(self, only: str | Collection[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 limit: int | None = None) -> int:
        """Runs every projection (or the named ones) to the end of the log as it is now.
        Projections at the same position move together, so a batch is read and decoded once."""
        chosen = self.chosen(only)
        head = self.log.head()
        total = 0
        while True:
            positions = {p.name: self.position(p.name) for p in chosen}
            behind = [p for p in chosen if positions[p.name] < head]
            if not behind:
                return total
            lowest = min(positions[p.name] for p in behind)
            group = [p for p in behind if positions[p.name] == lowest]
            done = self.step(*group, limit=limit, progress=progress)
            total += done * len(group)
            if done == 0:
                return total

    def rebuild(self, only: str | Collection[str] | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> int:
        """Throws the views away and builds them again from the first event.

        A rebuild meets every record of the log, interleaved: it reads in large batches (a
        summary row is then written once per record per batch, not once per event), keeps
        every folded record in memory and unwraps all data keys at once. Each batch still
        commits with its position, so a rebuild cut short resumes where it stopped.
        """
        chosen = self.chosen(only)
        if only is None:
            # A projection that says it is not rebuildable (the webhook outbox: a rebuild
            # would send history again) is rebuilt only when named.
            chosen = [p for p in chosen if getattr(p, "rebuildable", True)]
            only = [p.name for p in chosen]
        with self.store.transaction() as cur:
            for projection in chosen:
                projection.clear(cur, self.store)
                cur.execute(self.store.sql("UPDATE tcledger_projection_positions SET "
                                           "position = 0, updated_at = ? WHERE name = ?"),
                            (_now(), projection.name))
        for projection in chosen:
            _hook(projection, "reset")
        if self.preload_keys is not None:
            self.preload_keys()
        for projection in chosen:
            _hook(projection, "rebuilding", True)
        self._rebuilding = True
        try:
            return self.catch_up(only, progress, limit=self.rebuild_batch_size)
        finally:
            self._rebuilding = False
            gc.unfreeze()
            for projection in chosen:
                _hook(projection, "rebuilding", False)

    def start(self, interval: float = 0.05) -> None:
        """Keeps the views current from a background thread of this process."""
        self._background.start(interval)

    def stop(self) -> None:
        self._background.stop()

    def _decode(self, note: Notification) -> LoggedEvent:
        stream_id = note.originator_id if isinstance(note.originator_id, UUID) \
            else UUID(str(note.originator_id))
        if note.topic.startswith(UNREAD_TOPIC_PREFIXES):
            # No view reads the access log's entries (one per request): not decrypted.
            return LoggedEvent(note.id, stream_id, note.originator_version, note.topic, UNREAD)
        try:
            event = self.mapper.to_domain_event(StoredEvent(
                note.originator_id, note.originator_version, note.topic, note.state))
        except ParticipantErased:
            event = None
        return LoggedEvent(note.id, stream_id, note.originator_version, note.topic, event)


def _hook(projection: Projection, name: str, *args: Any) -> None:
    """Calls an optional hook of a projection (reset, rebuilding) when it has one."""
    hook = getattr(projection, name, None)
    if callable(hook):
        hook(*args)


def _now() -> str:
    return datetime.now(UTC).isoformat()
