"""Integration clients for the feed and ingestion tests: created through the admin API,
reading the feed and parsing every event with the CloudEvents SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.e2e.scenario import ok

BATCH = "application/cloudevents-batch+json"
PAROLE = "Synthetic Parole Office"
LAB = "Synthetic Reference Lab"


class IntegrationClient:
    def __init__(self, api: Any, recipient: str, categories: list[str],
                 ingests: tuple[str, ...] = ()) -> None:
        self.api = api
        created = ok(api.post("/admin/integrations", {
            "recipient": recipient, "categories": categories, "ingests": list(ingests)},
            role="admin"))
        self.token = created["token"]
        self.token_id = created["token_id"]
        self.recipient = recipient
        self.cursor = "0"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get_feed(self, after: str | None = None, **params: Any) -> Any:
        query = {**({"after": after} if after is not None else {}), **params}
        return self.api.client.get("/feed", params=query, headers=self.headers)

    def page(self, after: str | None = None, **params: Any) -> tuple[list[CloudEvent], str]:
        response = self.get_feed(after, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(BATCH)
        return parse_batch(response.content), response.headers["next-cursor"]

    def drain(self, limit: int = 100) -> list[CloudEvent]:
        """Everything new since this client's last read, page after page."""
        found: list[CloudEvent] = []
        while True:
            events, cursor = self.page(self.cursor, limit=limit)
            found.extend(events)
            done = cursor == self.cursor or not events
            self.cursor = cursor
            if done:
                return found

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.api.client.post(path, headers=self.headers, json=body, **kwargs)

    def post_raw(self, path: str, content: bytes, content_type: str) -> Any:
        return self.api.client.post(path, content=content,
                                    headers={**self.headers, "content-type": content_type})


def parse_batch(content: bytes) -> list[CloudEvent]:
    """A CloudEvents JSON batch, each member read by the SDK (which validates it)."""
    items = json.loads(content)
    assert isinstance(items, list)
    events = []
    for item in items:
        event = JSONFormat().read(CloudEvent, json.dumps(item).encode())
        assert isinstance(event, CloudEvent)
        assert event.get_specversion() == "1.0"
        events.append(event)
    return events


def kinds(events: list[CloudEvent]) -> list[str]:
    return [e.get_type().removeprefix("tcledger.participant.") for e in events]


def in_a_year() -> str:
    return (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
