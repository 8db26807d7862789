"""Webhook subscriptions of an integration client, and what was delivered to them.

A client manages its own subscriptions (the secret is in the answer to the POST, and to a
replay of it with the same Idempotency-Key, never anywhere else); an admin may look at
any subscription's deliveries. Deliveries never show their bodies.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field

from api.deps import MAX_IDEMPOTENCY_KEY, require
from api.problems import Problem
from api.routers.integrations import Client, IntegrationsDep
from api.schemas import Body
from infra.tokens import Caller
from integrations.webhooks import (
    MAX_PER_CLIENT,
    KeyReused,
    Subscription,
    SubscriptionError,
    TooMany,
)
from integrations.wiring import Integrations

router = APIRouter(tags=["webhooks"])
MAX_CURSOR = 2 ** 62
State = Literal["pending", "delivered", "dead", "withheld", "cancelled"]  # the outbox's


class SubscriptionIn(Body):
    url: str = Field(max_length=2000, description="an http or https URL that receives "
                                                  "each event as a signed POST")
    event_types: list[str] = Field(
        default_factory=list, max_length=64,
        description="CloudEvent types to receive (e.g. `tcledger.participant.discharged`); "
                    "empty: every type the client's categories allow")


@router.post("/webhooks/subscriptions", status_code=201, responses={
    200: {"description": "the same request again under its Idempotency-Key: the first "
                         "answer"}})
def create_subscription(body: SubscriptionIn, request: Request, client: Client,
                        integrations: IntegrationsDep) -> JSONResponse:
    """A webhook endpoint for this client; the signing `secret` is shown in this answer."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Problem(400, "bad-idempotency-key", "Malformed Idempotency-Key",
                      f"an Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY} characters")
    try:
        created = integrations.webhooks.subscriptions.create(client, body.url,
                                                             body.event_types, key)
    except SubscriptionError as exc:
        raise Problem(422, "validation", "Invalid request", str(exc),
                      errors=[{"field": exc.field, "message": exc.detail}]) from None
    except KeyReused:
        raise Problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                      "this Idempotency-Key was used with a different request") from None
    except TooMany:
        raise Problem(409, "too-many-subscriptions", "Too many subscriptions",
                      f"a client has at most {MAX_PER_CLIENT} subscriptions; delete one "
                      "first") from None
    answer = {**created.subscription.as_json(), "secret": created.secret}
    return JSONResponse(answer, status_code=200 if created.replayed else 201,
                        headers={"Location": f"/webhooks/subscriptions/"
                                             f"{created.subscription.subscription_id}",
                                 "Cache-Control": "no-store"})


@router.get("/webhooks/subscriptions")
def list_subscriptions(client: Client, integrations: IntegrationsDep) -> dict[str, Any]:
    """This client's subscriptions (deleted ones left out); never their secrets."""
    found = integrations.webhooks.subscriptions.for_client(client.token_id)
    return {"items": [s.as_json() for s in found]}


@router.get("/webhooks/subscriptions/{subscription_id}")
def get_subscription(subscription_id: str, client: Client,
                     integrations: IntegrationsDep) -> dict[str, Any]:
    return _own(integrations, subscription_id, client.token_id).as_json()


@router.delete("/webhooks/subscriptions/{subscription_id}", status_code=204)
def delete_subscription(subscription_id: str, client: Client,
                        integrations: IntegrationsDep) -> Response:
    """Ends the subscription: nothing more is queued, what was waiting is cancelled."""
    if not integrations.webhooks.subscriptions.delete(client.token_id, subscription_id):
        raise _unknown()
    return Response(status_code=204)


@router.get("/webhooks/subscriptions/{subscription_id}/deliveries")
async def list_deliveries(
        subscription_id: str, request: Request, integrations: IntegrationsDep,
        caller: Annotated[Caller, Depends(require("integration", "admin"))],
        state: Annotated[State | None, Query(
            description="only rows in this state (`dead`: the dead letters)")] = None,
        after: Annotated[int, Query(ge=0, le=MAX_CURSOR,
                                    description="`next_cursor` of the previous page")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The subscription's deliveries in log order: state, attempts, the last status and
    error, when the next attempt is due. The client that owns it, or an admin."""
    def answer() -> dict[str, Any]:
        subscription = integrations.webhooks.subscriptions.of(subscription_id)
        if subscription is None or (caller.role == "integration"
                                    and subscription.token_id != caller.token_id):
            raise _unknown()
        items = integrations.webhooks.deliveries.list(subscription_id, state, after, limit)
        return {"items": items,
                "next_cursor": str(items[-1]["position"] if items else after)}
    return await run_in_threadpool(answer)


def _own(integrations: Integrations, subscription_id: str, token_id: str) -> Subscription:
    found = integrations.webhooks.subscriptions.of(subscription_id)
    if found is None or found.token_id != token_id or found.deleted_at is not None:
        raise _unknown()
    return found


def _unknown() -> Problem:
    return Problem(404, "not-found", "Unknown subscription",
                   "this client has no such webhook subscription")
