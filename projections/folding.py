"""Folding log entries into records, for views that derive rows from a whole record.

The domain's own fold (each event's `mutate`) is the one source of truth for state; a
view keeps recently folded records so that a run over the log folds each event once, and
replays a record from the store only when it fell out of memory or arrived out of step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from uuid import UUID

from domain.events import ParticipantEvent
from domain.participant import Participant
from projections.runner import LoggedEvent

Load = Callable[[UUID, int], Participant]


class RecordFolder:
    def __init__(self, load: Load, cache_size: int = 5000) -> None:
        self.load = load
        self.cache_size = cache_size
        self._folded: OrderedDict[UUID, Participant] = OrderedDict()

    def fold(self, entry: LoggedEvent) -> Participant:
        participant = self._folded.pop(entry.stream_id, None)
        if participant is not None and participant.version != entry.version - 1:
            participant = None
        if participant is None and entry.version > 1:
            participant = self.load(entry.stream_id, entry.version - 1)
        assert isinstance(entry.event, ParticipantEvent)
        folded = entry.event.mutate(participant)
        assert isinstance(folded, Participant)
        self._folded[entry.stream_id] = folded
        while len(self._folded) > self.cache_size:
            self._folded.popitem(last=False)
        return folded

    def forget(self, stream_id: UUID) -> None:
        self._folded.pop(stream_id, None)

    def reset(self) -> None:
        self._folded.clear()
