"""The ledger through the real stores: leaves in log order, stored nodes, signed heads and
proofs that verify against them, and two appenders that never double a leaf."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from audit import merkle
from audit.ledger import EventRows, Ledger, LedgerKeeper, leaf_bytes
from audit.wiring import build_ledger
from domain.provenance import Provenance
from infra.wiring import Services


def staff() -> Provenance:
    """A fresh provenance each command: its `now` is the command's moment, as in the API."""
    return Provenance("staff-ledger", "counselor")


TODAY = datetime.now(UTC).date()


def admit_some(services: Services, count: int, start: int = 0) -> list:
    policy = services.policies.get("tc-default")
    ids = []
    for n in range(start, start + count):
        pid = services.ledger.admit(
            policy, staff(), facility="F-NORTH", unit="U-1",
            external_ids={"DOC": {"value": f"SYN-L{n:05d}", "issuer": "F"}},
            given_name=f"Ledgerling{n}", family_name="Quorrow",
            date_of_birth=date(1985, 1, 1) + timedelta(days=n),
            admitted_on=TODAY - timedelta(days=30), expected_release_on=TODAY + timedelta(days=200),
            counselor_id="c-1", referral_source=None, program_agreement_signed=True,
            reason="synthetic", assessments=[]).id
        ids.append(pid)
    return ids


def test_leaves_follow_the_log_and_proofs_verify(services: Services) -> None:
    ids = admit_some(services, 13)
    ledger = build_ledger(services)
    assert ledger.catch_up() == 13
    rows = list(EventRows(services.store, services.ledger.recorder.events_table_name).all())
    expected = merkle.MemoryTree([merkle.leaf_hash(leaf_bytes(r.stream_id, r.version, r.topic,
                                                              r.state)) for r in rows])
    assert ledger.size == 13
    for size in range(1, 14):
        assert ledger.root(size) == expected.root(size)
    head = ledger.sign_head()
    assert head.tree_size == 13 and head.root_hash == expected.root()
    assert head.verify(ledger.signer.public_key)  # type: ignore[union-attr]
    for pid in ids:
        leaf = ledger.leaf(pid, 1)
        path = ledger.inclusion(leaf["leaf_index"], 13)
        assert merkle.verify_inclusion(leaf["leaf_hash"], leaf["leaf_index"], 13, path,
                                       head.root_hash)
    # More events: an earlier head stays provably a prefix of the new one.
    admit_some(services, 6, start=100)
    ledger.catch_up()
    later = ledger.sign_head()
    assert later.tree_size == 19
    proof = ledger.consistency(13, 19)
    assert merkle.verify_consistency(13, 19, head.root_hash, later.root_hash, proof)
    assert ledger.sign_head(13) == head  # a size signed once keeps its head


def test_a_fresh_ledger_object_continues_where_the_stored_one_stands(services: Services) -> None:
    admit_some(services, 5)
    first = build_ledger(services)
    first.catch_up()
    admit_some(services, 4, start=50)
    second = build_ledger(services)  # no frontier in memory: reads the stored nodes
    assert second.catch_up() == 4
    rows = list(EventRows(services.store, services.ledger.recorder.events_table_name).all())
    assert second.root(9) == merkle.MemoryTree([r.leaf_hash() for r in rows]).root()


def test_two_appenders_never_add_an_event_twice(services: Services) -> None:
    admit_some(services, 40)
    ledgers = [Ledger(services.store, services.ledger.recorder.events_table_name,
                      batch_size=7) for _ in range(2)]
    errors: list[BaseException] = []

    def run(ledger: Ledger) -> None:
        try:
            for _ in range(20):
                ledger.extend()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ledger,)) for ledger in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledgers[0].catch_up()
    assert not errors
    rows = list(EventRows(services.store, services.ledger.recorder.events_table_name).all())
    assert ledgers[0].size == 40
    stored = ledgers[0].stored_leaves(-1, 100)
    assert [s["position"] for s in stored] == [r.position for r in rows]
    assert ledgers[1].root(40) == merkle.MemoryTree([r.leaf_hash() for r in rows]).root()


def test_the_keeper_signs_a_first_head_and_then_only_when_due(services: Services) -> None:
    admit_some(services, 3)
    ledger = build_ledger(services)
    keeper = LedgerKeeper(ledger, head_interval=3600)
    keeper.tick()
    assert [h.tree_size for h in ledger.heads()] == [3]
    admit_some(services, 2, start=10)
    keeper.tick()
    assert ledger.size == 5
    assert [h.tree_size for h in ledger.heads()] == [3]  # not due for an hour
    keeper.head_interval = 0.000001
    keeper.tick()
    assert [h.tree_size for h in ledger.heads()] == [3, 5]
