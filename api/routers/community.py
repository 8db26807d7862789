"""Community life endpoints: group sessions and their rosters, peer feedback, mentors,
follow-ups after discharge and recovery supports. HTTP in, domain commands out."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api import schemas as s
from api.deps import (
    Reader,
    ReadYourWrites,
    ServicesDep,
    Staff,
    Writer,
    answer,
    effective,
    offload,
    scope_guard,
    written,
)
from api.problems import Problem, refusal_body
from domain import community as c
from domain.application import Outcomes, WriteResult
from domain.errors import DomainError, NotFound
from domain.groups import GroupSession
from domain.participant import Participant
from domain.policy import ProgramPolicy
from infra.peers import PeerLinks
from infra.recorders import IdempotencyRecord
from infra.wiring import Services
from projections.groups import SessionsQuery, find_sessions

groups = APIRouter(prefix="/groups", tags=["community"])
router = APIRouter(prefix="/participants", tags=["community"])
ParticipantId = Annotated[UUID, "the participant's id"]


# --- group sessions ----------------------------------------------------------------------

@groups.post("", status_code=201)
def hold_group(body: s.GroupIn, request: Request, services: ServicesDep,
               caller: Staff) -> JSONResponse:
    """A group session: no personal data, only its kind, place, time and staff facilitator.
    A peer-led group (`facilitator: {"participant": ID}`) holds only that a peer led it;
    the leading is recorded on that participant's record, in the same transaction."""
    if caller.facility is not None and body.facility != caller.facility:
        raise Problem(403, "forbidden", "Not allowed",
                      "a counselor records sessions of their own facility only")
    policy = _program(services, body.program)
    writer = Writer(request, services, caller, body)
    replayed = writer.replay()
    if replayed is not None:
        return replayed
    session = GroupSession.hold(
        policy, by=writer.by, facility=body.facility, unit=body.unit, kind=body.kind,
        held_at=body.held_at, duration_minutes=body.duration_minutes,
        facilitator_staff_id=body.facilitator.staff, topic=body.topic)
    peer = body.facilitator.participant

    def record_with(sid: UUID, version: int, extra: dict[str, Any]) -> dict[str, Any]:
        side: dict[str, Any] = {} if peer is None else {"also": writer.access_entries([peer])}
        if writer.key is not None:
            side["idempotency"] = IdempotencyRecord(
                caller.actor_id, writer.key, writer.request_hash, 201,
                {"id": str(sid), "version": version, "group_id": str(sid)})
        return side

    with writer.racing_retry():
        if peer is None:
            result = services.ledger.hold_group(session, record_with=record_with)
        else:  # the leading is a fact of the peer's own record, written with the session
            request.state.accessed = [str(peer)]  # a refusal is logged as an attempt on it
            result = services.ledger.hold_peer_led_group(
                session, peer, writer.by, guard=scope_guard(caller), record_with=record_with)
            request.state.access_recorded = True
    return answer({**written(result), "group_id": str(result.id)}, 201)


@groups.get("", dependencies=[ReadYourWrites])
def list_groups(services: ServicesDep, caller: Reader, facility: str | None = None,
                unit: str | None = None, kind: str | None = None,
                from_: Annotated[date | None, Query(alias="from")] = None,
                to: date | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                cursor: str | None = None) -> dict[str, Any]:
    """Sessions in the order they were held (`from` and `to`: days, UTC, inclusive), each
    with its attendance counted by status, from the group sessions view. Keyset pages:
    `cursor` is the previous page's `next_cursor`, for the same filters. Counselors and
    supervisors see their own facility's sessions."""
    if caller.role in ("counselor", "supervisor"):
        if facility is not None and facility != caller.facility:
            return {"items": [], "next_cursor": None}
        facility = caller.facility
    if from_ is not None and to is not None and from_ > to:
        raise Problem(422, "validation", "Invalid request", "from: after to",
                      errors=[{"field": "from", "message": "must not be after to"}])
    rows = find_sessions(services.store, services.sealer, SessionsQuery(
        facility=facility, unit=unit, kind=kind, first_day=from_, last_day=to,
        after=_session_cursor(cursor), limit=limit))
    marks = [row.pop("_cursor") for row in rows]
    more = len(rows) > limit
    return {"items": rows[:limit], "next_cursor": base64.urlsafe_b64encode(
        json.dumps(marks[limit - 1]).encode()).decode() if more else None}


def _session_cursor(cursor: str | None) -> tuple[str, int] | None:
    """The session after which a page starts; opaque to callers, checked here."""
    if cursor is None:
        return None
    try:
        held_at, position = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if not isinstance(held_at, str) or not isinstance(position, int) \
                or isinstance(position, bool) or not 0 <= position < 2 ** 62:
            raise ValueError
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error):
        raise Problem(422, "validation", "Invalid request", "cursor: not a cursor of this list",
                      errors=[{"field": "cursor", "message": "not a cursor of this list"}]) \
            from None
    return held_at, position


@groups.post("/{group_id}/attendance")
async def take_attendance(group_id: UUID, body: s.AttendanceIn, request: Request,
                          services: ServicesDep, caller: Staff) -> JSONResponse:
    """The roster in one request: every accepted line is written in one transaction, each
    on its participant's record; each line gets its own result (a refused line, a problem,
    with nothing written for it)."""
    ids = [line.participant_id for line in body.records]
    seen: set[UUID] = set()
    for i, pid in enumerate(ids):
        if pid in seen:
            raise Problem(422, "validation", "Invalid request",
                          f"records[{i}].participant_id: appears twice in the roster",
                          errors=[{"field": f"records[{i}].participant_id",
                                   "message": "appears twice in the roster"}])
        seen.add(pid)
    writer = Writer(request, services, caller, body)
    return await offload(request, _take_attendance, writer, group_id, body, ids)


def _take_attendance(writer: Writer, group_id: UUID, body: s.AttendanceIn,
                     ids: list[UUID]) -> JSONResponse:
    services, caller, request = writer.services, writer.caller, writer.request
    session = services.ledger.group(group_id)
    if caller.facility is not None and session.facility != caller.facility:
        raise NotFound("group", group_id)
    request.state.accessed = [str(pid) for pid in ids]  # logged even if nothing is written
    stored = writer.key and services.idempotency.find(caller.actor_id, writer.key)
    if stored:
        if stored.request_hash != writer.request_hash:
            raise Problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                          "this Idempotency-Key was used with a different request")
        return JSONResponse(stored.body, status_code=200)
    facts, by = session.session, writer.by

    def line(status: str, note: str | None) -> Callable[[Participant, ProgramPolicy], Any]:
        return lambda p, policy: {"recorded": c.record_attendance(
            p, facts, by=by, status=status, note=note)}

    commands = {x.participant_id: line(x.status, x.note) for x in body.records}

    def roster(outcomes: Outcomes) -> dict[str, Any]:
        return _roster_answer(group_id, body, outcomes)

    outcomes = services.ledger.execute_each(
        commands, guard=scope_guard(caller), record_with=writer.record_with_many(ids, roster))
    reply = _roster_answer(group_id, body, outcomes)
    reply["position"] = max((o.position for o in outcomes.values()
                             if isinstance(o, WriteResult)), default=0)
    return JSONResponse(reply, status_code=200)


def _roster_answer(group_id: UUID, body: s.AttendanceIn, outcomes: Outcomes) -> dict[str, Any]:
    results = []
    for i, line in enumerate(body.records):
        outcome = outcomes[line.participant_id]
        item: dict[str, Any] = {"participant_id": str(line.participant_id)}
        if isinstance(outcome, DomainError):
            problem = refusal_body(outcome, f"records[{i}].")
            item.update(result="refused", status=problem["status"], problem=problem)
        else:
            recorded = bool(outcome.extra.get("recorded"))
            item.update(result="recorded" if recorded else "unchanged",
                        status=201 if recorded else 200, attendance=line.status,
                        version=outcome.version)
        results.append(item)
    counts = {k: sum(r["result"] == k for r in results)
              for k in ("recorded", "unchanged", "refused")}
    return {"group_id": str(group_id), **counts, "results": results}


# --- peer feedback and mentors -----------------------------------------------------------

@router.post("/{participant_id}/peer-feedback", status_code=201)
async def peer_feedback(participant_id: ParticipantId, body: s.PeerFeedbackIn,
                        request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    """A pull-up or affirmation from `from_participant`: on both records, each naming the
    other only under the key of their link."""
    writer = Writer(request, services, caller, body)
    giver = body.from_participant
    seals = PeerLinks(services.keys).deferred(participant_id, giver)

    def decide(ps: dict[UUID, Participant]) -> dict[str, Any]:
        return {"feedback_id": c.record_peer_feedback(
            ps[participant_id], ps[giver], by=writer.by, kind=body.kind,
            behaviour=body.behaviour, observed_at=body.observed_at, reason=body.reason,
            infraction_id=body.infraction_id,
            seals=seals)}

    return await offload(request, _together, writer, [participant_id, giver], decide)


@router.post("/{participant_id}/mentors", status_code=201)
async def assign_mentor(participant_id: ParticipantId, body: s.MentorIn, request: Request,
                        services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    mentor, at = body.mentor_participant_id, effective(body.started_on, writer.by)
    seals = PeerLinks(services.keys).deferred(participant_id, mentor)

    def decide(ps: dict[UUID, Participant]) -> dict[str, Any]:
        mentee = ps[participant_id]
        return {"mentor_id": c.assign_mentor(
            mentee, ps[mentor], services.ledger.policy_of(mentee), by=writer.by, at=at,
            reason=body.reason, seals=seals)}

    return await offload(request, _together, writer, [participant_id, mentor], decide)


@router.post("/{participant_id}/mentors/{mentor_id}/end", status_code=201,
             response_model=s.WriteOut)
async def end_mentor(participant_id: ParticipantId, mentor_id: str, body: s.EndIn,
                     request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    """Ends a mentorship (`mentor_id` as its assignment answered) on both records; on this
    one only when the other participant was erased."""
    writer = Writer(request, services, caller, body)
    at = effective(body.ended_on, writer.by)
    guard = scope_guard(caller)

    def other(p: Participant) -> UUID | None:
        guard(p)
        m = p.state.mentorships.get(mentor_id)
        return None if m is None else PeerLinks(services.keys).resolve(
            m["link_id"], m["peer"], participant_id)

    peer = services.ledger.read(participant_id, other)
    ids = [participant_id] if peer is None else [participant_id, peer]

    def decide(ps: dict[UUID, Participant]) -> None:
        for p in ps.values():
            c.end_mentor(p, by=writer.by, mentor_id=mentor_id, at=at, reason=body.reason)

    return await offload(request, _together, writer, ids, decide, False)


def _together(writer: Writer, ids: list[UUID],
              decide: Callable[[dict[UUID, Participant]], Any],
              guard_all: bool = True) -> JSONResponse:
    """A command over the participant of the path and its peers, all written or none."""
    replayed = writer.replay()
    if replayed is not None:
        return replayed
    primary = ids[0]
    guard = scope_guard(writer.caller)
    checked = guard if guard_all else _only(primary, guard)

    def body(outcomes: Outcomes) -> dict[str, Any]:
        first = outcomes[primary]
        assert isinstance(first, WriteResult)
        return {"id": str(primary), "version": first.version, **first.extra}

    with writer.racing_retry():
        results = writer.services.ledger.execute_together(
            ids, decide, guard=checked, record_with=writer.record_with_many(ids, body))
    writer.request.state.accessed = [str(i) for i in ids]
    return answer(written(results[primary]), 201)


def _only(primary: UUID, guard: Callable[[Participant], None]) -> Callable[[Participant], None]:
    def check(p: Participant) -> None:
        if p.id == primary:
            guard(p)
    return check


# --- aftercare ---------------------------------------------------------------------------

@router.post("/{participant_id}/follow-ups", status_code=201)
async def record_follow_up(participant_id: ParticipantId, body: s.FollowUpIn, request: Request,
                           services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {
        "follow_up_id": c.record_follow_up(
            p, policy, by=writer.by, window=body.window,
            at=effective(body.contacted_on, writer.by), method=body.method,
            reached=body.reached, outcomes=dict(body.outcomes), reason=body.reason)})


@router.post("/{participant_id}/recovery-supports", status_code=201)
async def link_recovery_support(participant_id: ParticipantId, body: s.RecoverySupportIn,
                                request: Request, services: ServicesDep,
                                caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {
        "support_id": c.link_recovery_support(
            p, by=writer.by, kind=body.kind, provider=body.provider,
            at=effective(body.started_on, writer.by), reason=body.reason)})


@router.post("/{participant_id}/recovery-supports/{support_id}/end", status_code=201,
             response_model=s.WriteOut)
async def end_recovery_support(participant_id: ParticipantId, support_id: str, body: s.EndIn,
                               request: Request, services: ServicesDep,
                               caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: c.end_recovery_support(
        p, by=writer.by, support_id=support_id, at=effective(body.ended_on, writer.by),
        reason=body.reason))


def _program(services: Services, code: str | None) -> ProgramPolicy:
    policies = services.policies.all()
    if code is None and len(policies) == 1:
        return policies[0]
    policy = services.policies.get(code or "")
    if policy is None:
        message = "unknown program" if code else "name the program: several are loaded"
        raise Problem(422, "validation", "Invalid request", f"program: {message}",
                      errors=[{"field": "program", "message": message}])
    return policy


