"""Command benchmark: raw PostgreSQL commits vs. the application service vs. HTTP.

    .venv/bin/python bench/commands.py [--seconds N] [--pg-url URL] [--json FILE]
                                       [--participants N] [--http-mode process|thread]
                                       [--profile]

One run, against a fresh PostgreSQL database `tcl_bench_<random>` (dropped at the end):

1. raw     single-row INSERT + COMMIT of an event-shaped row (uuid, bigint version, text
           topic, ~400-byte bytea; same keys as the eventsourcing table), psycopg 3, one
           connection per client thread, each insert its own transaction; 1 and 8 clients.
2. app     TCLedger.execute(pid, record_infraction "house-rule-hygiene"): read the
           participant, check the rules, append one encrypted event; 1 and 8 clients, each
           client on its own participants (no conflicts).
3. http    POST /participants/{id}/infractions through uvicorn + the real app, a keep-alive
           HTTP/1.1 connection per client thread (a bare-socket client: LeanClient; httpx
           for the reads), 1 and 8 client threads.
4. read    a participant with 500 events: ledger.participant() cold (after forget) and
           warm, and GET /participants/{id} over HTTP (cold: first GET in the server; warm).

Prints a table, the ratios against the raw baseline at the same concurrency with the
targets beside them, and PostgreSQL wait events sampled during the 8-client runs.
All data is synthetic; the key-encryption key is random for each run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import os
import pstats
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench.live_server import (  # noqa: E402
    DEFAULT_PG_URL,
    Held,
    Server,
    on_throwaway_database,
)

FACILITY = "F-NORTH"
PROGRAM = "tc-default"
INFRACTION = "house-rule-hygiene"
RAW_PAYLOAD_BYTES = 400
BIG_EVENTS = 500

TARGETS = {
    "app_raw_1": 0.5, "app_raw_8": 0.3, "http_raw_1": 0.3,
    "p99_ms_8": 50.0, "read_500_ms": 30.0,
}


# --- measurement ------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    clients: int
    latencies: list[float] = field(default_factory=list)  # seconds
    elapsed: float = 0.0
    waits: dict[str, float] = field(default_factory=dict)

    @property
    def ops(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ops / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
        return ordered[index] * 1000

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "clients": self.clients, "ops": self.ops,
                "seconds": round(self.elapsed, 3), "per_second": round(self.rate, 1),
                "p50_ms": round(self.pct(0.50), 2), "p99_ms": round(self.pct(0.99), 2),
                "max_ms": round(self.pct(1.0), 2),
                **({"pg_wait_events": self.waits} if self.waits else {})}


Op = Callable[[], None]
Factory = Callable[[int], tuple[Op, Callable[[], None] | None]]


def run_clients(name: str, clients: int, factory: Factory, seconds: float,
                warmup: float, sampler: WaitSampler | None = None) -> Result:
    """Each client thread runs `op` back to back; only ops started inside the window count."""
    window: dict[str, float] = {}

    def open_window() -> None:
        now = time.perf_counter()
        window["start"] = now + warmup
        window["end"] = now + warmup + seconds

    barrier = threading.Barrier(clients, action=open_window)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    finished = [0.0] * clients
    errors: list[BaseException] = []

    def body(i: int) -> None:
        close = None
        try:
            op, close = factory(i)
            barrier.wait()
            start, end = window["start"], window["end"]
            mine = latencies[i]
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    break
                op()
                t1 = time.perf_counter()
                if t0 >= start:
                    mine.append(t1 - t0)
                    finished[i] = t1
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # report after the run
            errors.append(exc)
            barrier.abort()
        finally:
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    threads = [threading.Thread(target=body, args=(i,), name=f"{name}-{i}", daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    if sampler is not None:
        # Sample only inside the measured window.
        while "start" not in window and any(t.is_alive() for t in threads):
            time.sleep(0.005)
        if "start" in window:
            time.sleep(max(0.0, window["start"] - time.perf_counter()))
            sampler.start()
    for t in threads:
        t.join()
    result = Result(name, clients)
    if sampler is not None:
        result.waits = sampler.stop()
    if errors:
        raise RuntimeError(f"{name} x{clients} failed: {errors[0]!r}") from errors[0]
    result.latencies = [x for per in latencies for x in per]
    result.elapsed = max(finished) - window["start"] if result.latencies else 0.0
    return result


def timed_loop(op: Op, seconds: float, min_samples: int = 20,
               max_samples: int = 100_000) -> list[float]:
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while len(samples) < max_samples and (len(samples) < min_samples
                                          or time.perf_counter() < end):
        t0 = time.perf_counter()
        op()
        samples.append(time.perf_counter() - t0)
    return samples


class WaitSampler:
    """Samples pg_stat_activity of the bench database: what the client backends wait on."""

    def __init__(self, url: str, dbname: str, interval: float = 0.01) -> None:
        self.url, self.dbname, self.interval = url, dbname, interval
        self._stop = threading.Event()
        self._counts: Counter[str] = Counter()
        self._samples = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._counts.clear()
        self._samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'", (self.dbname,)).fetchall()
                for state, wtype, wevent in rows:
                    if state == "active":
                        key = f"{wtype}:{wevent}" if wtype else "CPU (running)"
                    elif state == "idle in transaction":
                        key = "idle in transaction (client side)"
                    else:
                        continue  # idle pooled connections: nothing to see
                    self._counts[key] += 1
                self._samples += 1
                self._stop.wait(self.interval)

    def stop(self) -> dict[str, float]:
        """Average number of backends in each state per sample (top entries)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._samples:
            return {}
        return {k: round(v / self._samples, 2) for k, v in self._counts.most_common(6)}


# --- database ---------------------------------------------------------------------------

RAW_TABLE = """
CREATE TABLE bench_raw_events (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text NOT NULL,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version))
"""
RAW_INDEX = "CREATE UNIQUE INDEX bench_raw_events_nid ON bench_raw_events (notification_id)"
RAW_INSERT = ("INSERT INTO bench_raw_events (originator_id, originator_version, topic, state)"
              " VALUES (%s, %s, %s, %s)")


def raw_factory(url: str) -> Factory:
    payload = os.urandom(RAW_PAYLOAD_BYTES)
    topic = "domain.events:InfractionRecorded"

    def factory(i: int) -> tuple[Op, Callable[[], None]]:
        conn = psycopg.connect(url, autocommit=False)
        cur = conn.cursor()
        stream = uuid.uuid4()
        versions = itertools.count(1)

        def op() -> None:
            cur.execute(RAW_INSERT, (stream, next(versions), topic, payload), prepare=True)
            conn.commit()
        return op, conn.close
    return factory


# --- the application --------------------------------------------------------------------

def admission_fields(seed: int) -> dict[str, Any]:
    from tests.e2e.people import synthetic_admission
    b = synthetic_admission(seed, facility=FACILITY, days_ago=200)
    return {
        "facility": b["facility"], "unit": b["unit"],
        "external_ids": {"DOC": {"value": b["doc_number"], "issuer": b["facility"]}},
        "given_name": b["given_name"], "family_name": b["family_name"],
        "date_of_birth": date.fromisoformat(b["date_of_birth"]),
        "admitted_on": date.fromisoformat(b["admitted_on"]),
        "expected_release_on": date.fromisoformat(b["expected_release_on"]),
        "counselor_id": b["counselor_id"], "referral_source": b["referral_source"],
        "program_agreement_signed": True, "reason": b["reason"],
        "assessments": b["assessments"],
    }


def provenance() -> Any:
    from domain.provenance import Provenance
    return Provenance(actor_id="bench-counselor", actor_role="counselor", source="bench")


def infraction_command(by: Any) -> Callable[[Any, Any], dict[str, Any]]:
    observed = by.now - timedelta(minutes=1)

    def decide(p: Any, policy: Any) -> dict[str, Any]:
        return {"infraction_id": p.record_infraction(
            policy, by=by, code=INFRACTION, observed_at=observed,
            description="synthetic benchmark entry", reason="synthetic benchmark")}
    return decide


def admit_many(services: Any, count: int, seed0: int) -> list[UUID]:
    policy = services.policies.get(PROGRAM)
    return [services.ledger.admit(policy, provenance(), **admission_fields(seed0 + i)).id
            for i in range(count)]


def build_big(services: Any, seed: int, events: int = BIG_EVENTS) -> UUID:
    """One participant with `events` events (admission, one assessment, infractions),
    saved in one transaction."""
    from domain.participant import Participant
    policy = services.policies.get(PROGRAM)
    by = provenance()
    p = Participant.admit(policy, by=by, **admission_fields(seed))
    observed = by.now - timedelta(minutes=5)
    while p.version < events:
        p.record_infraction(policy, by=by, code=INFRACTION, observed_at=observed,
                            description="synthetic benchmark entry",
                            reason="synthetic benchmark")
    services.ledger.save(p)
    return UUID(str(p.id))


def app_factory(services: Any, pids: list[UUID], clients: int) -> Factory:
    ledger = services.ledger

    def factory(i: int) -> tuple[Op, None]:
        mine = itertools.cycle(pids[i::clients])

        def op() -> None:
            by = provenance()
            ledger.execute(next(mine), infraction_command(by))
        return op, None
    return factory


class LeanClient:
    """A keep-alive HTTP/1.1 client on a bare socket.

    The raw baseline's client is psycopg's C code; httpx (and even the standard library's
    http.client, which parses every response's headers with the email package) spends
    more time per request in the client than the server spends on a command, and on a
    small machine the client's CPU is the server's too. This one writes the request in
    one send and reads the status line, the headers and a Content-Length body: what a
    client must do, and nothing more.
    """

    def __init__(self, base: str, token: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = (f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\n").encode()
        self.buffer = b""

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        self.sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.head
                          + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
                          + payload)
        return self._response()

    def _response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked answers are not expected here")
        if length is None:
            raise RuntimeError("an answer without Content-Length")
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def http_factory(base: str, token: str, pids: list[UUID], clients: int) -> Factory:
    def factory(i: int) -> tuple[Op, Callable[[], None]]:
        client = LeanClient(base, token)
        mine = itertools.cycle(pids[i::clients])

        def op() -> None:
            observed = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            status, text = client.post(f"/participants/{next(mine)}/infractions", {
                "code": INFRACTION, "observed_at": observed,
                "description": "synthetic benchmark entry", "reason": "synthetic benchmark"})
            if status != 201:
                raise RuntimeError(f"HTTP {status}: {text[:300]!r}")
        return op, client.close
    return factory


# --- report -----------------------------------------------------------------------------

def fmt_row(label: str, clients: str, rate: str, p50: str, p99: str, extra: str = "") -> str:
    return f"  {label:<46} {clients:>7} {rate:>10} {p50:>9} {p99:>9}  {extra}".rstrip()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(res: dict[str, Result], reads: dict[str, Result],
           meta: dict[str, Any]) -> dict[str, Any]:
    print()
    print(f"tcledger command benchmark  ({meta['when']})")
    print(f"  PostgreSQL {meta['pg_version']} at {meta['pg_host']}, database {meta['db']}"
          f" (dropped at exit); synchronous_commit={meta['synchronous_commit']}, "
          f"fsync={meta['fsync']}")
    print(f"  {meta['cpus']} CPUs, Python {meta['python']}, {meta['seconds']} s per "
          f"measurement after {meta['warmup']} s warm-up; HTTP server: {meta['http_mode']}"
          f" (uvicorn, 1 worker)")
    print(f"  {meta['participants']} participants; app event size avg "
          f"{meta['app_event_bytes']} B stored (raw row payload {RAW_PAYLOAD_BYTES} B)")
    print()
    print(fmt_row("measurement", "clients", "ops/s", "p50 ms", "p99 ms", "ops"))
    print("  " + "-" * 92)
    for key in ("raw_1", "raw_8", "app_1", "app_8", "http_1", "http_8"):
        r = res[key]
        label = {"raw": "raw PG insert+commit",
                 "app": "app: ledger.execute(record_infraction)",
                 "http": "http: POST /participants/{id}/infractions"}[key.split("_")[0]]
        print(fmt_row(label, str(r.clients), f"{r.rate:,.0f}", f"{r.pct(.5):.2f}",
                      f"{r.pct(.99):.2f}", str(r.ops)))
    print()
    print(fmt_row(f"read of a {BIG_EVENTS}-event participant", "", "n", "p50 ms", "p99 ms"))
    print("  " + "-" * 92)
    for r in reads.values():
        print(fmt_row(r.name, "1", str(r.ops), f"{r.pct(.5):.2f}", f"{r.pct(.99):.2f}"))

    ratios = {
        "app_raw_1": res["app_1"].rate / res["raw_1"].rate,
        "app_raw_8": res["app_8"].rate / res["raw_8"].rate,
        "http_raw_1": res["http_1"].rate / res["raw_1"].rate,
        "http_raw_8": res["http_8"].rate / res["raw_8"].rate,
    }
    checks: list[tuple[str, str, str, bool | None]] = [
        ("app / raw   @1", f"{ratios['app_raw_1']:.2f}x", f">= {TARGETS['app_raw_1']}x",
         ratios["app_raw_1"] >= TARGETS["app_raw_1"]),
        ("app / raw   @8", f"{ratios['app_raw_8']:.2f}x", f">= {TARGETS['app_raw_8']}x",
         ratios["app_raw_8"] >= TARGETS["app_raw_8"]),
        ("http / raw  @1", f"{ratios['http_raw_1']:.2f}x", f">= {TARGETS['http_raw_1']}x",
         ratios["http_raw_1"] >= TARGETS["http_raw_1"]),
        ("http / raw  @8", f"{ratios['http_raw_8']:.2f}x", "(no target)", None),
        ("app  p99    @8", f"{res['app_8'].pct(.99):.1f} ms", f"<= {TARGETS['p99_ms_8']:.0f} ms",
         res["app_8"].pct(.99) <= TARGETS["p99_ms_8"]),
        ("http p99    @8", f"{res['http_8'].pct(.99):.1f} ms",
         f"<= {TARGETS['p99_ms_8']:.0f} ms", res["http_8"].pct(.99) <= TARGETS["p99_ms_8"]),
    ]
    for r in reads.values():
        checks.append((f"{r.name} p99", f"{r.pct(.99):.1f} ms",
                       f"<= {TARGETS['read_500_ms']:.0f} ms",
                       r.pct(.99) <= TARGETS["read_500_ms"]))
    print()
    print(f"  {'ratio / limit':<46} {'measured':>10}   {'target':<12} verdict")
    print("  " + "-" * 92)
    for label, value, target, ok in checks:
        print(f"  {label:<46} {value:>10}   {target:<12} "
              f"{'' if ok is None else verdict(ok)}")

    waits = [(k, r.waits) for k, r in res.items() if r.waits]
    if waits:
        print()
        print("  PostgreSQL wait events during the 8-client runs (mean backends per sample;"
              " idle pooled connections not counted):")
        for k, w in waits:
            print(f"    {k:<7} " + ", ".join(f"{e} {n}" for e, n in w.items()))
    print()
    return {
        "meta": meta,
        "results": {k: r.as_dict() for k, r in res.items()},
        "reads": {k: r.as_dict() for k, r in reads.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": TARGETS,
        "checks": [{"check": c[0], "measured": c[1], "target": c[2], "ok": c[3]}
                   for c in checks],
    }


def profile_app(services: Any, pids: list[UUID], seconds: float) -> str:
    factory = app_factory(services, pids, 1)
    op, _ = factory(0)
    profiler = cProfile.Profile()
    end = time.perf_counter() + seconds
    count = 0
    profiler.enable()
    while time.perf_counter() < end:
        op()
        count += 1
    profiler.disable()
    out = io.StringIO()
    out.write(f"cProfile of the app-service loop, 1 client, {count} commands "
              f"in {seconds:.0f} s (profiler overhead included)\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(15)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --- main -------------------------------------------------------------------------------

def run(args: argparse.Namespace, dbname: str, url: str, kek: str, var_dir: Path,
        held: Held) -> None:
    from infra.settings import Settings
    from infra.wiring import build

    seconds, warmup = args.seconds, args.warmup
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        conn.execute(RAW_INDEX)
        pg_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
        fsync = conn.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
    sampler = WaitSampler(url, dbname)
    settings = Settings(var_dir=var_dir, database_url=url, kek=kek, log_level="warning")
    services = held.services = build(settings)
    res: dict[str, Result] = {}

    def step(msg: str) -> None:
        print(f"... {msg}", file=sys.stderr, flush=True)

    step("raw PostgreSQL baseline")
    for n in (1, 8):
        res[f"raw_{n}"] = run_clients("raw", n, raw_factory(url), seconds, warmup,
                                      sampler if n == 8 else None)

    step(f"admitting {args.participants} + {args.participants} participants, "
         f"building {args.big} x {BIG_EVENTS}-event participants")
    app_pids = admit_many(services, args.participants, 1)
    http_pids = admit_many(services, args.participants, 100_001)
    big = [build_big(services, 900_001 + i) for i in range(args.big)]

    step("application service")
    for n in (1, 8):
        res[f"app_{n}"] = run_clients("app", n, app_factory(services, app_pids, n),
                                      seconds, warmup, sampler if n == 8 else None)

    step("reads of a 500-event participant (ledger)")
    ledger = services.ledger
    pid = big[0]
    assert ledger.participant(pid).version == BIG_EVENTS

    def cold() -> None:
        ledger.forget(pid)
        ledger.participant(pid)

    reads: dict[str, Result] = {}
    read_seconds = max(1.0, seconds / 2)
    reads["ledger_cold"] = Result("ledger.participant() cold (forget first)", 1,
                                  timed_loop(cold, read_seconds))
    ledger.participant(pid)
    reads["ledger_warm"] = Result("ledger.participant() warm (cache)", 1,
                                  timed_loop(lambda: ledger.participant(pid),
                                             read_seconds))

    step(f"HTTP ({args.http_mode})")
    _, token = services.tokens.create(role="counselor", name="bench counselor",
                                      facility=FACILITY)
    server = held.server = Server(args.http_mode, services, {
        "TCLEDGER_DATABASE_URL": url, "TCLEDGER_KEK": kek,
        "TCLEDGER_VAR_DIR": str(var_dir), "TCLEDGER_LOG_LEVEL": "warning"})
    for n in (1, 8):
        res[f"http_{n}"] = run_clients("http", n,
                                       http_factory(server.base, token, http_pids, n),
                                       seconds, warmup, sampler if n == 8 else None)

    with httpx.Client(base_url=server.base, timeout=30.0,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        def get(p: UUID) -> None:
            r = client.get(f"/participants/{p}")
            if r.status_code != 200:
                raise RuntimeError(f"GET {r.status_code}: {r.text[:200]}")
            assert r.json()["version"] == BIG_EVENTS

        cold_gets = []
        for p in big[1:]:  # never read by the server: its first GET decodes all
            if args.http_mode == "thread":
                ledger.forget(p)
            t0 = time.perf_counter()
            get(p)
            cold_gets.append(time.perf_counter() - t0)
        reads["http_cold"] = Result(f"GET /participants/{{id}} cold (n={len(cold_gets)})",
                                    1, cold_gets)
        reads["http_warm"] = Result("GET /participants/{id} warm", 1,
                                    timed_loop(lambda: get(pid), read_seconds))

    with psycopg.connect(url, autocommit=True) as conn:
        table = services.ledger.recorder.events_table_name
        row = conn.execute(f'SELECT avg(octet_length(state))::int FROM "{table}"'
                           " WHERE topic LIKE %s", ("%InfractionRecorded",)).fetchone()
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "pg_version": pg_version, "pg_host": url.split("@")[-1].rsplit("/", 1)[0],
        "db": dbname, "synchronous_commit": sync, "fsync": fsync,
        "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "seconds": seconds, "warmup": warmup, "http_mode": args.http_mode,
        "participants": args.participants,
        "app_event_bytes": row[0] if row else None,
    }
    server.stop()
    held.server = None
    figures = report(res, reads, meta)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    if args.profile:
        print(profile_app(services, app_pids, seconds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="per measurement")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="server URL whose user may create databases")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--big", type=int, default=20,
                        help=f"participants with {BIG_EVENTS} events (cold HTTP reads)")
    parser.add_argument("--http-mode", choices=("process", "thread"), default="process",
                        help="uvicorn in its own process (default) or a thread of this one")
    parser.add_argument("--profile", action="store_true",
                        help="then cProfile the 1-client app-service loop")
    args = parser.parse_args()

    from api.app import create_app  # noqa: F401  (import cost outside the timings)

    on_throwaway_database(args.pg_url, "tcl_bench_", lambda dbname, url, kek, var_dir, held:
                          run(args, dbname, url, kek, var_dir, held))
    return 0

if __name__ == "__main__":
    sys.exit(main())
