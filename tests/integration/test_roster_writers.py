"""A roster and single commands racing on the same records, from two processes' worth of
command sides on one store: the roster retries as a whole, nothing is lost or written twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from domain import community as c
from domain.errors import DomainError
from infra.wiring import build
from tests.integration.test_concurrent_writers import admit, infraction, staff


@pytest.fixture
def two(settings):
    first, second = build(settings), build(settings)
    yield first, second
    first.close()
    second.close()


def test_rosters_and_single_writes_race_without_losing_either(two):
    a, b = two
    people = [admit(a) for _ in range(6)]
    for pid in people:
        b.ledger.participant(pid)  # b holds every record in memory: its copies go stale
    errors: list[BaseException] = []

    def rosters() -> None:
        try:
            for n in range(5):
                meeting = c.Session(f"G-{n}", "morning-meeting", "F-NORTH",
                                    datetime.now(UTC) - timedelta(hours=1))
                outcomes = b.ledger.execute_each({pid: (
                    lambda p, policy, s=meeting: c.record_attendance(p, s, by=staff(),
                                                                     status="present"))
                    for pid in reversed(people)})
                assert not any(isinstance(o, DomainError) for o in outcomes.values())
        except BaseException as exc:
            errors.append(exc)

    def singles() -> None:
        try:
            for _ in range(3):
                for pid in people:
                    infraction(a, pid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rosters), threading.Thread(target=singles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    for pid in people:
        state = a.ledger.participant(pid).state
        assert sorted(state.attendance) == [f"G-{n}" for n in range(5)]
        assert len(state.infractions) == 3
        versions = [e.originator_version for e in a.ledger.history(pid)]
        assert versions == list(range(1, 1 + 1 + 5 + 3))
