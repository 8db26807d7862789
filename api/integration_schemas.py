"""Request bodies of the integration endpoints (API.md, "Integrations")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool

from api.schemas import Body, Code, Ident, Name, PastTime, SubstanceIn
from integrations.lab_results import LabResult


class IntegrationIn(Body):
    recipient: Name = Field(description="the recipient name that consents must give")
    categories: list[Code] = Field(min_length=1, max_length=20,
                                   description="consent categories to receive")
    name: Name | None = Field(None, description="the token's name (default: the recipient)")


class LabResultIn(Body):
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

    def lab_result(self) -> LabResult:
        return LabResult(result_id=self.result_id, specimen_id=self.specimen_id,
                         resulted_at=self.resulted_at, kind=self.kind, result=self.result,
                         validity=self.validity, substances=[
                             {"code": x, "level_ng_ml": None} if isinstance(x, str)
                             else x.model_dump() for x in self.substances],
                         lab=self.lab, confirmed=self.confirmed, method=self.method)
