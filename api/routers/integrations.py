"""Integrations: clients (admin), the consent-scoped feed, and lab results pushed in.

The feed answers a CloudEvents JSON batch; its disclosure is written to the access log
before the answer leaves (503 if it cannot be). Ingestion (lab results, movements) takes
one JSON message or an NDJSON bulk and answers each line on its own: a refused line
writes nothing, the others are recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
import structlog
from eventsourcing.persistence import RecordConflictError
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from api.deps import Admin, access_entry, require
from api.integration_schemas import Inbound, IntegrationIn, LabResultIn, MovementIn
from api.problems import PROBLEM, Problem, field_path
from audit.access import Access
from domain.errors import InvalidValue, NotFound, ParticipantErased, RuleViolation
from domain.provenance import Provenance
from infra.tokens import Caller
from integrations.clients import ClientError, IntegrationClient
from integrations.feed import FeedPage
from integrations.inbound import AlsoWith, Ambiguous, DuplicateId, Recorded, RefusedAt
from integrations.movements import ViewsBehind
from integrations.wiring import Integrations

router = APIRouter(tags=["integrations"])
log = structlog.get_logger("tcledger.integrations")

BATCH = "application/cloudevents-batch+json"
NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonl")
MAX_WAIT_SECONDS = 60.0
MAX_CURSOR = 2 ** 62
MAX_LINES = 1000


def _integrations(request: Request) -> Integrations:
    found: Integrations = request.app.state.integrations
    return found


IntegrationsDep = Annotated[Integrations, Depends(_integrations)]


async def integration_client(
        request: Request, caller: Annotated[Caller, Depends(require("integration"))]
) -> IntegrationClient:
    client = await run_in_threadpool(_integrations(request).clients.of, caller.token_id)
    if client is None:
        raise Problem(403, "not-an-integration-client", "Not an integration client",
                      "this token has no recipient; create integration tokens with "
                      "POST /admin/integrations or `tcledger integrations create`")
    return client


Client = Annotated[IntegrationClient, Depends(integration_client)]


# --- clients -------------------------------------------------------------------------------

@router.post("/admin/integrations", status_code=201, tags=["admin"])
def create_integration(body: IntegrationIn, integrations: IntegrationsDep,
                       _: Admin) -> dict[str, Any]:
    """An integration client: its token (shown once), recipient and subscriptions."""
    try:
        client, secret = integrations.clients.create(
            recipient=body.recipient, categories=body.categories, ingests=body.ingests,
            name=body.name, external_id_systems=body.external_id_systems)
    except ClientError as exc:
        raise Problem(422, "validation", "Invalid request", str(exc),
                      errors=[{"field": exc.field, "message": exc.detail}]) from None
    return {**client.as_json(), "role": "integration", "token": secret}


@router.get("/admin/integrations", tags=["admin"])
def list_integrations(integrations: IntegrationsDep, _: Admin) -> dict[str, Any]:
    return {"items": [c.as_json() for c in integrations.clients.list()]}


# --- the feed ------------------------------------------------------------------------------

@router.get("/feed", response_class=Response, responses={200: {
    "description": "a CloudEvents JSON batch; the cursor of the next page is in the "
                   "`Next-Cursor` header (with `Accept: application/json`, an object "
                   "`{events, next_cursor}` instead)",
    "content": {BATCH: {"schema": {"type": "array", "items": {"type": "object"}}}}}})
async def feed(request: Request, client: Client, integrations: IntegrationsDep,
               after: Annotated[str | None, Query(
                   description="`next_cursor` of the previous page; absent: the start")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description=(
                   "seconds to wait for an event when there is none yet"))] = 0) -> Response:
    """What this client may see of the log after `after`, minimised, in log order."""
    page = await _long_poll(request, integrations, client, _cursor(after), limit, wait)
    if page.disclosed:
        await _record_disclosure(request, client, page)
    request.state.access_recorded = True
    cursor = str(page.next_cursor)
    headers = {"Next-Cursor": cursor,
               "Link": f'</feed?after={cursor}&limit={limit}>; rel="next"'}
    if _wants_object(request):
        return JSONResponse({"events": page.events, "next_cursor": cursor}, headers=headers)
    # orjson: the standard encoder took a tenth of a page's time on a thousand events.
    return Response(orjson.dumps(page.events), media_type=BATCH, headers=headers)


def _cursor(after: str | None) -> int:
    if after is None:
        return 0
    if not after.isdigit() or int(after) > MAX_CURSOR:
        raise Problem(422, "validation", "Invalid request", "after: not a cursor of this feed",
                      errors=[{"field": "after", "message": "not a cursor of this feed"}])
    return int(after)


def _wants_object(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and BATCH not in accept


async def _long_poll(request: Request, integrations: Integrations, client: IntegrationClient,
                     after: int, limit: int, wait: float) -> FeedPage:
    """A page; when it is empty at the end of the log, looks again as the log grows
    until an event for this client arrives or `wait` runs out."""
    interval = request.app.state.services.settings.feed_poll_interval
    deadline = time.monotonic() + wait
    feed = integrations.feed
    while True:
        today = datetime.now(UTC).date()
        page = await run_in_threadpool(feed.page, client, after, limit, today)
        if page.events or time.monotonic() >= deadline:
            return page
        after = page.next_cursor
        while page.at_end and time.monotonic() < deadline:
            await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0)))
            if await run_in_threadpool(feed.head) > after:
                break


async def _record_disclosure(request: Request, client: IntegrationClient,
                             page: FeedPage) -> None:
    """The accounting of disclosures: written before the page leaves, or no page."""
    client_address = request.scope.get("client")
    entry = Access(
        participant_ids=list(dict.fromkeys(d.participant_id for d in page.disclosed)),
        actor_id=client.token_id, role="integration", facility=None, action="disclosure",
        method="GET", route="/feed", status=200, request_id=request.state.request_id,
        remote=client_address[0] if client_address else None, recipient=client.recipient,
        events=[d.as_json() for d in page.disclosed])
    try:
        await run_in_threadpool(request.app.state.access_log.record, entry)
    except Exception as exc:
        log.error("disclosure_log_failed", error_type=type(exc).__name__)
        raise Problem(503, "access-log-unavailable", "The access log cannot be written",
                      "nothing is disclosed unless the disclosure is logged; try again "
                      "shortly", headers={"Retry-After": "5"}) from None


# --- ingestion -----------------------------------------------------------------------------

Receive = Callable[[Any, Provenance, str, AlsoWith], Recorded]


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    # Nested models (SubstanceIn) are referred to where FastAPI puts them: in components.
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"content": {
        "application/json": {"schema": schema},
        "application/x-ndjson": {"schema": {"type": "string", "description": (
            f"one {model.__name__} object per line")}}}, "required": True}


_ANSWERS: dict[int | str, dict[str, Any]] = {
    201: {"description": "recorded"},
    200: {"description": "the same message again (its first answer), or the answer per "
                         "line of an NDJSON push"}}


@router.post("/ingest/lab-results", openapi_extra={"requestBody": _body_doc(LabResultIn)},
             responses=_ANSWERS)
async def ingest_lab_results(request: Request, client: Client,
                             integrations: IntegrationsDep) -> Response:
    """A lab result by `specimen_id`, idempotent on `result_id`; NDJSON: one per line."""
    _may_push(client, "lab-results")
    return await _ingest(request, client, LabResultIn, integrations.lab_results.receive)


@router.post("/ingest/movements", openapi_extra={"requestBody": _body_doc(MovementIn)},
             responses=_ANSWERS)
async def ingest_movements(request: Request, client: Client,
                           integrations: IntegrationsDep) -> Response:
    """A transfer, new release date or release by DOC number, idempotent on `movement_id`;
    NDJSON: one per line."""
    _may_push(client, "movements")
    return await _ingest(request, client, MovementIn, integrations.movements.receive)


def _may_push(client: IntegrationClient, what: str) -> None:
    if what not in client.ingests:
        raise Problem(403, "forbidden", "Not allowed",
                      f"this integration client may not push {what}; an admin grants it "
                      "when creating the client (ingests)")


async def _ingest(request: Request, client: IntegrationClient, model: type[Inbound],
                  receive: Receive) -> Response:
    bulk = _is_bulk(request.headers.get("content-type", ""))
    raw = await request.body()
    if not bulk:
        status, body = await run_in_threadpool(_one_line, request, client, raw, model,
                                               receive)
        if status >= 400:
            return JSONResponse(body, status_code=status, media_type=PROBLEM)
        return JSONResponse(body, status_code=status, headers={"ETag": f'"{body["version"]}"'})
    lines = raw.split(b"\n")
    if len(lines) > MAX_LINES + 1:
        raise Problem(413, "too-many-lines", "Too many lines",
                      f"an NDJSON push takes at most {MAX_LINES} lines")
    results = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        status, body = await run_in_threadpool(_one_line, request, client, line, model,
                                               receive)
        results.append({"line": number, "status": status,
                        **({"problem": body} if status >= 400 else body)})
    if not results:
        raise Problem(422, "validation", "Invalid request", "body: nothing in the push",
                      errors=[{"field": "body", "message": "nothing in the push"}])
    return JSONResponse({"results": results, **_counts(results)})


def _is_bulk(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    if media in NDJSON:
        return True
    if media in ("application/json", ""):
        return False
    raise Problem(415, "unsupported-media-type", "Unsupported media type",
                  "send application/json (one message) or application/x-ndjson (one per line)")


def _counts(results: list[dict[str, Any]]) -> dict[str, int]:
    return {"recorded": sum(r["status"] == 201 for r in results),
            "replayed": sum(r["status"] == 200 for r in results),
            "refused": sum(r["status"] >= 400 for r in results)}


def _one_line(request: Request, client: IntegrationClient, raw: bytes, model: type[Inbound],
              receive: Receive) -> tuple[int, dict[str, Any]]:
    """One message: (status, answer) or (status, problem); nothing written when refused."""
    try:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError):
        return _problem(400, "malformed-json", "Malformed JSON",
                        "the message is not a JSON object")
    try:
        message = model.model_validate(parsed).message()
    except ValidationError as exc:
        errors = [{"field": field_path(e.get("loc", ())), "message": e.get("msg", "")}
                  for e in exc.errors()]
        return _problem(422, "validation", "Invalid request",
                        "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                        errors=errors)
    by = Provenance(actor_id=client.token_id, actor_role="integration",
                    source=f"integration:{client.recipient}",
                    correlation_id=request.state.request_id,
                    causation_id=f"{message.noun}:{message.external_id}")
    access_log = request.app.state.access_log

    def also_with(stream: UUID) -> list[Any]:
        request.state.access_recorded = True
        return [access_log.stored(access_entry(request, [str(stream)], "write", 201))]

    try:
        recorded = receive(message, by, client.recipient, also_with)
    except RefusedAt as refused:
        status, problem = _refusal(refused.cause)
        _record_refused(request, refused.participant_id, status)
        return status, problem
    except Exception as exc:  # each refusal is this message's answer, not the request's
        return _refusal(exc)
    return recorded.status, recorded.body


def _record_refused(request: Request, participant_id: UUID, status: int) -> None:
    """A push refused at a record is an attempt on it: logged as staff attempts are."""
    action = "denied" if status in (401, 403, 404, 410) else "failed"
    try:
        request.app.state.access_log.record(
            access_entry(request, [str(participant_id)], action, status))
    except Exception as exc:  # the push is refused either way; say so to the operators
        log.error("access_log_failed", error_type=type(exc).__name__)


def _refusal(exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, InvalidValue):
        return _problem(422, "validation", "Invalid request", str(exc),
                        errors=[{"field": exc.field, "message": exc.detail}])
    if isinstance(exc, NotFound):
        return _problem(404, "not-found", f"Unknown {exc.what}", str(exc))
    if isinstance(exc, ParticipantErased):
        return _problem(410, "erased", "Participant erased",
                        "the record this names was erased")
    if isinstance(exc, RuleViolation):
        return 409, {"type": f"urn:tcledger:rule:{exc.rule}",
                     "title": "A program rule refused this", "status": 409,
                     "detail": exc.detail, "rule": exc.rule}
    if isinstance(exc, DuplicateId):
        return _problem(409, f"duplicate-{exc.noun}-id", "Id already used", str(exc))
    if isinstance(exc, Ambiguous):
        return _problem(409, "ambiguous-" + exc.what.lower().replace(" ", "-"),
                        f"{exc.what} not unique", str(exc))
    if isinstance(exc, ViewsBehind):
        return _problem(503, "views-behind", "Not yet at the end of the log",
                        "the record cannot be found until the views catch up; send it again")
    if isinstance(exc, RecordConflictError):
        return _problem(409, "concurrent-write", "Concurrent write",
                        "another write to this record won the race; send it again")
    raise exc


def _problem(status: int, kind: str, title: str, detail: str,
             **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"type": f"urn:tcledger:problem:{kind}", "title": title, "status": status,
                    "detail": detail, **extra}
