"""An access-log index made before disclosures named their events gains the column, and
the entries it already holds stay as they were."""

from __future__ import annotations

from audit.access import Access
from audit.wiring import build_access_log

OLD_TABLE = (
    "CREATE TABLE tcledger_access_log ("
    " position BIGINT NOT NULL, participant_id TEXT NOT NULL, at TEXT NOT NULL,"
    " actor_id TEXT NOT NULL, role TEXT NOT NULL, facility TEXT, action TEXT NOT NULL,"
    " method TEXT NOT NULL, route TEXT NOT NULL, status INTEGER NOT NULL,"
    " request_id TEXT NOT NULL, remote TEXT, recipient TEXT,"
    " PRIMARY KEY (position, participant_id))")


def test_an_old_index_gains_the_events_column(services) -> None:
    services.store.execute(OLD_TABLE)
    services.store.execute(
        "INSERT INTO tcledger_access_log (position, participant_id, at, actor_id, role,"
        " action, method, route, status, request_id) VALUES"
        " (0, 'p-old', '2026-01-01T00:00:00+00:00', 'a', 'counselor', 'read', 'GET', '/x',"
        " 200, 'r')")
    access_log = build_access_log(services)
    build_access_log(services)  # a second process starting finds the column there
    access_log.record(Access(
        participant_ids=["p-new"], actor_id="i", role="integration", facility=None,
        action="disclosure", method="GET", route="/feed", status=200, request_id="r2",
        remote=None, recipient="Synthetic Parole Office",
        events=[{"participant": "p-new", "version": 3, "type": "Discharged"}]))
    access_log.catch_up()
    old, new = access_log.query()
    assert old["participant"] == "p-old" and "events" not in old
    assert new["events"] == [{"participant": "p-new", "version": 3, "type": "Discharged"}]
