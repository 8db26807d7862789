"""The integration side a deployment runs, built on the services and the views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from infra.recorders import LogEntry
from infra.wiring import Services
from integrations.clients import IntegrationClients
from integrations.feed import Feed
from integrations.inbound import Receiver
from integrations.lab_results import LabResults
from integrations.movements import Movements, ViewsBehind
from integrations.specimens import SpecimenIndex
from projections import caseload
from projections.runner import ProjectionRunner

VIEW_WAIT_SECONDS = 5.0


class FeedRecords:
    """The feed's questions about many records at once: the data keys and the event log."""

    def __init__(self, services: Services) -> None:
        self._keys = services.keys
        self._recorder = services.recorder

    def entries(self, after: int, limit: int, topics: Sequence[str]) -> list[LogEntry]:
        return self._recorder.select_entries(after, limit, topics)

    def destroyed(self, stream_ids: list[UUID]) -> set[UUID]:
        return self._keys.destroyed(stream_ids)

    def load(self, stream_ids: list[UUID]) -> None:
        self._keys.load(stream_ids)

    def last_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]:
        return self._recorder.last_versions(stream_ids)


@dataclass
class Integrations:
    clients: IntegrationClients
    feed: Feed
    specimens: SpecimenIndex
    lab_results: LabResults
    movements: Movements


def build_integrations(services: Services, runner: ProjectionRunner) -> Integrations:
    services.index.prepare()
    specimens = SpecimenIndex(services.store, services.log, services.ledger.mapper,
                              services.index)
    receiver = Receiver(services.ledger, services.idempotency)

    def find_active(doc_number: str) -> list[UUID]:
        """Active records with this DOC number, once the views hold all recorded so far."""
        if not runner.wait_for(services.log.head(), VIEW_WAIT_SECONDS):
            raise ViewsBehind
        query = caseload.CaseloadQuery(doc_index=services.index.digest("DOC", doc_number),
                                       status="active", limit=2)
        rows = caseload.find(services.store, query, datetime.now(UTC).date())
        return [UUID(row["participant_id"]) for row in rows]

    return Integrations(IntegrationClients(services.store, services.tokens),
                        Feed(services.ledger, services.log, FeedRecords(services)), specimens,
                        LabResults(receiver, specimens), Movements(receiver, find_active))
