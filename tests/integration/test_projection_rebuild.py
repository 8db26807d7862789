"""Rebuilds over a generated history, and a runner process killed mid-run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from domain import community as c
from domain import events as ev
from domain.errors import DomainError
from domain.groups import GroupSession
from domain.provenance import Provenance
from infra.peers import PeerLinks
from infra.wiring import build
from projections.wiring import build_runner


def staff() -> Provenance:
    """A fresh provenance each command: its `now` is the command's moment, as in the API."""
    return Provenance("staff-1", "counselor")


def supervisor() -> Provenance:
    """A fresh provenance each command: its `now` is the command's moment, as in the API."""
    return Provenance("staff-2", "supervisor")


TODAY = datetime.now(UTC).date()


def generate(services, participants: int, steps: int, seed: int = 11) -> list[UUID]:
    """A synthetic history: admissions, decisions, tests, corrections, discharges, erasures."""
    rng = random.Random(seed)
    policy = services.policies.get("tc-default")
    ids = [services.ledger.admit(
        policy, staff(), facility=rng.choice(["F-NORTH", "F-SOUTH"]), unit=f"U-{rng.randint(1, 3)}",
        external_ids={"DOC": {"value": f"SYN-{n:06d}", "issuer": "F"}}, given_name=f"Gen{n}",
        family_name="Tansleyton", date_of_birth=date(1980, 1, 1) + timedelta(days=n),
        admitted_on=TODAY - timedelta(days=rng.randint(40, 300)),
        expected_release_on=TODAY + timedelta(days=rng.randint(10, 500)),
        counselor_id=f"c-{rng.randint(1, 4)}", referral_source=None,
        program_agreement_signed=True, reason="synthetic", assessments=[]).id
        for n in range(participants)]
    now = datetime.now(UTC)

    def act(p, policy, kind: str, n: int):
        if kind == "infraction":
            return p.record_infraction(policy, by=staff(), code="house-rule-lateness",
                                       observed_at=now, description="late", reason="r")
        if kind == "privilege":
            return p.grant_privilege(policy, by=staff(), privilege=rng.choice(
                ["commissary", "phone-basic"]), at=now, reason="earned")
        if kind == "promote":
            return p.promote(policy, by=supervisor(), to_stage="phase-1", at=now, reason="r",
                             override=True)
        if kind == "test":
            p.collect_specimen(policy, by=staff(), specimen_id=f"S{n}", method="urine",
                               test_reason="random", collected_at=now - timedelta(hours=1))
            return p.record_result(policy, by=staff(), specimen_id=f"S{n}",
                                   result=rng.choice(["negative", "positive"]),
                                   substances=[], resulted_at=now)
        if kind == "consent":
            return p.give_consent(by=staff(), recipient="Synthetic Parole", purpose="supervision",
                                  categories=["discharge"], at=now,
                                  expires_on=TODAY + timedelta(days=rng.randint(1, 90)))
        if kind == "correct":
            return p.correct_entry(policy, by=staff(), version=1,
                                   changes={"unit": f"U-{rng.randint(4, 6)}"}, at=now,
                                   reason="wrong unit")
        if kind == "void" and p.version > 2:
            return p.void_entry(by=staff(), version=p.version, at=now, reason="entered in error")
        if kind == "discharge":
            return p.discharge(policy, by=staff(), discharge_type="administrative-release", at=now,
                               reason="released")
        return None

    kinds = ["infraction"] * 5 + ["privilege"] * 2 + ["promote", "test", "test", "consent",
                                                       "correct", "void", "discharge"]
    for n in range(steps):
        pid, kind = rng.choice(ids), rng.choice(kinds)
        try:
            services.ledger.execute(pid, lambda p, policy: act(p, policy, kind, n))
        except DomainError:
            pass  # a rule refused it (a discharged record, a repeated grant): realistic
    peers = community(services, ids, random.Random(seed + 1000))
    erased = rng.sample(ids, 3)
    for n, peer in enumerate(p for p in peers if p not in erased):  # someone's peer, mentor
        erased[n] = peer
        if n == 1:
            break
    for pid in erased:
        services.ledger.erase(pid, Provenance("admin-1", "admin"), "retention ended")
    return ids


def community(services, ids: list[UUID], rng: random.Random) -> list[UUID]:
    """Group sessions with whole rosters, peer feedback, mentors, follow-ups and recovery
    supports, and corrections and voids of them. Returns a mentor and a peer who gave
    feedback, for the caller to erase."""
    ledger, policy, now = services.ledger, services.policies.get("tc-default"), \
        datetime.now(UTC)
    facility_of = {pid: ledger.participant(pid).state.facility for pid in ids}
    kinds = list(policy.group_kinds)
    for n in range(12):
        facility = rng.choice(["F-NORTH", "F-SOUTH"])
        group = GroupSession.hold(policy, by=staff(), facility=facility, unit=None,
                                  kind=rng.choice(kinds), duration_minutes=60,
                                  held_at=now - timedelta(days=rng.randint(0, 35), hours=1),
                                  facilitator_staff_id="staff-f1")
        ledger.hold_group(group)
        members = [p for p in ids if facility_of[p] == facility]
        ledger.execute_each({pid: (lambda p, _, s=group.session, st=rng.choice(
            ["present", "present", "late", "excused", "absent"]):
            c.record_attendance(p, s, by=staff(), status=st)) for pid in members})
    links = PeerLinks(services.keys)
    chosen: list[UUID] = []
    for n in range(40):
        active = [p for p in ids if ledger.participant(p).state.status == "active"]
        first = rng.choice(active) if active else None
        others = [p for p in active if p != first and facility_of[p] == facility_of[first]]
        if not others:
            continue
        second = rng.choice(others)
        if n % 2 == 0 and ledger.participant(first).state.stage != "orientation":
            continue
        try:
            if n % 2 == 0:
                if ledger.participant(second).state.stage == "orientation":
                    ledger.execute(second, lambda p, policy: p.promote(
                        policy, by=supervisor(), to_stage="phase-1", at=now, reason="r",
                        override=True))
                ledger.execute_together([first, second], lambda ps, a=first, b=second:
                                        c.assign_mentor(ps[a], ps[b], policy, by=staff(), at=now,
                                                        reason="pairing",
                                                        seals=links.deferred(a, b)))
            else:
                ledger.execute_together([first, second], lambda ps, a=first, b=second:
                                        c.record_peer_feedback(
                                            ps[a], ps[b], by=staff(), kind=rng.choice(
                                                ["pull-up", "affirmation"]),
                                            behaviour="synthetic", observed_at=now,
                                            reason="peer report", seals=links.deferred(a, b)))
            chosen.append(second)
        except DomainError:
            pass
    for pid in ids:
        def aftercare(p, policy, pid=pid):
            if rng.random() < 0.3:
                c.link_recovery_support(p, by=staff(), kind="mutual-aid", provider="Synthetic",
                                        at=now, reason="plan")
            for mentorship in list(p.state.mentorships.values()):
                if mentorship["ended_on"] is None and rng.random() < 0.3:
                    c.end_mentor(p, by=staff(), mentor_id=mentorship["mentor_id"], at=now,
                                 reason="ended")
            if p.state.status == "discharged":
                for window in ("30d", "90d"):
                    reached = rng.random() < 0.6
                    c.record_follow_up(p, policy, by=staff(), window=window, at=now,
                                       method="phone", reached=reached,
                                       outcomes={"abstinent": rng.choice([True, False, None])}
                                       if reached else {}, reason="scheduled")
        try:
            ledger.execute(pid, aftercare)
        except DomainError:
            pass
    for pid in rng.sample(ids, len(ids) // 3):
        def amend(p, policy):
            community_events = [e for e in p.history if isinstance(e, (
                ev.GroupAttended, ev.GroupMissed, ev.FollowUpRecorded,
                ev.RecoverySupportLinked, ev.PeerFeedbackRecorded))]
            if not community_events:
                return
            target = rng.choice(community_events)
            if isinstance(target, ev.GroupAttended) and rng.random() < 0.5:
                p.correct_entry(policy, by=staff(), version=target.originator_version,
                                changes={"status": "late"}, at=now, reason="was late")
            else:
                p.void_entry(policy, by=staff(), version=target.originator_version, at=now,
                             reason="entered in error")
        try:
            ledger.execute(pid, amend)
        except DomainError:
            pass
    mentors = [m for m in chosen if any(
        x["side"] == "mentor" for x in ledger.participant(m).state.mentorships.values())]
    return list(dict.fromkeys(mentors[:1] + chosen))


def digest(services) -> str:
    rows = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_participant_summary ORDER BY participant_id")]
    for r in rows:
        r["sealed"] = json.loads(services.sealer.open(UUID(r["participant_id"]),
                                                      "participant_summary", bytes(r["sealed"])))
    consents = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_summary_consents ORDER BY participant_id, expires_on")]
    timeline = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_timeline ORDER BY participant_id, version")]
    assert timeline, "the timeline view was built"
    counts = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_stats_counts ORDER BY program, facility, day, measure, code, "
        "value")]
    assert counts, "the statistics view was built"
    sessions = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_group_sessions ORDER BY group_id")]
    for r in sessions:
        r["sealed"] = json.loads(services.sealer.open(UUID(r["group_id"]), "group_session",
                                                      bytes(r["sealed"])))
    attendance = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_group_counts ORDER BY group_id, status")]
    assert sessions and attendance, "the group sessions view was built"
    return json.dumps([rows, consents, timeline, counts, sessions, attendance], sort_keys=True,
                      default=str)


def test_incremental_and_rebuilt_views_are_identical(services):
    runner = build_runner(services, batch_size=37)
    ids = generate(services, participants=40, steps=450)
    # Incremental: the runner keeps up in small steps while the history grows.
    runner.catch_up()
    more = generate(services, participants=10, steps=100, seed=12)
    runner.catch_up()
    live = digest(services)
    assert services.log.head() > 450
    assert len(json.loads(live)[0]) == len(ids) + len(more) - 6  # 6 erased
    sealed = [row["sealed"] for row in json.loads(live)[0]]
    assert any(s["attendance_lines"] for s in sealed) and any(s["mentor"] for s in sealed)
    assert any(s["recovery_supports"] for s in sealed)
    measures = {row["measure"] for row in json.loads(live)[3]}
    assert {"attendance", "follow_up", "follow_up_outcome"} <= measures
    assert len(json.loads(live)[4]) == 24  # 12 sessions from each generation
    runner.rebuild()
    assert digest(services) == live
    fresh = build_runner(services, batch_size=1000)  # a new process, cold caches
    fresh.rebuild()
    assert digest(services) == live


def test_a_runner_killed_mid_run_resumes_without_loss_or_duplicates(settings, tmp_path):
    services = build(settings)
    try:
        generate(services, participants=60, steps=1200, seed=21)
        head = services.log.head()
        env = {**os.environ, "TCLEDGER_VAR_DIR": str(settings.var_dir),
               "TCLEDGER_DATABASE_URL": settings.database_url, "TCLEDGER_KEK": settings.kek,
               "TCLEDGER_PROJECTION_BATCH_SIZE": "20", "TCLEDGER_LOG_LEVEL": "error"}
        process = subprocess.Popen([sys.executable, "-m", "infra.cli", "projections", "run"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runner = build_runner(services, batch_size=20)
        deadline = time.monotonic() + 60
        while runner.position("participant_summary") < head // 3:
            assert time.monotonic() < deadline, "the runner process made no progress"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = runner.position("participant_summary")
        assert 0 < killed_at < head  # it really died mid-run
        runner.catch_up()
        resumed = digest(services)
        runner.rebuild()
        assert digest(services) == resumed
    finally:
        services.close()


def test_a_rebuild_in_many_pages_and_batches_with_copy_is_identical(services, monkeypatch):
    """Small pages and batches (several transactions, each of several pages) and COPY for
    every multi-row write on PostgreSQL: the rebuild still equals the live views."""
    import infra.sql
    import projections.runner

    runner = build_runner(services, batch_size=29)
    generate(services, participants=30, steps=400, seed=31)
    runner.catch_up()
    live = digest(services)
    monkeypatch.setattr(projections.runner, "PAGE_SIZE", 23)
    monkeypatch.setattr(infra.sql, "COPY_THRESHOLD", 1)
    for batch in (100, 10_000):
        build_runner(services, batch_size=29, rebuild_batch_size=batch).rebuild()
        assert digest(services) == live
    # The live path with COPY too: from the rebuilt views, more history, caught up.
    generate(services, participants=5, steps=60, seed=32)
    runner.catch_up()
    caught_up = digest(services)
    build_runner(services, rebuild_batch_size=70).rebuild()
    assert digest(services) == caught_up


def test_a_batch_that_fails_at_its_flush_leaves_nothing_behind(services, monkeypatch):
    runner = build_runner(services, batch_size=25)
    generate(services, participants=12, steps=120, seed=41)
    runner.catch_up()
    live = digest(services)
    runner.rebuild_batch_size = 60
    stats = runner.projections["program_stats"]
    flush = stats.flush
    calls = []

    def fail_once(cur, store):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed at the flush")
        flush(cur, store)

    monkeypatch.setattr(stats, "flush", fail_once)
    try:
        runner.rebuild()
    except RuntimeError:
        pass
    assert 0 < runner.position("program_stats") < services.log.head()
    monkeypatch.undo()
    runner.catch_up()  # resumes after the last batch that committed
    assert digest(services) == live


def test_a_rebuild_killed_mid_run_and_restarted_ends_identical(settings):
    services = build(settings)
    try:
        generate(services, participants=60, steps=1200, seed=23)
        head = services.log.head()
        runner = build_runner(services)
        runner.catch_up()
        live = digest(services)
        env = {**os.environ, "TCLEDGER_VAR_DIR": str(settings.var_dir),
               "TCLEDGER_DATABASE_URL": settings.database_url, "TCLEDGER_KEK": settings.kek,
               "TCLEDGER_PROJECTION_REBUILD_BATCH_SIZE": "20",
               "TCLEDGER_LOG_LEVEL": "error"}
        process = subprocess.Popen([sys.executable, "-m", "infra.cli", "projections",
                                    "rebuild"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        cleared = False
        while True:
            position = runner.position("timeline")
            cleared = cleared or position < head
            if cleared and head // 3 < position < head:
                break
            assert process.poll() is None, "the rebuild ended before it could be killed"
            assert time.monotonic() < deadline, "the rebuild made no progress"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert runner.position("timeline") < head  # it really died mid-rebuild
        runner.catch_up()  # a restarted runner picks up where the rebuild stopped
        assert digest(services) == live
        build_runner(services, rebuild_batch_size=40).rebuild()  # and so does a new rebuild
        assert digest(services) == live
    finally:
        services.close()


def test_a_rebuild_by_parallel_processes_is_identical(settings):
    """`tcledger projections rebuild` runs independent views in separate processes on
    PostgreSQL (SQLite has one writer: there it runs them in turn)."""
    services = build(settings)
    try:
        generate(services, participants=30, steps=500, seed=31)
        runner = build_runner(services)
        runner.catch_up()
        live = digest(services)
        env = {**os.environ, "TCLEDGER_VAR_DIR": str(settings.var_dir),
               "TCLEDGER_DATABASE_URL": settings.database_url, "TCLEDGER_KEK": settings.kek,
               "TCLEDGER_PROJECTION_REBUILD_BATCH_SIZE": "50", "TCLEDGER_LOG_LEVEL": "error"}
        done = subprocess.run([sys.executable, "-m", "infra.cli", "projections", "rebuild",
                               "--jobs", "2"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert "rebuilt participant_summary" in done.stderr
        assert all(p["lag"] == 0 for p in runner.status())
        assert digest(services) == live
    finally:
        services.close()
