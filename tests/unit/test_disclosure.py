"""The disclosure map: every event class is decided, and no decision lets free text or staff
identities out."""

from __future__ import annotations

from typing import get_type_hints

from domain.disclosure import (
    AMENDMENTS,
    DISCLOSABLE,
    WITHHELD,
    permitted_categories,
    same_recipient,
)
from domain.events import METADATA_FIELDS, event_types
from domain.participant import CONSENT_CATEGORIES

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


def test_permitted_categories_are_the_subscription_and_the_consents_together() -> None:
    consents = [
        {"consent_id": "c1", "recipient": "Parole", "categories": ["discharge", "sanctions"]},
        {"consent_id": "c2", "recipient": "Sheriff", "categories": ["drug-tests"]},
        {"consent_id": "c3", "recipient": "parole", "categories": ["drug-tests"]},
    ]
    assert permitted_categories(consents, "Parole", frozenset({"discharge", "drug-tests",
                                                                "stage-progress"})) == {
        "discharge": "c1", "drug-tests": "c3"}
    assert permitted_categories(consents, "Court", frozenset(CONSENT_CATEGORIES)) == {}
