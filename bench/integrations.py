"""Integrations benchmark: the consent-scoped feed over HTTP vs. a raw read of the same rows.

    .venv/bin/python bench/integrations.py [--events N] [--participants P] [--limit L]
                                           [--passes K] [--json FILE] [--pg-url URL]
                                           [--profile]

One run, against a fresh PostgreSQL database `tcl_bench_intg_<random>` (dropped at exit):

1. population  N encrypted events for P participants through the real write path (the
               projection bench's HistoryGenerator: admissions, stages, privileges,
               infractions and sanctions, drug tests, consents, corrections, discharges),
               then the recipient's consents: most participants (not all) consent to some
               of the client's categories; some of those consents are revoked, some end
               with the participant's discharge (an expiry event), a few expired already.
2. raw         psycopg reading the same event rows the feed must look at (the event types
               the client's categories can receive, and corrections, in log order,
               keyset-paged by position in pages of L rows, every column fetched): the raw
               rate, measured in this run.
3. feed        GET /feed?after=CURSOR&limit=L through uvicorn + the real app (a separate
               process, as deployed), a keep-alive http.client connection, from the start
               of the log to its end, K passes (the first from a cold server: no record
               held in memory yet). Each page's disclosure is committed to the access log
               before the page leaves, as in production. Figures: events handed out per
               second and log events paged through per second (the target: >= 20,000/s,
               read both ways), each against the raw rate; and per CPU-second of the
               server, its projections process and its database backends, which the
               neighbours of a shared machine do not change.
4. webhooks    left to bench/webhooks.py (see `webhook_section`).

--profile then cProfiles the same paging in this process (Feed.page + the access-log
write, cold then warm) and prints where the time goes.
All data is synthetic; the key-encryption key is random for each run.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402

from bench.live_server import (  # noqa: E402
    DEFAULT_PG_URL,
    Held,
    Server,
    on_throwaway_database,
)

RECIPIENT = "Synthetic Parole Office"
CATEGORIES = ("admission-and-status", "stage-progress", "sanctions", "drug-tests",
              "discharge")
TARGETS = {"feed_events_per_s": 20_000.0}


def step(msg: str) -> None:
    print(f"... {msg}", file=sys.stderr, flush=True)


# --- population ---------------------------------------------------------------------------

@dataclass
class Population:
    participants: int = 0
    log_events: int = 0
    consenting: int = 0
    revoked: int = 0
    ending_at_discharge: int = 0
    expired: int = 0
    generation_seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)


def populate(services: Any, args: argparse.Namespace) -> Population:
    """Histories through the real write path, then this recipient's consents."""
    from bench.projections import HistoryGenerator

    today = datetime.now(UTC).date()
    rng = random.Random(args.seed)
    gen = HistoryGenerator(services, today, args.seed, save_events=2000)
    plans = gen.plans(1, args.participants, args.events, 720, False, rng)
    seconds = gen.run(plans, args.gen_threads, "history", args.events)
    found = Population(participants=len(plans), generation_seconds=round(seconds, 2),
                       kinds=dict(gen.kinds.most_common()))
    pids = participant_ids(services)
    found.consenting, found.revoked, found.ending_at_discharge, found.expired = \
        give_consents(services, pids, rng)
    found.log_events = services.log.head()
    return found


def participant_ids(services: Any) -> list[UUID]:
    table = services.ledger.recorder.events_table_name
    rows = services.store.fetch_all(
        f"SELECT DISTINCT originator_id FROM {table} WHERE originator_version = 1"
        " AND topic LIKE ?", ("%ParticipantAdmitted",))
    return [UUID(str(r["originator_id"])) for r in rows]


def give_consents(services: Any, pids: list[UUID], rng: random.Random
                  ) -> tuple[int, int, int, int]:
    """Most participants consent to some of the client's categories; some revoke, some
    consents end with the discharge, a few have expired (their expiry date corrected)."""
    from domain.provenance import Provenance

    ledger, policy = services.ledger, services.policies.get("tc-default")
    today = datetime.now(UTC).date()
    consenting = revoked = ending = expired = 0
    batch: list[Any] = []
    for pid in pids:
        if rng.random() >= 0.85:
            continue  # no consent for this recipient
        p = ledger.participant(pid)
        by = Provenance("bench-counselor", "counselor", source="bench")
        now = datetime.now(UTC)
        categories = rng.sample(CATEGORIES, rng.randint(2, len(CATEGORIES)))
        if rng.random() < 0.2:
            consent = p.give_consent(by=by, recipient=RECIPIENT, purpose="supervision",
                                     categories=categories, at=now,
                                     expiry_event="discharge", reason="signed form")
            ending += 1
        else:
            consent = p.give_consent(by=by, recipient=RECIPIENT, purpose="supervision",
                                     categories=categories, at=now,
                                     expires_on=today + timedelta(days=rng.randint(30, 365)),
                                     reason="signed form")
        consenting += 1
        r = rng.random()
        if r < 0.08:
            p.revoke_consent(by=by, consent_id=consent, at=now, reason="withdrawn")
            revoked += 1
        elif r < 0.12:
            given = p.version
            p.correct_entry(policy, by=by, version=given, at=now, reason="form says so",
                            changes={"expires_on": (today - timedelta(days=1)).isoformat()})
            expired += 1
        batch.append(p)
        if len(batch) >= 200:
            ledger.save(*batch)
            batch.clear()
    if batch:
        ledger.save(*batch)
    return consenting, revoked, ending, expired


# --- raw baseline -------------------------------------------------------------------------

def raw_read(url: str, table: str, topics: list[str], limit: int) -> dict[str, Any]:
    """The rows the feed must look at, read as a client of PostgreSQL would: keyset pages
    of `limit` rows by position, every column, into Python."""
    rows = pages = 0
    with psycopg.connect(url, autocommit=True) as conn:
        after = 0
        t0 = time.perf_counter()
        while True:
            got = conn.execute(
                f'SELECT notification_id, originator_id, originator_version, topic, state'
                f' FROM "{table}" WHERE notification_id > %s AND topic = ANY(%s)'
                f' ORDER BY notification_id LIMIT %s', (after, topics, limit),
                prepare=True).fetchall()
            pages += 1
            rows += len(got)
            if len(got) < limit:
                break
            after = got[-1][0]
        seconds = time.perf_counter() - t0
    return {"rows": rows, "pages": pages, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds, 1)}


# --- the feed over HTTP -------------------------------------------------------------------

class FeedReader:
    """A corrections system paging the feed: a keep-alive HTTP/1.1 connection."""

    def __init__(self, base: str, token: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"}

    def page(self, after: str, limit: int) -> tuple[list[dict[str, Any]], str]:
        self.conn.request("GET", f"/feed?after={after}&limit={limit}", headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET /feed: HTTP {response.status}: {body[:300]!r}")
        return json.loads(body), response.headers["Next-Cursor"]

    def close(self) -> None:
        self.conn.close()


class CpuClock:
    """CPU seconds spent by the server process, its children (the projections process)
    and the bench database's PostgreSQL backends: on a machine shared with other work, the
    wall clock measures the neighbours too; this measures the feed's own cost."""

    def __init__(self, server_pid: int | None, url: str) -> None:
        self.server_pid = server_pid
        self.url = url
        self.tick = os.sysconf("SC_CLK_TCK")

    def _pids(self) -> dict[int, str]:
        """Each process measured, and what it is: server, child or postgres."""
        pids = {self.server_pid: "server"} if self.server_pid else {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and self.server_pid and _stat(int(entry))[1] == self.server_pid:
                pids[int(entry)] = "child"
        with psycopg.connect(self.url, autocommit=True) as conn:
            pids.update((r[0], "postgres") for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()").fetchall())
        return pids

    def read(self) -> dict[int, tuple[str, float]]:
        return {pid: (kind, _stat(pid)[0] / self.tick) for pid, kind in self._pids().items()}

    @staticmethod
    def spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
              ) -> dict[str, float]:
        """CPU seconds by kind of process between two readings."""
        by_kind: dict[str, float] = {}
        for pid, (kind, seconds) in after.items():
            earlier = before.get(pid, (kind, 0.0))[1]
            by_kind[kind] = by_kind.get(kind, 0.0) + seconds - earlier
        return by_kind


def _stat(pid: int) -> tuple[int, int]:
    """(user + system clock ticks, parent pid) of a process; (0, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    return int(fields[11]) + int(fields[12]), int(fields[1])


def feed_pass(reader: FeedReader, limit: int, head: int, clock: CpuClock) -> dict[str, Any]:
    """From the start of the log to `head`; checks order and uniqueness on the way."""
    cursor, events, pages, last = "0", 0, 0, 0
    seen: set[str] = set()
    cpu_before = clock.read()
    t0 = time.perf_counter()
    while int(cursor) < head:
        batch, cursor = reader.page(cursor, limit)
        pages += 1
        events += len(batch)
        for event in batch:
            if event["position"] <= last or event["id"] in seen:
                raise RuntimeError(f"feed out of order or repeated at {event['id']}")
            last = event["position"]
            seen.add(event["id"])
    seconds = time.perf_counter() - t0
    by_kind = clock.spent(cpu_before, clock.read())
    cpu = sum(by_kind.values())
    return {"events": events, "pages": pages, "seconds": round(seconds, 3),
            "cpu_by_process": {k: round(v, 3) for k, v in sorted(by_kind.items())},
            "events_per_s": round(events / seconds, 1),
            "log_events_per_s": round(head / seconds, 1), "cpu_seconds": round(cpu, 3),
            "events_per_cpu_s": round(events / cpu, 1) if cpu else None,
            "log_events_per_cpu_s": round(head / cpu, 1) if cpu else None}


def webhook_section(services: Any, server: Server, args: argparse.Namespace
                    ) -> dict[str, Any] | None:
    """WEBHOOKS: the webhook engineer's section (bench/webhooks.py) plugs in here: deliveries
    per second to a local receiver against its raw baseline, measured in this run on the
    same population and server. Until it is merged this section measures nothing."""
    return None


# --- the feed in this process ------------------------------------------------------------

class InProcess:
    """The server's work for a page without HTTP: Feed.page, the access-log entry, the
    JSON body. Separates what HTTP adds from what the feed costs."""

    def __init__(self, services: Any, client_token_id: str) -> None:
        from audit.wiring import build_access_log
        from integrations.wiring import build_integrations
        from projections.wiring import build_runner

        self.services = services
        self.integrations = build_integrations(services, build_runner(services))
        self.access_log = build_access_log(services)
        client = self.integrations.clients.of(client_token_id)
        assert client is not None
        self.client = client

    def forget_all(self) -> None:
        for pid in participant_ids(self.services):
            self.services.ledger.forget(pid)

    def run(self, limit: int, head: int, profiler: cProfile.Profile | None = None
            ) -> dict[str, Any]:
        from audit.access import Access

        client, feed = self.client, self.integrations.feed
        today = datetime.now(UTC).date()
        cursor, events, pages = 0, 0, 0
        t0, cpu0 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        while cursor < head:
            page = feed.page(client, cursor, limit, today)
            if page.disclosed:
                self.access_log.record(Access(
                    participant_ids=list(dict.fromkeys(d.participant_id
                                                       for d in page.disclosed)),
                    actor_id=client.token_id, role="integration", facility=None,
                    action="disclosure", method="GET", route="/feed", status=200,
                    request_id="bench", remote=None, recipient=client.recipient,
                    events=[d.as_json() for d in page.disclosed]))
            orjson.dumps(page.events)  # as the server encodes the page
            events += len(page.events)
            pages += 1
            cursor = page.next_cursor
        if profiler is not None:
            profiler.disable()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"events": events, "pages": pages, "seconds": round(seconds, 3),
                "events_per_s": round(events / seconds, 1),
                "log_events_per_s": round(head / seconds, 1), "cpu_seconds": round(cpu, 3),
                "events_per_cpu_s": round(events / cpu, 1) if cpu else None,
                "log_events_per_cpu_s": round(head / cpu, 1) if cpu else None}


def profile_feed(inprocess: InProcess, limit: int, head: int) -> str:
    """cProfile of the in-process paging, from a cold ledger, then warm."""
    out = io.StringIO()
    for label in ("cold", "warm"):
        if label == "cold":
            inprocess.forget_all()
        profiler = cProfile.Profile()
        found = inprocess.run(limit, head, profiler)
        out.write(f"\ncProfile of in-process paging ({label}): {found['events']:,} events "
                  f"handed out, {head:,} log events walked in {found['seconds']:.2f} s = "
                  f"{found['events_per_s']:,.0f} events/s (profiler overhead included)\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(18)
        stats.sort_stats("tottime").print_stats(18)
    return out.getvalue()


# --- report -------------------------------------------------------------------------------

def report(figures: dict[str, Any]) -> None:
    pop, raw = figures["population"], figures["raw"]
    print()
    print(f"tcledger integrations benchmark  ({figures['meta']['when']})")
    meta = figures["meta"]
    print(f"  PostgreSQL {meta['pg_version']}, {meta['cpus']} CPUs, Python {meta['python']};"
          f" server: uvicorn, 1 worker, separate process")
    print(f"  population: {pop['participants']:,} participants, {pop['log_events']:,} log "
          f"events; {pop['consenting']:,} consent to {RECIPIENT!r} ({pop['revoked']} revoked,"
          f" {pop['ending_at_discharge']} ending at discharge, {pop['expired']} expired)")
    print(f"  page size {figures['limit']}; disclosable rows in the log: {raw['rows']:,}")
    print()
    print(f"  {'measurement':<44} {'events':>9} {'seconds':>8} {'events/s':>10}"
          f" {'log ev/s':>10} {'CPU s':>7} {'ev/CPU-s':>9} {'log/CPU-s':>9}")
    print("  " + "-" * 114)
    print(f"  {'raw: psycopg keyset pages of the same rows':<44} {raw['rows']:>9,}"
          f" {raw['seconds']:>8.2f} {raw['rows_per_s']:>10,.0f} {'':>10}")
    rows = [(f"app: Feed.page+access log+JSON ({k})", p)
            for k, p in figures["inprocess"].items()]
    rows += [(f"http: GET /feed pass {i + 1} ({'cold' if i == 0 else 'warm'})", p)
             for i, p in enumerate(figures["feed"])]
    for label, p in rows:
        print(f"  {label:<44} {p['events']:>9,} {p['seconds']:>8.2f}"
              f" {p['events_per_s']:>10,.0f} {p['log_events_per_s']:>10,.0f}"
              f" {p['cpu_seconds']:>7.2f} {p['events_per_cpu_s'] or 0:>9,.0f}"
              f" {p['log_events_per_cpu_s'] or 0:>9,.0f}")
    print("  (CPU s: the server process, its projections child and the database's "
          "backends for HTTP; this process for app)")
    for i, p in enumerate(figures["feed"]):
        print(f"  CPU s of pass {i + 1} by process: " + ", ".join(
            f"{k} {v:.2f}" for k, v in p["cpu_by_process"].items()))
    print()
    print(f"  {'ratio / target':<44} {'measured':>12}   {'target':<14} verdict")
    print("  " + "-" * 114)
    for check in figures["checks"]:
        ok = check["ok"]
        print(f"  {check['check']:<44} {check['measured']:>12}   {check['target']:<14} "
              f"{'' if ok is None else 'PASS' if ok else 'MISS'}")
    print()


def checks(raw: dict[str, Any], passes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The target read both ways: the log paged through per second (what a client
    catching up waits for), and the events handed out per second (the stricter)."""
    found: list[dict[str, Any]] = []
    target = TARGETS["feed_events_per_s"]
    for i, p in enumerate(passes):
        which = "cold" if i == 0 else "warm"
        found.append({"check": f"feed log events paged/s, pass {i + 1} ({which})",
                      "measured": f"{p['log_events_per_s']:,.0f}",
                      "target": f">= {target:,.0f}", "ok": p["log_events_per_s"] >= target})
        found.append({"check": f"feed events handed out/s, pass {i + 1} ({which})",
                      "measured": f"{p['events_per_s']:,.0f}",
                      "target": f">= {target:,.0f}", "ok": p["events_per_s"] >= target})
        if p.get("events_per_cpu_s"):
            found.append({"check": f"feed events handed out per CPU-s, pass {i + 1}",
                          "measured": f"{p['events_per_cpu_s']:,.0f}",
                          "target": f">= {target:,.0f}",
                          "ok": p["events_per_cpu_s"] >= target})
        found.append({"check": f"feed events / raw rows, pass {i + 1}",
                      "measured": f"{p['events_per_s'] / raw['rows_per_s']:.3f}x",
                      "target": "(no target)", "ok": None})
        found.append({"check": f"feed log events walked / raw rows, pass {i + 1}",
                      "measured": f"{p['log_events_per_s'] / raw['rows_per_s']:.3f}x",
                      "target": "(no target)", "ok": None})
    return found


# --- main ---------------------------------------------------------------------------------

def run(args: argparse.Namespace, url: str, kek: str, var_dir: Path,
        held: Held) -> dict[str, Any]:
    from infra.settings import Settings
    from infra.wiring import build
    from integrations.clients import IntegrationClients
    from integrations.feed import topics_for

    settings = Settings(var_dir=var_dir, database_url=url, kek=kek, log_level="warning",
                        pg_pool_size=max(10, args.gen_threads + 4))
    services = held.services = build(settings)
    step(f"generating ~{args.events:,} events for {args.participants:,} participants")
    population = populate(services, args)
    head = services.log.head()
    client, secret = IntegrationClients(services.store, services.tokens).create(
        recipient=RECIPIENT, categories=list(CATEGORIES), name="bench parole office")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        pg_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]

    step("raw read of the same rows")
    table = services.ledger.recorder.events_table_name
    topics = list(topics_for(frozenset(CATEGORIES)))  # what the feed reads for this client
    raw_read(url, table, topics, args.limit)  # warm PostgreSQL's cache first
    raw = raw_read(url, table, topics, args.limit)

    step("the feed over HTTP (server in its own process)")
    server = held.server = Server("process", None, {
        "TCLEDGER_DATABASE_URL": url, "TCLEDGER_KEK": kek, "TCLEDGER_VAR_DIR": str(var_dir),
        "TCLEDGER_LOG_LEVEL": "warning"})
    reader = FeedReader(server.base, secret)
    clock = CpuClock(server.pid, url)
    passes = []
    try:
        for i in range(args.passes):
            step(f"feed pass {i + 1} of {args.passes}")
            passes.append(feed_pass(reader, args.limit, head, clock))
    finally:
        reader.close()
    webhooks = webhook_section(services, server, args)
    server.stop()
    held.server = None

    step("the same paging in this process (no HTTP)")
    inprocess = InProcess(services, client.token_id)
    inprocess.forget_all()
    measured = {"cold": inprocess.run(args.limit, head)}
    measured["warm"] = inprocess.run(args.limit, head)

    figures = {
        "meta": {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                 "pg_version": pg_version, "cpus": os.cpu_count(),
                 "python": sys.version.split()[0]},
        "population": vars(population), "limit": args.limit, "raw": raw, "feed": passes,
        "inprocess": measured,
        "checks": checks(raw, passes), "webhooks": webhooks, "targets": TARGETS,
    }
    report(figures)
    if args.profile:
        print(profile_feed(inprocess, args.limit, head))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--participants", type=int, default=2_000)
    parser.add_argument("--limit", type=int, default=1000, help="feed page size")
    parser.add_argument("--passes", type=int, default=2, help="feed passes over the log")
    parser.add_argument("--gen-threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="server URL whose user may create databases")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--profile", action="store_true",
                        help="then cProfile the same paging in this process")
    args = parser.parse_args()

    figures = on_throwaway_database(
        args.pg_url, "tcl_bench_intg_",
        lambda _dbname, url, kek, var_dir, held: run(args, url, kek, var_dir, held))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
