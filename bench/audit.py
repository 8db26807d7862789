"""Audit ledger benchmark on PostgreSQL: append, verify and proofs at a million leaves.

Targets (issue 4): verify >= 200,000 leaves/s; an inclusion or consistency proof at
1,000,000 leaves <= 5 ms; appending leaves keeps pace with the command benchmark's write
rate. Every figure is printed beside a baseline measured in the same run on the same
database, since the machines are shared and noisy:

- raw insert: single-row INSERT + COMMIT from one client (the command benchmark's baseline;
  no command can be recorded faster than this, so a ledger that appends faster keeps pace);
- raw scan: reading every row of the event table in log order, with nothing done to it.

The event rows are synthetic (random ciphertext bytes of a realistic size, written with
COPY): the ledger never decrypts, so what it costs does not depend on what is inside.

    python bench/audit.py                      # 1,000,000 leaves
    python bench/audit.py --leaves 100000      # a quicker run
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import merkle  # noqa: E402
from audit.ledger import EventRows  # noqa: E402
from audit.verify import verify  # noqa: E402
from audit.wiring import build_ledger  # noqa: E402
from bench.live_server import bench_database  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.wiring import build  # noqa: E402

TOPICS = ["domain.events:ParticipantAdmitted", "domain.events:PrivilegeGranted",
          "domain.events:InfractionRecorded", "domain.events:ResultRecorded",
          "domain.events:StagePromoted", "domain.events:SanctionImposed"]
KEK = "q6p0cWq7dH1oJ7rN3Jm1d8m0YyV2b2c0b3d4ZTVmNjc="  # synthetic, benchmarks only


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raw_insert_rate(url: str, seconds: float) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, stream UUID, "
                     "version BIGINT, topic TEXT, state BYTEA)")
        payload = os.urandom(300)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            with conn.transaction():
                conn.execute("INSERT INTO bench_raw (stream, version, topic, state) "
                             "VALUES (%s, %s, %s, %s)", (uuid.uuid4(), 1, TOPICS[0], payload))
            count += 1
        return count / (time.perf_counter() - started)


def fill(url: str, table: str, leaves: int, participants: int) -> float:
    """COPY synthetic rows into the event table; returns rows/s."""
    rng = random.Random(7)
    streams = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(participants)]
    versions = dict.fromkeys(streams, 0)
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} (originator_id, originator_version, topic, state) "
                      "FROM STDIN") as copy:
            for _ in range(leaves):
                stream = streams[rng.randrange(participants)]
                versions[stream] += 1
                copy.write_row((stream, versions[stream], rng.choice(TOPICS),
                                rng.randbytes(rng.randint(180, 700))))
        conn.commit()
    return leaves / (time.perf_counter() - started)


def raw_scan_rate(url: str, table: str) -> float:
    started = time.perf_counter()
    count = 0
    with psycopg.connect(url) as conn, conn.cursor(name="scan") as cur:
        cur.itersize = 10000
        cur.execute(f"SELECT notification_id, originator_id, originator_version, topic, state "
                    f"FROM {table} ORDER BY notification_id")
        for _ in cur:
            count += 1
    return count / (time.perf_counter() - started)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"leaves": args.leaves}
    with bench_database(args.url, prefix="tcl_bench_audit_") as (_, url), \
            TemporaryDirectory() as var:
        services = build(Settings(database_url=url, var_dir=Path(var), kek=KEK))
        try:
            table = services.ledger.recorder.events_table_name  # type: ignore[attr-defined]
            ledger = build_ledger(services)
            step("raw single-row insert + commit (baseline)")
            figures["raw_insert_per_s"] = raw_insert_rate(url, args.baseline_seconds)
            step(f"COPY {args.leaves:,} synthetic event rows")
            figures["copy_rows_per_s"] = fill(url, table, args.leaves, args.participants)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"VACUUM ANALYZE {table}")
            step("ledger append (leaves and every subtree node, in batches)")
            started = time.perf_counter()
            added = ledger.catch_up()
            figures["append_leaves_per_s"] = added / (time.perf_counter() - started)
            head = ledger.sign_head()
            step("raw scan of the event table (baseline)")
            figures["raw_scan_rows_per_s"] = raw_scan_rate(url, table)
            step("tcledger audit verify")
            rows = EventRows(services.store, table)
            started = time.perf_counter()
            report = verify(ledger, rows, ledger.signer.public_key)  # type: ignore[union-attr]
            figures["verify_leaves_per_s"] = report.leaves / (time.perf_counter() - started)
            figures["verify_ok"] = report.ok
            step("proofs at the full size")
            rng = random.Random(3)
            size = head.tree_size
            inclusion_ms, consistency_ms = [], []
            cold_ms = []
            for _ in range(min(args.proofs, 100)):  # nothing cached: every node from the db
                index = rng.randrange(size)
                ledger._node_cache.clear()
                started = time.perf_counter()
                ledger.inclusion(index, size)
                cold_ms.append((time.perf_counter() - started) * 1000)
            figures["inclusion_cold_ms"] = (statistics.median(cold_ms), percentile(cold_ms, 99))
            for _ in range(args.proofs):
                index = rng.randrange(size)
                started = time.perf_counter()
                path = ledger.inclusion(index, size)
                inclusion_ms.append((time.perf_counter() - started) * 1000)
                leaf = ledger.nodes([(0, index)])[(0, index)]
                assert merkle.verify_inclusion(leaf, index, size, path, head.root_hash)
                first = rng.randrange(1, size)
                started = time.perf_counter()
                proof = ledger.consistency(first, size)
                consistency_ms.append((time.perf_counter() - started) * 1000)
                if len(consistency_ms) <= 20:  # verifying needs the first root: spot checks
                    assert merkle.verify_consistency(first, size, ledger.root(first),
                                                     head.root_hash, proof)
            figures["inclusion_ms"] = (statistics.median(inclusion_ms),
                                       percentile(inclusion_ms, 99))
            figures["consistency_ms"] = (statistics.median(consistency_ms),
                                         percentile(consistency_ms, 99))
        finally:
            services.close()
    return figures


def report(f: dict[str, Any]) -> None:
    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"
    print(f"\naudit ledger benchmark: {f['leaves']:,} leaves, PostgreSQL")
    print(f"  baseline raw insert+commit (1 client): {f['raw_insert_per_s']:>10,.0f} rows/s")
    print(f"  baseline COPY of the event rows:       {f['copy_rows_per_s']:>10,.0f} rows/s")
    print(f"  baseline raw scan of the event table:  {f['raw_scan_rows_per_s']:>10,.0f} rows/s")
    ratio = f["append_leaves_per_s"] / f["raw_insert_per_s"]
    print(f"  ledger append: {f['append_leaves_per_s']:>10,.0f} leaves/s = {ratio:.1f}x the raw "
          f"single-row insert rate (keeps pace: >= 1x)  {mark(ratio >= 1)}")
    v = f["verify_leaves_per_s"]
    print(f"  verify:        {v:>10,.0f} leaves/s = {v / f['raw_scan_rows_per_s']:.2f}x the raw "
          f"scan (target >= 200,000/s)  {mark(v >= 200_000)}  ok={f['verify_ok']}")
    for name in ("inclusion_cold", "inclusion", "consistency"):
        p50, p99 = f[f"{name}_ms"]
        print(f"  {name} proof at {f['leaves']:,}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"(target <= 5 ms)  {mark(p99 <= 5)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--proofs", type=int, default=500)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--url", default=os.environ.get(
        "TCLEDGER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    report(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
