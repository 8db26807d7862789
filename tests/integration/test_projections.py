"""The projection runner and the participant summary view, on both stores."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from domain.provenance import Provenance
from projections import caseload
from projections.wiring import build_runner


def staff() -> Provenance:
    """A fresh provenance each command: its `now` is the command's moment, as in the API."""
    return Provenance("staff-1", "counselor")


TODAY = datetime.now(UTC).date()


def admit(services, n: int, days_ago: int = 100, facility: str = "F-NORTH"):
    return services.ledger.admit(
        services.policies.get("tc-default"), staff(), facility=facility, unit="U-1",
        external_ids={"DOC": {"value": f"SYN-{n:05d}", "issuer": facility}},
        given_name=f"Hollis{n}", family_name="Vexmoorton", date_of_birth=date(1980, 5, 5),
        admitted_on=TODAY - timedelta(days=days_ago),
        expected_release_on=TODAY + timedelta(days=60), counselor_id="c-1",
        referral_source=None, program_agreement_signed=True, reason="synthetic",
        assessments=[]).id


def rows(services) -> list[dict]:
    return [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_participant_summary ORDER BY participant_id")]


def digest(services) -> str:
    found = rows(services)
    for r in found:  # sealed values carry random nonces: compare what they say
        r["sealed"] = json.loads(services.sealer.open(
            __import__("uuid").UUID(r["participant_id"]), "participant_summary",
            bytes(r["sealed"])))
    consents = [dict(r) for r in services.store.fetch_all(
        "SELECT * FROM tcledger_summary_consents ORDER BY participant_id, expires_on")]
    return json.dumps([found, consents], sort_keys=True, default=str)


def test_summary_rows_follow_the_log(services):
    runner = build_runner(services, batch_size=3)
    a, b = admit(services, 1), admit(services, 2, days_ago=10)
    services.ledger.execute(a, lambda p, policy: p.collect_specimen(
        policy, by=staff(), specimen_id="S-1", method="urine", test_reason="random",
        collected_at=datetime.now(UTC) - timedelta(hours=2)))
    services.ledger.execute(a, lambda p, policy: p.record_result(
        policy, by=staff(), specimen_id="S-1", result="positive",
        substances=[{"code": "fentanyl"}], resulted_at=datetime.now(UTC)))
    assert runner.catch_up() == len(runner.projections) * services.log.head()  # each view
    assert runner.position("participant_summary") == services.log.head()
    found = caseload.find(services.store, caseload.CaseloadQuery(facility="F-NORTH"), TODAY)
    assert [r["participant_id"] for r in found] == [str(a), str(b)]
    assert "result_unconfirmed" in found[0]["flags"] and "review_due" in found[0]["flags"]
    assert "release_within_90_days" in found[1]["flags"]
    # 10 days in: no review yet; no group attended yet
    assert found[1]["flags"] == ["release_within_90_days", "attendance_below_requirement"]
    by_flag = caseload.find(services.store, caseload.CaseloadQuery(
        flags=("result_unconfirmed",)), TODAY)
    assert [r["participant_id"] for r in by_flag] == [str(a)]
    by_doc = caseload.find(services.store, caseload.CaseloadQuery(
        doc_index=services.index.digest("DOC", "syn-00002")), TODAY)
    assert [r["participant_id"] for r in by_doc] == [str(b)]
    # Nothing personal in clear in the view.
    flat = json.dumps(rows(services), default=str)
    for secret in ("Hollis1", "Vexmoorton", "SYN-00001", "fentanyl"):
        assert secret not in flat


def test_a_batch_and_its_position_commit_together(services, monkeypatch):
    runner = build_runner(services, batch_size=2)
    for n in range(5):
        admit(services, n)
    assert runner.step(runner.projections["participant_summary"]) == 2
    view = runner.projections["participant_summary"]

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-batch")

    monkeypatch.setattr(view, "_write", crash)
    try:
        runner.step(view)
    except RuntimeError:
        pass
    assert runner.position("participant_summary") == 2  # nothing of the failed batch
    assert len(rows(services)) == 2
    monkeypatch.undo()
    runner.catch_up()
    assert len(rows(services)) == 5


def test_rebuild_gives_identical_rows_and_erasure_leaves_none(services):
    runner = build_runner(services, batch_size=4)
    ids = [admit(services, n) for n in range(6)]
    for pid in ids[:3]:
        services.ledger.execute(pid, lambda p, policy: p.grant_privilege(
            policy, by=staff(), privilege="commissary", at=datetime.now(UTC), reason="earned"))
        services.ledger.execute(pid, lambda p, policy: p.give_consent(
            by=staff(), recipient="Synthetic Parole", purpose="supervision",
            categories=["discharge"], at=datetime.now(UTC),
            expires_on=TODAY + timedelta(days=20)))
    services.ledger.execute(ids[0], lambda p, policy: p.correct_entry(
        policy, by=staff(), version=1, changes={"given_name": "Corrected"},
        at=datetime.now(UTC), reason="misspelt"))
    runner.catch_up()
    services.ledger.erase(ids[1], Provenance("admin-1", "admin"), "retention ended")
    runner.catch_up()
    assert str(ids[1]) not in [r["participant_id"] for r in rows(services)]
    live = digest(services)
    assert "Corrected" in live and len(rows(services)) == 5
    runner.rebuild()
    assert digest(services) == live
    expiring = caseload.find(services.store, caseload.CaseloadQuery(
        flags=("consent_expiring",)), TODAY)
    assert sorted(r["participant_id"] for r in expiring) == sorted(str(i) for i in (ids[0], ids[2]))


def test_two_runners_never_apply_a_batch_twice(settings):
    from infra.wiring import build
    first, second = build(settings), build(settings)
    try:
        r1, r2 = build_runner(first, batch_size=1), build_runner(second, batch_size=1)
        for n in range(4):
            admit(first, n)
        import threading
        threads = [threading.Thread(target=r.catch_up) for r in (r1, r2, r1, r2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        r1.catch_up()
        assert r1.position("participant_summary") == first.log.head()
        assert len(rows(first)) == 4
    finally:
        first.close()
        second.close()
