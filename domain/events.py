"""The facts of a participant's record: one immutable event class per kind of fact.

Every event carries who recorded it (actor and role), when it happened in the program
(`effective_at`; the library's `timestamp` is when it was recorded), why (`reason`),
where it came from (`source`) and the correlation/causation ids of the request.
`evolve` folds an event into a ParticipantState and must stay a pure function of the
event and the state: corrections refold the whole history through it.
`correctable` names the fields an `EntryCorrected` may change; `derived` the fields a
command derived from others, which a correction re-derives instead (see `domain.amendment`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.domain import Aggregate

from domain.errors import InvalidValue
from domain.state import ParticipantState

if TYPE_CHECKING:
    from domain.participant import Participant

METADATA_FIELDS = ("actor_id", "actor_role", "effective_at", "reason", "source",
                   "correlation_id", "causation_id")


class ParticipantEvent(Aggregate.Event):
    actor_id: str
    actor_role: str
    effective_at: datetime
    reason: str
    source: str
    correlation_id: str
    causation_id: str | None

    requires_reason: ClassVar[bool] = True
    correctable: ClassVar[frozenset[str]] = frozenset()
    derived: ClassVar[dict[str, str]] = {}
    voidable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.requires_reason and not self.reason.strip():
            raise InvalidValue("reason", "a reason is required for this decision")

    def apply(self, aggregate: Participant) -> None:
        aggregate.take(self)

    def evolve(self, s: ParticipantState) -> None:
        """Folds this fact into the state; facts that change nothing leave it as is."""

    @property
    def effective_on(self) -> date:
        return self.effective_at.date()

    @classmethod
    def upcast_changes(cls, changes: dict[str, Any]) -> dict[str, Any]:
        """A stored correction's changes in this class's current field names: a correction
        recorded against an older version of the class names the fields it had then."""
        return changes


# --- admission -------------------------------------------------------------------------

class ParticipantAdmitted(Aggregate.Created, ParticipantEvent):
    program: str
    facility: str
    unit: str
    external_ids: dict[str, dict[str, str]]
    given_name: str
    family_name: str
    date_of_birth: date
    admitted_on: date
    expected_release_on: date | None
    counselor_id: str | None
    referral_source: str | None
    program_agreement_signed: bool
    first_stage: str

    correctable = frozenset({"given_name", "family_name", "date_of_birth", "external_ids",
                             "expected_release_on", "referral_source", "unit",
                             "program_agreement_signed"})
    voidable = False

    def evolve(self, s: ParticipantState) -> None:
        s.program, s.facility, s.unit = self.program, self.facility, self.unit
        s.placements.append((self.effective_at, self.originator_version, self.facility))
        s.external_ids = {k: dict(v) for k, v in self.external_ids.items()}
        s.given_name, s.family_name = self.given_name, self.family_name
        s.date_of_birth, s.admitted_on = self.date_of_birth, self.admitted_on
        s.expected_release_on = self.expected_release_on
        s.counselor_id, s.referral_source = self.counselor_id, self.referral_source
        s.program_agreement_signed = self.program_agreement_signed
        s.status, s.stage, s.stage_since = "active", self.first_stage, self.admitted_on
        s.stage_history.append({"stage": self.first_stage, "direction": "admission",
                                "since": self.admitted_on.isoformat()})


class CounselorAssigned(ParticipantEvent):
    counselor_id: str
    previous_counselor_id: str | None

    def evolve(self, s: ParticipantState) -> None:
        s.counselor_id = self.counselor_id


class ParticipantTransferred(ParticipantEvent):
    facility: str
    unit: str
    previous_facility: str
    previous_unit: str

    voidable = False

    def evolve(self, s: ParticipantState) -> None:
        s.facility, s.unit = self.facility, self.unit
        s.placements.append((self.effective_at, self.originator_version, self.facility))


class ReleaseDateChanged(ParticipantEvent):
    expected_release_on: date | None

    def evolve(self, s: ParticipantState) -> None:
        s.expected_release_on = self.expected_release_on


class AssessmentRecorded(ParticipantEvent):
    assessment_id: str
    instrument: str
    instrument_version: str | None
    score: float | None
    subscales: dict[str, float]
    risk_level: str | None
    level_of_care: str | None
    assessor: str | None

    requires_reason = False
    correctable = frozenset({"score", "subscales", "risk_level", "level_of_care",
                             "instrument_version"})

    def evolve(self, s: ParticipantState) -> None:
        s.assessments[self.assessment_id] = {
            "assessment_id": self.assessment_id, "instrument": self.instrument,
            "instrument_version": self.instrument_version, "score": self.score,
            "subscales": dict(self.subscales), "risk_level": self.risk_level,
            "level_of_care": self.level_of_care, "assessor": self.assessor,
            "assessed_on": self.effective_on.isoformat()}


# --- stages ----------------------------------------------------------------------------

class StageEvent(ParticipantEvent):
    from_stage: str
    to_stage: str

    def evolve(self, s: ParticipantState) -> None:
        s.stage, s.stage_since = self.to_stage, self.effective_on
        s.stage_held, s.stage_held_until = False, None
        s.stage_history.append({"stage": self.to_stage, "direction": self.direction,
                                "since": self.effective_on.isoformat()})

    direction: ClassVar[str] = ""


class StagePromoted(StageEvent):
    override: bool
    days_in_stage: int
    review: dict[str, Any]

    direction = "promote"


class StageRegressed(StageEvent):
    direction = "regress"


class StageRepeated(StageEvent):
    direction = "repeat"


class StageHeld(ParticipantEvent):
    stage: str
    until: date | None

    def evolve(self, s: ParticipantState) -> None:
        s.stage_held, s.stage_held_until = True, self.until


# --- community roles -------------------------------------------------------------------

class JobFunctionAssigned(ParticipantEvent):
    job_id: str
    function: str

    correctable = frozenset({"function"})

    def evolve(self, s: ParticipantState) -> None:
        s.job_functions[self.job_id] = {"job_id": self.job_id, "function": self.function,
                                        "started_on": self.effective_on.isoformat(),
                                        "ended_on": None}


class JobFunctionEnded(ParticipantEvent):
    job_id: str

    def evolve(self, s: ParticipantState) -> None:
        if self.job_id in s.job_functions:
            s.job_functions[self.job_id]["ended_on"] = self.effective_on.isoformat()


class IncentiveAwarded(ParticipantEvent):
    incentive_id: str
    incentive: str

    correctable = frozenset({"incentive"})

    def evolve(self, s: ParticipantState) -> None:
        s.incentives.append({"incentive_id": self.incentive_id, "incentive": self.incentive,
                             "awarded_on": self.effective_on.isoformat()})


# --- privileges ------------------------------------------------------------------------

class PrivilegeGranted(ParticipantEvent):
    privilege: str
    until: date | None

    correctable = frozenset({"until"})

    def evolve(self, s: ParticipantState) -> None:
        s.privileges[self.privilege] = {
            "privilege": self.privilege, "status": "active",
            "since": self.effective_on.isoformat(),
            "until": self.until.isoformat() if self.until else None, "suspended_by": None}


class PrivilegeRevoked(ParticipantEvent):
    privilege: str
    caused_by: str | None

    def evolve(self, s: ParticipantState) -> None:
        s.privileges.pop(self.privilege, None)


class PrivilegeSuspended(ParticipantEvent):
    privilege: str
    until: date | None
    caused_by: str | None

    def evolve(self, s: ParticipantState) -> None:
        if self.privilege in s.privileges:
            s.privileges[self.privilege].update(
                status="suspended", suspended_by=self.caused_by,
                suspended_until=self.until.isoformat() if self.until else None)


class PrivilegeRestored(ParticipantEvent):
    privilege: str
    caused_by: str | None

    def evolve(self, s: ParticipantState) -> None:
        if self.privilege in s.privileges:
            s.privileges[self.privilege].update(status="active", suspended_by=None,
                                                suspended_until=None)


# --- infractions and sanctions ---------------------------------------------------------

class InfractionRecorded(ParticipantEvent):
    infraction_id: str
    code: str
    rule_class: str
    observed_at: datetime
    description: str
    reporter_kind: str
    reporter_id: str | None

    correctable = frozenset({"code", "observed_at", "description"})
    derived = {"rule_class": "code"}

    def evolve(self, s: ParticipantState) -> None:
        s.infractions[self.infraction_id] = {
            "infraction_id": self.infraction_id, "code": self.code,
            "rule_class": self.rule_class, "observed_at": self.observed_at.isoformat(),
            "description": self.description, "reporter_kind": self.reporter_kind,
            "reporter_id": self.reporter_id}


class SanctionImposed(ParticipantEvent):
    sanction_id: str
    sanction: str
    severity: int
    infraction_id: str | None
    due_on: date | None
    override: bool
    suspends: list[str]

    correctable = frozenset({"due_on"})

    def evolve(self, s: ParticipantState) -> None:
        s.sanctions[self.sanction_id] = {
            "sanction_id": self.sanction_id, "sanction": self.sanction,
            "severity": self.severity, "infraction_id": self.infraction_id,
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "imposed_on": self.effective_on.isoformat(), "status": "open",
            "closed_on": None}


class SanctionClosed(ParticipantEvent):
    sanction_id: str

    status: ClassVar[str] = ""

    def evolve(self, s: ParticipantState) -> None:
        if self.sanction_id in s.sanctions:
            s.sanctions[self.sanction_id].update(status=self.status,
                                                 closed_on=self.effective_on.isoformat())


class SanctionCompleted(SanctionClosed):
    status = "completed"


class SanctionFailed(SanctionClosed):
    status = "failed"


class SanctionRescinded(SanctionClosed):
    status = "rescinded"


# --- drug tests ------------------------------------------------------------------------

class SpecimenCollected(ParticipantEvent):
    specimen_id: str
    seal_id: str | None
    method: str
    test_reason: str
    collected_at: datetime
    observed_by: str | None

    requires_reason = False
    correctable = frozenset({"seal_id", "method", "test_reason", "collected_at", "observed_by"})

    def evolve(self, s: ParticipantState) -> None:
        s.specimens[self.specimen_id] = {
            "specimen_id": self.specimen_id, "seal_id": self.seal_id, "method": self.method,
            "test_reason": self.test_reason, "collected_at": self.collected_at.isoformat(),
            "observed_by": self.observed_by, "result": None, "validity": None,
            "substances": [], "lab": None, "resulted_at": None, "confirmation": None,
            "review": None, "disputes": []}


class TestResulted(ParticipantEvent):
    specimen_id: str
    result: str
    validity: str
    substances: list[dict[str, Any]]
    lab: str | None
    resulted_at: datetime

    requires_reason = False
    correctable = frozenset({"result", "validity", "substances", "lab", "resulted_at"})

    def evolve(self, s: ParticipantState) -> None:
        if self.specimen_id in s.specimens:
            s.specimens[self.specimen_id].update(
                result=self.result, validity=self.validity,
                substances=[dict(x) for x in self.substances], lab=self.lab,
                resulted_at=self.resulted_at.isoformat())


class ResultConfirmed(ParticipantEvent):
    specimen_id: str
    confirmed: bool
    method: str
    substances: list[dict[str, Any]]

    requires_reason = False
    correctable = frozenset({"confirmed", "method", "substances"})

    def evolve(self, s: ParticipantState) -> None:
        if self.specimen_id in s.specimens:
            s.specimens[self.specimen_id]["confirmation"] = {
                "confirmed": self.confirmed, "method": self.method,
                "substances": [dict(x) for x in self.substances],
                "confirmed_on": self.effective_on.isoformat()}


class ResultReviewed(ParticipantEvent):
    """A medical review officer's review: a positive explained by prescribed medication or MAT.

    Version 2 names every medication the review found (an MRO often finds more than one
    prescription behind a positive: buprenorphine and a benzodiazepine, say); version 1 held
    at most one, as `medication`. Stored version 1 entries are upcast when read, never
    rewritten, and so are the changes of corrections recorded against them.
    """

    specimen_id: str
    outcome: str
    medications: list[str]
    medication_assisted_treatment: bool

    class_version = 2
    correctable = frozenset({"outcome", "medications", "medication_assisted_treatment"})

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        medication = state.pop("medication", None)
        state["medications"] = [medication] if medication else []

    @classmethod
    def upcast_changes(cls, changes: dict[str, Any]) -> dict[str, Any]:
        if "medication" not in changes:
            return changes
        upcast = dict(changes)
        cls.upcast_v1_v2(upcast)
        return upcast

    def evolve(self, s: ParticipantState) -> None:
        if self.specimen_id in s.specimens:
            s.specimens[self.specimen_id]["review"] = {
                "outcome": self.outcome, "medications": list(self.medications),
                "medication_assisted_treatment": self.medication_assisted_treatment,
                "reviewed_on": self.effective_on.isoformat()}


class ResultDisputed(ParticipantEvent):
    specimen_id: str
    grounds: str

    def evolve(self, s: ParticipantState) -> None:
        if self.specimen_id in s.specimens:
            s.specimens[self.specimen_id]["disputes"].append(
                {"grounds": self.grounds, "disputed_on": self.effective_on.isoformat()})


# --- discharge and aftercare -----------------------------------------------------------

class Discharged(ParticipantEvent):
    discharge_type: str
    category: str
    successful: bool
    reinstatement_eligible_on: date | None
    aftercare_referral: str | None

    correctable = frozenset({"discharge_type", "reinstatement_eligible_on",
                             "aftercare_referral"})
    derived = {"category": "discharge_type", "successful": "discharge_type"}

    def evolve(self, s: ParticipantState) -> None:
        s.status = "discharged"
        s.discharge = {
            "type": self.discharge_type, "category": self.category,
            "successful": self.successful, "effective_on": self.effective_on.isoformat(),
            "reinstatement_eligible_on": (self.reinstatement_eligible_on.isoformat()
                                          if self.reinstatement_eligible_on else None),
            "aftercare_referral": self.aftercare_referral}


class AftercareHandoffSent(ParticipantEvent):
    handoff_id: str
    receiving_agency: str
    report: str

    def evolve(self, s: ParticipantState) -> None:
        s.aftercare_handoffs.append({"handoff_id": self.handoff_id,
                                     "receiving_agency": self.receiving_agency,
                                     "report": self.report,
                                     "sent_on": self.effective_on.isoformat()})


# --- community life --------------------------------------------------------------------
# A peer appears in a record only as `link_id` and `peer`: the peer's id sealed under the
# key of the link between the two records (see domain.community). Erasing either of them
# destroys that key, so the other's record can only say "a peer" from then on.

class GroupAttendanceEvent(ParticipantEvent):
    group_id: str
    kind: str
    facility: str
    held_at: datetime
    status: str
    note: str | None

    requires_reason = False
    correctable = frozenset({"status", "note"})

    def evolve(self, s: ParticipantState) -> None:
        s.attendance[self.group_id] = {
            "group_id": self.group_id, "kind": self.kind, "held_at": self.held_at.isoformat(),
            "day": self.held_at.astimezone(UTC).date().isoformat(),  # as attendance counts it
            "facility": self.facility, "status": self.status, "note": self.note}


class GroupAttended(GroupAttendanceEvent):
    """Present or late at a group session."""


class GroupMissed(GroupAttendanceEvent):
    """Excused or absent from a group session."""


class GroupFacilitated(ParticipantEvent):
    """Led a peer-led group session: a fact of the peer's own record, since the session
    itself holds no personal data."""

    group_id: str
    kind: str
    facility: str
    held_at: datetime

    requires_reason = False

    def evolve(self, s: ParticipantState) -> None:
        s.groups_facilitated[self.group_id] = {
            "group_id": self.group_id, "kind": self.kind, "held_at": self.held_at.isoformat()}


class PeerFeedbackRecorded(ParticipantEvent):
    feedback_id: str
    kind: str
    side: str
    link_id: str
    peer: str
    behaviour: str
    observed_at: datetime
    infraction_id: str | None

    correctable = frozenset({"behaviour", "observed_at"})

    def evolve(self, s: ParticipantState) -> None:
        s.peer_feedback[self.feedback_id] = {
            "feedback_id": self.feedback_id, "kind": self.kind, "side": self.side,
            "link_id": self.link_id, "peer": self.peer, "behaviour": self.behaviour,
            "observed_at": self.observed_at.isoformat(), "infraction_id": self.infraction_id}


class MentorAssigned(ParticipantEvent):
    mentor_id: str
    side: str
    link_id: str
    peer: str

    def evolve(self, s: ParticipantState) -> None:
        s.mentorships[self.mentor_id] = {
            "mentor_id": self.mentor_id, "side": self.side, "link_id": self.link_id,
            "peer": self.peer, "started_on": self.effective_on.isoformat(), "ended_on": None}


class MentorEnded(ParticipantEvent):
    mentor_id: str

    def evolve(self, s: ParticipantState) -> None:
        if self.mentor_id in s.mentorships:
            s.mentorships[self.mentor_id]["ended_on"] = self.effective_on.isoformat()


class FollowUpRecorded(ParticipantEvent):
    follow_up_id: str
    window: str
    method: str
    reached: bool
    outcomes: dict[str, bool | None]

    correctable = frozenset({"method", "reached", "outcomes"})

    def evolve(self, s: ParticipantState) -> None:
        s.follow_ups[self.follow_up_id] = {
            "follow_up_id": self.follow_up_id, "window": self.window,
            "contacted_on": self.effective_on.isoformat(), "method": self.method,
            "reached": self.reached, "outcomes": dict(self.outcomes)}


class RecoverySupportLinked(ParticipantEvent):
    support_id: str
    kind: str
    provider: str | None

    correctable = frozenset({"kind", "provider"})

    def evolve(self, s: ParticipantState) -> None:
        s.recovery_supports[self.support_id] = {
            "support_id": self.support_id, "kind": self.kind, "provider": self.provider,
            "started_on": self.effective_on.isoformat(), "ended_on": None}


class RecoverySupportEnded(ParticipantEvent):
    support_id: str

    def evolve(self, s: ParticipantState) -> None:
        if self.support_id in s.recovery_supports:
            s.recovery_supports[self.support_id]["ended_on"] = self.effective_on.isoformat()


# --- consent and disclosure (42 CFR Part 2) --------------------------------------------

class ConsentGiven(ParticipantEvent):
    consent_id: str
    recipient: str
    purpose: str
    categories: list[str]
    expires_on: date | None
    expiry_event: str | None
    criminal_justice_referral: bool

    requires_reason = False
    correctable = frozenset({"expires_on", "expiry_event"})

    def evolve(self, s: ParticipantState) -> None:
        s.consents[self.consent_id] = {
            "consent_id": self.consent_id, "recipient": self.recipient,
            "purpose": self.purpose, "categories": list(self.categories),
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "expiry_event": self.expiry_event,
            "criminal_justice_referral": self.criminal_justice_referral,
            "given_on": self.effective_on.isoformat(), "revoked_on": None}


class ConsentRevoked(ParticipantEvent):
    consent_id: str

    def evolve(self, s: ParticipantState) -> None:
        if self.consent_id in s.consents:
            s.consents[self.consent_id]["revoked_on"] = self.effective_on.isoformat()


class DisclosureMade(ParticipantEvent):
    disclosure_id: str
    recipient: str
    purpose: str
    consent_id: str
    categories: list[str]
    redisclosure_notice: str

    requires_reason = False
    voidable = False

    def evolve(self, s: ParticipantState) -> None:
        s.disclosures.append({"disclosure_id": self.disclosure_id, "recipient": self.recipient,
                              "purpose": self.purpose, "consent_id": self.consent_id,
                              "categories": list(self.categories),
                              "disclosed_on": self.effective_on.isoformat()})


# --- amendments (HIPAA 164.526) --------------------------------------------------------

class EntryCorrected(ParticipantEvent):
    supersedes_version: int
    changes: dict[str, Any]

    voidable = False


class EntryVoided(ParticipantEvent):
    supersedes_version: int

    voidable = False


class AmendmentRequested(ParticipantEvent):
    amendment_id: str
    target_version: int | None
    requested_change: str

    def evolve(self, s: ParticipantState) -> None:
        s.amendments[self.amendment_id] = {
            "amendment_id": self.amendment_id, "target_version": self.target_version,
            "requested_change": self.requested_change,
            "requested_on": self.effective_on.isoformat(), "status": "requested",
            "disagreement": None}


class AmendmentDenied(ParticipantEvent):
    amendment_id: str

    def evolve(self, s: ParticipantState) -> None:
        if self.amendment_id in s.amendments:
            s.amendments[self.amendment_id]["status"] = "denied"


class DisagreementFiled(ParticipantEvent):
    amendment_id: str
    statement: str

    def evolve(self, s: ParticipantState) -> None:
        if self.amendment_id in s.amendments:
            s.amendments[self.amendment_id]["disagreement"] = self.statement


# --- retention -------------------------------------------------------------------------

class LegalHoldPlaced(ParticipantEvent):
    hold_id: str
    matter: str

    voidable = False

    def evolve(self, s: ParticipantState) -> None:
        s.legal_holds[self.hold_id] = {"hold_id": self.hold_id, "matter": self.matter,
                                       "placed_on": self.effective_on.isoformat(),
                                       "released_on": None}


class LegalHoldReleased(ParticipantEvent):
    hold_id: str

    voidable = False

    def evolve(self, s: ParticipantState) -> None:
        if self.hold_id in s.legal_holds:
            s.legal_holds[self.hold_id]["released_on"] = self.effective_on.isoformat()


def event_types() -> dict[str, type[ParticipantEvent]]:
    """Every concrete event class of the participant stream, by class name."""
    found: dict[str, type[ParticipantEvent]] = {}
    stack: list[type[Any]] = [ParticipantEvent]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == __name__ and sub not in (StageEvent, SanctionClosed,
                                                        GroupAttendanceEvent):
                found[sub.__name__] = sub
            stack.append(sub)
    return found

