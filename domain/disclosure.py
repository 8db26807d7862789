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

from dataclasses import dataclass
from datetime import date, datetime
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
    return " ".join(named.split()).casefold() == " ".join(recipient.split()).casefold()


def permitted_categories(consents: list[dict[str, Any]], recipient: str,
                         subscribed: frozenset[str]) -> dict[str, str]:
    """Category → the id of a consent (of those given, still in force) that allows this
    recipient to receive it, for the categories the recipient subscribed to."""
    permitted: dict[str, str] = {}
    for consent in consents:
        if not same_recipient(consent["recipient"], recipient):
            continue
        for category in consent["categories"]:
            if category in subscribed:
                permitted.setdefault(category, consent["consent_id"])
    return permitted


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


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
