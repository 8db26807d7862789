"""The timeline view on both stores: rows in clear that order the facts, what the facts say
read from the participant's own (encrypted) stream, and a table of the earlier shape
upgraded in place."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from domain.provenance import Provenance
from projections.timeline import describe, read_timeline
from projections.wiring import build_runner

def staff() -> Provenance:
    """A fresh provenance each command: its `now` is the command's moment, as in the API."""
    return Provenance("staff-1", "counselor")
TODAY = datetime.now(UTC).date()


def admit(services, n: int):
    return services.ledger.admit(
        services.policies.get("tc-default"), staff(), facility="F-NORTH", unit="U-1",
        external_ids={"DOC": {"value": f"SYN-{n:05d}", "issuer": "F-NORTH"}},
        given_name=f"Orla{n}", family_name="Quillbyton", date_of_birth=date(1981, 3, 3),
        admitted_on=TODAY - timedelta(days=50), expected_release_on=TODAY + timedelta(days=200),
        counselor_id="c-1", referral_source=None, program_agreement_signed=True,
        reason="synthetic admission", assessments=[]).id


def infraction(services, pid, description: str, days_ago: int) -> None:
    services.ledger.execute(pid, lambda p, policy: p.record_infraction(
        policy, by=staff(), code="house-rule-lateness",
        observed_at=datetime.now(UTC) - timedelta(days=days_ago), description=description,
        reason="seen by staff"))


def test_rows_hold_no_copy_of_what_the_events_say(services):
    runner = build_runner(services, batch_size=2)
    pid = admit(services, 1)
    infraction(services, pid, "late to the Vexmoor group", days_ago=1)
    infraction(services, pid, "late again", days_ago=20)  # a late entry: earlier fact
    services.ledger.execute(pid, lambda p, policy: p.void_entry(
        by=staff(), version=2, at=datetime.now(UTC), reason="entered in error"))
    runner.catch_up()
    rows = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_timeline WHERE participant_id = ?", (str(pid),))]
    assert sorted(rows[0]) == ["effective_at", "participant_id", "position", "recorded_at",
                               "role", "superseded_by", "supersession", "type", "version"]
    flat = json.dumps(rows, default=str)
    for personal in ("Orla1", "Quillbyton", "SYN-00001", "Vexmoor", "seen by staff"):
        assert personal not in flat
    entries = read_timeline(services.store, services.ledger.history(pid), pid)
    history = {e.originator_version: e for e in services.ledger.history(pid)}
    assert [e["version"] for e in entries] == [1, 3, 2, 4]  # in the order things happened
    for entry in entries:
        shown = {k: v for k, v in entry.items()
                 if k not in ("position", "superseded_by", "supersession")}
        assert shown == describe(history[entry["version"]])
    voided = next(e for e in entries if e["version"] == 2)
    assert (voided["supersession"], voided["superseded_by"]) == ("voided", 4)
    assert voided["data"]["description"] == "late to the Vexmoor group"
    recorded = read_timeline(services.store, services.ledger.history(pid), pid, "recorded")
    assert [e["version"] for e in recorded] == [1, 2, 3, 4]


def test_an_event_the_view_has_not_reached_is_not_shown(services):
    runner = build_runner(services)
    pid = admit(services, 2)
    runner.catch_up()
    infraction(services, pid, "after the view's position", days_ago=0)
    shown = read_timeline(services.store, services.ledger.history(pid), pid)
    assert [e["version"] for e in shown] == [1]


def test_a_table_with_sealed_copies_loses_them_and_keeps_its_rows(services):
    store = services.store
    blob = "BYTEA" if store.postgres else "BLOB"
    with store.transaction() as cur:
        cur.execute("CREATE TABLE tcledger_timeline ("
                    " participant_id TEXT NOT NULL, version INTEGER NOT NULL,"
                    " position BIGINT NOT NULL, type TEXT NOT NULL,"
                    " effective_at TEXT NOT NULL, recorded_at TEXT NOT NULL, role TEXT NOT NULL,"
                    " superseded_by INTEGER, supersession TEXT,"
                    f" sealed {blob} NOT NULL, PRIMARY KEY (participant_id, version))")
    pid = admit(services, 3)
    runner = build_runner(services)  # creates (upgrades) the tables
    assert runner.catch_up() > 0
    columns = set(dict(store.fetch_all("SELECT * FROM tcledger_timeline")[0]))
    assert "sealed" not in columns
    entries = read_timeline(store, services.ledger.history(pid), pid)
    assert [e["type"] for e in entries] == ["ParticipantAdmitted"]
