"""The replayer over in-memory persistence: each state is the ledger's own fold at that
version, pages of any size join into the same walk, checkpoints are taken and dropped, and
corrections name what they supersede."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.replay import Replayer, VersionOutOfRange
from domain import events as ev
from domain.application import TCLedger
from domain.errors import ParticipantErased, ParticipantNotFound
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance
from domain.state import ParticipantState

DaysAgo = Callable[[float], datetime]


def snapshot(p: Participant) -> tuple[int, ParticipantState]:
    return p.version, copy.deepcopy(p.state)


@pytest.fixture
def pid(ledger: TCLedger, policy: ProgramPolicy, by: Provenance,
        admission_fields: Callable[..., dict[str, Any]], days_ago: DaysAgo) -> UUID:
    """A record of 14 events: an infraction corrected twice, a grant voided, a promotion."""
    pid = ledger.admit(policy, by, **admission_fields()).id

    def run(command: Callable[[Participant, ProgramPolicy], Any]) -> int:
        return ledger.execute(pid, command).version

    infraction = run(lambda p, pol: p.record_infraction(
        pol, by=by, code="disrespect", observed_at=days_ago(150), description="first words",
        reason="reported"))
    granted = run(lambda p, pol: p.grant_privilege(pol, by=by, privilege="commissary",
                                                   at=days_ago(140), reason="earned"))
    for n in range(4):
        run(lambda p, pol, n=n: p.award_incentive(by=by, incentive=f"incentive {n}",
                                                  at=days_ago(130 - n), reason="affirmed"))
    run(lambda p, pol: p.correct_entry(pol, by=by, version=infraction,
                                       changes={"description": "second words"},
                                       at=by.now, reason="misheard"))
    run(lambda p, pol: p.promote(pol, by=by, to_stage="phase-1", at=days_ago(120),
                                 reason="criteria met"))
    run(lambda p, pol: p.void_entry(by=by, version=granted, at=by.now, reason="wrong person"))
    run(lambda p, pol: p.correct_entry(pol, by=by, version=infraction,
                                       changes={"description": "third words",
                                                "code": "house-rule-lateness"},
                                       at=by.now, reason="misread"))
    for n in range(3):
        run(lambda p, pol, n=n: p.award_incentive(by=by, incentive=f"later {n}",
                                                  at=days_ago(100 - n), reason="affirmed"))
    return pid


def test_each_state_is_the_ledgers_fold_at_that_version(ledger: TCLedger, pid: UUID) -> None:
    page = Replayer(ledger).page(pid, snapshot, limit=100)
    assert page.version == ledger.participant(pid).version == len(page.steps) == 14
    for step in page.steps:
        version = step.event.originator_version
        assert step.state == snapshot(ledger.participant(pid, version=version))
    assert page.next_after_version is None


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limits=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=14))
def test_pages_of_any_size_join_into_the_same_walk(ledger: TCLedger, pid: UUID,
                                                   limits: list[int]) -> None:
    replayer = Replayer(ledger)
    whole = replayer.page(pid, snapshot, limit=100).steps
    walked: list[Any] = []
    after: int | None = 0
    for n in range(100):
        if after is None:
            break
        page = replayer.page(pid, snapshot, after_version=after, limit=limits[n % len(limits)])
        walked += page.steps
        after = page.next_after_version
    assert walked == whole


def test_a_page_starts_from_the_checkpoint_the_last_one_left(ledger: TCLedger,
                                                             pid: UUID) -> None:
    replayer = Replayer(ledger)
    replayer.page(pid, snapshot, limit=5)
    left = replayer.checkpoints.take(pid, 5)
    assert left is not None and left.version == 5
    replayer.checkpoints.leave(left)
    replayer.page(pid, snapshot, after_version=5, limit=5)
    assert replayer.checkpoints.take(pid, 5) is None  # taken, not shared
    assert replayer.checkpoints.take(pid, 10) is not None


def test_an_erased_record_is_refused_and_its_checkpoints_dropped(
        ledger: TCLedger, pid: UUID, by: Provenance) -> None:
    replayer = Replayer(ledger)
    replayer.page(pid, snapshot, limit=3)
    ledger.erase(pid, by, "retention expired")
    with pytest.raises(ParticipantErased):
        replayer.page(pid, snapshot, after_version=3)
    assert replayer.checkpoints.take(pid, 3) is None


def test_unknown_records_and_pages_beyond_the_end_are_refused(ledger: TCLedger,
                                                              pid: UUID) -> None:
    replayer = Replayer(ledger)
    with pytest.raises(ParticipantNotFound):
        replayer.page(UUID(int=7), snapshot)
    with pytest.raises(VersionOutOfRange):
        replayer.page(pid, snapshot, after_version=15)
    assert replayer.page(pid, snapshot, after_version=14).steps == []


def test_a_guard_refuses_before_anything_is_read(ledger: TCLedger, pid: UUID) -> None:
    def elsewhere(p: Participant) -> None:
        raise ParticipantNotFound(p.id)

    with pytest.raises(ParticipantNotFound):
        Replayer(ledger).page(pid, snapshot, guard=elsewhere)


def test_corrections_and_voids_name_what_they_supersede(ledger: TCLedger, pid: UUID) -> None:
    steps = Replayer(ledger).page(pid, snapshot, limit=100).steps
    marks = {s.event.originator_version: [(m.version, m.action) for m in s.superseded_by]
             for s in steps if s.superseded_by}
    assert marks == {2: [(8, "correct"), (11, "correct")], 3: [(10, "void")]}

    second = steps[10].supersedes
    assert second is not None and second.action == "correct"
    assert second.original is steps[1].event
    assert isinstance(second.original, ev.InfractionRecorded)
    assert isinstance(second.in_effect, ev.InfractionRecorded)
    assert second.original.description == "first words"
    assert second.in_effect.description == "second words"  # the first correction
    assert second.changes == {"description": "third words", "code": "house-rule-lateness"}
    void = steps[9].supersedes
    assert void is not None and (void.action, void.changes) == ("void", {})
    assert void.original is steps[2].event and void.in_effect is void.original

    # States before a correction keep what the record showed then.
    described = [next(iter(s.state[1].infractions.values()))["description"]
                 for s in steps[1:]]
    assert described == ["first words"] * 6 + ["second words"] * 3 + ["third words"] * 4
