"""Lab results pushed in by a lab: each one found by its specimen, recorded once.

A lab knows the specimen it tested, not the person: the specimen index finds the record
that collected it. The lab's own result id makes the push idempotent: the first answer is
kept with the events, in the same transaction, under the lab's recipient name and the
result id; the same result again gets that answer back, and another result under the same
id is refused. A screening result is recorded by `record_result`, a confirmation test by
`confirm_result`, so the program's rules hold exactly as for a result entered by staff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.application import Command, TCLedger
from domain.errors import InvalidValue, NotFound
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance
from infra.idempotency import IdempotencyStore
from infra.recorders import IdempotencyRecord
from integrations.specimens import SpecimenIndex

KINDS = ("screen", "confirmation")
# Side records committed with a line's events (the access log entry), given the stream.
AlsoWith = Callable[[UUID], list[Any]]


class DuplicateResultId(Exception):
    """The lab's result id was already used for a different result."""

    def __init__(self, result_id: str) -> None:
        self.result_id = result_id
        super().__init__(f"result {result_id} was already received with other content")


class AmbiguousSpecimen(Exception):
    """More than one record collected a specimen of this id: the lab must say which."""

    def __init__(self, specimen_id: str) -> None:
        self.specimen_id = specimen_id
        super().__init__("more than one record holds a specimen of this id")


@dataclass(frozen=True)
class LabResult:
    """One result as the lab sent it (already checked for shape by the API)."""

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
    def digest(self) -> str:
        """What the result id stands for: the result's content, whatever its JSON spelling."""
        content = {k: (v.isoformat() if isinstance(v, datetime) else v)
                   for k, v in self.__dict__.items()}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

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


@dataclass(frozen=True)
class Recorded:
    status: int  # 201 first time, 200 the same result again
    body: dict[str, Any]


class LabResults:
    def __init__(self, ledger: TCLedger, answers: IdempotencyStore,
                 specimens: SpecimenIndex) -> None:
        self._ledger = ledger
        self._answers = answers
        self._specimens = specimens

    def receive(self, result: LabResult, by: Provenance, recipient: str,
                also_with: AlsoWith | None = None) -> Recorded:
        """Records one result, or answers as the first time; raises what refused it."""
        scope, key = f"integration:{recipient}", f"lab-result:{result.result_id}"
        earlier = self._earlier(scope, key, result)
        if earlier is not None:
            return earlier
        command = result.command(by)
        found = self._specimens.participants(result.specimen_id)
        if not found:
            raise NotFound("specimen", result.specimen_id)
        if len(found) > 1:
            raise AmbiguousSpecimen(result.specimen_id)

        def record_with(stream: UUID, version: int, _: dict[str, Any]) -> dict[str, Any]:
            body = {"result_id": result.result_id, "id": str(stream), "version": version}
            side: dict[str, Any] = {"idempotency": IdempotencyRecord(
                scope, key, result.digest, 201, body)}
            if also_with is not None:
                side["also"] = also_with(stream)
            return side

        try:
            written = self._ledger.execute(found[0], command, record_with=record_with)
        except Exception as exc:
            # The same result, racing in from another request, may have won: answer as it.
            earlier = self._earlier(scope, key, result)
            if earlier is not None:
                return earlier
            if isinstance(exc, IntegrityError):
                raise DuplicateResultId(result.result_id) from None
            raise
        return Recorded(201, {"result_id": result.result_id, "id": str(written.id),
                              "version": written.version, "position": written.position})

    def _earlier(self, scope: str, key: str, result: LabResult) -> Recorded | None:
        stored = self._answers.find(scope, key)
        if stored is None:
            return None
        if stored.request_hash != result.digest:
            raise DuplicateResultId(result.result_id)
        return Recorded(200, stored.body)
