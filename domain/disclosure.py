"""What an outside recipient may learn of each fact: its consent category and its minimised form.

42 CFR Part 2 lets a program disclose only the categories of information that a
participant's written consent names, and no more of them than the purpose needs. Each event
class that may ever leave tcledger is mapped here to one consent category and to the fields
it carries outside, plus its effective date; every class not mapped never leaves (consents,
disclosures, amendment requests, legal holds, counselor assignments, and any class added
later until someone maps it). Free text written by staff (reasons, descriptions, notes,
grounds, reports) and the identities of staff (actors, observers, assessors, reporters,
counselors) are never part of a disclosure.

A correction or void travels with the entry it supersedes: it is disclosed to whoever may
see that entry, carrying only the corrected fields that the entry's disclosure carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from domain import events as ev

REDISCLOSURE_NOTICE = (
    "This record, whose disclosure is protected by 42 CFR part 2, was disclosed with the "
    "patient's written consent. 42 CFR part 2 prohibits unauthorized use or disclosure of "
    "this record.")


@dataclass(frozen=True)
class Disclosable:
    """The consent category of an event class and the fields its disclosure carries."""

    category: str
    fields: tuple[str, ...]


_STAGE = ("from_stage", "to_stage")

DISCLOSABLE: dict[str, Disclosable] = {
    # admission-and-status: where the participant is in the program and when they leave
    "ParticipantAdmitted": Disclosable("admission-and-status", (
        "program", "facility", "unit", "admitted_on", "expected_release_on")),
    "ParticipantTransferred": Disclosable("admission-and-status", (
        "facility", "unit", "previous_facility", "previous_unit")),
    "ReleaseDateChanged": Disclosable("admission-and-status", ("expected_release_on",)),
    # stage-progress: the ladder, and the privileges that follow it
    "StagePromoted": Disclosable("stage-progress", _STAGE),
    "StageRegressed": Disclosable("stage-progress", _STAGE),
    "StageRepeated": Disclosable("stage-progress", _STAGE),
    "StageHeld": Disclosable("stage-progress", ("stage", "until")),
    "PrivilegeGranted": Disclosable("stage-progress", ("privilege", "until")),
    "PrivilegeRevoked": Disclosable("stage-progress", ("privilege",)),
    "PrivilegeSuspended": Disclosable("stage-progress", ("privilege", "until")),
    "PrivilegeRestored": Disclosable("stage-progress", ("privilege",)),
    # sanctions: rule codes and graded sanctions, never the description or the reporter
    "InfractionRecorded": Disclosable("sanctions", (
        "infraction_id", "code", "rule_class", "observed_at")),
    "SanctionImposed": Disclosable("sanctions", (
        "sanction_id", "sanction", "severity", "infraction_id", "due_on")),
    "SanctionCompleted": Disclosable("sanctions", ("sanction_id",)),
    "SanctionFailed": Disclosable("sanctions", ("sanction_id",)),
    "SanctionRescinded": Disclosable("sanctions", ("sanction_id",)),
    # drug-tests: results as the lab gave them; no observer, seal, medications or grounds
    "SpecimenCollected": Disclosable("drug-tests", (
        "specimen_id", "method", "test_reason", "collected_at")),
    "TestResulted": Disclosable("drug-tests", (
        "specimen_id", "result", "validity", "substances", "lab", "resulted_at")),
    "ResultConfirmed": Disclosable("drug-tests", (
        "specimen_id", "confirmed", "method", "substances")),
    "ResultReviewed": Disclosable("drug-tests", ("specimen_id", "outcome")),
    "ResultDisputed": Disclosable("drug-tests", ("specimen_id",)),
    # discharge: type and date, never the reason or the referral
    "Discharged": Disclosable("discharge", ("discharge_type", "category", "successful")),
    # treatment-participation: roles, incentives and assessment levels, not scores
    "JobFunctionAssigned": Disclosable("treatment-participation", ("job_id", "function")),
    "JobFunctionEnded": Disclosable("treatment-participation", ("job_id",)),
    "IncentiveAwarded": Disclosable("treatment-participation", ("incentive_id", "incentive")),
    "AssessmentRecorded": Disclosable("treatment-participation", (
        "assessment_id", "instrument", "instrument_version", "risk_level", "level_of_care")),
    # Community life (issue 7). treatment-participation: that a group was attended or
    # missed, of which kind and when, never the note; peer feedback and mentorship as a
    # kind and a date, never the peer (another participant) or the behaviour described.
    "GroupAttended": Disclosable("treatment-participation", ("kind", "held_at", "status")),
    "GroupMissed": Disclosable("treatment-participation", ("kind", "held_at", "status")),
    "GroupFacilitated": Disclosable("treatment-participation", ("kind", "held_at")),
    "PeerFeedbackRecorded": Disclosable("treatment-participation", (
        "feedback_id", "kind", "side")),
    "MentorAssigned": Disclosable("treatment-participation", ("mentor_id", "side")),
    "MentorEnded": Disclosable("treatment-participation", ("mentor_id",)),
    # aftercare: who took the participant on, not the hand-off report; follow-ups by window
    # with whether the person was reached and the outcomes; recovery supports by kind
    "AftercareHandoffSent": Disclosable("aftercare", ("handoff_id", "receiving_agency")),
    "FollowUpRecorded": Disclosable("aftercare", (
        "follow_up_id", "window", "method", "reached", "outcomes")),
    "RecoverySupportLinked": Disclosable("aftercare", ("support_id", "kind")),
    "RecoverySupportEnded": Disclosable("aftercare", ("support_id",)),
}

# Never disclosed through the feed, whatever the consent says.
WITHHELD = frozenset({
    "CounselorAssigned", "ConsentGiven", "ConsentRevoked", "DisclosureMade",
    "AmendmentRequested", "AmendmentDenied", "DisagreementFiled", "LegalHoldPlaced",
    "LegalHoldReleased"})
AMENDMENTS = frozenset({"EntryCorrected", "EntryVoided"})


@dataclass(frozen=True)
class Disclosure:
    """One event as a recipient may see it."""

    event_type: str
    category: str
    data: dict[str, Any]


def same_recipient(named: str, recipient: str) -> bool:
    """A consent names a recipient in words: case and spacing do not make another one."""
    return _recipient(named) == _recipient(recipient)


@lru_cache(maxsize=4096)
def _recipient(named: str) -> str:
    return " ".join(named.split()).casefold()


# --- consents in force --------------------------------------------------------------------
#
# 42 CFR §2.31(a)(6): a consent names an expiration date, event or condition. A date ends
# it after that day. An event ends it as below; tcledger must be able to see the event in
# the record, so a consent whose only end is an event it cannot see ("end of parole
# supervision") is refused when given and, if one was stored before, discloses nothing.

RELEASE_TYPES = frozenset({"administrative-release", "administrative-parole"})
EXPIRY_EVENTS: dict[str, str] = {
    "discharge": "the participant's discharge from the program, of any type",
    "release": "a discharge that releases the participant from custody "
               f"({', '.join(sorted(RELEASE_TYPES))})",
}
_EXPIRY_WORDS = {
    "discharge": "discharge", "discharged": "discharge",
    "discharge from the program": "discharge", "program discharge": "discharge",
    "end of treatment": "discharge", "completion of treatment": "discharge",
    "treatment completion": "discharge", "program completion": "discharge",
    "completion of the program": "discharge", "end of program": "discharge",
    "release": "release", "released": "release", "release from custody": "release",
    "release to parole": "release", "release from prison": "release",
}


def expiry_event_code(named: str | None) -> str | None:
    """The expiry event a consent's words name (`discharge`, `release`), or None when
    tcledger cannot see that event happen."""
    if not named:
        return None
    words = " ".join(named.replace("-", " ").replace("_", " ").split()).casefold()
    return _EXPIRY_WORDS.get(words)


@dataclass(frozen=True)
class Ending:
    """Where an expiry event ended a consent: nothing recorded after the entry at
    `version` is covered, and nothing is disclosed under it after the day `on`."""

    version: int
    on: date


def ending_of(code: str, discharge: dict[str, Any] | None,
              history: Sequence[ev.ParticipantEvent]) -> Ending | None:
    """The entry of this record that ends consents given until `code`, if it happened.
    `discharge` is the record's current discharge (corrections applied; None if voided)."""
    if discharge is None or (code == "release" and discharge["type"] not in RELEASE_TYPES):
        return None
    for event in reversed(history):
        if isinstance(event, ev.Discharged):
            # The day it was recorded: a discharge entered late still reaches the recipient
            # that day, as the consent's purpose intends.
            return Ending(event.originator_version, event.timestamp.date())
    return None


@dataclass(frozen=True)
class Grant:
    consent_id: str
    through_version: int | None  # entries after this one are not covered (None: all)


class Permissions:
    """What one recipient may receive of one record today: category → the consents that
    allow it, and up to which entry."""

    def __init__(self, grants: dict[str, list[Grant]]) -> None:
        self._grants = grants

    def __bool__(self) -> bool:
        return bool(self._grants)

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(self._grants)

    def consent_for(self, category: str, version: int) -> str | None:
        """The id of a consent that covers this entry of this category, or None."""
        for grant in self._grants.get(category, ()):
            if grant.through_version is None or version <= grant.through_version:
                return grant.consent_id
        return None


def permissions(consents: Iterable[dict[str, Any]], recipient: str,
                subscribed: frozenset[str], today: date, discharge: dict[str, Any] | None,
                history: Sequence[ev.ParticipantEvent]) -> Permissions:
    """The categories this recipient subscribed to that the record's consents in force
    today allow it to receive: not revoked, not past their date, not ended by their event."""
    grants: dict[str, list[Grant]] = {}
    endings: dict[str, Ending | None] = {}
    wanted, on = _recipient(recipient), today.isoformat()
    for consent in consents:
        if consent["revoked_on"] is not None or _recipient(consent["recipient"]) != wanted:
            continue
        expires_on = consent["expires_on"]
        if expires_on is not None and expires_on < on:  # ISO dates compare as text
            continue
        through: int | None = None
        if consent.get("expiry_event"):
            code = expiry_event_code(consent["expiry_event"])
            if code is None and expires_on is None:
                continue  # an end tcledger cannot see: not in force for it
            if code is not None:
                if code not in endings:
                    endings[code] = ending_of(code, discharge, history)
                ending = endings[code]
                if ending is not None:
                    if ending.on < today:
                        continue
                    through = ending.version
        for category in consent["categories"]:
            if category in subscribed:
                grants.setdefault(category, []).append(Grant(consent["consent_id"], through))
    for found in grants.values():
        found.sort(key=lambda g: g.through_version is not None)  # unbounded ones first
    return Permissions(grants)


def category_of(history: Sequence[ev.ParticipantEvent], event: ev.ParticipantEvent
                ) -> str | None:
    """The consent category an event of this history would be disclosed under, or None
    when it never leaves: cheap, for passing over what a recipient may not see."""
    if isinstance(event, ev.EntryCorrected | ev.EntryVoided):
        version = event.supersedes_version
        if not 1 <= version <= len(history):
            return None
        event = history[version - 1]
    rule = DISCLOSABLE.get(type(event).__name__)
    return rule.category if rule is not None else None


def disclosure_of(history: list[ev.ParticipantEvent], event: ev.ParticipantEvent
                  ) -> Disclosure | None:
    """The minimised form of an event of this history, or None when it never leaves."""
    name = type(event).__name__
    if isinstance(event, ev.EntryCorrected | ev.EntryVoided):
        return _amendment(history, event)
    rule = DISCLOSABLE.get(name)
    if rule is None:
        return None
    data = {"effective_on": event.effective_on.isoformat()}
    data.update({field: jsonable(getattr(event, field)) for field in rule.fields})
    return Disclosure(name, rule.category, data)


def _amendment(history: list[ev.ParticipantEvent],
               amendment: ev.EntryCorrected | ev.EntryVoided) -> Disclosure | None:
    version = amendment.supersedes_version
    if not 1 <= version <= len(history):
        return None
    target = history[version - 1]
    rule = DISCLOSABLE.get(type(target).__name__)
    if rule is None:
        return None
    data: dict[str, Any] = {"effective_on": amendment.effective_on.isoformat(),
                            "supersedes": {"version": version, "type": type(target).__name__}}
    if isinstance(amendment, ev.EntryVoided):
        return Disclosure("EntryVoided", rule.category, data)
    changes = _disclosed_changes(amendment.changes, rule)
    if not changes:
        return None  # only fields the recipient never received were corrected
    data["changes"] = changes
    return Disclosure("EntryCorrected", rule.category, data)


def _disclosed_changes(changes: dict[str, Any], rule: Disclosable) -> dict[str, Any]:
    disclosed: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "effective_at" and isinstance(value, datetime):
            disclosed["effective_on"] = value.date().isoformat()
        elif name in rule.fields:
            disclosed[name] = jsonable(value)
    return disclosed


_PLAIN = frozenset({str, int, float, bool})


def jsonable(value: Any) -> Any:
    if value is None or type(value) in _PLAIN:  # most fields: nothing to convert
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
