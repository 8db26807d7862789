"""Shared fixtures: real stores (an SQLite file, a fresh PostgreSQL database), the app, tokens.

PostgreSQL tests never skip: when no server answers they fail, so CI cannot pass silently
without them. TCLEDGER_TEST_PG_URL points at a server whose user may create databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.settings import Settings
from infra.wiring import Services, build


PG_URL = os.environ.get("TCLEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_KEK = "q6p0cWq7dH1oJ7rN3Jm1d8m0YyV2b2c0b3d4ZTVmNjc="  # synthetic, tests only


def pg_admin_url(database: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"tcl_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for this test and did not answer at {PG_URL}: "
                    f"{exc}. Start it (see README) or set TCLEDGER_TEST_PG_URL.")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_admin_url(name)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(tmp_path: Path, database_url: str = "", **overrides: Any) -> Settings:
    return Settings(var_dir=tmp_path / "var", database_url=database_url, kek=TEST_KEK,
                    **overrides)


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if store_kind == "postgres":
        url = request.getfixturevalue("pg_database")
        return make_settings(tmp_path, url)
    return make_settings(tmp_path)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build(settings)
    try:
        yield built
    finally:
        built.close()


class Api:
    """A test client with a token per role, for facility F-NORTH unless told otherwise."""

    def __init__(self, client: TestClient, services: Services) -> None:
        self.client = client
        self.services = services
        self._tokens: dict[tuple[str, str | None], str] = {}

    def token(self, role: str, facility: str | None = "F-NORTH") -> str:
        if role not in ("counselor", "supervisor"):
            facility = None
        key = (role, facility)
        if key not in self._tokens:
            _, secret = self.services.tokens.create(role=role, name=f"test {role}",
                                                    facility=facility)
            self._tokens[key] = secret
        return self._tokens[key]

    def headers(self, role: str, facility: str | None = "F-NORTH", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, facility)}", **extra}

    def post(self, path: str, body: Any, role: str = "counselor", **headers: str) -> Any:
        return self.client.post(path, json=body, headers=self.headers(role, **headers))

    def get(self, path: str, role: str = "counselor", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(role), **kwargs)


@pytest.fixture
def api(services: Services) -> Iterator[Api]:
    with TestClient(create_app(services, projections="thread"),
                    raise_server_exceptions=False) as client:
        yield Api(client, services)



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module-level Provenance keeps the moment the module was imported as its `now`, and
    the domain refuses entries more than the clock skew ahead of it: in a suite longer
    than that, such a module's tests fail for reasons of timing alone. Make one per
    command instead (as the API does); this refuses the pattern at collection."""
    from domain.provenance import Provenance

    modules = {item.module for item in items if isinstance(item, pytest.Function)}
    for module in modules:
        kept = [name for name, value in vars(module).items() if isinstance(value, Provenance)]
        if kept:
            raise pytest.UsageError(f"{module.__name__} keeps a Provenance at module level "
                                    f"({', '.join(kept)}): make one per command instead")
