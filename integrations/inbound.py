"""Messages pushed in by outside systems: each one recorded once, under its own id.

A lab result or a movement carries the sender's id for it. The first answer is kept with
the events, in the same transaction, under the sender's recipient name and that id; the
same message again gets that answer back, and another message under the same id is
refused. Each message is carried out by the participant's own commands, so the program's
rules hold exactly as for an entry made by staff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.application import Command, TCLedger
from domain.provenance import Provenance
from infra.idempotency import IdempotencyStore
from infra.recorders import IdempotencyRecord

# Side records committed with a message's events (its access log entry), given the stream.
AlsoWith = Callable[[UUID], list[Any]]


class Inbound(Protocol):
    noun: ClassVar[str]  # "result", "movement": names the id in answers and problems

    @property
    def external_id(self) -> str: ...

    def command(self, by: Provenance) -> Command: ...


class DuplicateId(Exception):
    """The sender's id was already used for a message with other content."""

    def __init__(self, noun: str, ident: str) -> None:
        self.noun = noun
        self.ident = ident
        super().__init__(f"{noun} {ident} was already received with other content")


class Ambiguous(Exception):
    """More than one record answers to what the message names: the sender must say which."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"more than one record holds this {what}")


class RefusedAt(Exception):
    """A message that found its record and was refused there (`cause` says why): the
    access log keeps such attempts as it keeps refused writes by staff."""

    def __init__(self, participant_id: UUID, cause: Exception) -> None:
        self.participant_id = participant_id
        self.cause = cause
        super().__init__(str(cause))


@dataclass(frozen=True)
class Recorded:
    status: int  # 201 the first time, 200 the same message again
    body: dict[str, Any]


def digest(message: Inbound) -> str:
    """What the sender's id stands for: the message's content, whatever its JSON spelling."""
    content = {k: (v.isoformat() if isinstance(v, datetime | date) else v)
               for k, v in vars(message).items()}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


class Receiver:
    def __init__(self, ledger: TCLedger, answers: IdempotencyStore) -> None:
        self._ledger = ledger
        self._answers = answers

    def receive(self, message: Inbound, locate: Callable[[], UUID], by: Provenance,
                sender: str, also_with: AlsoWith | None = None) -> Recorded:
        """Records one message, or answers as the first time; raises what refused it."""
        scope, key = f"integration:{sender}", f"{message.noun}:{message.external_id}"
        content = digest(message)
        earlier = self._earlier(scope, key, message, content)
        if earlier is not None:
            return earlier
        command = message.command(by)
        participant = locate()
        id_field = f"{message.noun}_id"

        def record_with(stream: UUID, version: int, _: dict[str, Any]) -> dict[str, Any]:
            body = {id_field: message.external_id, "id": str(stream), "version": version}
            side: dict[str, Any] = {"idempotency": IdempotencyRecord(
                scope, key, content, 201, body)}
            if also_with is not None:
                side["also"] = also_with(stream)
            return side

        try:
            written = self._ledger.execute(participant, command, record_with=record_with)
        except Exception as exc:
            cause: Exception = exc
            try:
                # The same message, racing in from another request, may have won.
                earlier = self._earlier(scope, key, message, content)
            except DuplicateId as duplicate:
                earlier, cause = None, duplicate
            if earlier is not None:
                return earlier
            if isinstance(cause, IntegrityError):
                cause = DuplicateId(message.noun, message.external_id)
            raise RefusedAt(participant, cause) from exc
        return Recorded(201, {id_field: message.external_id, "id": str(written.id),
                              "version": written.version, "position": written.position})

    def _earlier(self, scope: str, key: str, message: Inbound,
                 content: str) -> Recorded | None:
        stored = self._answers.find(scope, key)
        if stored is None:
            return None
        if stored.request_hash != content:
            raise DuplicateId(message.noun, message.external_id)
        return Recorded(200, stored.body)
