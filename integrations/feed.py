"""The outbound feed: the global log as one integration client may see it, as CloudEvents.

A page walks the log after a cursor (a log position: positions never change, so a cursor
stays valid forever) and keeps, in log order, the events that the client may receive:
those of a category that the client subscribed to and that one of the participant's
consents in force at the moment of reading names the client's recipient for (and, for a
consent that ended with an event, only entries up to that event). Everything else is
passed over, and the cursor moves past it all the same. Each event kept is minimised by
`domain.disclosure` before it leaves and names the participant by tcledger's id and the
identifiers of the systems the client was given; erased participants yield nothing.

A scan batch reads its participants' records together: one query says which are erased,
one gives every stream's last version, and a record already held in memory at that version
is used without another query (a batch of a thousand events touches hundreds of records).

The page does not record anything: the caller records the disclosure (audit.access)
before it hands the page out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, partial
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.application import TCLedger
from domain.disclosure import (
    AMENDMENTS,
    DISCLOSABLE,
    REDISCLOSURE_NOTICE,
    Disclosure,
    category_of,
    disclosure_of,
    permissions,
)
from domain.errors import ParticipantErased, ParticipantNotFound
from domain.events import event_types
from domain.participant import Participant
from infra.log_reader import LogReader
from integrations.clients import IntegrationClient

SOURCE = "/tcledger/participants"
TYPE_PREFIX = "tcledger.participant."
SPECVERSION = "1.0"
MIN_SCAN = 100  # log entries a scan batch reads at least
# Event classes that can ever be disclosed: the reader asks the log for these alone.
TOPICS = tuple(get_topic(cls) for name, cls in sorted(event_types().items())
               if name in DISCLOSABLE or name in AMENDMENTS)


@cache
def topics_for(categories: frozenset[str]) -> tuple[str, ...]:
    """The event classes a subscription can ever receive: those of its categories, and the
    corrections and voids (whose category is the entry's they supersede)."""
    return tuple(get_topic(cls) for name, cls in sorted(event_types().items())
                 if name in AMENDMENTS or (name in DISCLOSABLE
                                           and DISCLOSABLE[name].category in categories))


@dataclass(frozen=True)
class Disclosed:
    """What the access log must say was handed out: one event, and the consent behind it."""

    participant_id: str
    version: int
    position: int
    event_type: str
    category: str
    consent_id: str

    def as_json(self) -> dict[str, Any]:
        return {"participant": self.participant_id, "version": self.version,
                "position": self.position, "type": self.event_type,
                "category": self.category, "consent": self.consent_id}


@dataclass
class FeedPage:
    events: list[dict[str, Any]] = field(default_factory=list)
    disclosed: list[Disclosed] = field(default_factory=list)
    next_cursor: int = 0
    at_end: bool = False  # every committed event up to next_cursor was looked at


class Entry(Protocol):
    """A log entry as the feed reads it: a log Notification has these, and so has the
    lighter infra.recorders.LogEntry the feed's scan reads."""

    @property
    def id(self) -> int: ...

    @property
    def originator_id(self) -> Any: ...

    @property
    def originator_version(self) -> int: ...


class Records(Protocol):
    """What the feed asks of the store: the log's entries without their payloads (the
    records held in memory have the events already), and about a scan batch's
    participants, once for them all."""

    def entries(self, after: int, limit: int, topics: Sequence[str]) -> Sequence[Entry]: ...

    def destroyed(self, stream_ids: list[UUID]) -> set[UUID]: ...

    def load(self, stream_ids: list[UUID]) -> None: ...  # their data keys, unwrapped

    def last_versions(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]: ...


@cache
def cloudevent_type(event_type: str) -> str:
    return TYPE_PREFIX + re.sub(r"(?<!^)(?=[A-Z])", "-", event_type).lower()


class Feed:
    def __init__(self, ledger: TCLedger, log: LogReader, records: Records,
                 scan_batch: int = 2000, max_scan: int = 20000) -> None:
        self._ledger = ledger
        self._log = log
        self._records = records
        self._scan_batch = scan_batch
        self._max_scan = max_scan  # log entries one page may pass over

    def head(self) -> int:
        return self._log.head()

    def page(self, client: IntegrationClient, after: int, limit: int,
             today: date) -> FeedPage:
        page = FeedPage(next_cursor=after)
        scanned = 0
        while len(page.events) < limit and scanned < self._max_scan:
            head = self._log.head()
            # About twice what the page still needs: most clients see about half the
            # log, and what a full page leaves unread is work thrown away.
            size = max(MIN_SCAN, min(self._scan_batch, 2 * (limit - len(page.events))))
            notes = self._records.entries(page.next_cursor, size,
                                          topics_for(client.categories))
            scanned += len(notes)
            if self._keep(client, notes, today, limit, page):
                return page  # full: the cursor stops at the last event kept
            if notes:
                page.next_cursor = notes[-1].id
            if len(notes) < size:
                # Nothing after the last note was committed before `head` was read.
                page.next_cursor = max(page.next_cursor, head)
                page.at_end = True
                return page
        return page

    def _keep(self, client: IntegrationClient, notes: Sequence[Entry], today: date,
              limit: int, page: FeedPage) -> bool:
        """Adds the visible events of `notes` to the page; True when the page is full."""
        by_participant: dict[UUID, list[Entry]] = {}
        for note in notes:
            stream = note.originator_id
            by_participant.setdefault(
                stream if isinstance(stream, UUID) else UUID(str(stream)), []).append(note)
        ids = list(by_participant)
        erased = self._records.destroyed(ids) if ids else set()
        readable = [i for i in ids if i not in erased]
        versions = self._records.last_versions(readable) if readable else {}
        self._records.load([i for i in readable if i in versions])
        visible: dict[int, tuple[dict[str, Any], Disclosed]] = {}
        for participant_id in readable:
            try:
                visible.update(self._ledger.read_known(
                    participant_id, versions.get(participant_id, 0), partial(
                        _view, notes=by_participant[participant_id], client=client,
                        today=today)))
            except (ParticipantErased, ParticipantNotFound):
                continue
        for note in notes:
            if note.id in visible:
                event, disclosed = visible[note.id]
                page.events.append(event)
                page.disclosed.append(disclosed)
                if len(page.events) >= limit:
                    page.next_cursor = note.id
                    return True
        return False


def _view(participant: Participant, notes: Sequence[Entry], client: IntegrationClient,
          today: date) -> dict[int, tuple[dict[str, Any], Disclosed]]:
    """The client's view of some of this participant's events, by log position."""
    state, history = participant.state, participant.history
    allowed = permissions(state.consents.values(), client.recipient, client.categories,
                          today, state.discharge, history)
    if not allowed:
        return {}
    subject = subject_of(participant, client)
    visible: dict[int, tuple[dict[str, Any], Disclosed]] = {}
    for note in notes:
        version = note.originator_version
        if not 1 <= version <= len(history):
            continue
        event = history[version - 1]
        category = category_of(history, event)
        consent = allowed.consent_for(category, version) if category is not None else None
        if consent is None:
            continue  # passed over before its disclosure is worked out
        found = disclosure_of(history, event)
        if found is None:
            continue
        disclosed = Disclosed(subject["id"], version, note.id, found.event_type,
                              found.category, consent)
        visible[note.id] = (cloud_event(subject, note.id, version, event, found), disclosed)
    return visible


def subject_of(participant: Participant, client: IntegrationClient) -> dict[str, Any]:
    """Who an event is about, as every disclosure to this client names them: the id and
    the external ids in the systems the client may receive."""
    return {"id": str(participant.id),
            "external_ids": _external_ids(participant.state.external_ids,
                                          client.external_id_systems)}


def cloud_event(subject: dict[str, Any], position: int, version: int, event: Any,
                found: Disclosure) -> dict[str, Any]:
    """One disclosed event as a CloudEvent: the feed and the webhooks send exactly this."""
    pid = subject["id"]
    return {
        "specversion": SPECVERSION, "id": f"{pid}/{version}", "source": SOURCE,
        "type": cloudevent_type(found.event_type), "subject": pid,
        "time": event.timestamp.isoformat(), "datacontenttype": "application/json",
        "position": position, "participantversion": version, "category": found.category,
        "data": {"participant": subject, **found.data, "notice": REDISCLOSURE_NOTICE},
    }


def _external_ids(held: dict[str, dict[str, str]], systems: tuple[str, ...]
                  ) -> dict[str, dict[str, str]]:
    """The participant's identifiers in the systems the client may receive, by name."""
    wanted = set(systems)
    return {name: dict(ident) for name, ident in held.items() if name.upper() in wanted}
