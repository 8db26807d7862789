"""Rebuilds split by participant between processes (projections.partitions): identical
views, partitions a process left unfinished finished by the next runner, never two
processes on one partition, and a parallel rebuild killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from infra.wiring import build
from projections.partitions import claimed, part_rows
from projections.wiring import build_runner
from tests.conftest import make_settings
from tests.integration.test_projection_rebuild import digest, generate

SPLIT = ["participant_summary", "timeline", "program_stats"]


def parts_left(services) -> list:
    return part_rows(services.store, SPLIT)


@pytest.fixture
def pg_settings(pg_database, tmp_path):
    """Partitions are a PostgreSQL rebuild's (SQLite has one writer and rebuilds in one
    pass: the first test covers that it ignores `parts`)."""
    return make_settings(tmp_path, pg_database)


def test_a_rebuild_in_partitions_is_identical(services):
    runner = build_runner(services, batch_size=31)
    generate(services, participants=30, steps=350, seed=51)
    runner.catch_up()
    live = digest(services)
    build_runner(services, rebuild_batch_size=90).rebuild(parts=3)
    assert digest(services) == live
    assert parts_left(services) == []
    head = services.log.head()
    assert all(p["position"] == head for p in runner.status())


def test_a_partition_left_unfinished_is_finished_by_the_next_runner(pg_settings):
    settings = pg_settings
    services = build(settings)
    try:
        generate(services, participants=25, steps=300, seed=52)
        runner = build_runner(services)
        runner.catch_up()
        live = digest(services)
        started: list[int] = []

        def helper_that_dies(names: list[str], index: int):
            started.append(index)
            return lambda: None  # started, then gone before doing anything

        rebuilding = build_runner(services, rebuild_batch_size=50)
        rebuilding.rebuild(parts=3, helpers=helper_that_dies)
        assert started == [1, 2]
        assert digest(services) == live and parts_left(services) == []

        # Cut short after partition 0: the views are not whole, and say so.
        split = rebuilding.partition(None, 2)
        assert sorted(split) == sorted(SPLIT)
        rebuilding.rebuild_part(split, 0)
        assert {r.part.index for r in parts_left(services) if not r.done} == {1}
        assert runner.position("timeline") == 0
        assert runner.status()[0]["lag"] == services.log.head()
        build_runner(services).catch_up()  # a fresh process: finishes partition 1, merges
        assert parts_left(services) == []
        assert digest(services) == live
    finally:
        services.close()


def test_a_partition_another_process_works_on_is_left_to_it(pg_settings):
    settings = pg_settings
    services = build(settings)
    other = build(settings)  # the other process's connections
    try:
        generate(services, participants=20, steps=200, seed=53)
        runner = build_runner(services)
        runner.catch_up()
        live = digest(services)
        split = runner.partition(None, 2)
        held, release = threading.Event(), threading.Event()

        def working_on_partition_1() -> None:
            with claimed(other.store, split, 1) as mine:
                assert sorted(mine) == sorted(split)
                held.set()
                release.wait(30)

        worker = threading.Thread(target=working_on_partition_1)
        worker.start()
        assert held.wait(30)
        runner.catch_up()  # does partition 0; partition 1 is someone else's
        left = parts_left(services)
        assert {r.part.index for r in left if not r.done} == {1}
        assert runner.position("participant_summary") == 0  # not whole yet
        release.set()
        worker.join()
        runner.catch_up()  # the other process is gone: finished here
        assert parts_left(services) == [] and digest(services) == live
    finally:
        other.close()
        services.close()


def test_a_parallel_rebuild_killed_mid_run_is_finished_by_a_runner(pg_settings):
    settings = pg_settings
    services = build(settings)
    try:
        generate(services, participants=60, steps=1200, seed=54)
        runner = build_runner(services)
        runner.catch_up()
        live = digest(services)
        env = {**os.environ, "TCLEDGER_VAR_DIR": str(settings.var_dir),
               "TCLEDGER_DATABASE_URL": settings.database_url, "TCLEDGER_KEK": settings.kek,
               "TCLEDGER_PROJECTION_BATCH_SIZE": "10",
               "TCLEDGER_PROJECTION_REBUILD_BATCH_SIZE": "10", "TCLEDGER_LOG_LEVEL": "error"}
        process = subprocess.Popen([sys.executable, "-m", "infra.cli", "projections",
                                    "rebuild", "--jobs", "2"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            left = parts_left(services)
            if any(0 < r.position < r.part.until for r in left):
                break  # mid-way
            assert process.poll() is None, "the rebuild ended before it could be killed"
            assert time.monotonic() < deadline, "the rebuild made no progress"
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)  # the parent and its child
        process.wait()
        assert runner.position("timeline") == 0 and parts_left(services)
        time.sleep(0.5)  # the server notices the dead sessions (their advisory locks go)
        runner.catch_up()
        assert parts_left(services) == [] and digest(services) == live
    finally:
        services.close()
