"""Folding log entries into records, for views that derive rows from a whole record.

The domain's own fold (each event's `mutate`) is the one source of truth for state; a
folder keeps recently folded records so that a run over the log folds each event once, and
replays a record from the store only when it fell out of memory or arrived out of step.
Views that derive from the same records share one folder: a batch is folded once for all
of them. A rebuild holds every record it meets (`hold_all`), since the log interleaves
far more records than a live run keeps in memory, and a miss costs a replay.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from uuid import UUID

from domain.events import ParticipantEvent
from domain.participant import Participant
from domain.retention import RecordErased
from projections.runner import LoggedEvent

Load = Callable[[UUID, int], Participant]
Folded = dict[UUID, Participant | None]  # by stream, first touched first; None: erased


class RecordFolder:
    def __init__(self, load: Load, cache_size: int = 5000) -> None:
        self.load = load
        self.cache_size = cache_size
        self.holding_all = False
        self._folded: OrderedDict[UUID, Participant] = OrderedDict()
        self._last: tuple[Sequence[LoggedEvent], Folded] | None = None

    def fold_batch(self, batch: Sequence[LoggedEvent]) -> Folded:
        """The records as the batch leaves them. Asked again for the same batch (another
        view of the same step), the same answer: the batch is folded once."""
        if self._last is not None and self._last[0] is batch:
            return self._last[1]
        folded: Folded = {}
        for entry in batch:
            if isinstance(entry.event, RecordErased):
                folded[entry.event.participant_id] = None
                self.forget(entry.event.participant_id)
            elif isinstance(entry.event, ParticipantEvent):
                folded[entry.stream_id] = self.fold(entry)
        self._last = (batch, folded)  # holds the batch, so `is` cannot meet a reused id
        return folded

    def fold(self, entry: LoggedEvent) -> Participant:
        # Taken out and put back last (least recently used order), unless every record is
        # held anyway (a rebuild): then its place does not matter.
        take = self._folded.get if self.holding_all else self._folded.pop
        participant = take(entry.stream_id, None)
        if participant is not None and participant.version != entry.version - 1:
            participant = None
        if participant is None and entry.version > 1:
            participant = self.load(entry.stream_id, entry.version - 1)
        assert isinstance(entry.event, ParticipantEvent)
        folded = entry.event.mutate(participant)
        assert isinstance(folded, Participant)
        self._folded[entry.stream_id] = folded
        if not self.holding_all:
            while len(self._folded) > self.cache_size:
                self._folded.popitem(last=False)
        return folded

    def hold_all(self, on: bool) -> None:
        """While on (a rebuild), no record is dropped; off, the LRU bound applies again."""
        self.holding_all = on
        if not on:
            while len(self._folded) > self.cache_size:
                self._folded.popitem(last=False)

    def forget(self, stream_id: UUID) -> None:
        self._folded.pop(stream_id, None)

    def reset(self) -> None:
        self._folded.clear()
        self._last = None
