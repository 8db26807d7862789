"""The outbound feed: the global log as one integration client may see it, as CloudEvents.

A page walks the log after a cursor (a log position: positions never change, so a cursor
stays valid forever) and keeps, in log order, the events that the client may receive:
those of a category that the client subscribed to and that one of the participant's
consents in force at the moment of reading names the client's recipient for. Everything
else is passed over, and the cursor moves past it all the same. Each event kept is
minimised by `domain.disclosure` before it leaves; erased participants yield nothing.

The page does not record anything: the caller records the disclosure (audit.access)
before it hands the page out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from domain.application import TCLedger
from domain.disclosure import (
    AMENDMENTS,
    DISCLOSABLE,
    REDISCLOSURE_NOTICE,
    Disclosure,
    disclosure_of,
    permitted_categories,
)
from domain.errors import ParticipantErased, ParticipantNotFound
from domain.events import event_types
from domain.participant import Participant
from infra.log_reader import LogReader
from integrations.clients import IntegrationClient

SOURCE = "/tcledger/participants"
TYPE_PREFIX = "tcledger.participant."
SPECVERSION = "1.0"
# Event classes that can ever be disclosed: the reader asks the log for these alone.
TOPICS = tuple(get_topic(cls) for name, cls in sorted(event_types().items())
               if name in DISCLOSABLE or name in AMENDMENTS)


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


def cloudevent_type(event_type: str) -> str:
    return TYPE_PREFIX + re.sub(r"(?<!^)(?=[A-Z])", "-", event_type).lower()


class Feed:
    def __init__(self, ledger: TCLedger, log: LogReader, scan_batch: int = 1000,
                 max_scan: int = 20000) -> None:
        self._ledger = ledger
        self._log = log
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
            notes = self._log.batch(page.next_cursor, self._scan_batch, TOPICS)
            scanned += len(notes)
            if self._keep(client, notes, today, limit, page):
                return page  # full: the cursor stops at the last event kept
            if notes:
                page.next_cursor = notes[-1].id
            if len(notes) < self._scan_batch:
                # Nothing after the last note was committed before `head` was read.
                page.next_cursor = max(page.next_cursor, head)
                page.at_end = True
                return page
        return page

    def _keep(self, client: IntegrationClient, notes: Sequence[Notification], today: date,
              limit: int, page: FeedPage) -> bool:
        """Adds the visible events of `notes` to the page; True when the page is full."""
        by_participant: dict[UUID, list[Notification]] = {}
        for note in notes:
            by_participant.setdefault(UUID(str(note.originator_id)), []).append(note)
        visible: dict[int, tuple[dict[str, Any], Disclosed]] = {}
        for participant_id, theirs in by_participant.items():
            try:
                visible.update(self._ledger.read(participant_id, partial(
                    _view, notes=theirs, client=client, today=today)))
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


def _view(participant: Participant, notes: list[Notification], client: IntegrationClient,
          today: date) -> dict[int, tuple[dict[str, Any], Disclosed]]:
    """The client's view of some of this participant's events, by log position."""
    permitted = permitted_categories(participant.active_consents(today), client.recipient,
                                     client.categories)
    if not permitted:
        return {}
    history = participant.history
    subject = subject_of(participant)
    visible: dict[int, tuple[dict[str, Any], Disclosed]] = {}
    for note in notes:
        version = note.originator_version
        if not 1 <= version <= len(history):
            continue
        event = history[version - 1]
        found = disclosure_of(history, event)
        if found is None or found.category not in permitted:
            continue
        disclosed = Disclosed(subject["id"], version, note.id, found.event_type,
                              found.category, permitted[found.category])
        visible[note.id] = (cloud_event(subject, note.id, version, event, found), disclosed)
    return visible


def subject_of(participant: Participant) -> dict[str, Any]:
    """Who an event is about, as every disclosure names them: the id and external ids."""
    return {"id": str(participant.id), "external_ids": {
        k: dict(v) for k, v in participant.state.external_ids.items()}}


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
