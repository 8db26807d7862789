"""The feed's batch reads, on SQLite and PostgreSQL: log entries without payloads, the last
version of many streams at once, and a record read at a known version (caught up by
another process's write, never stale)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from eventsourcing.utils import get_topic

from domain import events as ev
from infra.settings import Settings
from infra.wiring import build
from tests.integration.test_log_reader import admit, staff


def late(services, pid) -> None:
    services.ledger.execute(pid, lambda p, policy: p.record_infraction(
        policy, by=staff(), code="house-rule-lateness", observed_at=datetime.now(UTC),
        description="late", reason="staff report"))


def test_entries_are_the_log_of_those_topics_in_order_without_payloads(services) -> None:
    pids = [admit(services, n) for n in range(3)]
    late(services, pids[1])
    recorder = services.recorder
    notes = services.log.batch(0, 100)
    wanted = [get_topic(ev.InfractionRecorded), get_topic(ev.ParticipantAdmitted)]
    entries = recorder.select_entries(0, 100, wanted)
    expected = [(n.id, n.originator_id, n.originator_version, n.topic) for n in notes
                if n.topic in wanted]
    assert [tuple(e) for e in entries] == expected
    assert [e.originator_id for e in entries] == [*pids, pids[1]]
    assert recorder.select_entries(entries[0].id, 2, wanted) == entries[1:3]
    assert recorder.select_entries(entries[-1].id, 100, wanted) == []
    assert recorder.select_entries(0, 100, [get_topic(ev.Discharged)]) == []


def test_last_versions_of_many_streams_in_one_read(services) -> None:
    pids = [admit(services, n) for n in range(3)]
    for _ in range(2):
        late(services, pids[2])
    versions = services.recorder.last_versions([*pids, uuid4()])
    assert versions == {pids[0]: 1, pids[1]: 1, pids[2]: 3}  # an unknown stream: absent
    many = [admit(services, n) for n in range(3, 8)]
    assert services.recorder.last_versions(many) == {p: 1 for p in many}


def test_a_record_read_at_a_known_version_is_caught_up_only_when_behind(
        services, settings: Settings) -> None:
    pid = admit(services, 1)
    ledger = services.ledger
    assert ledger.read_known(pid, 1, lambda p: p.version) == 1
    other = build(settings)  # another server process, writing to the same store
    try:
        late(other, pid)
    finally:
        other.close()
    # Told an older version, the record held in memory is used as it is, without a query.
    assert ledger.read_known(pid, 1, lambda p: p.version) == 1
    # Told the stream's last version, it is caught up first.
    last = services.recorder.last_versions([pid])[pid]
    assert last == 2
    assert ledger.read_known(pid, last, lambda p: p.version) == 2
    ledger.forget(pid)
    assert ledger.read_known(pid, last, lambda p: len(p.history)) == 2  # loaded afresh
