"""The integration side a deployment runs, built on the services and the views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from audit.access import AccessLog
from infra.recorders import LogEntry
from infra.wiring import Services
from integrations.clients import IntegrationClients
from integrations.feed import Feed
from integrations.inbound import Receiver
from integrations.lab_results import LabResults
from integrations.movements import Movements, ViewsBehind
from integrations.specimens import SpecimenIndex
from integrations.webhook_deliveries import Deliveries, RetrySchedule
from integrations.webhook_outbox import OutboxProjection
from integrations.webhook_worker import WebhookWorker
from integrations.webhooks import WebhookSubscriptions
from projections import caseload
from projections.folding import RecordFolder
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
class Webhooks:
    services: Services
    clients: IntegrationClients
    subscriptions: WebhookSubscriptions
    deliveries: Deliveries

    def outbox(self, records: RecordFolder) -> OutboxProjection:
        """The outbox projection, for build_runner(extra=[webhooks.outbox]): it runs with
        the views and reads the records they fold."""
        services = self.services
        return OutboxProjection(records, services.sealer, self.subscriptions, self.clients,
                                first_delay=self.deliveries.schedule.first)


@dataclass
class Integrations:
    clients: IntegrationClients
    feed: Feed
    specimens: SpecimenIndex
    lab_results: LabResults
    movements: Movements
    webhooks: Webhooks


def build_webhooks(services: Services) -> Webhooks:
    clients = IntegrationClients(services.store, services.tokens)
    subscriptions = WebhookSubscriptions(services.store, services.keys, services.log)
    schedule = RetrySchedule(services.settings.webhook_retry_delays)
    return Webhooks(services, clients, subscriptions, Deliveries(services.store, schedule))


def build_webhook_worker(services: Services, webhooks: Webhooks, access_log: AccessLog,
                         **overrides: Any) -> WebhookWorker:
    """The delivery worker, configured by TCLEDGER_WEBHOOK_* (tests override some)."""
    settings = services.settings
    options: dict[str, Any] = {"timeout": settings.webhook_timeout,
                               "concurrency": settings.webhook_concurrency}
    options.update(overrides)
    return WebhookWorker(ledger=services.ledger, sealer=services.sealer,
                         subscriptions=webhooks.subscriptions, clients=webhooks.clients,
                         deliveries=webhooks.deliveries, access_log=access_log, **options)


def build_integrations(services: Services, runner: ProjectionRunner,
                       webhooks: Webhooks | None = None) -> Integrations:
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
                        LabResults(receiver, specimens), Movements(receiver, find_active),
                        webhooks or build_webhooks(services))
