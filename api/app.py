"""The FastAPI application: middleware, error mapping and the routers."""

from __future__ import annotations

import gc
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from api.keeper import ProjectionProcess
from api.problems import problem_response
from api.routers import (
    admin,
    audit,
    community,
    health,
    integrations,
    participants,
    programs,
    replay,
    webhooks,
)
from audit.access import Access, AccessLog
from audit.ledger import LedgerKeeper
from audit.wiring import build_access_log, build_keeper, build_ledger
from infra.settings import Settings
from infra.wiring import Services, build
from integrations.webhook_worker import WebhookWorker
from integrations.wiring import build_integrations, build_webhook_worker, build_webhooks
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

    def __init__(self, app: ASGIApp, max_body_bytes: int, in_flight: InFlight,
                 access_log: AccessLog | None = None,
                 limits_by_prefix: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.in_flight = in_flight
        self.access_log = access_log
        # Paths that take more than the default (an NDJSON bulk push to /ingest/).
        self.limits_by_prefix = limits_by_prefix or {}

    def _limit(self, path: str) -> int:
        for prefix, limit in self.limits_by_prefix.items():
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

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

        refused = {"on": False}

        async def send_out(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append(
                    (b"x-request-id", request_id.encode()))
            await send(message)

        async def send_with_id(message: Message) -> None:
            if refused["on"]:
                return  # the answer was replaced: its body goes nowhere
            if message["type"] == "http.response.start" and self.access_log is not None \
                    and not await self._logged(scope, state, message["status"]):
                refused["on"] = True
                answer = problem_response(
                    503, "access-log-unavailable", "The access log cannot be written",
                    "a record is not shown unless its reading is logged; try again shortly",
                    headers={"retry-after": "5"})
                await answer(scope, receive, send_out)
                return
            await send_out(message)

        length = wanted[b"content-length"]
        limit = state["body_limit"] = self._limit(scope["path"])
        self.in_flight.count += 1
        try:
            if length.isdigit() and int(length) > limit:
                raise BodyTooLarge
            await self.app(scope, self._limited(receive, state, limit), send_with_id)
        except BodyTooLarge:
            response = problem_response(413, "body-too-large", "Request body too large",
                                        f"the limit is {limit} bytes",
                                        headers={"x-request-id": request_id})
            await response(scope, receive, send_with_id)
        finally:
            self.in_flight.count -= 1
            route = scope.get("route")
            log.info("request", request_id=request_id, method=scope["method"],
                     route=getattr(route, "path", "unmatched"), status=status["code"],
                     actor_id=state.get("actor_id"),
                     duration_ms=round((time.perf_counter() - started) * 1000, 2))

    async def _logged(self, scope: Scope, state: dict[str, Any], status: int) -> bool:
        """Records this request's access to participants' records, unless its command
        already committed the entry with its events. False: a served record went unlogged."""
        caller = state.get("caller")
        if state.get("access_recorded") or caller is None or self.access_log is None:
            return True
        accessed = state.get("accessed")
        if accessed is None:
            given = (scope.get("path_params") or {}).get("participant_id")
            try:
                accessed = [str(uuid.UUID(str(given)))] if given is not None else []
            except ValueError:
                accessed = []
        if not accessed:
            return True
        method = scope["method"]
        action = ("read" if method in ("GET", "HEAD") else "write") if status < 400 else \
            "denied" if status in (401, 403, 404, 410) else "failed"
        client = scope.get("client")
        entry = Access(participant_ids=accessed, actor_id=caller.actor_id, role=caller.role,
                       facility=caller.facility, action=action, method=method,
                       route=str(getattr(scope.get("route"), "path", scope["path"])),
                       status=status, request_id=state["request_id"],
                       remote=client[0] if client else None)
        try:
            if self.in_flight.count <= 1:
                # Alone in the process: commit on the loop itself, as `offload` does (the
                # thread pool's hand-off costs more than the commit's own work).
                self.access_log.record(entry)
            else:
                await run_in_threadpool(self.access_log.record, entry)
        except Exception as exc:
            log.error("access_log_failed", error_type=type(exc).__name__)
            return status >= 400  # a refusal stays a refusal; a served record may not
        return True

    def _limited(self, receive: Receive, state: dict[str, Any], limit: int) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI turns errors while reading a body into a 400; the mark lets
                    # the error mapping answer 413 instead.
                    state["body_too_large"] = True
                    raise BodyTooLarge
            return message
        return limited


class Delivering:
    """The webhook worker as a keeper of this process (thread mode)."""

    def __init__(self, worker: WebhookWorker, interval: float) -> None:
        self.worker = worker
        self.interval = interval

    def start(self) -> None:
        self.worker.start(self.interval)

    def stop(self) -> None:
        self.worker.close()
def tune_collector(young: int) -> None:
    """Python's collector runs after every 700 new container objects by default; a server
    holding thousands of decoded records (the ledger's live records) and answering with
    pages of a thousand events spent about a third of a feed page in it. Collecting the
    young generation less often costs a little memory and keeps the time for requests."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)


def create_app(services: Services | None = None, settings: Settings | None = None,
               projections: Literal["thread", "process", "off"] | None = None) -> FastAPI:
    """The API. `projections` says who keeps the views current: a child process (the
    default, TCLEDGER_PROJECTIONS), a thread of this process (tests), or nobody else."""
    if services is None:
        services = build(settings or Settings())
    hooks = build_webhooks(services)
    runner = build_runner(services, extra=[hooks.outbox])
    ledger = build_ledger(services)
    access_log = build_access_log(services)
    mode = projections or services.settings.projections
    # The child process (`tcledger projections run`) keeps the views and the ledger
    # current and delivers webhooks; in thread mode this process does all three.
    keepers: list[ProjectionRunner | ProjectionProcess | LedgerKeeper | Delivering] = []
    if mode == "thread":
        keepers = [runner, build_keeper(ledger, services.settings, access_log),
                   Delivering(build_webhook_worker(services, hooks, access_log),
                              services.settings.webhook_poll_interval)]
    elif mode == "process":
        keepers = [ProjectionProcess()]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_collector(services.settings.gc_young_threshold)
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
    app.state.access_log = access_log
    app.state.integrations = build_integrations(services, runner, hooks)
    app.state.in_flight = InFlight()
    problems.install(app)
    for router in (participants.router, admin.router, programs.router, health.router,
                   audit.router, integrations.router, webhooks.router):
        app.include_router(router)
    app.include_router(replay.router)  # /audit/participants/{id}/replay
    app.include_router(community.groups)
    app.include_router(community.router)  # /participants/{id}/peer-feedback, mentors, ...
    app.add_middleware(RequestMiddleware, max_body_bytes=services.settings.max_body_bytes,
                       in_flight=app.state.in_flight, access_log=access_log,
                       limits_by_prefix={
                           "/ingest/": services.settings.ingest_max_body_bytes})
    return app


def app_factory() -> Any:
    """Entry point for `uvicorn --factory api.app:app_factory`."""
    return create_app()
