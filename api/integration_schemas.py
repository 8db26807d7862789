"""Request bodies of the integration endpoints (API.md, "Integrations")."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field, StrictBool

from api.schemas import Body, Code, Ident, Name, PastTime, Reason, SubstanceIn
from integrations.lab_results import LabResult
from integrations.movements import Movement


class Inbound(Body):
    """A message an outside system pushes in: it becomes one domain message."""

    def message(self) -> Any:
        raise NotImplementedError


class IntegrationIn(Body):
    recipient: Name = Field(description="the recipient name that consents must give")
    categories: list[Code] = Field(default_factory=list, max_length=20,
                                   description="consent categories to receive")
    ingests: list[Literal["lab-results", "movements"]] = Field(
        default_factory=list, max_length=2, description="what it may push in")
    name: Name | None = Field(None, description="the token's name (default: the recipient)")
    external_id_systems: list[Code] | None = Field(
        None, max_length=10, description="identifier systems (DOC, SID, FBI, a deployment's "
        "own) whose numbers the feed carries beside the participant id; default [\"DOC\"], "
        "[] for none")


class LabResultIn(Inbound):
    """One lab result; a line of an NDJSON bulk push has the same fields."""

    result_id: Ident = Field(description="the lab's own id of this result: pushes are "
                                         "idempotent on it")
    specimen_id: Ident
    kind: Literal["screen", "confirmation"] = "screen"
    result: Literal["negative", "positive", "dilute", "invalid", "refused",
                    "tampered"] | None = None
    validity: Literal["valid", "dilute", "substituted", "adulterated", "invalid",
                      "refused"] | None = None
    substances: list[SubstanceIn | Code] = Field(default_factory=list, max_length=30)
    lab: Name | None = None
    resulted_at: PastTime
    confirmed: StrictBool | None = None
    method: Code | None = None

    def message(self) -> LabResult:
        return LabResult(result_id=self.result_id, specimen_id=self.specimen_id,
                         resulted_at=self.resulted_at, kind=self.kind, result=self.result,
                         validity=self.validity, substances=[
                             {"code": x, "level_ng_ml": None} if isinstance(x, str)
                             else x.model_dump() for x in self.substances],
                         lab=self.lab, confirmed=self.confirmed, method=self.method)


class MovementIn(Inbound):
    """One movement from the offender-management system; an NDJSON line has the same."""

    movement_id: Ident = Field(description="the sender's own id of this movement: pushes "
                                           "are idempotent on it")
    doc_number: Ident = Field(description="finds the one active record with this number")
    kind: Literal["transfer", "release_date_changed", "released"]
    effective_at: PastTime
    facility: Code | None = Field(None, description="transfer: the new facility")
    unit: Code | None = Field(None, description="transfer: the new unit")
    expected_release_on: date | None = Field(
        None, description="release_date_changed: the new date, null when unknown")
    discharge_type: Code | None = Field(
        None, description="released: an administrative discharge type of the program "
                          "(default administrative-release)")
    reason: Reason | None = None

    def message(self) -> Movement:
        return Movement(movement_id=self.movement_id, doc_number=self.doc_number,
                        kind=self.kind, effective_at=self.effective_at,
                        facility=self.facility, unit=self.unit,
                        expected_release_on=self.expected_release_on,
                        release_date_given="expected_release_on" in self.model_fields_set,
                        discharge_type=self.discharge_type, reason=self.reason)
