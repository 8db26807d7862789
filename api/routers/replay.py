"""Audit replay: a participant's history, event by event, with the record right after each.

Auditors see every participant; a supervisor sees those of their facility (others are 404,
as for every read). Admins manage tokens and erasure and make no clinical reads. Every
replay is recorded in the access log like any other read of a record.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from api.deps import ReadYourWrites, ServicesDep, answer, require, scope_guard
from api.problems import Problem
from api.views import peer_resolver, record_view
from audit.replay import Replayer, ReplayPage, ReplayStep, Supersession, VersionOutOfRange
from domain.participant import Participant
from infra.tokens import Caller
from projections.timeline import describe, jsonable

router = APIRouter(prefix="/audit", tags=["audit"])

Auditor = Annotated[Caller, Depends(require("auditor", "supervisor"))]
MAX_LIMIT = 200


def replayer(request: Request) -> Replayer:
    """One replayer per app: it keeps the checkpoints that make paging cheap."""
    found: Replayer | None = getattr(request.app.state, "replayer", None)
    if found is None:
        found = request.app.state.replayer = Replayer(request.app.state.services.ledger)
    return found


@router.get("/participants/{participant_id}/replay", dependencies=[ReadYourWrites])
def replay(participant_id: UUID, request: Request, services: ServicesDep, caller: Auditor,
           after_version: Annotated[int, Query(ge=0, le=2 ** 31)] = 0,
           limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50) -> JSONResponse:
    """Each event after `after_version` (at most `limit`), in stream order, with the record
    as it stood right after it was recorded: the same as `GET /participants/{id}?as_of=`
    that event's `recorded_at` (days in stage and flags counted on that day). Corrections
    and voids show what they supersede; superseded entries name the later versions that
    superseded them. Page on with `after_version=next_after_version` until it is null."""
    ledger = services.ledger
    peers = peer_resolver(services)

    def render(p: Participant) -> dict[str, Any]:
        return record_view(p, ledger.policy_of(p), p.modified_on.date(), peers)

    try:
        page = replayer(request).page(participant_id, render, after_version=after_version,
                                      limit=limit, guard=scope_guard(caller))
    except VersionOutOfRange as exc:
        detail = f"after_version: the record has {exc.version} events"
        raise Problem(422, "validation", "Invalid request", detail,
                      errors=[{"field": "after_version",
                               "message": f"the record has {exc.version} events"}]) from None
    return answer(page_view(page, services.recorder.positions(participant_id)), 200)


def page_view(page: ReplayPage[dict[str, Any]], positions: dict[int, int]) -> dict[str, Any]:
    return {"id": str(page.participant_id), "version": page.version,
            "events": [step_view(step, positions) for step in page.steps],
            "next_after_version": page.next_after_version}


def step_view(step: ReplayStep[dict[str, Any]], positions: dict[int, int]) -> dict[str, Any]:
    version = step.event.originator_version
    return {**describe(step.event), "position": positions.get(version),
            "supersedes": None if step.supersedes is None else supersession_view(step.supersedes),
            "superseded_by": [{"version": m.version, "action": m.action}
                              for m in step.superseded_by],
            "state": step.state}


def supersession_view(s: Supersession) -> dict[str, Any]:
    """The original entry and, side by side, each value as it was and as corrected."""
    return {"action": s.action, "version": s.original.originator_version,
            "type": type(s.original).__name__,
            "effective_at": jsonable(s.original.effective_at),
            "data": describe(s.original)["data"], "in_effect": describe(s.in_effect)["data"],
            "changes": {name: {"before": jsonable(getattr(s.in_effect, name)),
                               "after": jsonable(value)} for name, value in s.changes.items()}}
