"""Webhook delivery benchmark on PostgreSQL: deliveries per second to a local receiver.

Target (issue 5): >= 500 webhook deliveries/s. Beside it, in the same run, the raw
baseline: the same receiver hit by a plain httpx loop with the same concurrency, posting
the same number of bodies of the same size (no database, no signing, no consent). The
ratio says what the outbox, the consent check, the access log, signing and the
bookkeeping cost on top of HTTP itself.

The receiver is uvicorn in a child process answering 204. The history is synthetic: P
participants who consent to `stage-progress`, each with E privilege decisions; the
outbox is filled by the projection (timed on its own), then one worker delivers it all.

    python bench/webhooks.py                          # 200 participants x 10 events
    python bench/webhooks.py --participants 50 --events 4
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.wiring import build_access_log  # noqa: E402
from bench.live_server import bench_database  # noqa: E402
from domain.provenance import Provenance  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.wiring import build  # noqa: E402
from integrations.wiring import build_webhook_worker, build_webhooks  # noqa: E402
from projections.wiring import build_runner  # noqa: E402

KEK = "q6p0cWq7dH1oJ7rN3Jm1d8m0YyV2b2c0b3d4ZTVmNjc="  # synthetic, benchmarks only
BY = Provenance("bench-staff", "counselor")
RECEIVER = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, http="httptools", loop="uvloop")
"""


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def receiver() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)],
                             stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        child.terminate()
        child.wait(10)


def make_history(services, participants: int, events: int) -> None:
    policy = services.policies.get("tc-default")
    today = datetime.now(UTC).date()
    ids = []
    for n in range(participants):
        ids.append(services.ledger.admit(
            policy, BY, facility="F-NORTH", unit="U-1",
            external_ids={"DOC": {"value": f"SYN-B{n:06d}", "issuer": "F"}},
            given_name=f"Bench{n}", family_name="Synthetica",
            date_of_birth=date(1980, 1, 1) + timedelta(days=n),
            admitted_on=today - timedelta(days=60), expected_release_on=None,
            counselor_id="c-1", referral_source=None, program_agreement_signed=True,
            reason="synthetic", assessments=[]).id)
    now = datetime.now(UTC)
    for pid in ids:
        services.ledger.execute(pid, lambda p, _: p.give_consent(
            by=BY, recipient="Synthetic Parole", purpose="supervision",
            categories=["stage-progress"], at=now, expires_on=today + timedelta(days=30)))
    for k in range(events):
        for pid in ids:
            services.ledger.execute(pid, lambda p, policy, k=k: (
                p.grant_privilege(policy, by=BY, privilege="commissary", at=now, reason="r")
                if k % 2 == 0 else
                p.revoke_privilege(policy, by=BY, privilege="commissary", at=now,
                                   reason="r")))


def raw_baseline(url: str, count: int, size: int, concurrency: int) -> float:
    """Deliveries/s of a plain httpx loop: same receiver, concurrency and body size."""
    body = b"x" * size
    with httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client:
        def post(_: int) -> int:
            return client.post(url, content=body, headers={
                "content-type": "application/json"}).status_code
        with ThreadPoolExecutor(concurrency) as pool:
            started = time.perf_counter()
            codes = list(pool.map(post, range(count)))
            elapsed = time.perf_counter() - started
    assert all(c == 204 for c in codes)
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    base = os.environ.get("TCLEDGER_BENCH_PG_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
    with bench_database(base, prefix="tcl_bench_webhooks_") as (_, url), \
            TemporaryDirectory() as tmp, receiver() as target:
        settings = Settings(database_url=url, kek=KEK, var_dir=Path(tmp),
                            webhook_concurrency=args.concurrency)
        services = build(settings)
        try:
            webhooks = build_webhooks(services)
            runner = build_runner(services, extra=[webhooks.outbox])
            client, _ = webhooks.clients.create(recipient="Synthetic Parole",
                                                categories=["stage-progress"])
            webhooks.subscriptions.create(client, target, [])
            step(f"recording {args.participants} participants x {args.events} events")
            make_history(services, args.participants, args.events)
            step("filling the outbox (the projection)")
            started = time.perf_counter()
            runner.catch_up()
            enqueue = time.perf_counter() - started
            rows = webhooks.deliveries.list(limit=1_000_000)
            count = len(rows)
            assert count == args.participants * args.events, count
            worker = build_webhook_worker(services, webhooks, build_access_log(services),
                                          batch_size=500)
            step(f"delivering {count} webhooks, {args.concurrency} at a time")
            started = time.perf_counter()
            while worker.run_until_idle():
                pass
            deliver = time.perf_counter() - started
            worker.close()
            delivered = [r for r in webhooks.deliveries.list(limit=1_000_000)
                         if r["state"] == "delivered"]
            assert len(delivered) == count, len(delivered)
            size = len(services.store.fetch_one(
                "SELECT body FROM tcledger_webhook_outbox LIMIT 1")["body"])
            step("raw baseline: plain httpx, same receiver and concurrency")
            raw = raw_baseline(target, count, size, args.concurrency)
        finally:
            services.close()
    rate = count / deliver
    print(f"\nwebhooks on PostgreSQL, {count} deliveries, concurrency {args.concurrency}")
    print(f"  {'outbox filled by the projection':<44} {count / enqueue:>10,.0f} rows/s")
    print(f"  {'webhook deliveries (worker, end to end)':<44} {rate:>10,.0f} /s"
          f"   target >= 500/s: {'met' if rate >= 500 else 'NOT met'}")
    print(f"  {'raw baseline (httpx loop, same receiver)':<44} {raw:>10,.0f} /s")
    print(f"  {'ratio webhooks / raw':<44} {rate / raw:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
