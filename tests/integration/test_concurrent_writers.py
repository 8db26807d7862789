"""Two server processes on one store: stale memory never wins, erasure reaches both."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from domain.errors import InvalidValue, ParticipantErased
from domain.provenance import Provenance
from infra.wiring import build


def staff() -> Provenance:
    """A fresh provenance each command: its `now` is the command's moment, as in the API."""
    return Provenance("staff-1", "counselor")


def admit(services) -> object:
    policy = services.policies.get("tc-default")
    return services.ledger.admit(
        policy, staff(), facility="F-NORTH", unit="U-1",
        external_ids={"DOC": {"value": "SYN-7", "issuer": "F-NORTH"}}, given_name="Ivo7",
        family_name="Stroudton", date_of_birth=date(1988, 3, 3),
        admitted_on=datetime.now(UTC).date() - timedelta(days=100), expected_release_on=None,
        counselor_id=None, referral_source=None, program_agreement_signed=True,
        reason="synthetic", assessments=[]).id


def infraction(services, pid, description="late"):
    return services.ledger.execute(pid, lambda p, policy: p.record_infraction(
        policy, by=staff(), code="house-rule-lateness", observed_at=datetime.now(UTC),
        description=description, reason="staff report"))


@pytest.fixture
def two(settings):
    first, second = build(settings), build(settings)
    yield first, second
    first.close()
    second.close()


def test_a_stale_process_reloads_instead_of_overwriting(two):
    a, b = two
    pid = admit(a)
    assert b.ledger.participant(pid).version == 1  # b now holds the record in memory
    assert infraction(a, pid).version == 2
    assert infraction(b, pid, "from b").version == 3  # b's copy was stale: it reloaded
    assert a.ledger.participant(pid).version == 3  # reads catch up with the store
    history = [e.originator_version for e in a.ledger.history(pid)]
    assert history == [1, 2, 3]


def test_a_failed_command_leaves_nothing_in_memory(two):
    a, _ = two
    pid = admit(a)

    def half_applied(p, policy):
        p.record_infraction(policy, by=staff(), code="house-rule-lateness",
                            observed_at=datetime.now(UTC), description="x", reason="r")
        raise InvalidValue("code", "refused after the first event")

    with pytest.raises(InvalidValue):
        a.ledger.execute(pid, half_applied)
    assert a.ledger.participant(pid).version == 1
    assert infraction(a, pid).version == 2


def test_concurrent_commands_on_one_record_serialise(two):
    a, b = two
    pid = admit(a)
    errors: list[BaseException] = []

    def work(services):
        try:
            for _ in range(10):
                infraction(services, pid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in (a, a, b, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [e.originator_version for e in a.ledger.history(pid)] == list(range(1, 42))


def test_erasure_in_one_process_is_seen_by_the_other(two):
    a, b = two
    pid = admit(a)
    assert b.ledger.participant(pid).state.given_name == "Ivo7"
    a.ledger.erase(pid, Provenance("admin-1", "admin"), "retention ended")
    with pytest.raises(ParticipantErased):
        b.ledger.participant(pid)


def test_many_writers_get_distinct_increasing_positions(two):
    a, _ = two
    pids = [admit(a) for _ in range(8)]
    results: dict[object, list[int]] = {pid: [] for pid in pids}

    def work(pid):
        for _ in range(15):
            results[pid].append(infraction(a, pid).position)

    threads = [threading.Thread(target=work, args=(pid,)) for pid in pids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    positions = [p for ps in results.values() for p in ps]
    assert len(set(positions)) == 8 * 15
    for pid, ps in results.items():
        assert ps == sorted(ps)
        stored = a.recorder.positions(pid)
        assert sorted(stored.values())[1:] == ps  # each answer is the event's real position
