"""History replay: each event of a participant's stream with the record right after it.

The state after version k is the fold of versions 1..k in stream order: what the record
showed the moment that event was recorded. It is the same fold as `participant_as_of` at
that event's recorded time, so the replay and `as_of` reads agree at every point. A late
entry (effective earlier than recorded) changes the state where it was recorded, not
where it took effect; a correction or a void changes the states from its own version on
and never the states shown before it. What later supersedes an entry is marked on the
entry itself (`superseded_by`), as the stream shows it now.

Pages start from a checkpoint: the folded record at the end of the page served before,
kept (a few, in memory) so that walking a long history page by page folds each event once.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from domain.application import Guard, TCLedger
from domain.errors import ParticipantErased, ParticipantNotFound
from domain.events import EntryCorrected, EntryVoided, ParticipantEvent
from domain.participant import Participant

T = TypeVar("T")
Supersedes = EntryCorrected | EntryVoided


class VersionOutOfRange(Exception):
    """A page asked to start after a version the stream has not reached."""

    def __init__(self, after_version: int, version: int) -> None:
        self.after_version = after_version
        self.version = version
        super().__init__(f"after_version {after_version} is beyond the record's "
                         f"version {version}")


@dataclass(frozen=True)
class Supersession:
    """What a correction or a void replaces: the original entry as recorded, the entry as
    in effect just before (earlier corrections applied), and for a correction the values
    it changes."""

    action: Literal["correct", "void"]
    original: ParticipantEvent
    in_effect: ParticipantEvent
    changes: dict[str, Any]


@dataclass(frozen=True)
class Mark:
    """A later correction or void of an entry."""

    version: int
    action: Literal["correct", "void"]


@dataclass(frozen=True)
class ReplayStep(Generic[T]):
    event: ParticipantEvent
    state: T
    supersedes: Supersession | None
    superseded_by: tuple[Mark, ...]


@dataclass(frozen=True)
class ReplayPage(Generic[T]):
    participant_id: UUID
    version: int
    steps: list[ReplayStep[T]]
    next_after_version: int | None


class Checkpoints:
    """Folded records at the end of recently served pages, by stream and version.

    A page takes its checkpoint out and leaves one for the next page, so a record is never
    shared between two requests. Events never change, so a checkpoint never goes stale;
    it is only handed out after the stream was found readable (not erased)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._held: OrderedDict[tuple[UUID, int], Participant] = OrderedDict()

    def take(self, participant_id: UUID, version: int) -> Participant | None:
        with self._lock:
            return self._held.pop((participant_id, version), None)

    def leave(self, participant: Participant) -> None:
        with self._lock:
            self._held[(participant.id, participant.version)] = participant
            while len(self._held) > self.size:
                self._held.popitem(last=False)

    def forget(self, participant_id: UUID) -> None:
        with self._lock:
            for key in [k for k in self._held if k[0] == participant_id]:
                del self._held[key]


class Replayer:
    """Replays a participant's stream from the ledger's decoded record."""

    def __init__(self, ledger: TCLedger, checkpoints: int = 32) -> None:
        self.ledger = ledger
        self.checkpoints = Checkpoints(checkpoints)

    def page(self, participant_id: UUID, render: Callable[[Participant], T], *,
             after_version: int = 0, limit: int = 50,
             guard: Guard | None = None) -> ReplayPage[T]:
        """Events after `after_version` (at most `limit`), each with `render` of the record
        right after it. Unknown, erased and guarded-out records raise as reads do."""
        history = self._history(participant_id, guard)
        if after_version > len(history):
            raise VersionOutOfRange(after_version, len(history))
        marks = superseded_marks(history)
        participant = self._at(participant_id, history, after_version)
        steps: list[ReplayStep[T]] = []
        for event in history[after_version:after_version + limit]:
            participant = fold_one(participant, event)
            steps.append(ReplayStep(event, render(participant), supersession(history, event),
                                    marks.get(event.originator_version, ())))
        last = after_version + len(steps)
        if participant is not None and last < len(history):
            self.checkpoints.leave(participant)
        return ReplayPage(participant_id, len(history), steps,
                          last if last < len(history) else None)

    def _history(self, participant_id: UUID,
                 guard: Guard | None) -> Sequence[ParticipantEvent]:
        def events(participant: Participant) -> list[ParticipantEvent]:
            if guard is not None:
                guard(participant)
            return list(participant.history)  # events are immutable: no copies needed

        try:
            return self.ledger.read(participant_id, events)
        except ParticipantErased:
            self.checkpoints.forget(participant_id)
            raise

    def _at(self, participant_id: UUID, history: Sequence[ParticipantEvent],
            version: int) -> Participant | None:
        """The record folded up to `version` (None before the first event)."""
        if version == 0:
            return None
        participant = self.checkpoints.take(participant_id, version)
        if participant is None:
            for event in history[:version]:
                participant = fold_one(participant, event)
        return participant


def fold_one(participant: Participant | None, event: ParticipantEvent) -> Participant:
    """Folds one more event in, as the ledger does when it loads a record."""
    folded = event.mutate(participant)
    if not isinstance(folded, Participant):
        raise ParticipantNotFound(event.originator_id)
    return folded


def superseded_marks(history: Sequence[ParticipantEvent]) -> dict[int, tuple[Mark, ...]]:
    """For each superseded version, the corrections and voids of it, in stream order."""
    marks: dict[int, list[Mark]] = {}
    for event in history:
        if isinstance(event, EntryCorrected | EntryVoided):
            marks.setdefault(event.supersedes_version, []).append(
                Mark(event.originator_version, _action(event)))
    return {version: tuple(found) for version, found in marks.items()}


def supersession(history: Sequence[ParticipantEvent],
                 event: ParticipantEvent) -> Supersession | None:
    """What `event` supersedes, when it is a correction or a void."""
    if not isinstance(event, EntryCorrected | EntryVoided):
        return None
    original = history[event.supersedes_version - 1]
    earlier: dict[str, Any] = {}
    for other in history[event.supersedes_version:event.originator_version - 1]:
        if isinstance(other, EntryCorrected) \
                and other.supersedes_version == event.supersedes_version:
            earlier.update(other.changes)
    in_effect = dataclasses.replace(original, **earlier) if earlier else original
    changes = dict(event.changes) if isinstance(event, EntryCorrected) else {}
    return Supersession(_action(event), original, in_effect, changes)


def _action(event: Supersedes) -> Literal["correct", "void"]:
    return "void" if isinstance(event, EntryVoided) else "correct"
