"""The projections a deployment runs, built on the services."""

from __future__ import annotations

from infra.wiring import Services
from projections.runner import ProjectionRunner
from projections.stats import ProgramStatsView
from projections.summary import ParticipantSummaryView
from projections.timeline import TimelineView


def build_runner(services: Services, batch_size: int | None = None) -> ProjectionRunner:
    ledger = services.ledger
    services.index.prepare()
    summary = ParticipantSummaryView(
        services.policies, services.sealer, services.index,
        load=lambda stream_id, version: ledger.participant(stream_id, version=version))
    timeline = TimelineView(services.sealer)
    stats = ProgramStatsView(services.keys, load=summary.records.load)
    stats.prepare()
    return ProjectionRunner(services.store, services.log, ledger.mapper,
                            [summary, timeline, stats],
                            batch_size=batch_size or services.settings.projection_batch_size)
