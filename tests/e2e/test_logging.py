"""Logs carry ids, routes, statuses and durations, and never a name, number, result or reason."""

from __future__ import annotations

import io
import json

import structlog

from infra.logging import configure_logging
from tests.e2e.scenario import run_lifecycle


def test_logs_are_json_lines_without_personal_data(api):
    buffer = io.StringIO()
    configure_logging("debug", stream=buffer)
    try:
        done = run_lifecycle(api)
        doc = done["admission"]["doc_number"]
        api.get("/participants", params={"doc_number": doc})  # PII in a query string
        api.post(f"/participants/{done['id']}/privileges",
                 {"action": "grant", "privilege": "commissary", "reason": "Secret reason zq99"})
        api.post("/participants", {"given_name": done["admission"]["given_name"]})  # invalid
    finally:
        structlog.reset_defaults()
    text = buffer.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) >= 15
    for line in requests:
        assert {"request_id", "actor_id", "route", "status", "duration_ms", "method"} <= set(line)
        assert line["actor_id"]
    assert {line["status"] for line in requests} >= {200, 201, 409, 422}
    for secret in [*done["secrets"], "Secret reason zq99"]:
        assert secret.lower() not in text.lower(), f"{secret!r} leaked into the logs"
