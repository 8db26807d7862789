"""The outbox and the delivery worker against real stores (SQLite and PostgreSQL) and a real
receiver: a worker killed mid-delivery, two workers at once, consent that expires before
delivery, what is sealed at rest, and a rebuild that must not send history again. The
views are driven by hand (no background keepers) so each step is explicit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from audit.wiring import build_access_log
from infra.settings import Settings
from integrations.wiring import build_webhook_worker
from tests.conftest import TEST_KEK, Api, make_settings
from tests.e2e.integration_clients import PAROLE, IntegrationClient
from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import ok
from tests.e2e.webhook_receiver import Receiver, ids_per_participant

FAST = {"webhook_retry_schedule": "0,0.1,0.2,0.3,0.4,0.5", "webhook_timeout": 0.2,
        "webhook_poll_interval": 0.02}


@pytest.fixture
def settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("pg_database") if store_kind == "postgres" else ""
    return make_settings(tmp_path, url, **FAST)


@pytest.fixture
def quiet_api(services) -> Iterator[Api]:
    """The API with nobody keeping views or delivering: the test does it."""
    with TestClient(create_app(services, projections="off"),
                    raise_server_exceptions=False) as client:
        yield Api(client, services)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.stop()


def worker(api: Api, **overrides):
    app = api.client.app
    return build_webhook_worker(api.services, app.state.integrations.webhooks,
                                build_access_log(api.services), **overrides)


def history(api: Api, participants: int, events: int, expires_on: str | None = None,
            seed: int = 400) -> list[str]:
    """Participants consenting to stage-progress, each with `events` privilege decisions."""
    pids = []
    for n in range(participants):
        pid = ok(api.post("/participants", synthetic_admission(seed + n, days_ago=90)))["id"]
        ok(api.post(f"/participants/{pid}/consents", {
            "recipient": PAROLE, "purpose": "parole", "categories": ["stage-progress"],
            "expires_on": expires_on or (datetime.now(UTC).date()
                                         + timedelta(days=30)).isoformat()}))
        pids.append(pid)
    for k in range(events):
        action = "grant" if k % 2 == 0 else "revoke"
        for pid in pids:
            ok(api.post(f"/participants/{pid}/privileges", {
                "action": action, "privilege": "commissary", "reason": "r"}))
    api.client.app.state.runner.catch_up()
    return pids


def states(api: Api) -> Counter[str]:
    rows = api.client.app.state.integrations.webhooks.deliveries.list(limit=10_000)
    return Counter(r["state"] for r in rows)


def until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def assert_in_order_once_each(receiver: Receiver, secret: str, pids: list[str],
                              per_participant: int) -> None:
    events = receiver.events(secret)  # verified, first of each webhook-id
    got = ids_per_participant(events)
    assert sorted(got) == sorted(pids)
    for versions in got.values():
        assert len(versions) == per_participant and versions == sorted(versions)
    bodies: dict[str, bytes] = {}
    for r in receiver.delivered():  # a duplicate is the same delivery again
        assert bodies.setdefault(r.headers["webhook-id"], r.body) == r.body


def test_a_worker_killed_mid_delivery_loses_nothing(quiet_api, receiver, settings,
                                                    tmp_path) -> None:
    parole = IntegrationClient(quiet_api, PAROLE, ["stage-progress"])
    sub = ok(parole.post("/webhooks/subscriptions", {"url": receiver.url}))
    pids = history(quiet_api, 3, 4)
    held, release = threading.Event(), threading.Event()

    def hold_first(headers: dict[str, str], body: bytes) -> tuple[int, float]:
        if not held.is_set():
            held.set()
            release.wait(30)
        return 200, 0.0
    receiver.behaviour = hold_first
    env = {**os.environ, "TCLEDGER_VAR_DIR": str(settings.var_dir), "TCLEDGER_KEK": TEST_KEK,
           "TCLEDGER_DATABASE_URL": settings.database_url,
           "TCLEDGER_WEBHOOK_RETRY_SCHEDULE": settings.webhook_retry_schedule,
           "TCLEDGER_WEBHOOK_TIMEOUT": "0.5", "TCLEDGER_WEBHOOK_POLL_INTERVAL": "0.02"}
    child = subprocess.Popen([sys.executable, "-m", "infra.cli", "webhooks", "run"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=Path(__file__).parents[2])
    try:
        assert held.wait(60), "the worker process never delivered"
        child.send_signal(signal.SIGKILL)  # mid-delivery: its rows stay leased
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    release.set()
    assert states(quiet_api)["delivered"] < 12
    # A new worker takes the rows over once the dead one's lease runs out (its lease is
    # sized for its 0.5 s timeout: about 17 s).
    replacement = worker(quiet_api)
    try:
        until(lambda: replacement.run_until_idle() >= 0
              and states(quiet_api)["delivered"] == 12, timeout=90)
    finally:
        replacement.close()
    assert_in_order_once_each(receiver, sub["secret"], pids, 4)


def test_two_workers_at_once_deliver_each_event_once(quiet_api, receiver) -> None:
    parole = IntegrationClient(quiet_api, PAROLE, ["stage-progress"])
    sub = ok(parole.post("/webhooks/subscriptions", {"url": receiver.url}))
    pids = history(quiet_api, 8, 5)
    workers = [worker(quiet_api, concurrency=4, batch_size=3) for _ in range(2)]
    errors: list[BaseException] = []

    def drive(w) -> None:
        try:
            until(lambda: w.run_until_idle() >= 0 and states(quiet_api)["delivered"] == 40)
        except BaseException as exc:  # reported below
            errors.append(exc)
    threads = [threading.Thread(target=drive, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.close()
    assert errors == []
    ids = [r.headers["webhook-id"] for r in receiver.delivered()]
    assert len(ids) == len(set(ids)) == 40  # no failures, so no duplicates at all
    assert_in_order_once_each(receiver, sub["secret"], pids, 5)


def test_consent_expired_by_delivery_time_is_withheld(quiet_api, receiver) -> None:
    parole = IntegrationClient(quiet_api, PAROLE, ["stage-progress"])
    ok(parole.post("/webhooks/subscriptions", {"url": receiver.url}))
    today = datetime.now(UTC).date()
    history(quiet_api, 2, 2, expires_on=today.isoformat())  # in force when recorded
    late = worker(quiet_api, today=lambda: today + timedelta(days=1))
    try:
        late.run_until_idle()
    finally:
        late.close()
    assert states(quiet_api) == Counter({"withheld": 4})
    assert receiver.requests == []
    rows = quiet_api.client.app.state.integrations.webhooks.deliveries.list()
    assert all("consent" in r["last_error"] for r in rows)


def test_secrets_and_bodies_are_sealed_at_rest(quiet_api, receiver) -> None:
    parole = IntegrationClient(quiet_api, PAROLE, ["stage-progress"])
    sub = ok(parole.post("/webhooks/subscriptions", {"url": receiver.url}))
    history(quiet_api, 1, 1)
    store = quiet_api.services.store
    secret_row = store.fetch_one("SELECT secret FROM tcledger_webhook_subscriptions")
    raw = bytes(secret_row["secret"])
    assert sub["secret"].encode() not in raw and sub["secret"][6:].encode() not in raw
    body = bytes(store.fetch_one("SELECT body FROM tcledger_webhook_outbox")["body"])
    assert b"SYN-" not in body and b"specversion" not in body
    w = worker(quiet_api)
    try:
        w.run_until_idle()
    finally:
        w.close()
    assert b"SYN-" in receiver.delivered()[0].body  # the DOC number leaves, signed


def test_a_rebuild_does_not_send_history_again(quiet_api, receiver) -> None:
    parole = IntegrationClient(quiet_api, PAROLE, ["stage-progress"])
    ok(parole.post("/webhooks/subscriptions", {"url": receiver.url}))
    history(quiet_api, 2, 3)
    runner = quiet_api.client.app.state.runner
    w = worker(quiet_api)
    try:
        w.run_until_idle()
        assert states(quiet_api) == Counter({"delivered": 6})
        sent = len(receiver.requests)
        runner.catch_up()
        before = runner.position("webhook_outbox")
        runner.rebuild()  # every view: the outbox is not one of them
        assert runner.position("webhook_outbox") == before
        runner.rebuild("webhook_outbox")  # named: run again over the log, adds nothing
        assert states(quiet_api) == Counter({"delivered": 6})
        assert w.run_until_idle() == 0
        assert len(receiver.requests) == sent
    finally:
        w.close()
