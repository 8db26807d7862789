"""Request and response bodies of the HTTP contract (API.md), separate from the domain.

Requests forbid unknown fields (a misspelt field is an error, not silently ignored), trim
text, bound every length, and refuse dates in the future, each error naming its field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

CLOCK_SKEW = timedelta(minutes=5)

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
Ident = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


def _not_future_date(value: date | None) -> date | None:
    if value is not None and value > datetime.now(UTC).date():
        raise ValueError("must not be in the future")
    return value


def _not_future_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (for example 2026-01-31T09:00:00Z)")
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("must not be in the future")
    return value


PastDate = Annotated[date, AfterValidator(_not_future_date)]
PastTime = Annotated[datetime, AfterValidator(_not_future_time)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AssessmentIn(Body):
    instrument: Name
    score: float | None = None
    risk_level: Code | None = None
    instrument_version: Name | None = None
    subscales: dict[Code, float] = Field(default_factory=dict, max_length=50)
    level_of_care: Code | None = None
    assessor: Ident | None = None


class ExternalId(Body):
    value: Ident
    issuer: Name | None = None


class AdmissionIn(Body):
    program: Code
    facility: Code
    unit: Code
    doc_number: Ident
    given_name: Name
    family_name: Name
    date_of_birth: PastDate
    admitted_on: PastDate | None = None
    expected_release_on: date | None = None
    counselor_id: Ident | None = None
    referral_source: Name | None = None
    program_agreement_signed: StrictBool = True
    external_ids: dict[Code, ExternalId] = Field(default_factory=dict, max_length=10)
    assessments: list[AssessmentIn] = Field(default_factory=list, max_length=20)
    reason: Reason


class StageChangeIn(Body):
    direction: Literal["promote", "regress", "hold", "repeat"]
    to_stage: Code | None = None
    effective_on: PastDate | None = None
    until: date | None = None
    reason: Reason
    override: StrictBool = False
    review: dict[str, Any] = Field(default_factory=dict, max_length=20)


class PrivilegeIn(Body):
    action: Literal["grant", "revoke", "suspend", "restore"]
    privilege: Code
    until: date | None = None
    effective_on: PastDate | None = None
    reason: Reason


class InfractionIn(Body):
    code: Code
    observed_at: PastTime
    description: Text = ""
    reporter_kind: Literal["staff", "peer"] = "staff"
    reporter_id: Ident | None = None
    reason: Reason


class SanctionIn(Body):
    sanction: Code
    infraction_id: Ident | None = None
    due_on: date | None = None
    effective_on: PastDate | None = None
    override: StrictBool = False
    reason: Reason


class ReasonIn(Body):
    reason: Reason
    effective_on: PastDate | None = None


class SpecimenIn(Body):
    specimen_id: Ident
    method: Code
    test_reason: Code
    collected_at: PastTime
    observed_by: Ident | None = None
    seal_id: Ident | None = None


class SubstanceIn(Body):
    code: Code
    level_ng_ml: float | None = Field(default=None, ge=0)


class ResultIn(Body):
    result: Literal["negative", "positive", "dilute", "invalid", "refused", "tampered"]
    substances: list[SubstanceIn | Code] = Field(default_factory=list, max_length=30)
    lab: Name | None = None
    resulted_at: PastTime | None = None
    validity: Literal["valid", "dilute", "substituted", "adulterated", "invalid",
                      "refused"] | None = None


class ConfirmationIn(Body):
    confirmed: StrictBool
    method: Code
    substances: list[SubstanceIn | Code] = Field(default_factory=list, max_length=30)
    effective_on: PastDate | None = None


class ReviewIn(Body):
    outcome: Literal["explained", "not-explained"]
    medications: list[Name] = Field(default_factory=list, max_length=20)
    medication: Name | None = Field(default=None, description="one medication; kept for "
                                    "callers from before `medications`")
    medication_assisted_treatment: StrictBool = False
    effective_on: PastDate | None = None
    reason: Reason


class DisputeIn(Body):
    grounds: Reason
    effective_on: PastDate | None = None
    reason: Reason


class DischargeIn(Body):
    type: Code
    effective_on: PastDate | None = None
    reason: Reason
    aftercare_referral: Name | None = None


class ConsentIn(Body):
    recipient: Name
    purpose: Name
    categories: list[Code] = Field(min_length=1, max_length=20)
    expires_on: date | None = None
    expiry_event: Name | None = None
    criminal_justice_referral: StrictBool = False
    reason: Text = ""


class CorrectionIn(Body):
    supersedes_version: int = Field(ge=1)
    action: Literal["correct", "void"]
    changes: dict[str, Any] = Field(default_factory=dict, max_length=20)
    reason: Reason


class CounselorIn(Body):
    counselor_id: Ident
    effective_on: PastDate | None = None
    reason: Reason


class TransferIn(Body):
    facility: Code
    unit: Code
    effective_on: PastDate | None = None
    reason: Reason


class ReleaseDateIn(Body):
    expected_release_on: date | None
    effective_on: PastDate | None = None
    reason: Reason


class JobFunctionIn(Body):
    function: Name
    effective_on: PastDate | None = None
    reason: Reason


class IncentiveIn(Body):
    incentive: Name
    effective_on: PastDate | None = None
    reason: Reason


class HandoffIn(Body):
    receiving_agency: Name
    report: Text = ""
    effective_on: PastDate | None = None
    reason: Reason


class AmendmentIn(Body):
    requested_change: Reason
    target_version: int | None = Field(default=None, ge=1)
    reason: Reason


class DisagreementIn(Body):
    statement: Reason
    reason: Reason


class LegalHoldIn(Body):
    matter: Name = "unspecified"
    reason: Reason


class ErasureIn(Body):
    reason: Reason


class TokenIn(Body):
    role: Literal["counselor", "supervisor", "auditor", "integration", "admin"]
    name: Name
    facility: Code | None = None


# --- community life ---------------------------------------------------------------------

class FacilitatorIn(Body):
    """Who led the session: a staff member (`staff`), or a resident (`participant`) for a
    peer-led group. Exactly one of the two."""

    staff: Ident | None = None
    participant: UUID | None = None

    @model_validator(mode="after")
    def _one_of_two(self) -> FacilitatorIn:
        if (self.staff is None) == (self.participant is None):
            raise ValueError("name either the staff member or the participant who led it")
        return self


class GroupIn(Body):
    program: Code | None = Field(default=None, description="needed when several programs "
                                 "are loaded")
    facility: Code
    unit: Code | None = None
    kind: Code
    held_at: datetime
    duration_minutes: int = Field(default=60, ge=1, le=600)
    facilitator: FacilitatorIn
    topic: Name | None = None


class AttendanceLineIn(Body):
    participant_id: UUID
    status: Code = Field(description="present, late, excused or absent; anything else is "
                         "refused for that line")
    note: Text | None = None


class AttendanceIn(Body):
    records: list[AttendanceLineIn] = Field(min_length=1, max_length=500)


class PeerFeedbackIn(Body):
    kind: Code = Field(description="pull-up or affirmation")
    from_participant: UUID
    behaviour: Reason
    observed_at: PastTime
    infraction_id: Ident | None = None
    reason: Reason


class MentorIn(Body):
    mentor_participant_id: UUID
    started_on: PastDate | None = None
    reason: Reason


class EndIn(Body):
    ended_on: PastDate | None = None
    reason: Reason


class FollowUpIn(Body):
    window: Code
    contacted_on: PastDate | None = None
    method: Code
    reached: StrictBool
    outcomes: dict[Code, StrictBool | None] = Field(default_factory=dict, max_length=20)
    reason: Reason


class RecoverySupportIn(Body):
    kind: Code
    provider: Name | None = None
    started_on: PastDate | None = None
    reason: Reason


class WriteOut(BaseModel):
    id: str
    version: int
    position: int


def substances(items: list[SubstanceIn | str]) -> list[dict[str, Any]]:
    return [{"code": i} if isinstance(i, str) else i.model_dump() for i in items]
