"""The ledger: every stored event, in global log order, as a leaf of an RFC 9162 Merkle tree.

The ledger follows the event table like a projection: each batch of new events becomes
leaves, and every perfect subtree they complete is stored as a node (so a proof reads a
few dozen stored hashes and never rebuilds the tree). Leaves, nodes and the ledger's
position are written in one transaction, under a lock, so that two appenders can never
add the same event twice. Signed tree heads are stored beside them.

A leaf is the stored record exactly as the event table holds it (see `leaf_bytes` and
audit/README.md): the ledger never needs a key and never sees anything in clear, so
erasing a participant (destroying their key) leaves the ledger whole and verifiable.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.persistence import OperationalError

from audit import merkle
from audit.signing import HeadSigner, TreeHead
from infra.background import Repeating
from infra.sql import SqlStore

log = structlog.get_logger("tcledger.audit")

NODE_CACHE_SIZE = 200_000  # about 30 MB: every upper node of a tree of many millions
LEVEL_SHIFT = 48  # node key = level << 48 | index: 2**48 leaves before it runs out

TABLES = (
    "CREATE TABLE IF NOT EXISTS tcledger_ledger_state ("
    " name TEXT PRIMARY KEY, size BIGINT NOT NULL, position BIGINT NOT NULL,"
    " updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tcledger_ledger_leaves ("
    " leaf_index BIGINT PRIMARY KEY, position BIGINT NOT NULL UNIQUE,"
    " stream_id TEXT NOT NULL, version BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS tcledger_ledger_leaves_stream"
    " ON tcledger_ledger_leaves (stream_id, version)",
    "CREATE TABLE IF NOT EXISTS tcledger_ledger_nodes ("
    " node_key BIGINT PRIMARY KEY, hash {blob} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tcledger_ledger_heads ("
    " tree_size BIGINT PRIMARY KEY, root_hash {blob} NOT NULL, timestamp_ms BIGINT NOT NULL,"
    " signature {blob} NOT NULL, key_id TEXT NOT NULL)",
)


def leaf_bytes(stream_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """The leaf of one stored event, byte for byte as audit/README.md documents it."""
    name = topic.encode("utf-8")
    return b"".join((stream_id.bytes, struct.pack(">QH", version, len(name)), name,
                     struct.pack(">I", len(state)), state))


# The same bytes as leaf_bytes, assembled by PostgreSQL (schema-qualified: no function an
# attacker could shadow on the search path).
PG_LEAF_BYTES = (
    "pg_catalog.uuid_send(originator_id) || pg_catalog.int8send(originator_version)"
    " || pg_catalog.int2send(pg_catalog.octet_length(pg_catalog.convert_to(topic, 'UTF8'))"
    "::int2) || pg_catalog.convert_to(topic, 'UTF8')"
    " || pg_catalog.int4send(pg_catalog.octet_length(state)) || state")


def node_key(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


@dataclass(frozen=True)
class StoredRow:
    """One row of the event table, as the ledger reads it."""

    position: int
    stream_id: UUID
    version: int
    topic: str
    state: bytes

    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(leaf_bytes(self.stream_id, self.version, self.topic, self.state))


class EventRows:
    """Raw rows of the event table in log order, on either store."""

    def __init__(self, store: SqlStore, table: str) -> None:
        self.store = store
        self.table = table
        column = "notification_id" if store.postgres else "rowid"
        self._select = store.sql(
            f"SELECT {column} AS position, originator_id, originator_version, topic, state"
            f" FROM {table} WHERE {column} > ? ORDER BY {column} LIMIT ?")
        self._head = f"SELECT MAX({column}) AS head FROM {table}"
        self._stream = store.sql(
            f"SELECT {column} AS position, originator_id, originator_version, topic, state"
            f" FROM {table} WHERE originator_id = ? ORDER BY originator_version")

    def leaf_stream(self) -> Iterator[tuple[int, bytes]]:
        """(position, leaf bytes) of every row in log order, for the verifier. PostgreSQL
        assembles the bytes (pg_catalog functions only, nothing hashed or trusted there)
        and streams them with binary COPY: a quarter of the cost of decoding columns."""
        if not self.store.postgres:
            for row in self.all():
                yield row.position, leaf_bytes(row.stream_id, row.version, row.topic, row.state)
            return
        with self.store.datastore.get_connection() as conn, conn.cursor() as cur:
            with cur.copy(f"COPY (SELECT notification_id, {PG_LEAF_BYTES} FROM {self.table}"
                          " ORDER BY notification_id) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "bytea"])
                yield from copy.rows()
            conn.rollback()

    def head(self) -> int:
        row = self.store.fetch_one(self._head)
        return int(row["head"] or 0)

    def stream(self, stream_id: UUID) -> list[StoredRow]:
        key: Any = stream_id if self.store.postgres else stream_id.hex
        with self.store.datastore.transaction(commit=False) as cur:
            cur.execute(self._stream, (key,))
            return [_stored_row(r) for r in cur.fetchall()]

    def after(self, position: int, limit: int, cur: Any = None) -> list[StoredRow]:
        """Rows after a position; on the given cursor when inside a transaction (SQLite's
        pool holds readers back while its one writer is out)."""
        if cur is None:
            with self.store.datastore.transaction(commit=False) as own:
                return self.after(position, limit, own)
        cur.execute(self._select, (position, limit))
        return [_stored_row(r) for r in cur.fetchall()]

    def all(self, batch: int = 10000) -> Iterator[StoredRow]:
        """Every row, including any an attacker placed at a position below the first."""
        position = -(1 << 62)
        while True:
            rows = self.after(position, batch)
            yield from rows
            if len(rows) < batch:
                return
            position = rows[-1].position


def _stored_row(r: Any) -> StoredRow:
    return StoredRow(int(r["position"]), _uuid(r["originator_id"]), int(r["originator_version"]),
                     r["topic"], bytes(r["state"]))


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


class LeafNotFound(LookupError):
    pass


class Ledger:
    NAME = "ledger"

    def __init__(self, store: SqlStore, events_table: str, signer: HeadSigner | None = None,
                 batch_size: int = 5000) -> None:
        self.store = store
        self.rows = EventRows(store, events_table)
        self.signer = signer
        self.batch_size = batch_size
        self._lock = threading.Lock()
        # The roots of the perfect subtrees that make up the tree as it stands, by level.
        self._frontier: dict[int, bytes] | None = None
        self._frontier_size = -1
        self._node_cache: dict[int, bytes] = {}
        with store.transaction() as cur:
            for statement in TABLES if store.create_tables else ():
                cur.execute(statement.format(blob="BYTEA" if store.postgres else "BLOB"))
            cur.execute(store.sql("SELECT name FROM tcledger_ledger_state WHERE name = ?"),
                        (self.NAME,))
            if cur.fetchone() is None:
                cur.execute(store.sql("INSERT INTO tcledger_ledger_state"
                                      " (name, size, position, updated_at) VALUES (?, 0, 0, ?)"),
                            (self.NAME, _now()))

    # --- reading ------------------------------------------------------------------------

    def state(self) -> tuple[int, int]:
        row = self.store.fetch_one(
            "SELECT size, position FROM tcledger_ledger_state WHERE name = ?", (self.NAME,))
        return int(row["size"]), int(row["position"])

    @property
    def size(self) -> int:
        return self.state()[0]

    def status(self, head: int) -> dict[str, Any]:
        row = self.store.fetch_one("SELECT size, position, updated_at FROM tcledger_ledger_state"
                                   " WHERE name = ?", (self.NAME,))
        latest = self.latest_head()
        return {"name": self.NAME, "position": int(row["position"]),
                "lag": max(head - int(row["position"]), 0), "updated_at": row["updated_at"],
                "tree_size": int(row["size"]),
                "signed_tree_size": latest.tree_size if latest else 0}

    def nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Stored subtree hashes. Nodes never change once written, so they are cached:
        the upper levels are shared by every proof."""
        found: dict[tuple[int, int], bytes] = {}
        wanted = []
        for level, index in set(keys):
            key = node_key(level, index)
            cached = self._node_cache.get(key)
            if cached is None:
                wanted.append(key)
            else:
                found[(level, index)] = cached
        wanted.sort()
        if len(self._node_cache) + len(wanted) > NODE_CACHE_SIZE:
            self._node_cache.clear()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = self.store.fetch_all(
                "SELECT node_key, hash FROM tcledger_ledger_nodes WHERE node_key IN ("
                + ", ".join("?" * len(chunk)) + ")", chunk)
            for row in rows:
                key, value = int(row["node_key"]), bytes(row["hash"])
                self._node_cache[key] = value
                found[(key >> LEVEL_SHIFT, key & ((1 << LEVEL_SHIFT) - 1))] = value
        return found

    def _computed(self, compute: Any, size: int) -> Any:
        """Runs a proof computation over stored nodes: one query for every node it reads
        (a node the ledger does not hold means the tree is not that large yet)."""
        fetched = self.nodes(list(merkle.needed(compute)))

        def node(level: int, index: int) -> bytes:
            try:
                return fetched[(level, index)]
            except KeyError:
                raise LeafNotFound(f"node ({level}, {index}) is not in the ledger") from None
        return compute(node)

    def root(self, size: int) -> bytes:
        return bytes(self._computed(lambda nodes: merkle.root(size, nodes), size))

    def inclusion(self, leaf_index: int, size: int) -> list[bytes]:
        return list(self._computed(
            lambda nodes: merkle.inclusion_path(leaf_index, size, nodes), size))

    def inclusions(self, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """Inclusion paths of many leaves in one tree, read in one query."""
        def compute(nodes: merkle.Nodes) -> list[list[bytes]]:
            return [merkle.inclusion_path(i, size, nodes) for i in indexes]
        return list(self._computed(compute, size))

    def consistency(self, first: int, second: int) -> list[bytes]:
        return list(self._computed(
            lambda nodes: merkle.consistency_path(first, second, nodes), second))

    def leaf(self, stream_id: UUID, version: int) -> dict[str, Any]:
        row = self.store.fetch_one(
            "SELECT leaf_index, position FROM tcledger_ledger_leaves"
            " WHERE stream_id = ? AND version = ?", (str(stream_id), version))
        if row is None:
            raise LeafNotFound(f"no leaf for version {version} of {stream_id}")
        index = int(row["leaf_index"])
        return {"leaf_index": index, "position": int(row["position"]),
                "leaf_hash": self.nodes([(0, index)])[(0, index)]}

    def leaves(self, stream_id: UUID) -> list[dict[str, Any]]:
        rows = self.store.fetch_all(
            "SELECT leaf_index, position, version FROM tcledger_ledger_leaves"
            " WHERE stream_id = ? ORDER BY version", (str(stream_id),))
        hashes = self.nodes([(0, int(r["leaf_index"])) for r in rows])
        return [{"leaf_index": int(r["leaf_index"]), "position": int(r["position"]),
                 "version": int(r["version"]), "leaf_hash": hashes[(0, int(r["leaf_index"]))]}
                for r in rows]

    def witnessed(self, batch: int = 20000) -> Iterator[tuple[int, int, bytes | None]]:
        """(leaf index, log position, leaf hash) of every leaf, in order, for the verifier."""
        if self.store.postgres:
            with self.store.datastore.get_connection() as conn, conn.cursor() as cur:
                with cur.copy("COPY (SELECT l.leaf_index, l.position, n.hash FROM"
                              " tcledger_ledger_leaves l LEFT JOIN tcledger_ledger_nodes n"
                              " ON n.node_key = l.leaf_index ORDER BY l.leaf_index)"
                              " TO STDOUT (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int8", "bytea"])
                    yield from copy.rows()
                conn.rollback()
            return
        after = -1
        while True:
            rows = self.stored_leaves(after, batch)
            for r in rows:
                yield r["leaf_index"], r["position"], r["leaf_hash"]
            if len(rows) < batch:
                return
            after = rows[-1]["leaf_index"]

    def stored_leaves(self, after_index: int, limit: int) -> list[dict[str, Any]]:
        """The ledger's own record of leaves [after_index + 1, ...], for the verifier."""
        rows = self.store.fetch_all(
            "SELECT l.leaf_index, l.position, l.stream_id, l.version, n.hash"
            " FROM tcledger_ledger_leaves l LEFT JOIN tcledger_ledger_nodes n"
            " ON n.node_key = l.leaf_index WHERE l.leaf_index > ?"
            " ORDER BY l.leaf_index LIMIT ?", (after_index, limit))
        return [{"leaf_index": int(r["leaf_index"]), "position": int(r["position"]),
                 "stream_id": r["stream_id"], "version": int(r["version"]),
                 "leaf_hash": bytes(r["hash"]) if r["hash"] is not None else None}
                for r in rows]

    # --- heads --------------------------------------------------------------------------

    def latest_head(self) -> TreeHead | None:
        row = self.store.fetch_one(
            "SELECT tree_size, root_hash, timestamp_ms, signature, key_id"
            " FROM tcledger_ledger_heads ORDER BY tree_size DESC LIMIT 1")
        return _head(row) if row else None

    def head(self, tree_size: int) -> TreeHead | None:
        row = self.store.fetch_one(
            "SELECT tree_size, root_hash, timestamp_ms, signature, key_id"
            " FROM tcledger_ledger_heads WHERE tree_size = ?", (tree_size,))
        return _head(row) if row else None

    def heads(self) -> list[TreeHead]:
        return [_head(r) for r in self.store.fetch_all(
            "SELECT tree_size, root_hash, timestamp_ms, signature, key_id"
            " FROM tcledger_ledger_heads ORDER BY tree_size")]

    def sign_head(self, tree_size: int | None = None) -> TreeHead:
        """Signs (and keeps) the head of the tree at a size, by default the whole ledger.
        A size that already has a signed head gets that head back."""
        if self.signer is None:
            raise RuntimeError("this process holds no tree-head signing key")
        size = self.size if tree_size is None else tree_size
        existing = self.head(size)
        if existing is not None:
            return existing
        head = self.signer.sign(size, self.root(size), int(time.time() * 1000))
        try:
            self.store.execute(
                "INSERT INTO tcledger_ledger_heads"
                " (tree_size, root_hash, timestamp_ms, signature, key_id) VALUES (?, ?, ?, ?, ?)",
                (head.tree_size, head.root_hash, head.timestamp_ms, head.signature, head.key_id))
        except Exception:
            raced = self.head(size)  # another process signed this size first
            if raced is None:
                raise
            return raced
        log.info("tree_head_signed", tree_size=size)
        return head

    # --- appending ----------------------------------------------------------------------

    def extend(self, limit: int | None = None) -> int:
        """Adds the next batch of stored events as leaves; returns how many."""
        with self._lock:
            try:
                return self._extend(limit or self.batch_size)
            except OperationalError as exc:
                self._frontier = None
                if "locked" in str(exc):
                    return 0  # SQLite: another appender is writing; its work counts
                raise
            except BaseException:
                self._frontier = None
                raise

    def catch_up(self) -> int:
        total = 0
        while True:
            added = self.extend()
            total += added
            if added < self.batch_size:
                return total

    def _extend(self, limit: int) -> int:
        store = self.store
        if self.rows.head() <= self.state()[1]:
            return 0  # nothing new: no write transaction
        with store.transaction() as cur:
            # Take the ledger's lock first: the row on PostgreSQL, the write lock on SQLite.
            cur.execute(store.sql("UPDATE tcledger_ledger_state SET updated_at = ?"
                                  " WHERE name = ?"), (_now(), self.NAME))
            cur.execute(store.sql("SELECT size, position FROM tcledger_ledger_state"
                                  " WHERE name = ?"), (self.NAME,))
            row = cur.fetchone()
            size, position = int(row["size"]), int(row["position"])
            rows = self.rows.after(position, limit, cur)
            if not rows:
                return 0
            frontier = self._load_frontier(cur, size)
            leaves: list[tuple[Any, ...]] = []
            nodes: list[tuple[int, bytes]] = []
            index = size
            for r in rows:
                value = r.leaf_hash()
                leaves.append((index, r.position, str(r.stream_id), r.version))
                nodes.append((node_key(0, index), value))
                level = 0
                while level in frontier:
                    value = merkle.node_hash(frontier.pop(level), value)
                    level += 1
                    nodes.append((node_key(level, index >> level), value))
                frontier[level] = value
                index += 1
            cur.executemany(store.sql("INSERT INTO tcledger_ledger_leaves"
                                      " (leaf_index, position, stream_id, version)"
                                      " VALUES (?, ?, ?, ?)"), leaves)
            cur.executemany(store.sql("INSERT INTO tcledger_ledger_nodes (node_key, hash)"
                                      " VALUES (?, ?)"), nodes)
            cur.execute(store.sql("UPDATE tcledger_ledger_state SET size = ?, position = ?,"
                                  " updated_at = ? WHERE name = ?"),
                        (index, rows[-1].position, _now(), self.NAME))
        self._frontier, self._frontier_size = frontier, index
        return len(rows)

    def _load_frontier(self, cur: Any, size: int) -> dict[int, bytes]:
        if self._frontier is not None and self._frontier_size == size:
            return dict(self._frontier)
        keys = [(level, (size >> level) - 1) for level in range(size.bit_length())
                if size >> level & 1]
        frontier: dict[int, bytes] = {}
        if keys:
            cur.execute(self.store.sql(
                "SELECT node_key, hash FROM tcledger_ledger_nodes WHERE node_key IN ("
                + ", ".join("?" * len(keys)) + ")"), [node_key(*k) for k in keys])
            for row in cur.fetchall():
                frontier[int(row["node_key"]) >> LEVEL_SHIFT] = bytes(row["hash"])
        if len(frontier) != len(keys):
            raise RuntimeError("the ledger's stored nodes do not cover its size")
        return frontier


class LedgerKeeper:
    """Keeps the ledger current and signs a head at an interval, from a thread."""

    def __init__(self, ledger: Ledger, head_interval: float, poll: float = 0.05,
                 followers: Sequence[Any] = ()) -> None:
        self.ledger = ledger
        self.followers = list(followers)  # more followers of the log (the access index)
        self.head_interval = head_interval
        self.poll = poll
        self._background = Repeating("tcledger-ledger", self.tick, log, "ledger_failed")

    def start(self) -> None:
        self._background.start(self.poll)

    def stop(self) -> None:
        self._background.stop()

    def tick(self) -> None:
        self.ledger.catch_up()
        for follower in self.followers:
            follower.catch_up()
        if self.ledger.signer is None:
            return
        latest = self.ledger.latest_head()
        size = self.ledger.size
        due = latest is None or (
            size > latest.tree_size
            and time.time() * 1000 - latest.timestamp_ms >= self.head_interval * 1000)
        if due:
            self.ledger.sign_head(size)


def _head(row: Any) -> TreeHead:
    return TreeHead(int(row["tree_size"]), bytes(row["root_hash"]), int(row["timestamp_ms"]),
                    bytes(row["signature"]), row["key_id"])


def _now() -> str:
    return datetime.now(UTC).isoformat()
