"""A polling reader sees every event exactly once, in order, while writers race it."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from domain.provenance import Provenance
from infra.log_reader import LogReader


def staff() -> Provenance:
    """A fresh provenance each command: its `now` is the command's moment, as in the API."""
    return Provenance("staff-1", "counselor")


def admit(services, n: int):
    return services.ledger.admit(
        services.policies.get("tc-default"), staff(), facility="F-NORTH", unit="U-1",
        external_ids={"DOC": {"value": f"SYN-{n}", "issuer": "F-NORTH"}}, given_name=f"G{n}",
        family_name="Pellwickton", date_of_birth=date(1985, 1, 1),
        admitted_on=datetime.now(UTC).date() - timedelta(days=50), expected_release_on=None,
        counselor_id=None, referral_source=None, program_agreement_signed=True,
        reason="synthetic", assessments=[]).id


def test_a_reader_racing_writers_misses_nothing(services):
    reader = LogReader(services.ledger.recorder, batch_size=7)
    pids = [admit(services, n) for n in range(6)]
    stop = threading.Event()
    seen: list[int] = []

    def read_continuously():
        last = 0
        while True:
            done = stop.is_set()  # read once more after the writers have finished
            for note in reader.read(last):
                seen.append(note.id)
                last = note.id
            if done:
                return

    def write(pid):
        for _ in range(25):
            services.ledger.execute(pid, lambda p, policy: p.record_infraction(
                policy, by=staff(), code="house-rule-lateness", observed_at=datetime.now(UTC),
                description="late", reason="staff report"))

    consumer = threading.Thread(target=read_continuously)
    consumer.start()
    writers = [threading.Thread(target=write, args=(pid,)) for pid in pids]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    consumer.join()
    stored = [n.id for n in reader.read(0)]
    assert len(stored) == 6 + 6 * 25
    assert seen == stored  # every event once, in log order, none skipped while in flight
    assert reader.head() == stored[-1]


def test_wait_for_a_position(services):
    reader = LogReader(services.ledger.recorder)
    assert reader.head() == 0
    position = services.ledger.recorder.max_notification_id() or 0
    assert reader.wait_for(position, timeout=0.1)
    assert not reader.wait_for(position + 1, timeout=0.05)
    admit(services, 1)
    assert reader.wait_for(position + 1, timeout=0.5)
