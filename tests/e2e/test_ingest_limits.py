"""An NDJSON bulk push has its own body limit (TCLEDGER_INGEST_MAX_BODY_BYTES), larger than
every other request's, on SQLite and PostgreSQL: a bulk past the general 64 KB is taken
line by line; one past its own limit, announced or streamed, is 413 and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.conftest import make_settings
from tests.e2e.integration_clients import LAB, IntegrationClient
from tests.e2e.test_ingest_lab_results import (
    NDJSON,
    admitted_with_specimen,
    screen,
    version_of,
)

INGEST_LIMIT = 150_000
GENERAL_LIMIT = 65_536


@pytest.fixture
def settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("pg_database") if store_kind == "postgres" else ""
    return make_settings(tmp_path, url, ingest_max_body_bytes=INGEST_LIMIT)


def bulk(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def padded(count: int, first: dict) -> list[dict]:
    """The real result first, then results for specimens nobody holds (each refused)."""
    return [first] + [screen(f"LR-PAD-{i:05d}", f"SPC-NOBODY-{i:05d}",
                             lab="Synthetic Reference Laboratory of the Northern District")
                      for i in range(count)]


def test_a_bulk_past_the_general_limit_is_taken_line_by_line(api) -> None:
    lab = IntegrationClient(api, LAB, ["drug-tests"], ("lab-results",))
    pid = admitted_with_specimen(api, 301, "SPC-301")
    body = bulk(padded(400, screen("LR-301", "SPC-301")))
    assert GENERAL_LIMIT < len(body) < INGEST_LIMIT
    response = lab.post_raw("/ingest/lab-results", body, NDJSON)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["recorded"], answer["refused"]) == (1, 400)
    assert answer["results"][0]["status"] == 201 and answer["results"][0]["id"] == pid
    assert {r["status"] for r in answer["results"][1:]} == {404}


def test_a_bulk_past_its_own_limit_is_413_and_writes_nothing(api) -> None:
    lab = IntegrationClient(api, LAB, ["drug-tests"], ("lab-results",))
    pid = admitted_with_specimen(api, 302, "SPC-302")
    before = version_of(api, pid)
    body = bulk(padded(900, screen("LR-302", "SPC-302")))
    assert len(body) > INGEST_LIMIT
    refused = lab.post_raw("/ingest/lab-results", body, NDJSON)
    assert refused.status_code == 413
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "urn:tcledger:problem:body-too-large"
    assert str(INGEST_LIMIT) in refused.json()["detail"]

    def streamed() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    chunked = lab.api.client.post("/ingest/lab-results", content=streamed(),
                                  headers={**lab.headers, "content-type": NDJSON})
    assert chunked.status_code == 413
    assert str(INGEST_LIMIT) in chunked.json()["detail"]
    assert version_of(api, pid) == before
    # The same result pushed alone afterwards is recorded: nothing of it was kept.
    assert lab.post("/ingest/lab-results", screen("LR-302", "SPC-302")).status_code == 201


def test_other_requests_keep_the_general_limit(api) -> None:
    pid = admitted_with_specimen(api, 303, "SPC-303")
    before = version_of(api, pid)
    big = api.post(f"/participants/{pid}/privileges", {
        "action": "grant", "privilege": "commissary", "reason": "r" * 100_000})
    assert big.status_code == 413
    assert str(GENERAL_LIMIT) in big.json()["detail"]
    assert version_of(api, pid) == before
