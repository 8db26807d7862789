"""Tamper detection: an attacker with superuser rights disables the immutability trigger and
changes the stored events; `tcledger audit verify` finds every attack and names the first
bad event. Tried on PostgreSQL and SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from audit.ledger import EventRows
from audit.verify import verify
from audit.wiring import build_ledger
from infra.cli import main as cli
from infra.wiring import Services
from tests.integration.test_ledger import admit_some

EVENTS = "tcledger_events"


class Attacker:
    """Raw access to the database as its superuser, with the trigger out of the way."""

    def __init__(self, services: Services) -> None:
        self.settings = services.settings
        self.postgres = services.settings.uses_postgres
        self.column = "notification_id" if self.postgres else "rowid"
        self.p = "%s" if self.postgres else "?"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if self.postgres:
            with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
                conn.execute(f"ALTER TABLE {EVENTS} DISABLE TRIGGER USER")
                yield conn
        else:
            conn = sqlite3.connect(self.settings.sqlite_path)
            try:
                conn.execute(f"DROP TRIGGER IF EXISTS {EVENTS}_no_update")
                conn.execute(f"DROP TRIGGER IF EXISTS {EVENTS}_no_delete")
                yield conn
                conn.commit()
            finally:
                conn.close()

    def sql(self, conn: Any, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cursor = conn.execute(statement.replace("{c}", self.column).replace("?", self.p), params)
        return list(cursor.fetchall()) if cursor.description else []

    def positions(self) -> list[int]:
        with self.connect() as conn:
            return [r[0] for r in self.sql(conn, f"SELECT {{c}} FROM {EVENTS} ORDER BY {{c}}")]

    def row(self, position: int) -> tuple[Any, int]:
        with self.connect() as conn:
            found = self.sql(conn, f"SELECT originator_id, originator_version FROM {EVENTS} "
                                   "WHERE {c} = ?", (position,))
        stream, version = found[0]
        return str(stream) if self.postgres else str(__import__("uuid").UUID(stream)), version


@pytest.fixture
def witnessed(services: Services) -> Iterator[tuple[Services, Attacker, list[int]]]:
    """A log of 30 events, every one witnessed by the ledger under a signed head."""
    admit_some(services, 30)
    ledger = build_ledger(services)
    ledger.catch_up()
    ledger.sign_head()
    attacker = Attacker(services)
    yield services, attacker, attacker.positions()


def check(services: Services) -> Any:
    ledger = build_ledger(services)
    return verify(ledger, EventRows(services.store, services.ledger.recorder.events_table_name),
                  ledger.signer.public_key)  # type: ignore[union-attr]


def test_an_untouched_log_verifies_and_newer_events_are_only_pending(witnessed) -> None:
    services, _, _ = witnessed
    admit_some(services, 2, start=500)  # not yet witnessed
    report = check(services)
    assert report.ok, [f.describe() for f in report.findings]
    assert (report.leaves, report.heads, report.pending) == (30, 1, 2)


def alter_a_byte(attacker: Attacker, conn: Any, positions: list[int]) -> int:
    target = positions[11]
    (state,) = attacker.sql(conn, f"SELECT state FROM {EVENTS} WHERE {{c}} = ?", (target,))[0]
    changed = bytearray(state)
    changed[20] ^= 0x01
    attacker.sql(conn, f"UPDATE {EVENTS} SET state = ? WHERE {{c}} = ?", (bytes(changed), target))
    return target


def delete_a_row(attacker: Attacker, conn: Any, positions: list[int]) -> int:
    attacker.sql(conn, f"DELETE FROM {EVENTS} WHERE {{c}} = ?", (positions[7],))
    return positions[7]


def swap_two_payloads(attacker: Attacker, conn: Any, positions: list[int]) -> int:
    a, b = positions[4], positions[21]
    (sa,) = attacker.sql(conn, f"SELECT state FROM {EVENTS} WHERE {{c}} = ?", (a,))[0]
    (sb,) = attacker.sql(conn, f"SELECT state FROM {EVENTS} WHERE {{c}} = ?", (b,))[0]
    attacker.sql(conn, f"UPDATE {EVENTS} SET state = ? WHERE {{c}} = ?", (sb, a))
    attacker.sql(conn, f"UPDATE {EVENTS} SET state = ? WHERE {{c}} = ?", (sa, b))
    return a


def reorder_two_rows(attacker: Attacker, conn: Any, positions: list[int]) -> int:
    a, b = positions[9], positions[10]
    attacker.sql(conn, f"UPDATE {EVENTS} SET {{c}} = -1 WHERE {{c}} = ?", (a,))
    attacker.sql(conn, f"UPDATE {EVENTS} SET {{c}} = ? WHERE {{c}} = ?", (a, b))
    attacker.sql(conn, f"UPDATE {EVENTS} SET {{c}} = ? WHERE {{c}} = -1", (b,))
    return a


def truncate_the_tail(attacker: Attacker, conn: Any, positions: list[int]) -> int:
    attacker.sql(conn, f"DELETE FROM {EVENTS} WHERE {{c}} >= ?", (positions[-3],))
    return positions[-3]


def rewrite_ledger_too(attacker: Attacker, conn: Any, positions: list[int]) -> int:
    """Alters an event and rewrites the ledger's leaf to match: only the signature is left."""
    from audit import merkle
    from audit.ledger import leaf_bytes
    target = alter_a_byte(attacker, conn, positions)
    stream, version, topic, state = attacker.sql(
        conn, f"SELECT originator_id, originator_version, topic, state FROM {EVENTS} "
              "WHERE {c} = ?", (target,))[0]
    uuid = __import__("uuid")
    stream = stream if isinstance(stream, uuid.UUID) else uuid.UUID(stream)
    leaf = merkle.leaf_hash(leaf_bytes(stream, version, topic, bytes(state)))
    attacker.sql(conn, "UPDATE tcledger_ledger_nodes SET hash = ? WHERE node_key = ?",
                 (leaf, positions.index(target)))
    return -1


ATTACKS: dict[str, Callable[[Attacker, Any, list[int]], int]] = {
    "altered byte": alter_a_byte, "deleted row": delete_a_row,
    "swapped payloads": swap_two_payloads, "reordered rows": reorder_two_rows,
    "truncated tail": truncate_the_tail, "ledger rewritten to match": rewrite_ledger_too,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_detected_and_the_first_bad_event_named(witnessed, attack: str) -> None:
    services, attacker, positions = witnessed
    with attacker.connect() as conn:
        target = ATTACKS[attack](attacker, conn, positions)
    report = check(services)
    assert not report.ok
    first = report.findings[0]
    if target == -1:  # the ledger agrees with the altered event: the signed head does not
        assert "different root than the signed tree head" in first.what
    else:
        assert first.position == target, first.describe()
        assert first.leaf_index == positions.index(target)


def test_an_event_inserted_into_a_gap_of_the_log_is_detected(services: Services) -> None:
    """Positions have gaps (a rolled-back append still spends its id); a forged event slipped
    into one is still found."""
    admit_some(services, 5)
    attacker = Attacker(services)
    if services.settings.uses_postgres:
        with attacker.connect() as conn:  # two appends roll back: two ids are never used
            seq = conn.execute(f"SELECT pg_get_serial_sequence('{EVENTS}', "
                               "'notification_id')").fetchone()[0]
            conn.execute("SELECT nextval(%s), nextval(%s)", (seq, seq))
    admit_some(services, 5, start=20)
    ledger = build_ledger(services)
    ledger.catch_up()
    ledger.sign_head()
    positions = attacker.positions()
    gap = positions[4] + 1 if services.settings.uses_postgres else 0
    assert gap not in positions
    with attacker.connect() as conn:
        attacker.sql(conn, f"INSERT INTO {EVENTS} ({{c}}, originator_id, originator_version, "
                           "topic, state) SELECT ?, originator_id, 99, topic, state FROM "
                           f"{EVENTS} WHERE {{c}} = ?", (gap, positions[2]))
    report = check(services)
    assert not report.ok
    assert report.findings[0].position == gap
    assert "inserted" in report.findings[0].what


def test_the_command_exits_non_zero_and_names_the_event(witnessed, monkeypatch, capsys) -> None:
    services, attacker, positions = witnessed
    for name, value in {"TCLEDGER_VAR_DIR": str(services.settings.var_dir),
                        "TCLEDGER_DATABASE_URL": services.settings.database_url,
                        "TCLEDGER_KEK": services.settings.kek}.items():
        monkeypatch.setenv(name, value)
    assert cli(["audit", "verify"]) == 0
    assert "ledger verified" in capsys.readouterr().out
    with attacker.connect() as conn:
        target = alter_a_byte(attacker, conn, positions)
    stream, version = attacker.row(target)
    assert cli(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "TAMPERING DETECTED" in out
    assert f"log position {target}" in out and f"stream {stream} version {version}" in out


def test_a_changed_inner_node_of_the_ledger_is_detected(witnessed) -> None:
    services, attacker, _ = witnessed
    with attacker.connect() as conn:
        attacker.sql(conn, "UPDATE tcledger_ledger_nodes SET hash = ? WHERE node_key = ?",
                     (bytes(32), (1 << 48) | 14))  # leaves 28-29: on the right edge of 30
    report = check(services)
    assert not report.ok
    assert "ledger tables were changed" in report.findings[0].what
