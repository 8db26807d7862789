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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import structlog
from eventsourcing.persistence import Mapper, Notification, OperationalError

from domain.errors import ParticipantErased
from domain.retention import RecordErased
from infra.background import Repeating
from infra.cipher import SYSTEM_KEYED_TOPIC_PREFIX
from infra.log_reader import LogReader
from infra.sql import SqlStore
from projections.partitions import PARTS_TABLE, Part, PartitionedLog, claimed, part_rows

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
UNREAD_TOPIC_PREFIXES = (SYSTEM_KEYED_TOPIC_PREFIX,)
UNREAD = object()  # stands in for an entry that was not decoded (not None: None is "erased")


class Projection(Protocol):
    """A read model. Optional hooks the runner calls when a projection has them:
    `flush(cur, store)` before a batch's position is written (a view that writes once per
    record rather than per event writes then), `discard()` when a batch rolled back,
    `reset()` when the view was cleared, `rebuilding(on)` around a rebuild. A view whose
    rows each belong to one participant says so with `partitioned = True`: its rebuild may
    then be split between processes (projections.partitions). A projection with
    `rebuildable = False` is left out of a rebuild of all views."""

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
        self._parts = PartitionedLog(store, log_reader.recorder) if store.postgres else None
        with store.transaction() as cur:
            if store.create_tables:
                cur.execute(TRACKING_TABLE)
                cur.execute(PARTS_TABLE)
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

    def _position(self, name: str, part: Part | None) -> int:
        if part is None:
            return self.position(name)
        row = self.store.fetch_one("SELECT position FROM tcledger_projection_parts "
                                   "WHERE name = ? AND part = ?", (name, part.index))
        return int(row["position"]) if row else part.until

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
             progress: Callable[[str, int, int], None] | None = None,
             part: Part | None = None) -> int:
        """Applies the next batch of the log (up to `limit` entries) to projections that
        stand at the same position: decoded once, written in one transaction with the new
        position; returns how many log entries. A large batch is read and applied a page
        at a time; views that write per record (not per event) do so once, at the end.
        With `part`, the batch is of that partition's entries and moves its position."""
        # Views hold what a batch applied until it is flushed: one batch at a time per
        # runner, whichever thread asks (the background loop, or a read waiting for it).
        with self._stepping:
            return self._step(group, limit or self.batch_size, progress, part)

    def _step(self, group: Sequence[Projection], limit: int,
              progress: Callable[[str, int, int], None] | None, part: Part | None) -> int:
        page = min(limit, PAGE_SIZE)
        after = self._position(group[0].name, part)
        first = self._read(after, page, part)
        if not first:
            return 0
        lock = " FOR UPDATE" if self.store.postgres else ""
        tracking = "tcledger_projection_positions WHERE name = ?" if part is None else \
            "tcledger_projection_parts WHERE name = ? AND part = ?"
        where = () if part is None else (part.index,)
        head = self.log.head() if part is None else part.until
        done, last = 0, after
        try:
            with self.store.transaction() as cur:
                if self.store.postgres:
                    # A rebuild's batch computes for many seconds between statements (more
                    # on a busy machine) inside one transaction: more than the connection's
                    # 5 s idle-in-transaction limit, which is right for commands.
                    cur.execute("SET LOCAL idle_in_transaction_session_timeout = '10min'")
                for projection in group:
                    cur.execute(self.store.sql(f"SELECT position FROM {tracking}{lock}"),
                                (projection.name, *where))
                    row = cur.fetchone()
                    if row is None or int(row["position"]) != after:
                        raise PositionMoved(projection.name)
                for notes in self._pages(first, limit, page, part):
                    batch = [self._decode(n) for n in notes]
                    if part is not None:
                        batch = [e for e in batch if not isinstance(e.event, RecordErased)
                                 or part.holds(e.event.participant_id)]
                    for projection in group:
                        projection.apply(cur, self.store, batch)
                    done, last = done + len(notes), notes[-1].id
                    if self._rebuilding:
                        # The records a rebuild holds only grow: keep the collector from
                        # tracing them again at every collection (unfrozen when it ends).
                        gc.freeze()
                    if progress is not None:
                        progress(", ".join(p.name for p in group), last, head)
                for projection in group:
                    _hook(projection, "flush", cur, self.store)
                    if part is None:
                        cur.execute(self.store.sql(
                            "UPDATE tcledger_projection_positions SET position = ?, "
                            "updated_at = ? WHERE name = ?"), (last, _now(), projection.name))
                    else:
                        cur.execute(self.store.sql(
                            "UPDATE tcledger_projection_parts SET position = ? "
                            "WHERE name = ? AND part = ?"), (last, projection.name, part.index))
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

    def _read(self, after: int, limit: int, part: Part | None) -> Sequence[Notification]:
        if part is None:
            return self.log.batch(after, limit)
        assert self._parts is not None  # partitions are made on PostgreSQL only
        return self._parts.batch(after, limit, part)

    def _pages(self, first: Sequence[Notification], limit: int, page: int,
               part: Part | None = None) -> Iterator[Sequence[Notification]]:
        """A batch's pages of the log, up to `limit` entries: the next page is read (by
        the database, in another thread) while the current one is decoded and applied."""
        notes, done = first, 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcledger-log") as reader:
            while notes:
                done += len(notes)
                ahead = reader.submit(self._read, notes[-1].id, min(page, limit - done), part) \
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
        Projections at the same position move together, so a batch is read and decoded once.
        A partitioned rebuild left unfinished (its process died) is finished first; one that
        another process is still working on is left to it."""
        chosen = self.chosen(only)
        total, unfinished = self._finish_parts(chosen, progress)
        chosen = [p for p in chosen if p.name not in unfinished]
        head = self.log.head()
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
                progress: Callable[[str, int, int], None] | None = None, parts: int = 1,
                helpers: Callable[[list[str], int], Callable[[], object]] | None = None) -> int:
        """Throws the views away and builds them again from the first event.

        A rebuild meets every record of the log, interleaved: it reads in large batches (a
        summary row is then written once per record per batch, not once per event), keeps
        every folded record in memory and unwraps all data keys at once. Each batch still
        commits with its position, so a rebuild cut short resumes where it stopped.

        With `parts` > 1 (PostgreSQL), the views that allow it are rebuilt in that many
        partitions of the participants: `helpers(names, index)` starts partition `index`
        elsewhere (another process) and returns what waits for it; this runner takes
        partition 0, then whatever a helper left unfinished, then the other views.
        """
        chosen = self.chosen(only)
        if only is None:
            # A projection that says it is not rebuildable (the webhook outbox: a rebuild
            # would send history again) is rebuilt only when named.
            chosen = [p for p in chosen if getattr(p, "rebuildable", True)]
            only = [p.name for p in chosen]
        split = self.partition(only, parts)
        waiting = [helpers(split, index) for index in range(1, parts)] \
            if split and helpers is not None else []
        with self._rebuilding_views(chosen):
            total = self.rebuild_part(split, 0, progress) if split else 0
            for wait in waiting:
                wait()
            return total + self.catch_up(only, progress, limit=self.rebuild_batch_size)

    # --- partitioned rebuilds (projections.partitions) ----------------------------------

    def partition(self, only: str | Collection[str] | None, parts: int) -> list[str]:
        """Clears the chosen views for a rebuild, split in `parts` partitions where the
        store and the view allow it; returns the names of the split views."""
        chosen = self.chosen(only)
        split = [p.name for p in chosen if getattr(p, "partitioned", False)] \
            if self.store.postgres and parts > 1 else []
        head = self.log.head()
        with self.store.transaction() as cur:
            for projection in chosen:
                projection.clear(cur, self.store)
                cur.execute(self.store.sql("UPDATE tcledger_projection_positions SET "
                                           "position = 0, updated_at = ? WHERE name = ?"),
                            (_now(), projection.name))
                cur.execute(self.store.sql("DELETE FROM tcledger_projection_parts "
                                           "WHERE name = ?"), (projection.name,))
            if split:
                cur.executemany(self.store.sql(
                    "INSERT INTO tcledger_projection_parts (name, part, parts, position, until)"
                    " VALUES (?, ?, ?, 0, ?)"),
                    [(name, index, parts, head) for name in split for index in range(parts)])
        for projection in chosen:
            _hook(projection, "reset")
        return split

    def rebuild_part(self, only: Collection[str], index: int,
                     progress: Callable[[str, int, int], None] | None = None) -> int:
        """Runs partition `index` of the named views to its end, for those no other live
        process is working on; returns how many log entries it applied (per view)."""
        total = 0
        with claimed(self.store, [p.name for p in self.chosen(only)], index) as mine:
            views = self.chosen(mine)
            with self._rebuilding_views(views):
                while True:
                    rows = {r.name: r for r in part_rows(self.store, [p.name for p in views])
                            if r.part.index == index}
                    behind = [p for p in views if p.name in rows and not rows[p.name].done]
                    if not behind:
                        return total
                    lowest = min(rows[p.name].position for p in behind)
                    group = [p for p in behind if rows[p.name].position == lowest]
                    part = rows[group[0].name].part
                    done = self.step(*group, limit=self.rebuild_batch_size, progress=progress,
                                     part=part)
                    total += done * len(group)
                    if done == 0 and not self._read(lowest, 1, part):
                        self._close_part(group, part, lowest)  # nothing of it left

    def _close_part(self, group: Sequence[Projection], part: Part, after: int) -> None:
        with self.store.transaction() as cur:
            cur.executemany(self.store.sql(
                "UPDATE tcledger_projection_parts SET position = ? "
                "WHERE name = ? AND part = ? AND position = ?"),
                [(part.until, p.name, part.index, after) for p in group])

    def _finish_parts(self, chosen: Sequence[Projection],
                      progress: Callable[[str, int, int], None] | None) -> tuple[int, set[str]]:
        """Finishes partitions nobody is working on, then makes a view whose partitions
        all reached their end whole again; returns entries applied and the views still in
        partitions (another process is on them)."""
        rows = part_rows(self.store, [p.name for p in chosen])
        if not rows:
            return 0, set()
        total = 0
        for index in sorted({r.part.index for r in rows if not r.done}):
            total += self.rebuild_part([r.name for r in rows if r.part.index == index], index,
                                       progress)
        unfinished = set()
        with self.store.transaction() as cur:
            for name in sorted({r.name for r in rows}):
                cur.execute(self.store.sql(
                    "SELECT position, until FROM tcledger_projection_parts WHERE name = ?"
                    + (" FOR UPDATE" if self.store.postgres else "")), (name,))
                found = cur.fetchall()
                if not found:
                    continue  # made whole by another runner meanwhile
                if any(int(r["position"]) < int(r["until"]) for r in found):
                    unfinished.add(name)
                    continue
                cur.execute(self.store.sql("DELETE FROM tcledger_projection_parts "
                                           "WHERE name = ?"), (name,))
                cur.execute(self.store.sql(
                    "UPDATE tcledger_projection_positions SET position = ?, updated_at = ? "
                    "WHERE name = ?"), (int(found[0]["until"]), _now(), name))
        return total, unfinished

    @contextmanager
    def _rebuilding_views(self, views: Sequence[Projection]) -> Iterator[None]:
        """Rebuild mode: every data key unwrapped at once, every folded record held, the
        collector kept off records that only grow. Re-entrant."""
        if self._rebuilding:
            yield
            return
        if self.preload_keys is not None:
            self.preload_keys()
        for projection in views:
            _hook(projection, "rebuilding", True)
        self._rebuilding = True
        try:
            yield
        finally:
            self._rebuilding = False
            gc.unfreeze()
            for projection in views:
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
            event = self.mapper.to_domain_event(note)  # a Notification is a StoredEvent
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
