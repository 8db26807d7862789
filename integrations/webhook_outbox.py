"""The webhook outbox, filled by a projection: one row per event and subscription that may
receive it, written in the same transaction as the projection's position in the log.

An event is queued for a subscription when the subscription was made before it, its
`event_types` (if any) include it, and the participant's consents *as they stood when the
event was recorded* (given before it in the stream, not revoked before it, not expired on
the day it was recorded) name the client's recipient for the event's category. Judging at
the event, not at the moment the projection happens to run, makes the outbox the same
whether the projection is current or catching up. Consent is judged again when the row is
delivered (webhook_worker): a revocation or expiry in between withholds it.

The body is the CloudEvent exactly as the feed builds it (`feed.cloud_event`), sealed
under the participant's data key: erasing the participant makes undelivered bodies
unreadable with the rest of the record.

The outbox is not a view that can be thrown away: a rebuild must not send history again.
`rebuildable = False` keeps it out of `projections rebuild` (all views), `clear` removes
nothing, and rows are keyed by (subscription, log position), so running it over the log
again (naming it: `projections rebuild webhook_outbox`) only adds rows that are missing and
leaves delivered, dead and pending rows as they are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from domain import events as ev
from domain.disclosure import disclosure_of, permissions
from domain.participant import Participant, fold
from infra.cipher import FieldSealer
from infra.sql import SqlStore
from integrations.clients import IntegrationClient, IntegrationClients
from integrations.feed import TOPICS, cloud_event, cloudevent_type, subject_of
from integrations.webhooks import OUTBOX, Subscription, WebhookSubscriptions, tables
from projections.folding import RecordFolder

COLUMNS = ("subscription_id", "position", "participant_id", "version", "event_id",
           "event_type", "category", "body", "state", "attempts", "next_attempt_at",
           "created_at")
_TOPICS = frozenset(TOPICS)
_CONSENT_EVENTS = (ev.ConsentGiven, ev.ConsentRevoked)
Target = tuple[Subscription, IntegrationClient]


def body_purpose(subscription_id: str, position: int) -> str:
    """What a sealed body is bound to: it does not open in another row."""
    return f"webhook-outbox/{subscription_id}/{position}"


class OutboxProjection:
    name = "webhook_outbox"
    rebuildable = False

    def __init__(self, records: RecordFolder, sealer: FieldSealer,
                 subscriptions: WebhookSubscriptions, clients: IntegrationClients,
                 first_delay: float = 0.0) -> None:
        self._records = records
        self._sealer = sealer
        self._subscriptions = subscriptions
        self._clients = clients
        self._first_delay_ms = int(first_delay * 1000)

    def create_tables(self, cur: Any, store: SqlStore) -> None:
        for statement in tables(store.postgres):
            cur.execute(statement)

    def clear(self, cur: Any, store: SqlStore) -> None:
        """Nothing: delivered rows are history, and queued rows still owe a delivery."""

    def apply(self, cur: Any, store: SqlStore, batch: Sequence[Any]) -> None:
        targets = self._targets()
        if not targets:
            return
        oldest = min(s.from_position for s, _ in targets)
        mine: dict[UUID, list[Any]] = {}
        for logged in batch:
            if logged.topic in _TOPICS and logged.position > oldest \
                    and isinstance(logged.event, ev.ParticipantEvent):
                mine.setdefault(logged.stream_id, []).append(logged)
        if not mine:
            return
        # The records as this batch leaves them, folded once for the views and the outbox
        # (reading the store here, inside the batch's transaction, could wait on writers).
        folded = self._records.fold_batch(batch)
        rows: list[tuple[Any, ...]] = []
        for stream_id, logged_events in mine.items():
            participant = folded.get(stream_id)
            if participant is not None:  # None: erased in this batch
                rows.extend(self._rows(participant, logged_events, targets))
        store.upsert_many(cur, OUTBOX, COLUMNS, rows,
                          "ON CONFLICT (subscription_id, position) DO NOTHING")

    def _targets(self) -> list[Target]:
        clients = {c.token_id: c for c in self._clients.list()}
        return [(s, clients[s.token_id]) for s in self._subscriptions.live()
                if s.token_id in clients]

    def _rows(self, participant: Participant, logged_events: Sequence[Any],
              targets: Sequence[Target]) -> list[tuple[Any, ...]]:
        history, discharge = participant.history, participant.state.discharge
        subjects: dict[str, dict[str, Any]] = {}  # by client: the ids it may receive
        consents = ConsentsAt(participant)
        now, due = _now(), int(time.time() * 1000) + self._first_delay_ms
        rows: list[tuple[Any, ...]] = []
        for logged in logged_events:
            event = history[logged.version - 1]
            found = disclosure_of(history, event)
            if found is None:
                continue
            day = event.timestamp.date()
            in_force = consents.at(logged.version, day)
            kind = cloudevent_type(found.event_type)
            bodies: dict[str, bytes] = {}  # by client: the same event, the same bytes
            for subscription, client in targets:
                if logged.position <= subscription.from_position:
                    continue
                if subscription.event_types and kind not in subscription.event_types:
                    continue
                allowed = permissions(in_force, client.recipient, client.categories, day,
                                      discharge, history)
                if allowed.consent_for(found.category, logged.version) is None:
                    continue
                body = bodies.get(client.token_id)
                if body is None:
                    if client.token_id not in subjects:
                        subjects[client.token_id] = subject_of(participant, client)
                    body = bodies[client.token_id] = json.dumps(
                        cloud_event(subjects[client.token_id], logged.position,
                                    logged.version, event, found),
                        separators=(",", ":")).encode()
                sealed = self._sealer.seal(participant.id, body_purpose(
                    subscription.subscription_id, logged.position), body)
                rows.append((subscription.subscription_id, logged.position,
                             str(participant.id), logged.version,
                             f"{participant.id}/{logged.version}", kind, found.category,
                             sealed, "pending", 0, due, now))
        return rows


class ConsentsAt:
    """A participant's consents in force at a version of their stream, on a day."""

    def __init__(self, participant: Participant) -> None:
        self._participant = participant
        history = participant.history
        # The last version that changed the consents: at or after it, the current state says.
        self._last_change = max((v for v, e in enumerate(history, start=1)
                                 if _touches_consents(history, e)), default=0)
        self._folded: dict[int, dict[str, dict[str, Any]]] = {}

    def at(self, version: int, on: date) -> list[dict[str, Any]]:
        if version >= self._last_change:
            consents = self._participant.state.consents
        else:
            if version not in self._folded:
                self._folded[version] = fold(self._participant.history[:version]).consents
            consents = self._folded[version]
        return [c for c in consents.values() if c["revoked_on"] is None
                and (c["expires_on"] is None or date.fromisoformat(c["expires_on"]) >= on)]


def _touches_consents(history: list[ev.ParticipantEvent], event: ev.ParticipantEvent) -> bool:
    if isinstance(event, _CONSENT_EVENTS):
        return True
    if isinstance(event, ev.EntryCorrected | ev.EntryVoided):
        target = event.supersedes_version
        return 1 <= target <= len(history) and isinstance(history[target - 1], _CONSENT_EVENTS)
    return False


def _now() -> str:
    return datetime.now(UTC).isoformat()
