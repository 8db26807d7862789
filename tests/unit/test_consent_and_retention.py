"""42 CFR Part 2 consent (categories and an expiry) and legal holds that block erasure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from domain import events as ev
from domain.errors import InvalidValue, NotFound, RuleViolation
from domain.participant import CONSENT_CATEGORIES, Participant
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]


def test_give_consent(admitted: Participant, by: Provenance, days_ago: DaysAgo) -> None:
    expires = days_ago(-180).date()
    consent_id = admitted.give_consent(
        by=by, recipient="SYN-PAROLE-BOARD", purpose="parole hearing",
        categories=["stage-progress", "drug-tests", "stage-progress"], at=days_ago(2),
        expires_on=expires, criminal_justice_referral=True)
    consent = admitted.state.consents[consent_id]
    assert consent["categories"] == ["stage-progress", "drug-tests"]  # deduplicated, in order
    assert consent["expires_on"] == expires.isoformat()
    assert consent["criminal_justice_referral"] is True
    assert consent["revoked_on"] is None
    assert admitted.active_consents(days_ago(0).date()) == [consent]
    # Past its expiry a consent is no longer active.
    assert admitted.active_consents(days_ago(-181).date()) == []


def test_every_listed_category_is_accepted(admitted: Participant, by: Provenance,
                                           days_ago: DaysAgo) -> None:
    consent_id = admitted.give_consent(by=by, recipient="SYN-CLINIC", purpose="treatment",
                                       categories=list(CONSENT_CATEGORIES), at=days_ago(1),
                                       expiry_event="end of treatment")
    assert admitted.state.consents[consent_id]["categories"] == list(CONSENT_CATEGORIES)
    assert admitted.state.consents[consent_id]["expires_on"] is None


@pytest.mark.parametrize("categories", [[], ["drug-tests", "everything"], ["Drug-Tests"]])
def test_consent_needs_known_categories(admitted: Participant, by: Provenance,
                                        days_ago: DaysAgo, categories: list[str]) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.give_consent(by=by, recipient="SYN-CLINIC", purpose="treatment",
                              categories=categories, at=days_ago(1),
                              expires_on=days_ago(-30).date())
    assert exc.value.field == "categories"
    assert admitted.state.consents == {}


def test_consent_needs_an_expiry(admitted: Participant, by: Provenance,
                                 days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.give_consent(by=by, recipient="SYN-CLINIC", purpose="treatment",
                              categories=["aftercare"], at=days_ago(1))
    assert exc.value.field == "expires_on"
    with pytest.raises(InvalidValue) as exc:
        admitted.give_consent(by=by, recipient="SYN-CLINIC", purpose="treatment",
                              categories=["aftercare"], at=days_ago(1),
                              expires_on=days_ago(1).date())
    assert exc.value.field == "expires_on"
    assert admitted.state.consents == {}


def test_revoke_consent_once(admitted: Participant, by: Provenance,
                             days_ago: DaysAgo) -> None:
    consent_id = admitted.give_consent(by=by, recipient="SYN-CLINIC", purpose="treatment",
                                       categories=["aftercare"], at=days_ago(3),
                                       expires_on=days_ago(-30).date())
    admitted.revoke_consent(by=by, consent_id=consent_id, at=days_ago(2),
                            reason="resident withdrew consent")
    assert admitted.state.consents[consent_id]["revoked_on"] == days_ago(2).date().isoformat()
    assert admitted.active_consents(days_ago(0).date()) == []
    with pytest.raises(RuleViolation) as exc:
        admitted.revoke_consent(by=by, consent_id=consent_id, at=days_ago(1), reason="again")
    assert exc.value.rule == "consent-not-active"
    with pytest.raises(NotFound) as not_found:
        admitted.revoke_consent(by=by, consent_id="no-such-consent", at=days_ago(1),
                                reason="x")
    assert not_found.value.what == "consent"


def test_revoking_consent_needs_a_reason(admitted: Participant, by: Provenance,
                                         days_ago: DaysAgo) -> None:
    consent_id = admitted.give_consent(by=by, recipient="SYN-CLINIC", purpose="treatment",
                                       categories=["aftercare"], at=days_ago(3),
                                       expires_on=days_ago(-30).date())
    with pytest.raises(InvalidValue) as exc:
        admitted.revoke_consent(by=by, consent_id=consent_id, at=days_ago(2), reason="")
    assert exc.value.field == "reason"
    assert admitted.state.consents[consent_id]["revoked_on"] is None


def test_a_record_without_holds_is_erasable(admitted: Participant) -> None:
    admitted.check_erasable()  # raises nothing


def test_a_legal_hold_blocks_erasure_until_released(admitted: Participant, by: Provenance,
                                                    days_ago: DaysAgo) -> None:
    hold_id = admitted.place_legal_hold(by=by, matter="SYN-MATTER-7", at=days_ago(3),
                                        reason="litigation")
    assert [h["hold_id"] for h in admitted.state.open_legal_holds] == [hold_id]
    with pytest.raises(RuleViolation) as exc:
        admitted.check_erasable()
    assert exc.value.rule == "legal-hold-open"

    admitted.release_legal_hold(by=by, hold_id=hold_id, at=days_ago(1), reason="matter closed")
    assert admitted.state.open_legal_holds == []
    assert admitted.state.legal_holds[hold_id]["released_on"] == days_ago(1).date().isoformat()
    admitted.check_erasable()


def test_every_hold_must_be_released(admitted: Participant, by: Provenance,
                                     days_ago: DaysAgo) -> None:
    first = admitted.place_legal_hold(by=by, matter="SYN-MATTER-1", at=days_ago(3),
                                      reason="litigation")
    admitted.place_legal_hold(by=by, matter="SYN-MATTER-2", at=days_ago(3), reason="audit")
    admitted.release_legal_hold(by=by, hold_id=first, at=days_ago(1), reason="closed")
    with pytest.raises(RuleViolation) as exc:
        admitted.check_erasable()
    assert exc.value.rule == "legal-hold-open"


def test_releasing_a_hold_twice_or_an_unknown_hold(admitted: Participant, by: Provenance,
                                                   days_ago: DaysAgo) -> None:
    hold_id = admitted.place_legal_hold(by=by, matter="SYN-MATTER-3", at=days_ago(3),
                                        reason="litigation")
    admitted.release_legal_hold(by=by, hold_id=hold_id, at=days_ago(2), reason="closed")
    with pytest.raises(RuleViolation) as exc:
        admitted.release_legal_hold(by=by, hold_id=hold_id, at=days_ago(1), reason="again")
    assert exc.value.rule == "legal-hold-not-open"
    with pytest.raises(NotFound) as not_found:
        admitted.release_legal_hold(by=by, hold_id="no-such-hold", at=days_ago(1), reason="x")
    assert not_found.value.what == "legal hold"


def test_a_hold_release_cannot_be_voided(admitted: Participant, by: Provenance,
                                         days_ago: DaysAgo) -> None:
    hold_id = admitted.place_legal_hold(by=by, matter="SYN-MATTER-4", at=days_ago(3),
                                        reason="litigation")
    admitted.release_legal_hold(by=by, hold_id=hold_id, at=days_ago(2), reason="closed")
    released = admitted.history[-1]
    assert isinstance(released, ev.LegalHoldReleased)
    with pytest.raises(RuleViolation) as exc:
        admitted.void_entry(by=by, version=released.originator_version, at=days_ago(1),
                            reason="undo")
    assert exc.value.rule == "entry-not-voidable"
