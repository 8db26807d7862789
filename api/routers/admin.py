"""Administration: erasure (crypto-shredding), legal holds and tokens."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api import schemas as s
from api.deps import Admin, ServicesDep, Writer, answer, offload, written
from api.problems import Problem
from infra.tokens import TokenError

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/participants/{participant_id}/erasure", status_code=201,
             response_model=s.WriteOut)
async def erase(participant_id: UUID, body: s.ErasureIn, request: Request, services: ServicesDep,
          caller: Admin) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await offload(request, _erase, writer, participant_id, body.reason)


def _erase(writer: Writer, participant_id: UUID, reason: str) -> JSONResponse:
    services = writer.services
    replayed = writer.replay()
    if replayed is not None:
        return replayed
    version = services.ledger.participant(participant_id).version
    result = services.ledger.erase(
        participant_id, writer.by, reason,
        record_with=lambda _id, _v, extra: writer.record_with(participant_id, version,
                                                              {"erased": True}),
        # An open mentorship ends on the other record: a write there, logged as such.
        record_peer=lambda peer, _v, _extra: {"also": writer.access_entries([peer])})
    return answer({**written(result), "erased": True}, 201)


@router.post("/participants/{participant_id}/legal-holds", status_code=201)
async def place_legal_hold(participant_id: UUID, body: s.LegalHoldIn, request: Request,
                     services: ServicesDep, caller: Admin) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {"hold_id": p.place_legal_hold(
        by=writer.by, matter=body.matter, at=writer.by.now, reason=body.reason)}, guard=False)


@router.post("/participants/{participant_id}/legal-holds/{hold_id}/release",
             status_code=201, response_model=s.WriteOut)
async def release_legal_hold(participant_id: UUID, hold_id: str, body: s.ReasonIn,
                       request: Request, services: ServicesDep, caller: Admin) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.release_legal_hold(
        by=writer.by, hold_id=hold_id, at=writer.by.now, reason=body.reason), guard=False)


@router.post("/tokens", status_code=201)
def create_token(body: s.TokenIn, services: ServicesDep, caller: Admin) -> dict[str, Any]:
    try:
        created, secret = services.tokens.create(role=body.role, name=body.name,
                                                 facility=body.facility)
    except TokenError as exc:
        raise Problem(422, "validation", "Invalid request", str(exc),
                      errors=[{"field": "facility", "message": str(exc)}]) from None
    return {"token_id": created.token_id, "token": secret, "role": created.role,
            "facility": created.facility, "name": created.name}
