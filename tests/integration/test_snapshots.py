"""Snapshots of records, on SQLite and PostgreSQL: a cold read that starts from one gives
exactly what a replay of the whole stream gives (over a long history with corrections and
voids), and a snapshot the stream does not confirm (moved, forged, stale code, beyond the
stream, erased) is never served."""

from __future__ import annotations

import itertools
import pickle
import zlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from api.views import record_view
from domain.participant import Participant
from infra.settings import Settings
from infra.snapshots import ParticipantSnapshots, SnapshotUnusable, fingerprint
from infra.wiring import Services, build
from tests.e2e.long_history import write_long_history
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import ok


@pytest.fixture
def replayer(services: Services, settings: Settings) -> Any:
    """The same database read with snapshots off: every read replays the whole stream."""
    full = build(settings.model_copy(update={"snapshot_interval": 0}))
    yield full
    full.close()


def snapshots(services: Services) -> ParticipantSnapshots:
    store = services.ledger._snapshot_store
    assert isinstance(store, ParticipantSnapshots)
    return store


def snapshot_row(services: Services, pid: UUID) -> Any:
    return services.store.fetch_one(
        "SELECT version, fingerprint, sealed FROM tcledger_snapshots WHERE stream_id = ?",
        (str(pid),))


def cold(services: Services, pid: UUID) -> Participant:
    services.ledger.forget(pid)
    return services.ledger.participant(pid)


def assert_same_record(got: Participant, want: Participant, services: Services) -> None:
    assert (got.id, got.version, got.created_on, got.modified_on) == \
        (want.id, want.version, want.created_on, want.modified_on)
    assert got.history == want.history
    assert got.amended == want.amended
    assert got.state == want.state
    today = datetime.now(UTC).date()
    policy = services.ledger.policy_of(want)
    assert record_view(got, policy, today) == record_view(want, policy, today)


def test_every_cut_of_a_long_amended_history_reads_as_its_replay(api, replayer):
    services = api.services
    pid = UUID(write_long_history(api, seed=53, events=160, admitted_days_ago=400))
    full = replayer.ledger.participant(pid)
    amended = sorted(full.amended)
    assert {"EntryCorrected", "EntryVoided"} <= set(full.amended.values())
    assert full.version > 160
    # Cut the history everywhere a correction or void lands (just before, at and after the
    # entry it supersedes and the amendment itself) and at a regular stride.
    corrections = [e.originator_version for e in full.history
                   if type(e).__name__ in ("EntryCorrected", "EntryVoided")]
    cuts = sorted({v for a in amended + corrections for v in (a - 1, a, a + 1)}
                  | set(range(1, full.version + 1, 9)) | {full.version})
    store = snapshots(services)
    for cut in [c for c in cuts if 1 <= c <= full.version]:
        store.discard(pid)
        store.keep(replayer.ledger.participant(pid, version=cut))
        assert snapshot_row(services, pid)["version"] == cut
        assert_same_record(cold(services, pid), full, services), f"from a snapshot at {cut}"
        # A past version read from a snapshot at or before it is that version's replay.
        past = max(1, cut + (full.version - cut) // 2)
        assert_same_record(services.ledger.participant(pid, version=past),
                           replayer.ledger.participant(pid, version=past), services)


def test_snapshots_are_kept_as_records_grow_and_the_tail_is_folded(api, replayer):
    services = api.services
    services.ledger.keep_snapshots(snapshots(services), 10)
    pid = UUID(write_long_history(api, seed=59, events=45, admitted_days_ago=300))
    row = snapshot_row(services, pid)
    assert row is not None and row["fingerprint"] == fingerprint()
    head = replayer.ledger.participant(pid).version
    assert head - 20 < row["version"] <= head
    # Later writes are folded onto the snapshot; the answer over HTTP is the replay's.
    services.ledger.forget(pid)
    got = ok(api.get(f"/participants/{pid}"), 200)
    replayed = replayer.ledger.participant(pid)
    assert got["version"] == replayed.version
    assert_same_record(cold(services, pid), replayed, services)


def test_a_snapshot_the_stream_does_not_confirm_is_never_served(services, replayer):
    pid, other = admit(services), admit(services)
    for _ in range(12):
        infraction(services, pid)
        infraction(services, other)
    store = snapshots(services)
    truth = replayer.ledger.participant(pid)

    # Another record's snapshot moved onto this row does not open here.
    store.keep(replayer.ledger.participant(other))
    moved = snapshot_row(services, other)
    put_row(services, pid, moved["version"], moved["fingerprint"], bytes(moved["sealed"]))
    assert store.latest(pid) is None
    assert_same_record(cold(services, pid), truth, services)

    # A forged record, sealed under the right key, whose last event is not the stream's.
    forged = replayer.ledger.participant(pid, version=6)
    forged.state.given_name = "Forged"
    last = forged.history[-1]
    object.__setattr__(last, "reason", "rewritten")
    store.discard(pid)
    store.keep(forged)
    assert store.latest(pid) is not None  # it opens ...
    got = cold(services, pid)
    assert got.state.given_name != "Forged"  # ... but the stream disowns it
    assert_same_record(got, truth, services)

    # A snapshot beyond the stream (a database restored behind its snapshots).
    ahead = replayer.ledger.participant(pid)
    object.__setattr__(ahead, "version", ahead.version + 5)  # what a later write would give
    sealed = store.seal(ahead)
    put_row(services, pid, ahead.version, fingerprint(), sealed)
    assert_same_record(cold(services, pid), truth, services)

    # One made by other code (another fold) is ignored even when it would open.
    store.discard(pid)
    store.keep(replayer.ledger.participant(pid, version=9))
    row = snapshot_row(services, pid)
    put_row(services, pid, row["version"], "0" * 32, bytes(row["sealed"]))
    assert store.latest(pid) is None
    assert_same_record(cold(services, pid), truth, services)


def test_the_unpickler_admits_only_what_a_record_is_made_of(services):
    pid = admit(services)
    store = snapshots(services)
    key = services.keys.data_key(pid)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from infra.snapshots import _aad
    payload = zlib.compress(pickle.dumps(print))  # a builtin a record never holds
    nonce = b"\x00" * 12
    sealed = nonce + AESGCM(key).encrypt(nonce, payload, _aad(pid, 1, fingerprint()))
    with pytest.raises(SnapshotUnusable, match="does not load"):
        store.open(pid, 1, sealed)
    # A snapshot filed under another version than the record's own.
    good = store.seal(services.ledger.participant(pid))
    with pytest.raises(SnapshotUnusable):
        store.open(pid, 2, good)


def test_erasure_destroys_the_snapshot_with_the_record(api):
    services = api.services
    services.ledger.keep_snapshots(snapshots(services), 3)
    admitted = ok(api.post("/participants", synthetic_admission(61)))
    pid = UUID(admitted["id"])
    for n in range(7):
        ok(api.post(f"/participants/{pid}/infractions", {
            "code": "house-rule-hygiene", "observed_at": datetime.now(UTC).isoformat(),
            "description": f"synthetic entry {n}", "reason": "peer report"}))
    row = snapshot_row(services, pid)
    assert row is not None
    sealed, version = bytes(row["sealed"]), int(row["version"])
    ok(api.client.post(f"/admin/participants/{pid}/erasure", json={"reason": "retention ended"},
                       headers=api.headers("admin")), 201)
    assert snapshot_row(services, pid) is None
    assert api.get(f"/participants/{pid}").status_code == 410
    # A copy kept elsewhere (a backup) no longer opens: its key is gone.
    put_row(services, pid, version, fingerprint(), sealed)
    services.ledger.forget(pid)
    assert api.get(f"/participants/{pid}").status_code == 410
    from domain.errors import ParticipantErased
    with pytest.raises(ParticipantErased):
        snapshots(services).latest(pid)


# --- plumbing ---------------------------------------------------------------------------

SEEDS = itertools.count(71)


def admit(services: Services) -> UUID:
    from domain.provenance import Provenance
    body = synthetic_admission(next(SEEDS))
    result = services.ledger.admit(
        services.policies.get("tc-default"), Provenance("staff-1", "counselor"),
        facility="F-NORTH", unit="U-1",
        external_ids={"DOC": {"value": body["doc_number"], "issuer": "F-NORTH"}},
        given_name=body["given_name"], family_name=body["family_name"],
        date_of_birth=datetime.fromisoformat(body["date_of_birth"]).date(),
        admitted_on=datetime.fromisoformat(body["admitted_on"]).date(),
        expected_release_on=None, counselor_id="staff-1", referral_source=None,
        program_agreement_signed=True, reason="synthetic referral", assessments=[])
    return result.id


def infraction(services: Services, pid: UUID) -> None:
    from domain.provenance import Provenance
    by = Provenance("staff-1", "counselor")

    def decide(p: Participant, policy: Any) -> None:
        p.record_infraction(policy, by=by, code="house-rule-hygiene", observed_at=by.now,
                            description="synthetic entry", reason="peer report")
    services.ledger.execute(pid, decide)


def put_row(services: Services, pid: UUID, version: int, mark: str, sealed: bytes) -> None:
    services.store.execute("DELETE FROM tcledger_snapshots WHERE stream_id = ?", (str(pid),))
    services.store.execute(
        "INSERT INTO tcledger_snapshots (stream_id, version, fingerprint, sealed, created_at)"
        " VALUES (?, ?, ?, ?, ?)", (str(pid), version, mark, sealed, "2026-01-01T00:00:00"))


def test_a_record_shown_from_a_snapshot_decodes_its_events_only_for_a_command(
        services, replayer):
    pid = admit(services)
    for _ in range(8):
        infraction(services, pid)
    store = snapshots(services)
    store.keep(replayer.ledger.participant(pid))
    services.ledger.forget(pid)
    # Showing the record needs its state: its events stay undecoded.
    shown = services.ledger.read(pid, lambda p: (p._history is None, p.version, p.state))
    assert shown == (True, 9, replayer.ledger.participant(pid).state)
    # A command that needs the history (a void refolds it) gets all of it.
    from domain.provenance import Provenance
    by = Provenance("staff-1", "counselor")

    def void(p: Participant, policy: Any) -> None:
        p.void_entry(policy, by=by, version=4, at=by.now, reason="entered twice")
    services.ledger.execute(pid, void)
    after = replayer.ledger.participant(pid)
    assert 4 in after.amended
    assert_same_record(cold(services, pid), after, services)
    assert_same_record(services.ledger.participant(pid), after, services)


def test_a_private_copy_of_an_undecoded_record_decodes_its_own_events(services, replayer):
    pid = admit(services)
    for _ in range(5):
        infraction(services, pid)
    snapshots(services).keep(replayer.ledger.participant(pid))
    services.ledger.forget(pid)
    copied = services.ledger.participant(pid)  # a deep copy of the live, undecoded record
    assert copied._history is None
    assert copied.history == replayer.ledger.participant(pid).history
    copied.history.clear()  # the copy's list is its own
    assert services.ledger.read(pid, lambda p: len(p.history)) == 6
