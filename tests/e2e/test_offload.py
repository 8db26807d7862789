"""Blocking work runs inline only when the process serves nothing else."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from api.app import InFlight
from api.deps import offload


def request_with(count: int) -> SimpleNamespace:
    in_flight = InFlight()
    in_flight.count = count
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(in_flight=in_flight)))


def test_alone_inline_otherwise_in_the_thread_pool():
    def where() -> int:
        return threading.get_ident()

    async def main() -> tuple[int, int, int]:
        loop_thread = threading.get_ident()
        alone = await offload(request_with(1), where)
        busy = await offload(request_with(3), where)
        return loop_thread, alone, busy

    loop_thread, alone, busy = asyncio.run(main())
    assert alone == loop_thread
    assert busy != loop_thread


def test_concurrent_writes_through_http_all_land(api):
    from concurrent.futures import ThreadPoolExecutor

    from tests.e2e.people import synthetic_admission
    pids = [api.post("/participants", synthetic_admission(i)).json()["id"] for i in range(4)]
    body = {"code": "house-rule-lateness", "observed_at": "2026-11-01T09:00:00+00:00",
            "reason": "staff report"}

    def write(pid: str) -> list[int]:
        return [api.post(f"/participants/{pid}/infractions", body).status_code
                for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        statuses = [s for result in pool.map(write, pids) for s in result]
    assert statuses == [201] * 20
    assert api.client.app.state.in_flight.count == 0
