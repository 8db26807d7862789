"""The disclosure map: every event class is decided, and no decision lets free text or staff
identities out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, get_type_hints

import pytest

from domain import events as ev
from domain.disclosure import (
    AMENDMENTS,
    DISCLOSABLE,
    WITHHELD,
    Permissions,
    expiry_event_code,
    permissions,
    same_recipient,
)
from domain.errors import InvalidValue
from domain.events import METADATA_FIELDS, event_types
from domain.participant import CONSENT_CATEGORIES, Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]
PAROLE = "SYN-PAROLE"

NEVER_SENT = {"reason", "description", "grounds", "report", "statement", "observed_by",
              "assessor", "reporter_id", "reporter_kind", "counselor_id", "given_name",
              "family_name", "date_of_birth", "referral_source", "medications",
              "aftercare_referral", "review", "score", "subscales", "seal_id",
              "requested_change", "matter", *METADATA_FIELDS}


def test_every_event_class_is_disclosed_withheld_or_an_amendment() -> None:
    # A class added later fails here until someone decides what it may disclose.
    decided = set(DISCLOSABLE) | WITHHELD | AMENDMENTS
    assert set(event_types()) == decided
    assert not set(DISCLOSABLE) & WITHHELD


def test_each_disclosure_names_real_fields_and_a_consent_category() -> None:
    classes = event_types()
    for name, rule in DISCLOSABLE.items():
        assert rule.category in CONSENT_CATEGORIES, name
        hints = get_type_hints(classes[name])
        for field in rule.fields:
            assert field in hints, (name, field)
            assert field not in NEVER_SENT, (name, field)


def test_recipients_match_whatever_their_case_and_spacing() -> None:
    assert same_recipient(" Synthetic  Parole office", "synthetic parole OFFICE")
    assert not same_recipient("Synthetic Parole Office", "Synthetic Parole")


def consent(consent_id: str, recipient: str, categories: list[str], **more: Any
            ) -> dict[str, Any]:
    return {"consent_id": consent_id, "recipient": recipient, "categories": categories,
            "expires_on": None, "expiry_event": None, "revoked_on": None, **more}


def allowed_today(p: Participant, today: date, subscribed: frozenset[str] = frozenset(
        CONSENT_CATEGORIES)) -> Permissions:
    return permissions(p.state.consents.values(), PAROLE, subscribed, today,
                       p.state.discharge, p.history)


def test_permitted_categories_are_the_subscription_and_the_consents_together() -> None:
    today = date(2030, 6, 1)
    consents = [
        consent("c1", "Parole", ["discharge", "sanctions"], expires_on="2030-06-01"),
        consent("c2", "Sheriff", ["drug-tests"], expires_on="2031-01-01"),
        consent("c3", "parole", ["drug-tests"], expires_on="2031-01-01"),
        consent("c4", "Parole", ["stage-progress"], expires_on="2030-05-31"),  # lapsed
        consent("c5", "Parole", ["admission-and-status"], expires_on="2031-01-01",
                revoked_on="2030-01-01"),
    ]
    found = permissions(consents, "Parole", frozenset({"discharge", "drug-tests",
                                                       "stage-progress",
                                                       "admission-and-status"}),
                        today, None, [])
    assert found.categories == {"discharge", "drug-tests"}  # sanctions not subscribed
    assert found.consent_for("discharge", 7) == "c1"  # the last day of a consent is in it
    assert found.consent_for("drug-tests", 7) == "c3"
    assert found.consent_for("stage-progress", 7) is None
    assert not permissions(consents, "Court", frozenset(CONSENT_CATEGORIES), today, None, [])


@pytest.mark.parametrize(("words", "code"), [
    ("discharge", "discharge"), ("End of  Treatment", "discharge"),
    ("program-completion", "discharge"), ("Release from custody", "release"),
    ("release_to_parole", "release"), ("end of parole supervision", None),
    ("when the court says so", None), ("", None), (None, None)])
def test_expiry_events_are_the_ones_the_record_can_show(words: str | None,
                                                        code: str | None) -> None:
    assert expiry_event_code(words) == code


def test_a_consent_until_discharge_covers_entries_up_to_the_discharge_that_day(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    today = by.now.date()
    given = admitted.give_consent(by=by, recipient=PAROLE, purpose="supervision",
                                  categories=["discharge", "stage-progress"],
                                  at=days_ago(2), expiry_event="discharge")
    allowed = allowed_today(admitted, today)
    assert allowed.consent_for("stage-progress", 1) == given
    assert allowed.consent_for("stage-progress", 10_000) == given  # no end yet
    admitted.discharge(policy, by=by, discharge_type="therapeutic-termination",
                       at=days_ago(1), reason="synthetic")
    ended_at = admitted.version
    admitted.send_aftercare_handoff(by=by, receiving_agency="SYN-AGENCY", report="r",
                                    at=days_ago(0), reason="handoff")
    allowed = allowed_today(admitted, today)
    assert allowed.consent_for("discharge", ended_at) == given  # the notice itself goes
    assert allowed.consent_for("stage-progress", ended_at + 1) is None
    # Ended on the day the discharge was recorded, though it took effect the day before.
    assert not allowed_today(admitted, today + timedelta(days=1))


def test_a_consent_until_release_ends_only_with_a_release_from_custody(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    today = by.now.date()
    given = admitted.give_consent(by=by, recipient=PAROLE, purpose="supervision",
                                  categories=["discharge"], at=days_ago(3),
                                  expiry_event="release from custody")
    admitted.discharge(policy, by=by, discharge_type="therapeutic-termination",
                       at=days_ago(2), reason="synthetic")
    discharged_at = admitted.version
    later = today + timedelta(days=30)
    assert allowed_today(admitted, later).consent_for("discharge", 99) == given
    # The discharge corrected to a release: the consent ends with it.
    admitted.correct_entry(policy, by=by, version=discharged_at, at=days_ago(1),
                           changes={"discharge_type": "administrative-release"},
                           reason="it was a release")
    assert allowed_today(admitted, today).consent_for("discharge", discharged_at) == given
    assert allowed_today(admitted, today).consent_for("discharge", discharged_at + 1) is None
    assert not allowed_today(admitted, later)
    # Voided: no discharge, no end.
    admitted.void_entry(policy, by=by, version=discharged_at, at=days_ago(0),
                        reason="entered on the wrong record")
    assert allowed_today(admitted, later).consent_for("discharge", 99) == given


def test_an_end_the_record_cannot_show_needs_a_date(
        admitted: Participant, by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as refused:
        admitted.give_consent(by=by, recipient=PAROLE, purpose="supervision",
                              categories=["discharge"], at=days_ago(1),
                              expiry_event="end of parole supervision")
    assert refused.value.field == "expiry_event"
    assert "discharge, release" in refused.value.detail
    assert admitted.collect_events()[-1].__class__ is not ev.ConsentGiven
    until = by.now.date() + timedelta(days=90)
    given = admitted.give_consent(by=by, recipient=PAROLE, purpose="supervision",
                                  categories=["discharge"], at=days_ago(1),
                                  expires_on=until, expiry_event="end of parole supervision")
    assert allowed_today(admitted, until).consent_for("discharge", 1) == given
    assert not allowed_today(admitted, until + timedelta(days=1))


def test_a_stored_consent_with_an_end_it_cannot_show_discloses_nothing() -> None:
    # Given before tcledger interpreted expiry events: it cannot tell when it ended.
    stored = [consent("c1", PAROLE, ["discharge"], expiry_event="end of supervision")]
    assert not permissions(stored, PAROLE, frozenset({"discharge"}), date(2030, 1, 1),
                           None, [])
