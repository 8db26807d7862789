"""The application as PostgreSQL's restricted role: INSERT and SELECT on the events and the
ledger, nothing to create or alter. The owner makes the tables (`tcledger db migrate`) and
grants the role (`tcledger db grant-app-role`); the whole lifecycle then runs as the role,
and the role itself cannot change a stored event even with the triggers out of the way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.cli import main as cli
from infra.wiring import build
from tests.conftest import PG_URL, Api, make_settings
from tests.e2e.scenario import ok, run_lifecycle


def as_user(url: str, user: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture
def app_role(pg_database: str) -> Iterator[str]:
    name = f"tcl_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{name}" LOGIN')
    try:
        yield name
    finally:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_the_lifecycle_runs_as_a_role_that_can_only_add_events(
        pg_database: str, app_role: str, tmp_path: Path, monkeypatch) -> None:
    owner = make_settings(tmp_path, pg_database)
    for name, value in {"TCLEDGER_VAR_DIR": str(owner.var_dir),
                        "TCLEDGER_DATABASE_URL": pg_database, "TCLEDGER_KEK": owner.kek}.items():
        monkeypatch.setenv(name, value)
    assert cli(["db", "migrate"]) == 0
    assert cli(["db", "grant-app-role", app_role]) == 0

    restricted = make_settings(tmp_path, as_user(pg_database, app_role), create_tables=False)
    services = build(restricted)
    try:
        with TestClient(create_app(services, projections="thread"),
                        raise_server_exceptions=False) as client:
            api = Api(client, services)
            pid = run_lifecycle(api, seed=61)["id"]
            assert ok(api.get(f"/participants/{pid}"), 200)["status"] == "discharged"
            assert ok(api.post("/audit/tree-head", {}, role="auditor"), 201)["tree_size"] > 10
            ok(api.post(f"/admin/participants/{pid}/erasure", {"reason": "retention over"},
                        role="admin"), 201)
            assert api.get(f"/participants/{pid}").status_code == 410
    finally:
        services.close()

    with psycopg.connect(as_user(pg_database, app_role), autocommit=True) as conn:
        for statement in ("SET session_replication_role = replica",  # would skip triggers
                          "UPDATE tcledger_events SET topic = 'x'",
                          "DELETE FROM tcledger_events", "TRUNCATE tcledger_events",
                          "UPDATE tcledger_ledger_nodes SET hash = ''::bytea",
                          "DELETE FROM tcledger_ledger_heads",
                          "ALTER TABLE tcledger_events DISABLE TRIGGER USER",
                          "CREATE TABLE tcledger_mine (x INT)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
