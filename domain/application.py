"""The command side: loads a participant, lets a rule-checked command decide, records the facts.

`TCLedger` is an `eventsourcing` Application. It knows nothing of HTTP, SQL or keys: the
mapper that encrypts and the recorder that stores are given to it by `infra`, and
`record_with` passes through to the recorder so that side records (an idempotency answer)
commit in the same transaction as the events.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import partial
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
)
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    RecordConflictError,
    Recording,
    Transcoding,
)
from eventsourcing.utils import get_topic

from domain import community
from domain import events as ev
from domain.community import peer_links
from domain.errors import (
    DomainError,
    NotFound,
    ParticipantErased,
    ParticipantNotFound,
    VersionMismatch,
)
from domain.groups import GroupSession
from domain.live import LiveRecords
from domain.participant import Participant
from domain.policy import PolicyBook, ProgramPolicy
from domain.provenance import Provenance
from domain.retention import ErasureRecord, erasure_record_id

Command = Callable[[Participant, ProgramPolicy], Any]
Guard = Callable[[Participant], None]
# Side records to commit with the events, built once the command has decided: given the
# stream id, its version after the write and the command's outcome (new ids).
RecordWith = Callable[[UUID, int, dict[str, Any]], dict[str, Any]]
# A command on several records at once, all or nothing (peer feedback, mentors).
JointCommand = Callable[[dict[UUID, "Participant"]], Any]
# Side records of a write to several streams, given each record's outcome (its version
# after the write, or the refusal).
Outcomes = Mapping[UUID, "WriteResult | DomainError"]
RecordWithMany = Callable[[Outcomes], dict[str, Any]]

T = TypeVar("T")
log = logging.getLogger("tcledger.application")
CONFLICT_RETRIES = 8  # then the caller hears 409 and may retry itself
# A write of several records loses a race whenever any one of them moved: it may try more
# often (about a second in all) before the caller hears 409.
MANY_CONFLICT_RETRIES = 40
SESSIONS_KEPT = 1000


def _back_off(attempt: int) -> None:
    """Another process won the race: wait a little, at random, before reloading."""
    time.sleep(random.uniform(0, min(0.002 * (attempt + 1), 0.05)))


class PeerDirectory(Protocol):
    """Who the other record of a peer link is (infra.peers): None once either was erased."""

    def resolve(self, link_id: str, sealed: str, holder: UUID) -> UUID | None: ...


class _MentorshipsMoved(Exception):
    """A record's open mentorships changed between looking them up and locking them."""


class DataKeys(Protocol):
    """What the command side needs of key management: the power to shred a stream's key."""

    def destroy_data_key(self, stream_id: UUID) -> None: ...

    def check_readable(self, stream_id: UUID) -> None:
        """Raises ParticipantErased when the stream's key is gone, in any process."""


class SnapshotStore(Protocol):
    """Whole records kept at a version, so that a cold read need not replay every event.
    A snapshot is only ever a starting point: the stream confirms it and adds what follows."""

    def latest(self, stream_id: UUID) -> Participant | None: ...

    def keep(self, participant: Participant) -> None:
        """Stores a record as the stream replays it; never raises (a cache may fail)."""

    def discard(self, stream_id: UUID) -> None: ...


class Later(Protocol):
    """Where work that no answer waits for is done: after the write that made it due."""

    def __call__(self, work: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class WriteResult:
    id: UUID
    version: int
    position: int
    extra: dict[str, Any] = field(default_factory=dict)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class TCLedger(Application[UUID]):
    name = "tcledger"
    env = {"COMPRESSOR_TOPIC": ""}

    def __init__(self, policies: PolicyBook, keys: DataKeys, env: dict[str, str] | None = None,
                 mapper: Mapper[UUID] | None = None, live_records: int = 10000,
                 peers: PeerDirectory | None = None) -> None:
        self.policies = policies
        self.keys = keys
        self.peers = peers
        self._live: LiveRecords[Participant] = LiveRecords(live_records)
        # A session is one immutable event: kept once read, so that rosters do not reload it.
        self._sessions: LiveRecords[GroupSession] = LiveRecords(SESSIONS_KEPT)
        self._given_mapper = mapper
        self._snapshot_store: SnapshotStore | None = None
        self._snapshot_interval = 0
        self._snapshot_later: Later | None = None
        super().__init__(env)

    def keep_snapshots(self, store: SnapshotStore, every: int, later: Later | None = None
                       ) -> None:
        """Keeps a snapshot of a record each time `every` more events have been replayed
        or written since the last one (0: never). With `later`, a snapshot a write made due
        is made there, after the write has answered (a roster carrying 40 records past the
        interval at once would otherwise replay 40 streams before its answer); without, at
        once."""
        self._snapshot_store = store if every > 0 else None
        self._snapshot_interval = every
        self._snapshot_later = later

    def close(self) -> None:
        if self._snapshot_later is not None:
            self._snapshot_later.close()
        super().close()

    def construct_mapper(self) -> Mapper[UUID]:
        if self._given_mapper is not None:
            self._given_mapper.transcoder = self.construct_transcoder()
            return self._given_mapper
        return super().construct_mapper()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """As the library's save, without asking typing protocols which objects are
        aggregates (on Python 3.11 each such check costs more than encrypting an event):
        ours are, and anything else goes the library's way."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    # --- reads ---------------------------------------------------------------------------

    def participant(self, participant_id: UUID, version: int | None = None) -> Participant:
        """A private copy of the record, current (caught up with the store) or at a version."""
        if version is not None:
            return self._load(participant_id, version)
        return self.read(participant_id, copy.deepcopy)

    def read(self, participant_id: UUID, view: Callable[[Participant], T]) -> T:
        """Applies a read-only view to the current record under its lock: no copy needed."""
        self.keys.check_readable(participant_id)
        with self._live.lock(participant_id):
            return view(self._current(participant_id, catch_up=True))

    def read_known(self, participant_id: UUID, version: int,
                   view: Callable[[Participant], T]) -> T:
        """`read` for a caller that reads many records at once: it has checked in one query
        that none is erased and found each stream's last `version` in another, so the record
        held in memory is used as it is when it has that version (no query), and caught up
        only when it is behind."""
        with self._live.lock(participant_id):
            participant = self._current(participant_id, catch_up=False)
            if participant.version < version:
                participant = self._current(participant_id, catch_up=True)
            return view(participant)

    def participant_as_of(self, participant_id: UUID, recorded_by: datetime) -> Participant:
        """The record as it stood at a recorded time: later entries, even back-dated, left out."""
        participant: Any = None
        for event in self._stream(participant_id):  # one pass: decode and fold together
            if event.timestamp > recorded_by:
                break
            participant = event.mutate(participant)
        if not isinstance(participant, Participant):
            raise ParticipantNotFound(participant_id)
        return participant

    def history(self, participant_id: UUID) -> Iterator[ev.ParticipantEvent]:
        found = False
        for event in self.events.get(participant_id):
            found = True
            assert isinstance(event, ev.ParticipantEvent)
            yield event
        if not found:
            raise ParticipantNotFound(participant_id)

    def admissions(self, view: Callable[[Participant], T], after: int = 0,
                   batch: int = 500) -> Iterator[tuple[int, T]]:
        """A view of every readable participant in admission order, with the admission's
        log position."""
        topics = [get_topic(ev.ParticipantAdmitted)]
        while True:
            notes = self.recorder.select_notifications(
                start=after, limit=batch, topics=topics, inclusive_of_start=False)
            for note in notes:
                try:
                    yield note.id, self.read(UUID(str(note.originator_id)), view)
                except ParticipantErased:
                    continue
            if len(notes) < batch:
                return
            after = notes[-1].id

    def policy_of(self, participant: Participant) -> ProgramPolicy:
        policy = self.policies.get(participant.state.program)
        assert policy is not None, "a participant's program is always loaded"
        return policy

    # --- writes --------------------------------------------------------------------------

    def admit(self, program: ProgramPolicy, by: Provenance,
              record_with: RecordWith | None = None, **fields: Any) -> WriteResult:
        participant = Participant.admit(program, by=by, **fields)
        result = self._save(participant, {}, record_with)
        self._live.put(participant.id, participant)
        return result

    def execute(self, participant_id: UUID, command: Command, *,
                expected_version: int | None = None, guard: Guard | None = None,
                record_with: RecordWith | None = None) -> WriteResult:
        """Runs a command against the current record; retries when another writer won a race."""
        for attempt in range(CONFLICT_RETRIES):
            with self._live.lock(participant_id):
                participant = self._current(participant_id, catch_up=False)
                if guard is not None:
                    guard(participant)
                if expected_version is not None and expected_version != participant.version:
                    # The live copy may trail another process's writes: look before refusing.
                    participant = self._current(participant_id, catch_up=True)
                    if expected_version != participant.version:
                        raise VersionMismatch(expected_version, participant.version)
                try:
                    outcome = command(participant, self.policy_of(participant))
                    if community.mentorships_ending(participant):
                        self._live.drop(participant_id)  # decided again with the peers
                        break
                    extra = outcome if isinstance(outcome, dict) else {}
                    return self._save(participant, extra, record_with)
                except RecordConflictError:
                    self._live.drop(participant_id)
                    if expected_version is not None or attempt == CONFLICT_RETRIES - 1:
                        raise
                except BaseException:
                    self._live.drop(participant_id)
                    raise
            _back_off(attempt)
        else:
            raise AssertionError("unreachable")
        return self._with_mentorship_peers(participant_id, command, expected_version, guard,
                                           record_with)

    def _with_mentorship_peers(self, participant_id: UUID, command: Command,
                               expected_version: int | None, guard: Guard | None,
                               record_with: RecordWith | None) -> WriteResult:
        """A command that discharges a record with open mentorships: run over the record
        and the other record of each mentorship, ending the mentorships on both sides in
        the same transaction as the discharge (domain.community)."""
        for attempt in range(MANY_CONFLICT_RETRIES):
            peers = self.read(participant_id, self._mentorship_peers)
            ids = [participant_id, *dict.fromkeys(p for p in peers.values() if p is not None)]
            with self._locked(ids):
                try:
                    records = {pid: self._current(pid, catch_up=False) for pid in ids}
                    participant = records.pop(participant_id)
                    if self._mentorship_peers(participant) != peers:
                        raise _MentorshipsMoved
                    if guard is not None:
                        guard(participant)
                    if expected_version is not None and expected_version != participant.version:
                        raise VersionMismatch(expected_version, participant.version)
                    outcome = command(participant, self.policy_of(participant))
                    community.end_mentorships_with_discharge(participant, {
                        m: records[pid] for m, pid in peers.items() if pid is not None})
                    extra = outcome if isinstance(outcome, dict) else {}
                    # The record's own events last: the log position answered is its last.
                    changed = [r for r in records.values() if r.pending_events]
                    side = _side_of_many(record_with, participant, changed, extra)
                    recordings = self.save(*changed, participant, **side)
                    return WriteResult(participant_id, participant.version,
                                       recordings[-1].notification.id, extra)
                except (RecordConflictError, _MentorshipsMoved):
                    for pid in ids:
                        self._live.drop(pid)
                    if attempt == MANY_CONFLICT_RETRIES - 1:
                        raise
                except BaseException:
                    for pid in ids:
                        self._live.drop(pid)
                    raise
            _back_off(attempt)
        raise AssertionError("unreachable")

    def _mentorship_peers(self, p: Participant) -> dict[str, UUID | None]:
        """The other record of each open mentorship, by mentorship (None: erased)."""
        return {m["mentor_id"]: None if self.peers is None else
                self.peers.resolve(m["link_id"], m["peer"], p.id)
                for m in community.open_mentorships(p)}

    def execute_each(self, commands: Mapping[UUID, Command], *, guard: Guard | None = None,
                     record_with: RecordWithMany | None = None
                     ) -> dict[UUID, WriteResult | DomainError]:
        """Runs one command per record (a roster) and saves every accepted record in one
        transaction. A record its command refuses gets the refusal and nothing written; a
        command that records nothing (a replay) gets its record's version. On a version
        conflict the whole set is reloaded and run again."""
        ids = list(commands)
        for attempt in range(MANY_CONFLICT_RETRIES):
            with self._locked(ids):
                outcomes: dict[UUID, WriteResult | DomainError] = {}
                changed: list[Participant] = []
                try:
                    for pid in ids:
                        try:
                            participant = self._current(pid, catch_up=False)
                            if guard is not None:
                                guard(participant)
                            outcome = commands[pid](participant, self.policy_of(participant))
                        except DomainError as refusal:
                            self._live.drop(pid)  # the command may have half-decided
                            outcomes[pid] = refusal
                            continue
                        if participant.pending_events:
                            changed.append(participant)
                        outcomes[pid] = WriteResult(pid, participant.version, 0,
                                                    outcome if isinstance(outcome, dict) else {})
                    positions = self._save_many(changed, record_with, outcomes)
                except RecordConflictError:
                    for participant in changed:
                        self._live.drop(participant.id)
                    if attempt == MANY_CONFLICT_RETRIES - 1:
                        raise
                    _back_off(attempt)
                    continue
                except BaseException:
                    for pid in ids:
                        self._live.drop(pid)
                    raise
                return {pid: replace(o, position=positions.get(pid, 0))
                        if isinstance(o, WriteResult) else o for pid, o in outcomes.items()}
        raise AssertionError("unreachable")

    def execute_together(self, ids: Sequence[UUID], command: JointCommand, *,
                         guard: Guard | None = None, record_with: RecordWithMany | None = None
                         ) -> dict[UUID, WriteResult]:
        """Runs one command over several records and saves them all in one transaction, or
        none when it refuses; retries the whole set when another writer won a race."""
        for attempt in range(MANY_CONFLICT_RETRIES):
            with self._locked(ids):
                try:
                    participants = {pid: self._current(pid, catch_up=False) for pid in ids}
                    if guard is not None:
                        for participant in participants.values():
                            guard(participant)
                    outcome = command(participants)
                    extra = outcome if isinstance(outcome, dict) else {}
                    changed = [p for p in participants.values() if p.pending_events]
                    results = {pid: WriteResult(pid, p.version, 0, extra)
                               for pid, p in participants.items()}
                    positions = self._save_many(changed, record_with, results)
                    return {pid: replace(r, position=positions.get(pid, 0))
                            for pid, r in results.items()}
                except RecordConflictError:
                    for pid in ids:
                        self._live.drop(pid)
                    if attempt == MANY_CONFLICT_RETRIES - 1:
                        raise
                except BaseException:
                    for pid in ids:
                        self._live.drop(pid)
                    raise
            _back_off(attempt)
        raise AssertionError("unreachable")

    def hold_group(self, session: GroupSession,
                   record_with: RecordWith | None = None) -> WriteResult:
        result = self._save(session, {}, record_with)
        self._sessions.put(session.id, session)
        return result

    def hold_peer_led_group(self, session: GroupSession, peer_id: UUID, by: Provenance, *,
                            guard: Guard | None = None,
                            record_with: RecordWith | None = None) -> WriteResult:
        """A session a participant led: the session, and the leading on the peer's own
        record, in one transaction (or neither, when the peer may not lead it)."""
        with self._live.lock(peer_id):
            try:
                peer = self._current(peer_id, catch_up=True)
                if guard is not None:
                    guard(peer)
                community.record_facilitation(peer, session.session, by=by)
                side = record_with(session.id, session.version, {}) if record_with else {}
                # The session's event last: the log position answered is the session's.
                recordings = self.save(peer, session, **side)
            except BaseException:
                self._live.drop(peer_id)
                raise
        self._sessions.put(session.id, session)
        return WriteResult(session.id, session.version, recordings[-1].notification.id, {})

    def group(self, group_id: UUID) -> GroupSession:
        kept = self._sessions.get(group_id)
        if kept is not None:
            return kept
        try:
            session: object = self.repository.get(group_id)
        except (AggregateNotFoundError, ParticipantErased):
            raise NotFound("group", group_id) from None
        if not isinstance(session, GroupSession):
            raise NotFound("group", group_id)
        self._sessions.put(group_id, session)
        return session

    def erase(self, participant_id: UUID, by: Provenance, reason: str,
              record_with: RecordWith | None = None,
              record_peer: RecordWith | None = None) -> WriteResult:
        """Crypto-shreds a participant: the erasure is recorded on its own stream, then the
        key is destroyed. `record_peer`: side records of the write that ends an open
        mentorship on the other record."""
        def erasable_peers(p: Participant) -> dict[str, UUID | None]:
            p.check_erasable()
            return self._mentorship_peers(p)

        # Its open mentorships end first on the other records, which outlive it.
        for mentor_id, peer in self.read(participant_id, erasable_peers).items():
            if peer is not None:
                self.execute(peer, _ending_for_erased(mentor_id, by), record_with=record_peer)
        with self._live.lock(participant_id):
            participant = self.participant(participant_id)
            participant.check_erasable()
            record = ErasureRecord.create(participant_id, participant.version, by, reason)
            result = self._save(record, {}, record_with)
            self.keys.destroy_data_key(participant_id)
            if self._snapshot_store is not None:
                self._snapshot_store.discard(participant_id)
            for link in peer_links(participant.history):
                # Each peer's record keeps the fact, but no longer who it was with.
                self.keys.destroy_data_key(UUID(link))
            self.forget(participant_id)
        return WriteResult(participant_id, participant.version, result.position)

    def erasure_of(self, participant_id: UUID) -> ErasureRecord | None:
        try:
            record: object = self.repository.get(erasure_record_id(participant_id))
        except AggregateNotFoundError:
            return None
        assert isinstance(record, ErasureRecord)
        return record

    def forget(self, participant_id: UUID) -> None:
        """Drops the decoded record held in memory."""
        self._live.drop(participant_id)

    def _current(self, participant_id: UUID, *, catch_up: bool) -> Participant:
        participant = self._live.get(participant_id)
        if participant is None:
            participant = self._load(participant_id)
            self._live.put(participant_id, participant)
        elif catch_up:
            try:
                for event in self._stream(participant_id, gt=participant.version):
                    event.mutate(participant)
            except BaseException:
                self._live.drop(participant_id)
                raise
        return participant

    def _stream(self, participant_id: UUID, gt: int | None = None,
                lte: int | None = None) -> Iterator[ev.ParticipantEvent]:
        for event in self.events.get(participant_id, gt=gt, lte=lte):
            yield cast(ev.ParticipantEvent, event)

    def _load(self, participant_id: UUID, version: int | None = None) -> Participant:
        """Replays the stream: each event folds itself in (no per-event protocol checks).

        A kept snapshot starts the fold only when the stream confirms it (its last event is
        the stream's event at that version); otherwise the whole stream is replayed. A long
        replay leaves a snapshot for the next cold read."""
        start = self._snapshot(participant_id, version)
        participant, replayed = self._fold(participant_id, start, version)
        if participant is None and start is not None:
            log.warning("snapshot_disowned", extra={"stream_id": str(participant_id)})
            participant, replayed = self._fold(participant_id, None, version)
        if not isinstance(participant, Participant):
            raise ParticipantNotFound(participant_id)
        if version is None and self._snapshot_store is not None \
                and replayed >= self._snapshot_interval:
            self._snapshot_store.keep(participant)
        return participant

    def _snapshot(self, participant_id: UUID, version: int | None) -> Participant | None:
        if self._snapshot_store is None:
            return None
        found = self._snapshot_store.latest(participant_id)
        if found is None or (version is not None and found.version > version):
            return None
        return found

    def _fold(self, participant_id: UUID, start: Participant | None,
              version: int | None) -> tuple[Participant | None, int]:
        """The record folded from `start` (or from nothing) and how many events that took;
        (None, 0) when the stream does not confirm `start`."""
        participant: Any = start
        confirmed = start is None
        replayed = 0
        gt = None if start is None else start.version - 1
        for event in self._stream(participant_id, gt=gt, lte=version):
            if not confirmed:
                assert start is not None
                if event.originator_version != start.version or event != start.last_event:
                    return None, 0
                confirmed = True
                continue
            participant = event.mutate(participant)
            replayed += 1
        return (participant, replayed) if confirmed else (None, 0)

    def _take_snapshots(self, processing_event: Any) -> None:
        """After a save: a record whose version passed a multiple of the interval gets a
        snapshot, made from the stream (as a cold read would fold it), not from memory."""
        super()._take_snapshots(processing_event)
        every = self._snapshot_interval
        if self._snapshot_store is None:
            return
        saved: dict[Any, int] = {}
        for event in processing_event.events:
            saved[event.originator_id] = saved.get(event.originator_id, 0) + 1
        for stream_id, aggregate in processing_event.aggregates.items():
            if not isinstance(aggregate, Participant):
                continue
            before = aggregate.version - saved.get(stream_id, 0)
            if aggregate.version // every > before // every:
                work = partial(self._snapshot_from_stream, UUID(str(stream_id)))
                if self._snapshot_later is None:
                    work()
                else:
                    self._snapshot_later(work)

    def _snapshot_from_stream(self, stream_id: UUID) -> None:
        try:
            self._load(stream_id)  # keeps one when the replay was long
        except Exception:  # the events are saved; a missing snapshot costs time only
            log.warning("snapshot_failed", exc_info=True)

    def _locked(self, ids: Sequence[UUID]) -> ExitStack:
        stack = ExitStack()
        for lock in self._live.locks(ids):
            stack.enter_context(lock)
        return stack

    def _save_many(self, changed: list[Participant], record_with: RecordWithMany | None,
                   outcomes: Outcomes) -> dict[UUID, int]:
        """One transaction for every changed record; each record's last log position."""
        if not changed:
            return {}
        side = record_with(outcomes) if record_with else {}
        positions: dict[UUID, int] = {}
        for recording in self.save(*changed, **side):
            stream = recording.domain_event.originator_id
            positions[stream] = max(positions.get(stream, 0), recording.notification.id)
        return positions

    def _save(self, aggregate: Participant | ErasureRecord | GroupSession, extra: dict[str, Any],
              record_with: RecordWith | None) -> WriteResult:
        side = record_with(aggregate.id, aggregate.version, extra) if record_with else {}
        recordings = self.save(aggregate, **side)
        position = recordings[-1].notification.id if recordings else 0
        return WriteResult(aggregate.id, aggregate.version, position, extra)


def _side_of_many(record_with: RecordWith | None, participant: Participant,
                  others: list[Participant], extra: dict[str, Any]) -> dict[str, Any]:
    """Side records of a command on `participant` that also wrote on `others`: its own,
    and each other record's access log entry."""
    if record_with is None:
        return {}
    side = record_with(participant.id, participant.version, extra)
    for other in others:
        also = record_with(other.id, other.version, extra).get("also", [])
        side["also"] = [*side.get("also", []), *also]
    return side


def _ending_for_erased(mentor_id: str, by: Provenance) -> Command:
    def end(p: Participant, _: ProgramPolicy) -> None:
        community.end_mentorship_of_erased_peer(p, mentor_id, by)
    return end
