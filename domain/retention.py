"""The erasure record: what survives a crypto-shredded participant.

Erasure destroys the participant's data key, so nothing on its stream can say that it
happened. The fact of the erasure (who, when, why, at which version) is kept on a stream of
its own, under its own key, whose id is derived from the participant id so an auditor can
find it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidValue
from domain.provenance import Provenance


class RecordErased(Aggregate.Created):
    participant_id: UUID
    erased_version: int
    actor_id: str
    actor_role: str
    effective_at: datetime
    reason: str
    source: str
    correlation_id: str
    causation_id: str | None

    def apply(self, record: ErasureRecord) -> None:
        record.participant_id = self.participant_id
        record.erased_version = self.erased_version
        record.erased_at = self.effective_at
        record.actor_id = self.actor_id
        record.reason = self.reason


def erasure_record_id(participant_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"tcledger:erasure:{participant_id}")


class ErasureRecord(Aggregate):
    def __init__(self) -> None:
        self.participant_id: UUID | None = None
        self.erased_version = 0
        self.erased_at: datetime | None = None
        self.actor_id = ""
        self.reason = ""

    @classmethod
    def create(cls, participant_id: UUID, version: int, by: Provenance,
               reason: str) -> ErasureRecord:
        if not reason.strip():
            raise InvalidValue("reason", "a reason is required for an erasure")
        return cls._create(RecordErased,
                           id=erasure_record_id(participant_id),
                           participant_id=participant_id, erased_version=version,
                           **by.event_fields(reason, by.now))

