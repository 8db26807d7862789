"""The webhook delivery worker: claims outbox rows, judges consent again, records the
disclosure, and posts each CloudEvent to its subscription's URL, signed per Standard
Webhooks.

Each cycle claims a batch (webhook_deliveries), then for every row: a participant who was
erased, a client whose token was revoked, or a consent no longer in force today (revoked
or expired since the event) withholds it — it never leaves. What may leave is written to
the access log as a `disclosure` (one entry per subscription and cycle, naming each event
and the consent that allows it) *before* it is sent; when the entry cannot be written
nothing is sent and the rows wait for the next cycle. Rows of one participant are sent one
after the other and stop at the first failure; participants are sent concurrently.

Headers: `webhook-id` is the CloudEvent id (participant/version), the same on every retry
and redelivery, so receivers deduplicate; `webhook-timestamp` is the attempt's time;
`webhook-signature` is `v1,` + HMAC-SHA256 over `id.timestamp.body`, made by the
`standardwebhooks` library. A 2xx is delivered; anything else, a timeout or a refused
connection is retried on the schedule (a `Retry-After` can only lengthen the wait), and
after the last attempt the row is a dead letter. A 410 Gone makes the row dead at once and
disables the subscription (the Standard Webhooks advice); redirects are not followed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import structlog
from standardwebhooks.webhooks import Webhook

from audit.access import Access, AccessLog
from domain.application import TCLedger
from domain.disclosure import Permissions, permissions
from domain.errors import ParticipantErased, ParticipantNotFound
from domain.participant import Participant
from infra.background import Repeating
from infra.cipher import FieldSealer
from integrations.clients import IntegrationClient, IntegrationClients
from integrations.webhook_deliveries import Deliveries, Delivery, Outcome
from integrations.webhook_outbox import body_purpose
from integrations.webhooks import Subscription, WebhookSubscriptions

log = structlog.get_logger("tcledger.webhooks")

USER_AGENT = "tcledger-webhooks/0.1"
MAX_ERROR = 300


@dataclass(frozen=True)
class Endpoint:
    subscription: Subscription
    client: IntegrationClient | None
    signer: Webhook


class WebhookWorker:
    def __init__(self, *, ledger: TCLedger, sealer: FieldSealer,
                 subscriptions: WebhookSubscriptions, clients: IntegrationClients,
                 deliveries: Deliveries, access_log: AccessLog, timeout: float,
                 concurrency: int, batch_size: int = 200,
                 transport: httpx.BaseTransport | None = None,
                 today: Callable[[], date] | None = None) -> None:
        self._ledger = ledger
        self._sealer = sealer
        self._subscriptions = subscriptions
        self._clients = clients
        self.deliveries = deliveries
        self._access_log = access_log
        self._timeout = timeout
        self._batch_size = batch_size
        self._today = today or (lambda: datetime.now(UTC).date())
        self.owner = uuid.uuid4().hex
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False, transport=transport,
            limits=httpx.Limits(max_connections=concurrency,
                                max_keepalive_connections=concurrency),
            headers={"user-agent": USER_AGENT})
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="tcledger-webhook")
        self._signers: dict[str, Webhook] = {}
        self._background = Repeating("tcledger-webhooks", self.run_until_idle, log,
                                     "webhook_worker_failed")

    # --- running -----------------------------------------------------------------------

    def start(self, interval: float) -> None:
        self._background.start(interval)

    def stop(self) -> None:
        self._background.stop()

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)
        self._http.close()

    def run_until_idle(self) -> int:
        """Delivers batch after batch while rows are due; returns how many were attempted."""
        total = 0
        while True:
            done = self.run_once()
            total += done
            if done == 0:
                return total

    def run_once(self) -> int:
        now_ms = _now_ms()
        if not self.deliveries.due(now_ms):
            return 0
        # Each row may take up to ~3 timeouts (connect, send, read): the lease covers a
        # participant's whole group, and a send never starts after the lease is over.
        per_send = 3 * self._timeout
        lease_ms = int(per_send * 1000 * (1 + 10))
        groups = self.deliveries.claim(self.owner, now_ms, self._batch_size, lease_ms)
        if not groups:
            return 0
        deadline = time.monotonic() + lease_ms / 1000 - per_send
        endpoints = self._endpoints({g[0].subscription_id for g in groups})
        sendable = self._judge(groups, endpoints)
        sendable = self._disclose(sendable, endpoints)
        outcomes: list[Outcome] = []
        unattempted: list[Delivery] = []
        for sent, left in self._pool.map(
                lambda group: self._send_group(group, endpoints, deadline), sendable):
            outcomes.extend(sent)
            unattempted.extend(left)
        died = self.deliveries.record(self.owner, outcomes, _now_ms())
        self.deliveries.release(self.owner, unattempted)
        for outcome in died:
            self._dead(outcome)
        return len(outcomes)

    # --- one cycle's steps -------------------------------------------------------------

    def _endpoints(self, subscription_ids: set[str]) -> dict[str, Endpoint]:
        found: dict[str, Endpoint] = {}
        for subscription_id in subscription_ids:
            subscription = self._subscriptions.of(subscription_id)
            if subscription is None:
                continue
            if subscription_id not in self._signers:
                self._signers[subscription_id] = Webhook(
                    self._subscriptions.secret(subscription_id))
            found[subscription_id] = Endpoint(subscription,
                                              self._clients.of(subscription.token_id),
                                              self._signers[subscription_id])
        return found

    def _judge(self, groups: list[list[Delivery]], endpoints: dict[str, Endpoint]
               ) -> list[list[Delivery]]:
        """Withholds what may no longer leave; the rest of each group, still in order."""
        today = self._today()
        withheld: list[tuple[Delivery, str]] = []
        sendable: list[list[Delivery]] = []
        for group in groups:
            endpoint = endpoints.get(group[0].subscription_id)
            client = endpoint.client if endpoint is not None else None
            if client is None:
                withheld.extend((d, "the integration client was revoked") for d in group)
                continue
            try:
                permitted = self._ledger.read(group[0].participant_id, partial(
                    _permitted, client=client, today=today))
            except (ParticipantErased, ParticipantNotFound):
                withheld.extend((d, "the participant's record was erased") for d in group)
                continue
            judged = [(d, permitted.consent_for(d.category, d.version) is not None)
                      for d in group]
            keep = [d for d, covered in judged if covered]
            withheld.extend((d, "no consent in force for this recipient and category")
                            for d, covered in judged if not covered)
            if keep:
                sendable.append(keep)
        self.deliveries.withhold(self.owner, withheld)
        return sendable

    def _disclose(self, groups: list[list[Delivery]], endpoints: dict[str, Endpoint]
                  ) -> list[list[Delivery]]:
        """The accounting of disclosures for rows about to leave for the first time: one
        access-log entry per subscription, committed before anything is sent."""
        first: dict[str, list[Delivery]] = {}
        for group in groups:
            for d in group:
                if not d.disclosed:
                    first.setdefault(d.subscription_id, []).append(d)
        refused: set[str] = set()
        for subscription_id, deliveries in first.items():
            endpoint = endpoints[subscription_id]
            try:
                self._access_log.record(self._entry(endpoint, deliveries))
                self.deliveries.mark_disclosed(self.owner, deliveries)
            except Exception as exc:  # nothing leaves unless its disclosure is logged
                log.error("webhook_disclosure_log_failed", error_type=type(exc).__name__)
                refused.add(subscription_id)
        if not refused:
            return groups
        held = [d for g in groups if g[0].subscription_id in refused for d in g]
        self.deliveries.release(self.owner, held)
        return [g for g in groups if g[0].subscription_id not in refused]

    def _entry(self, endpoint: Endpoint, deliveries: Sequence[Delivery]) -> Access:
        client = endpoint.client
        assert client is not None
        consents: dict[UUID, Permissions] = {}
        events = []
        for d in deliveries:
            if d.participant_id not in consents:
                consents[d.participant_id] = self._ledger.read(
                    d.participant_id, partial(_permitted, client=client, today=self._today()))
            events.append({"participant": str(d.participant_id), "version": d.version,
                           "position": d.position, "type": d.event_type,
                           "category": d.category,
                           "consent": consents[d.participant_id].consent_for(d.category,
                                                                             d.version)})
        subscription = endpoint.subscription
        return Access(
            participant_ids=list(dict.fromkeys(str(d.participant_id) for d in deliveries)),
            actor_id=client.token_id, role="integration", facility=None, action="disclosure",
            method="POST", route=f"/webhooks/subscriptions/{subscription.subscription_id}",
            status=0, request_id=uuid.uuid4().hex,
            remote=urlsplit(subscription.url).hostname, recipient=client.recipient,
            events=events)

    def _send_group(self, group: list[Delivery], endpoints: dict[str, Endpoint],
                    deadline: float) -> tuple[list[Outcome], list[Delivery]]:
        """Sends a participant's rows in order; stops at the first that fails."""
        endpoint = endpoints[group[0].subscription_id]
        outcomes: list[Outcome] = []
        for index, delivery in enumerate(group):
            if time.monotonic() > deadline:
                return outcomes, group[index:]
            outcome = self._send(endpoint, delivery)
            outcomes.append(outcome)
            if not outcome.ok:
                return outcomes, group[index + 1:]
        return outcomes, []

    def _send(self, endpoint: Endpoint, delivery: Delivery) -> Outcome:
        try:
            body = self._sealer.open(delivery.participant_id, body_purpose(
                delivery.subscription_id, delivery.position), delivery.body).decode()
        except ParticipantErased:
            return Outcome(delivery, False, None, "the participant's record was erased")
        now = datetime.now(UTC)
        headers = {"content-type": "application/json", "webhook-id": delivery.event_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": endpoint.signer.sign(delivery.event_id, now, body)}
        try:
            response = self._http.post(endpoint.subscription.url, content=body.encode(),
                                       headers=headers)
        except httpx.TimeoutException:
            return Outcome(delivery, False, None, f"timed out after {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return Outcome(delivery, False, None, _error(exc))
        if 200 <= response.status_code < 300:
            return Outcome(delivery, True, response.status_code)
        return Outcome(delivery, False, response.status_code,
                       f"HTTP {response.status_code}",
                       _retry_after(response.headers.get("retry-after")))

    def _dead(self, outcome: Outcome) -> None:
        delivery = outcome.delivery
        if outcome.status == 410:
            self._subscriptions.disable(delivery.subscription_id,
                                        "the receiver answered 410 Gone")
            log.warning("webhook_subscription_disabled",
                        subscription_id=delivery.subscription_id, status=410)
        log.warning("webhook_dead_letter", subscription_id=delivery.subscription_id,
                    position=delivery.position, status=outcome.status)


def _permitted(participant: Participant, client: IntegrationClient, today: date
               ) -> Permissions:
    state = participant.state
    return permissions(state.consents.values(), client.recipient, client.categories, today,
                       state.discharge, participant.history)


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # an HTTP date is not worth parsing: the schedule's wait stands
    return float(value.strip())


def _error(exc: Exception) -> str:
    """The kind of failure, never a message that could carry data."""
    kinds = {httpx.ConnectError: "connection refused or unreachable",
             httpx.RemoteProtocolError: "the receiver broke the HTTP exchange",
             httpx.UnsupportedProtocol: "unsupported URL scheme"}
    for kind, text in kinds.items():
        if isinstance(exc, kind):
            return text
    return type(exc).__name__[:MAX_ERROR]


def _now_ms() -> int:
    return int(time.time() * 1000)
