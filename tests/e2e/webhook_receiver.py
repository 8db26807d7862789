"""A real HTTP receiver for webhook tests: a threaded server on 127.0.0.1 that records every
request, answers as the test tells it (status, delay), can go down and come back on the
same port, and checks deliveries the way an integrator would: the signature with the
Standard Webhooks library, the body with the CloudEvents SDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


Behaviour = Callable[[dict[str, str], bytes], tuple[int, float]]  # → (status, delay)


def always(status: int) -> Behaviour:
    return lambda headers, body: (status, 0.0)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.behaviour: Behaviour = always(204)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tcledger"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-body (a worker killed in a test): like any real
                    # server, take no delivery from a request that never arrived whole.
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, delay = receiver.behaviour(headers, body)
                if delay:
                    time.sleep(delay)
                with receiver._lock:
                    receiver.requests.append(Received(headers, body, status))
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def wait(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not met within {timeout} s; received "
                                     f"{[r.headers.get('webhook-id') for r in self.requests]}")
            time.sleep(0.02)

    def events(self, secret: str, only_delivered: bool = True) -> list[CloudEvent]:
        """Every delivery, its signature verified and its body read by the CloudEvents SDK,
        deduplicated by webhook-id (the first of each)."""
        verifier = Webhook(secret)
        seen: set[str] = set()
        events = []
        for r in self.delivered() if only_delivered else list(self.requests):
            verifier.verify(r.body, r.headers)  # raises on a bad signature
            event = JSONFormat().read(CloudEvent, r.body)
            assert isinstance(event, CloudEvent)
            assert r.headers["webhook-id"] == event.get_id()
            assert r.headers["content-type"] == "application/json"
            if event.get_id() not in seen:
                seen.add(event.get_id())
                events.append(event)
        return events


def ids_per_participant(events: list[CloudEvent]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for e in events:
        found.setdefault(e.get_subject() or "", []).append(
            int(e.get_extension("participantversion")))
    return found


def parsed(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    assert isinstance(value, dict)
    return value
