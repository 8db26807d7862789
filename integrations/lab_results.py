"""Lab results pushed in by a lab: found by the specimen they are for.

A lab knows the specimen it tested, not the person: the specimen index finds the record
that collected it. A screening result is recorded by `record_result`, a confirmation test
by `confirm_result`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.application import Command
from domain.errors import InvalidValue, NotFound
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance
from integrations.inbound import AlsoWith, Ambiguous, Receiver, Recorded
from integrations.specimens import SpecimenIndex

KINDS = ("screen", "confirmation")


@dataclass(frozen=True)
class LabResult:
    """One result as the lab sent it (already checked for shape by the API)."""

    noun: ClassVar[str] = "result"

    result_id: str
    specimen_id: str
    resulted_at: datetime
    kind: str = "screen"
    result: str | None = None
    validity: str | None = None
    substances: list[dict[str, Any]] = field(default_factory=list)
    lab: str | None = None
    confirmed: bool | None = None
    method: str | None = None

    @property
    def external_id(self) -> str:
        return self.result_id

    def command(self, by: Provenance) -> Command:
        self._check()
        if self.kind == "confirmation":
            assert self.confirmed is not None and self.method is not None
            confirmed, method = self.confirmed, self.method
            return lambda p, policy: p.confirm_result(
                policy, by=by, specimen_id=self.specimen_id, confirmed=confirmed,
                method=method, substances=self.substances, at=self.resulted_at)
        assert self.result is not None
        result = self.result

        def record(p: Participant, policy: ProgramPolicy) -> None:
            p.record_result(policy, by=by, specimen_id=self.specimen_id, result=result,
                            substances=self.substances, resulted_at=self.resulted_at,
                            lab=self.lab, validity=self.validity)
        return record

    def _check(self) -> None:
        if self.kind not in KINDS:
            raise InvalidValue("kind", f"expected one of {KINDS}")
        wanted, unwanted = ((("confirmed", "method"), ("result", "validity"))
                            if self.kind == "confirmation"
                            else (("result",), ("confirmed", "method")))
        for name in wanted:
            if getattr(self, name) is None:
                raise InvalidValue(name, f"required for a {self.kind} result")
        for name in unwanted:
            if getattr(self, name) is not None:
                raise InvalidValue(name, f"not part of a {self.kind} result")


class LabResults:
    def __init__(self, receiver: Receiver, specimens: SpecimenIndex) -> None:
        self._receiver = receiver
        self._specimens = specimens

    def receive(self, result: LabResult, by: Provenance, sender: str,
                also_with: AlsoWith | None = None) -> Recorded:
        def locate() -> UUID:
            found = self._specimens.participants(result.specimen_id)
            if not found:
                raise NotFound("specimen", result.specimen_id)
            if len(found) > 1:
                raise Ambiguous("specimen")
            return found[0]
        return self._receiver.receive(result, locate, by, sender, also_with)
