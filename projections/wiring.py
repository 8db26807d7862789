"""The projections a deployment runs, built on the services."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from infra.wiring import Services
from projections.folding import RecordFolder
from projections.groups import GroupSessionsView
from projections.runner import Projection, ProjectionRunner
from projections.stats import ProgramStatsView
from projections.summary import ParticipantSummaryView
from projections.timeline import TimelineView


def build_runner(services: Services, batch_size: int | None = None,
                 rebuild_batch_size: int | None = None,
                 extra: Sequence[Callable[[RecordFolder], Projection]] = ()
                 ) -> ProjectionRunner:
    """The views; `extra` makes projections that are built elsewhere (the webhook outbox,
    which integrations/ builds: projections/ does not import it) on the shared folder."""
    ledger = services.ledger
    services.index.prepare()
    # The summary and the statistics derive from the same folded records: one folder.
    records = RecordFolder(lambda stream_id, version: ledger.participant(stream_id,
                                                                          version=version))
    summary = ParticipantSummaryView(services.policies, services.sealer, services.index,
                                     records)
    timeline = TimelineView()
    stats = ProgramStatsView(services.keys, records, services.policies)
    stats.prepare()
    sessions = GroupSessionsView(services.keys, services.sealer, records)
    sessions.prepare()
    settings = services.settings
    views: list[Projection] = [summary, timeline, stats, sessions]
    return ProjectionRunner(
        services.store, services.log, ledger.mapper,
        [*views, *(make(records) for make in extra)],
        batch_size=batch_size or settings.projection_batch_size,
        rebuild_batch_size=rebuild_batch_size or settings.projection_rebuild_batch_size,
        preload_keys=services.keys.preload)
