"""An event stored in an older shape is upcast when read, never rewritten.

`ResultReviewed` version 1 held one `medication`; version 2 holds `medications`. A record
stored by a version 1 writer is put in the store as that writer stored it and read back
through the application's own mapper and transcoder; corrections recorded against it in
version 1 field names are upcast too."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from domain import events as ev
from domain.application import TCLedger
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]
SPECIMEN = "SYN-SPEC-0099"
V1_FIELDS = {"timestamp", "actor_id", "actor_role", "effective_at", "reason", "source",
             "correlation_id", "causation_id", "specimen_id", "outcome", "medication",
             "medication_assisted_treatment"}


@pytest.fixture
def positive_id(ledger: TCLedger, policy: ProgramPolicy, by: Provenance,
                admission_fields: Callable[..., dict[str, Any]], days_ago: DaysAgo) -> Any:
    pid = ledger.admit(policy, by, **admission_fields()).id

    def test(p: Participant, pol: ProgramPolicy) -> None:
        p.collect_specimen(pol, by=by, specimen_id=SPECIMEN, method="urine",
                           test_reason="random", collected_at=days_ago(4))
        p.record_result(pol, by=by, specimen_id=SPECIMEN, result="positive",
                        substances=[{"code": "buprenorphine", "level_ng_ml": 12}],
                        resulted_at=days_ago(3))

    ledger.execute(pid, test)
    return pid


def store_as_version_1(ledger: TCLedger, event: ev.ParticipantEvent,
                       medication: str | None) -> None:
    """Stores a review the way a version 1 writer did: `medication`, no class_version."""
    stored = ledger.mapper.to_stored_event(event)
    state = ledger.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2
    del state["medications"]
    state["medication"] = medication
    assert set(state) == V1_FIELDS
    ledger.recorder.insert_events([StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic,
        ledger.mapper.transcoder.encode(state))])


def a_review(ledger: TCLedger, pid: Any, by: Provenance, at: datetime) -> ev.ParticipantEvent:
    scratch = ledger.participant(pid)
    scratch.review_result(by=by, specimen_id=SPECIMEN, outcome="explained", at=at,
                          reason="prescribed", medications=["ignored"])
    (event,) = scratch.collect_events()
    return event  # type: ignore[no-any-return]


@pytest.mark.parametrize(("medication", "medications"), [
    ("SYN-BUPRENORPHINE", ["SYN-BUPRENORPHINE"]), (None, [])])
def test_a_version_1_review_reads_as_version_2(
        ledger: TCLedger, positive_id: Any, by: Provenance, days_ago: DaysAgo,
        medication: str | None, medications: list[str]) -> None:
    store_as_version_1(ledger, a_review(ledger, positive_id, by, days_ago(2)), medication)
    ledger.forget(positive_id)

    review = ledger.participant(positive_id).state.specimens[SPECIMEN]["review"]
    assert review["medications"] == medications and "medication" not in review
    (event,) = [e for e in ledger.history(positive_id) if isinstance(e, ev.ResultReviewed)]
    assert event.medications == medications
    assert not hasattr(event, "medication")


def test_corrections_of_a_version_1_review_are_upcast_in_order(
        ledger: TCLedger, positive_id: Any, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    review = a_review(ledger, positive_id, by, days_ago(2))
    store_as_version_1(ledger, review, "SYN-MED-A")
    # A version 1 era correction, stored as it was: it names the old field.
    scratch = ledger.participant(positive_id)
    scratch.trigger_event(ev.EntryCorrected, **by.event_fields("wrong drug", days_ago(1)),
                          supersedes_version=review.originator_version,
                          changes={"medication": "SYN-MED-B"})
    ledger.recorder.insert_events([ledger.mapper.to_stored_event(scratch.collect_events()[0])])
    ledger.forget(positive_id)
    state = ledger.participant(positive_id).state
    assert state.specimens[SPECIMEN]["review"]["medications"] == ["SYN-MED-B"]

    # Today's correction, in today's name, wins over the older one.
    ledger.execute(positive_id, lambda p, pol: p.correct_entry(
        pol, by=by, version=review.originator_version, at=by.now, reason="both drugs",
        changes={"medications": ["SYN-MED-B", "SYN-MED-C"]}))
    ledger.forget(positive_id)
    assert ledger.participant(positive_id).state.specimens[SPECIMEN]["review"][
        "medications"] == ["SYN-MED-B", "SYN-MED-C"]


def test_a_new_review_is_stored_as_version_2(
        ledger: TCLedger, positive_id: Any, by: Provenance, days_ago: DaysAgo) -> None:
    ledger.execute(positive_id, lambda p, pol: p.review_result(
        by=by, specimen_id=SPECIMEN, outcome="explained", at=days_ago(1),
        reason="prescribed", medications=["SYN-MED-A", " SYN-MED-A "]))
    stored = ledger.recorder.select_events(positive_id)[-1]
    state = ledger.mapper.transcoder.decode(stored.state)
    assert (state["class_version"], state["medications"]) == (2, ["SYN-MED-A"])


def test_a_group_session_stored_before_peer_led_groups_reads_as_staff_led(
        ledger: TCLedger, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo) -> None:
    """`GroupHeld` version 1 had no `peer_led`: every such session was led by staff."""
    from domain.groups import GroupSession

    session = GroupSession.hold(policy, by=by, facility="SYN-FACILITY-A", unit=None,
                                kind="seminar", held_at=days_ago(1), duration_minutes=30,
                                facilitator_staff_id="staff-f1")
    [event] = session.collect_events()
    stored = ledger.mapper.to_stored_event(event)
    state = ledger.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2 and state.pop("peer_led") is False
    ledger.recorder.insert_events([StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic,
        ledger.mapper.transcoder.encode(state))])
    read = ledger.group(session.id)  # not kept in memory: read from the store
    assert (read.peer_led, read.facilitator_staff_id, read.kind) == (False, "staff-f1",
                                                                     "seminar")
