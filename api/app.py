"""The FastAPI application: middleware, error mapping and the routers."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from api.keeper import ProjectionProcess
from api.problems import problem_response
from api.routers import admin, audit, health, participants, programs, replay
from audit.ledger import LedgerKeeper
from audit.wiring import build_keeper, build_ledger
from infra.settings import Settings
from infra.wiring import Services, build
from projections.runner import ProjectionRunner
from projections.wiring import build_runner

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = structlog.get_logger("tcledger.http")


class BodyTooLarge(Exception):
    pass


class InFlight:
    """Requests this process is serving right now (the event loop is single-threaded)."""

    def __init__(self) -> None:
        self.count = 0


class RequestMiddleware:
    """Request id, body size limit, in-flight count and one access log line per request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, in_flight: InFlight) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = {b"x-request-id": "", b"content-length": ""}
        for name, value in scope["headers"]:
            if name in wanted:
                wanted[name] = value.decode("latin-1")
        given = wanted[b"x-request-id"]
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append(
                    (b"x-request-id", request_id.encode()))
            await send(message)

        length = wanted[b"content-length"]
        self.in_flight.count += 1
        try:
            if length.isdigit() and int(length) > self.max_body_bytes:
                raise BodyTooLarge
            await self.app(scope, self._limited(receive, state), send_with_id)
        except BodyTooLarge:
            response = problem_response(413, "body-too-large", "Request body too large",
                                        f"the limit is {self.max_body_bytes} bytes",
                                        headers={"x-request-id": request_id})
            await response(scope, receive, send_with_id)
        finally:
            self.in_flight.count -= 1
            route = scope.get("route")
            log.info("request", request_id=request_id, method=scope["method"],
                     route=getattr(route, "path", "unmatched"), status=status["code"],
                     actor_id=state.get("actor_id"),
                     duration_ms=round((time.perf_counter() - started) * 1000, 2))

    def _limited(self, receive: Receive, state: dict[str, Any]) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    # FastAPI turns errors while reading a body into a 400; the mark lets
                    # the error mapping answer 413 instead.
                    state["body_too_large"] = True
                    raise BodyTooLarge
            return message
        return limited


def create_app(services: Services | None = None, settings: Settings | None = None,
               projections: Literal["thread", "process", "off"] | None = None) -> FastAPI:
    """The API. `projections` says who keeps the views current: a child process (the
    default, TCLEDGER_PROJECTIONS), a thread of this process (tests), or nobody else."""
    if services is None:
        services = build(settings or Settings())
    runner = build_runner(services)
    ledger = build_ledger(services)
    mode = projections or services.settings.projections
    # The child process (`tcledger projections run`) keeps the views and the ledger
    # current; in thread mode this process does both.
    keepers: list[ProjectionRunner | ProjectionProcess | LedgerKeeper] = {
        "thread": [runner, build_keeper(ledger, services.settings)],
        "process": [ProjectionProcess()], "off": []}[mode]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for keeper in keepers:
            keeper.start()
        try:
            yield
        finally:
            for keeper in keepers:
                keeper.stop()

    app = FastAPI(title="tcledger", version="0.1.0", lifespan=lifespan,
                  description="Encrypted, event-sourced case records for therapeutic "
                              "community programs in prisons.")
    app.state.services = services
    app.state.runner = runner
    app.state.audit_ledger = ledger
    app.state.in_flight = InFlight()
    problems.install(app)
    for router in (participants.router, admin.router, programs.router, health.router,
                   audit.router):
        app.include_router(router)
    app.include_router(replay.router)  # /audit/participants/{id}/replay
    app.add_middleware(RequestMiddleware, max_body_bytes=services.settings.max_body_bytes,
                       in_flight=app.state.in_flight)
    return app


def app_factory() -> Any:
    """Entry point for `uvicorn --factory api.app:app_factory`."""
    return create_app()
