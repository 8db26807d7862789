"""Roster benchmark: a 40-person attendance roster in one request, against raw PostgreSQL.

    .venv/bin/python bench/community.py [--rosters N] [--size 40] [--pg-url URL]
                                        [--json FILE] [--profile]

One run, against a fresh PostgreSQL database `tcl_bench_<random>` (dropped at the end):

1. raw    40 event-shaped rows (uuid, bigint version, text topic, ~400-byte bytea; the
          keys of the event table) inserted in one transaction and committed, psycopg 3,
          one connection; the time of each transaction.
2. app    TCLedger.execute_each over 40 participants (one GroupAttended or GroupMissed
          line each, every accepted line saved in one transaction): the write path without
          HTTP.
3. http   POST /groups/{id}/attendance with 40 lines, through uvicorn and the real app in
          its own process (as `tcledger serve` runs it, its views kept by a child process),
          a keep-alive connection; each roster a new session of the same 40 people, sent
          once the views have caught up with the one before (outside the timing).
4. flood  the same, back to back: each roster meets the views still projecting the one
          before (about 40 records to fold, seal and count) on the same CPUs.

Prints p50, p99 and max of each, the ratios of the HTTP roster to the raw transaction,
and the targets beside them (p99 <= 150 ms, <= 10x raw). With --profile, a cProfile of
the app-level roster loop. All people are synthetic; the key-encryption key is random for
each run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg

# Shared with the command benchmark: its database, server, client and figures.
from commands import (
    DEFAULT_PG_URL,
    FACILITY,
    PROGRAM,
    RAW_INDEX,
    RAW_INSERT,
    RAW_PAYLOAD_BYTES,
    RAW_TABLE,
    Held,
    LeanClient,
    Result,
    Server,
    admit_many,
    on_throwaway_database,
    provenance,
)

TARGET_P99_MS = 150.0
TARGET_RATIO = 10.0
STATUSES = ("present", "present", "present", "late", "excused", "absent")


def raw_rosters(url: str, size: int, count: int, warmup: int) -> Result:
    """`count` transactions of `size` event-shaped rows each, timed from the first insert
    to the commit."""
    payload = os.urandom(RAW_PAYLOAD_BYTES)
    topic = "domain.events:GroupAttended"
    streams = [uuid.uuid4() for _ in range(size)]
    result = Result("raw", 1)
    with psycopg.connect(url, autocommit=False) as conn, conn.cursor() as cur:
        for n in range(1, warmup + count + 1):
            t0 = time.perf_counter()
            cur.executemany(RAW_INSERT, [(s, n, topic, payload) for s in streams])
            conn.commit()
            if n > warmup:
                result.latencies.append(time.perf_counter() - t0)
    result.elapsed = sum(result.latencies)
    return result


def hold_sessions(services: Any, count: int) -> list[UUID]:
    """Sessions held over the last hours, one a minute: each roster has its own."""
    from domain.groups import GroupSession
    policy = services.policies.get(PROGRAM)
    start = datetime.now(UTC) - timedelta(minutes=count + 5)
    found = []
    for n in range(count):
        session = GroupSession.hold(
            policy, by=provenance(), facility=FACILITY, unit="U-1", kind="community-meeting",
            held_at=start + timedelta(minutes=n), duration_minutes=60,
            facilitator_staff_id="staff-bench")
        found.append(services.ledger.hold_group(session).id)
    return found


def roster_lines(people: list[UUID]) -> list[tuple[UUID, str]]:
    return [(pid, STATUSES[n % len(STATUSES)]) for n, pid in enumerate(people)]


def app_roster(services: Any, group_id: UUID, people: list[UUID]) -> None:
    from domain import community as c
    session = services.ledger.group(group_id).session
    by = provenance()
    outcomes = services.ledger.execute_each({
        pid: (lambda p, _, status=status: c.record_attendance(p, session, by=by,
                                                             status=status))
        for pid, status in roster_lines(people)})
    refused = [o for o in outcomes.values() if isinstance(o, Exception)]
    if refused:
        raise RuntimeError(f"a roster line was refused: {refused[0]!r}")


def timed(op: Any, items: list[Any], warmup: int, name: str,
          between: Any = None) -> Result:
    result = Result(name, 1)
    for n, item in enumerate(items):
        if between is not None:
            between()  # outside the timing
        t0 = time.perf_counter()
        op(item)
        if n >= warmup:
            result.latencies.append(time.perf_counter() - t0)
    result.elapsed = sum(result.latencies)
    return result


def views_caught_up(base: str, token: str) -> Any:
    """Waits until the server's views hold every roster so far: a roster then meets a
    server that is not still projecting the one before (a counselor's roster, not a
    flood of them)."""
    def wait() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = httpx.get(base + "/health", timeout=5.0)
            if health.status_code == 200 and all(
                    p["lag"] == 0 for p in health.json()["projections"]):
                return
            time.sleep(0.01)
        raise RuntimeError("the views did not catch up within a minute")
    return wait


def http_roster(client: LeanClient, people: list[UUID]) -> Any:
    body = {"records": [{"participant_id": str(pid), "status": status}
                        for pid, status in roster_lines(people)]}

    def post(group_id: UUID) -> None:
        status, text = client.post(f"/groups/{group_id}/attendance", body)
        answer = json.loads(text) if status == 200 else None
        if answer is None or answer["recorded"] != len(people):
            raise RuntimeError(f"HTTP {status}: {text[:300]!r}")
    return post


def report(res: dict[str, Result], meta: dict[str, Any]) -> dict[str, Any]:
    raw, http = res["raw"], res["http"]
    print()
    print(f"tcledger roster benchmark  ({meta['when']})")
    print(f"  PostgreSQL {meta['pg_version']}, database {meta['db']} (dropped at exit); "
          f"{meta['cpus']} CPUs, Python {meta['python']}; {meta['size']} lines a roster, "
          f"{meta['rosters']} rosters each after {meta['warmup']} warm-up")
    print()
    print(f"  {'measurement':<58} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    print("  " + "-" * 94)
    labels = {"raw": f"raw PG: {meta['size']} rows inserted in one transaction",
              "app": "app: ledger.execute_each (one transaction)",
              "http": "http: POST /groups/{id}/attendance",
              "http_flood": "http: the same, back to back (views busy)"}
    for key, r in res.items():
        print(f"  {labels[key]:<58} {r.ops:>5} {r.pct(.5):>9.2f} {r.pct(.99):>9.2f} "
              f"{r.pct(1.0):>9.2f}")
    ratios = {"p50": http.pct(.5) / raw.pct(.5), "p99": http.pct(.99) / raw.pct(.99)}
    checks = [
        ("http p99", f"{http.pct(.99):.1f} ms", f"<= {TARGET_P99_MS:.0f} ms",
         http.pct(.99) <= TARGET_P99_MS),
        ("http p99 / raw p99", f"{ratios['p99']:.1f}x", f"<= {TARGET_RATIO:.0f}x",
         ratios["p99"] <= TARGET_RATIO),
        ("http p50 / raw p50", f"{ratios['p50']:.1f}x", f"<= {TARGET_RATIO:.0f}x",
         ratios["p50"] <= TARGET_RATIO),
    ]
    print()
    print(f"  {'check':<30} {'measured':>10}   {'target':<10} verdict")
    print("  " + "-" * 60)
    for label, value, target, ok in checks:
        print(f"  {label:<30} {value:>10}   {target:<10} {'PASS' if ok else 'MISS'}")
    print()
    return {"meta": meta, "results": {k: r.as_dict() for k, r in res.items()},
            "ratios": {k: round(v, 2) for k, v in ratios.items()},
            "checks": [{"check": c[0], "measured": c[1], "target": c[2], "ok": c[3]}
                       for c in checks]}


def profile(services: Any, sessions: list[UUID], people: list[UUID]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for group_id in sessions:
        app_roster(services, group_id, people)
    profiler.disable()
    out = io.StringIO()
    out.write(f"cProfile of {len(sessions)} app-level rosters of {len(people)} lines\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(20)
    return out.getvalue()


def run(args: argparse.Namespace, dbname: str, url: str, kek: str, var_dir: Path,
        held: Held) -> None:
    from infra.settings import Settings
    from infra.wiring import build

    def step(msg: str) -> None:
        print(f"... {msg}", file=sys.stderr, flush=True)

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        conn.execute(RAW_INDEX)
        pg_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    services = held.services = build(Settings(var_dir=var_dir, database_url=url, kek=kek,
                                              log_level="warning"))
    total = args.warmup + args.rosters
    res: dict[str, Result] = {}
    step(f"raw PostgreSQL: {total} transactions of {args.size} rows")
    res["raw"] = raw_rosters(url, args.size, args.rosters, args.warmup)

    step(f"admitting {args.size} + {args.size} participants, holding "
         f"{2 * total + (args.profile_rosters if args.profile else 0)} sessions")
    app_people = admit_many(services, args.size, 1)
    http_people = admit_many(services, args.size, 100_001)
    app_sessions = hold_sessions(services, total)
    http_sessions = hold_sessions(services, 2 * total)
    extra = hold_sessions(services, args.profile_rosters) if args.profile else []

    step("app-level rosters")
    res["app"] = timed(lambda g: app_roster(services, g, app_people), app_sessions,
                       args.warmup, "app")

    step("HTTP rosters (server process)")
    _, token = services.tokens.create(role="counselor", name="bench counselor",
                                      facility=FACILITY)
    server = held.server = Server("process", services, {
        "TCLEDGER_DATABASE_URL": url, "TCLEDGER_KEK": kek,
        "TCLEDGER_VAR_DIR": str(var_dir), "TCLEDGER_LOG_LEVEL": "warning"})
    client = LeanClient(server.base, token)
    try:
        res["http"] = timed(http_roster(client, http_people), http_sessions[:total],
                            args.warmup, "http", views_caught_up(server.base, token))
        step("HTTP rosters back to back (the views' work competes with them)")
        res["http_flood"] = timed(http_roster(client, http_people), http_sessions[total:],
                                  args.warmup, "http_flood")
    finally:
        client.close()
    server.stop()
    held.server = None
    meta = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "pg_version": pg_version, "db": dbname, "cpus": os.cpu_count(),
            "python": sys.version.split()[0], "size": args.size, "rosters": args.rosters,
            "warmup": args.warmup}
    figures = report(res, meta)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    if args.profile:
        print(profile(services, extra, app_people))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rosters", type=int, default=200, help="measured per path")
    parser.add_argument("--warmup", type=int, default=20, help="rosters not measured")
    parser.add_argument("--size", type=int, default=40, help="lines per roster")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="server URL whose user may create databases")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--profile", action="store_true",
                        help="then cProfile app-level rosters")
    parser.add_argument("--profile-rosters", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from api.app import create_app  # noqa: F401  (import cost outside the timings)

    on_throwaway_database(args.pg_url, "tcl_bench_", lambda dbname, url, kek, var_dir, held:
                          run(args, dbname, url, kek, var_dir, held))
    return 0

if __name__ == "__main__":
    sys.exit(main())
