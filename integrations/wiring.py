"""The integration side a deployment runs, built on the services."""

from __future__ import annotations

from dataclasses import dataclass

from infra.wiring import Services
from integrations.clients import IntegrationClients
from integrations.feed import Feed
from integrations.lab_results import LabResults
from integrations.specimens import SpecimenIndex


@dataclass
class Integrations:
    clients: IntegrationClients
    feed: Feed
    specimens: SpecimenIndex
    lab_results: LabResults


def build_integrations(services: Services) -> Integrations:
    services.index.prepare()
    specimens = SpecimenIndex(services.store, services.log, services.ledger.mapper,
                              services.index)
    return Integrations(IntegrationClients(services.store, services.tokens),
                        Feed(services.ledger, services.log), specimens,
                        LabResults(services.ledger, services.idempotency, specimens))
