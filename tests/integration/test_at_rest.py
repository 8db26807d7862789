"""Nothing personal can be read from the raw database, and history cannot be edited."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from infra.cipher import EventDecryptionError
from tests.e2e.scenario import run_lifecycle

EVENTS = "tcledger_events"


def raw_bytes(api, settings) -> bytes:
    if settings.uses_postgres:
        dump = subprocess.run([shutil.which("pg_dump") or "pg_dump", "--no-owner",
                               settings.database_url], capture_output=True, check=True)
        return dump.stdout
    path = settings.sqlite_path
    files = [path, path.with_name(path.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_raw_database_holds_nothing_in_clear(api, settings):
    done = run_lifecycle(api)
    api.client.app.state.runner.catch_up()  # the views hold their copy too
    views = api.services.store.fetch_all("SELECT count(*) AS n FROM tcledger_participant_summary")
    assert views[0]["n"] == 1
    raw = raw_bytes(api, settings)
    assert EVENTS.encode() in raw or b"stored_events" in raw or len(raw) > 10000
    for secret in done["secrets"]:
        for form in {secret, secret.lower(), secret.upper()}:
            assert form.encode() not in raw, f"found {secret!r} in clear"
            assert form.encode("utf-16-le") not in raw
    # The key-encryption key and data keys are not in the database either.
    assert settings.kek.encode() not in raw


def _stored(services, pid: UUID) -> list[StoredEvent]:
    return list(services.ledger.recorder.select_events(pid))


def test_ciphertext_moved_to_another_row_does_not_decrypt(services):
    from datetime import date

    from domain.provenance import Provenance
    from tests.e2e.people import synthetic_admission
    by = Provenance("staff-1", "counselor")
    policy = services.policies.get("tc-default")
    ids = []
    for seed in (1, 2):
        body = synthetic_admission(seed)
        ids.append(services.ledger.admit(
            policy, by, facility="F-NORTH", unit="U-1",
            external_ids={"DOC": {"value": body["doc_number"], "issuer": "F-NORTH"}},
            given_name=body["given_name"], family_name=body["family_name"],
            date_of_birth=date.fromisoformat(body["date_of_birth"]),
            admitted_on=date.fromisoformat(body["admitted_on"]), expected_release_on=None,
            counselor_id=None, referral_source=None, program_agreement_signed=True,
            reason="synthetic admission", assessments=[{"instrument": "LSI-R", "score": 20}],
        ).id)
    first, second = (_stored(services, i) for i in ids)
    mapper = services.ledger.mapper
    # Another stream's ciphertext, the same stream's other version, another event type.
    for victim, donor in ((first[0], second[0]), (first[0], first[1]),
                          (StoredEvent(first[1].originator_id, 1, first[0].topic,
                                       first[1].state), first[1])):
        forged = StoredEvent(victim.originator_id, victim.originator_version, victim.topic,
                             donor.state)
        with pytest.raises(EventDecryptionError, match="does not authenticate"):
            mapper.to_domain_event(forged)
    # A single flipped bit anywhere fails too.
    state = bytearray(first[0].state)
    state[-1] ^= 1
    with pytest.raises(EventDecryptionError):
        mapper.to_domain_event(StoredEvent(first[0].originator_id, 1, first[0].topic,
                                           bytes(state)))
    assert mapper.to_domain_event(first[0]).given_name  # the untouched row still reads


def test_copied_row_is_refused_through_the_store(api, settings):
    """An attacker with superuser rights disables the guard and copies a row's payload."""
    a = run_lifecycle(api, seed=1)["id"]
    b = run_lifecycle(api, seed=2)["id"]
    if settings.uses_postgres:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {EVENTS} DISABLE TRIGGER USER")
            conn.execute(f"UPDATE {EVENTS} SET state = (SELECT state FROM {EVENTS} WHERE "
                         "originator_id = %s AND originator_version = 2) WHERE originator_id = %s "
                         "AND originator_version = 2", (UUID(b), UUID(a)))
    else:
        with sqlite3.connect(settings.sqlite_path) as conn:
            conn.execute(f"DROP TRIGGER {EVENTS}_no_update")
            conn.execute(f"UPDATE {EVENTS} SET state = (SELECT state FROM {EVENTS} WHERE "
                         "originator_id = ? AND originator_version = 2) WHERE originator_id = ? "
                         "AND originator_version = 2", (UUID(b).hex, UUID(a).hex))
    api.services.ledger.forget(UUID(a))
    answer = api.get(f"/participants/{a}")
    assert answer.status_code == 500
    assert answer.json()["type"] == "urn:tcledger:problem:integrity"
    assert api.get(f"/participants/{b}").status_code == 200


def test_stored_events_refuse_update_and_delete(api, settings):
    run_lifecycle(api)
    if settings.uses_postgres:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            for statement in (f"UPDATE {EVENTS} SET topic = 'x'", f"DELETE FROM {EVENTS}",
                              f"TRUNCATE {EVENTS}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="immutable"):
                    conn.execute(statement)
            count = conn.execute(f"SELECT count(*) FROM {EVENTS}").fetchone()[0]
    else:
        with sqlite3.connect(settings.sqlite_path) as conn:
            for statement in (f"UPDATE {EVENTS} SET topic = 'x'", f"DELETE FROM {EVENTS}"):
                with pytest.raises(sqlite3.IntegrityError, match="immutable"):
                    conn.execute(statement)
            count = conn.execute(f"SELECT count(*) FROM {EVENTS}").fetchone()[0]
    assert count > 10
