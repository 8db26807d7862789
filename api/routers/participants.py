"""Participant endpoints: HTTP in, a domain command or read out. No rule lives here."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
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
)
from api.problems import Problem
from api.views import caseload_item, event_view, peer_resolver, record_view
from domain.errors import ParticipantErased
from domain.participant import Participant
from domain.policy import ProgramPolicy
from infra.tokens import Caller
from infra.wiring import Services
from projections import caseload
from projections.summary import SEALED
from projections.timeline import read_timeline

FlagName = Literal["review_due", "sanction_overdue", "result_unconfirmed",
                   "release_within_90_days", "consent_expiring",
                   "attendance_below_requirement", "follow_up_due"]

router = APIRouter(prefix="/participants", tags=["participants"])

ParticipantId = Annotated[UUID, "the participant's id"]


@router.post("", status_code=201, response_model=s.WriteOut)
async def admit(body: s.AdmissionIn, request: Request, services: ServicesDep,
          caller: Staff) -> JSONResponse:
    if caller.facility is not None and body.facility != caller.facility:
        raise Problem(403, "forbidden", "Not allowed",
                      "a counselor admits only into their own facility")
    policy = services.policies.get(body.program)
    if policy is None:
        raise Problem(422, "validation", "Invalid request", "program: unknown program",
                      errors=[{"field": "program", "message": "unknown program"}])
    writer = Writer(request, services, caller, body)
    return await offload(request, _admit, writer, body, policy)


def _admit(writer: Writer, body: s.AdmissionIn, policy: ProgramPolicy) -> JSONResponse:
    services = writer.services
    replayed = writer.replay()
    if replayed is not None:
        return replayed
    external_ids = {k: v.model_dump() for k, v in body.external_ids.items()}
    external_ids["DOC"] = {"value": body.doc_number, "issuer": body.facility}
    admitted_on = body.admitted_on or writer.by.now.date()
    with writer.racing_retry():
        result = services.ledger.admit(
            policy, writer.by, record_with=writer.record_with, facility=body.facility,
            unit=body.unit, external_ids=external_ids, given_name=body.given_name,
            family_name=body.family_name, date_of_birth=body.date_of_birth,
            admitted_on=admitted_on, expected_release_on=body.expected_release_on,
            counselor_id=body.counselor_id, referral_source=body.referral_source,
            program_agreement_signed=body.program_agreement_signed, reason=body.reason,
            assessments=[a.model_dump() for a in body.assessments])
    return answer({"id": str(result.id), "version": result.version,
                   "position": result.position}, 201)


@router.get("", dependencies=[ReadYourWrites])
def list_caseload(request: Request, services: ServicesDep, caller: Reader,
                  facility: str | None = None, unit: str | None = None,
                  counselor_id: str | None = None, stage: str | None = None,
                  flag: Annotated[list[FlagName] | None, Query()] = None,
                  doc_number: str | None = None,
                  status: Literal["active", "discharged"] | None = None,
                  sort: Literal["admitted", "stage_since", "expected_release_on"] = "admitted",
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  cursor: str | None = None) -> dict[str, Any]:
    """A page of summaries from the participant summary view (keyset pages: `cursor` is the
    `next_cursor` of the previous page, for the same filters and sort)."""
    if caller.role in ("counselor", "supervisor"):
        if facility is not None and facility != caller.facility:
            return {"items": [], "next_cursor": None}
        facility = caller.facility
    today = datetime.now(UTC).date()
    query = caseload.CaseloadQuery(
        facility=facility, unit=unit, counselor_id=counselor_id, stage=stage, status=status,
        doc_index=services.index.digest("DOC", doc_number) if doc_number else None,
        flags=tuple(flag or ()), sort=sort, limit=limit, **_cursor(cursor, sort))
    rows = caseload.find(services.store, query, today)
    services.keys.load([UUID(row["participant_id"]) for row in rows[:limit]])
    opened = []
    for row in rows[:limit]:
        try:
            opened.append((row, json.loads(services.sealer.open(
                UUID(row["participant_id"]), SEALED, bytes(row["sealed"])))))
        except ParticipantErased:
            continue  # erased a moment ago; the view drops the row on its next batch
    peers = peer_resolver(services, [
        (m["link_id"], m["peer"], UUID(row["participant_id"])) for row, personal in opened
        if (m := personal.get("mentor")) is not None])
    items = [caseload_item(row, personal, today, services.policies.get(row["program"]), peers)
             for row, personal in opened]
    request.state.accessed = [row["participant_id"] for row in rows[:limit]]  # access log
    if len(rows) <= limit:
        return {"items": items, "next_cursor": None}
    last = rows[limit - 1]
    mark = [sort, query.sort_key(last), last["admitted_position"]]
    return {"items": items,
            "next_cursor": base64.urlsafe_b64encode(json.dumps(mark).encode()).decode()}


def _cursor(cursor: str | None, sort: str) -> dict[str, Any]:
    """The position after which a page starts; opaque to callers, checked here."""
    if cursor is None:
        return {}
    try:
        kind, value, after = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if kind != sort or not isinstance(after, int) or isinstance(after, bool) \
                or not 0 <= after < 2 ** 62 or not isinstance(value, str | None):
            raise ValueError
    except (ValueError, TypeError, UnicodeEncodeError):
        raise Problem(422, "validation", "Invalid request", "cursor: not a cursor of this list",
                      errors=[{"field": "cursor", "message": "not a cursor of this list"}]) \
            from None
    return {"after": after, "after_value": value}


@router.get("/{participant_id}", dependencies=[ReadYourWrites])
async def read(participant_id: ParticipantId, request: Request, services: ServicesDep,
               caller: Reader, as_of: datetime | None = None) -> JSONResponse:
    return await offload(request, _read, services, caller, participant_id, as_of)


def _read(services: Services, caller: Caller, participant_id: UUID,
          as_of: datetime | None) -> JSONResponse:
    ledger = services.ledger
    if as_of is not None:
        if as_of.tzinfo is None:
            raise Problem(422, "validation", "Invalid request", "as_of: needs a time zone",
                          errors=[{"field": "as_of", "message": "needs a time zone"}])
        ledger.read(participant_id, scope_guard(caller))  # scope by where it is now
        earlier = ledger.participant_as_of(participant_id, as_of)
        return answer(record_view(earlier, ledger.policy_of(earlier), as_of.date(),
                                  peer_resolver(services)), 200)
    guard = scope_guard(caller)
    today = datetime.now(UTC).date()
    peers = peer_resolver(services)

    def view(participant: Participant) -> dict[str, Any]:
        guard(participant)
        return record_view(participant, ledger.policy_of(participant), today, peers)

    return answer(ledger.read(participant_id, view), 200)


@router.get("/{participant_id}/history", dependencies=[ReadYourWrites])
def history(participant_id: ParticipantId, services: ServicesDep,
            caller: Reader) -> dict[str, Any]:
    ledger = services.ledger
    ledger.read(participant_id, scope_guard(caller))
    positions = services.recorder.positions(participant_id)
    events = [event_view(e, positions.get(e.originator_version))
              for e in ledger.history(participant_id)]
    return {"id": str(participant_id), "events": events}


@router.get("/{participant_id}/timeline", dependencies=[ReadYourWrites])
def timeline(participant_id: ParticipantId, services: ServicesDep, caller: Reader,
             order: Literal["effective", "recorded"] = "effective") -> dict[str, Any]:
    """Every fact in the order it happened (or was recorded), from the timeline view, with
    what corrected or voided it."""
    services.ledger.read(participant_id, scope_guard(caller))
    entries = read_timeline(services.store, services.ledger.history(participant_id),
                            participant_id, order)
    return {"id": str(participant_id), "entries": entries}


# --- writes -------------------------------------------------------------------------------

@router.post("/{participant_id}/stage-changes", status_code=201, response_model=s.WriteOut)
async def change_stage(participant_id: ParticipantId, body: s.StageChangeIn, request: Request,
                 services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    by = writer.by
    at = effective(body.effective_on, by)

    def decide(p: Participant, policy: ProgramPolicy) -> None:
        if body.direction in ("promote", "regress") and not body.to_stage:
            raise Problem(422, "validation", "Invalid request", "to_stage: required",
                          errors=[{"field": "to_stage", "message": f"required to "
                                   f"{body.direction}"}])
        if body.direction == "promote":
            p.promote(policy, by=by, to_stage=body.to_stage or "", at=at, reason=body.reason,
                      override=body.override, review=body.review)
        elif body.direction == "regress":
            p.regress(policy, by=by, to_stage=body.to_stage or "", at=at, reason=body.reason)
        elif body.direction == "repeat":
            p.repeat_stage(policy, by=by, at=at, reason=body.reason)
        else:
            p.hold_stage(by=by, at=at, reason=body.reason, until=body.until)

    return await writer.run(participant_id, decide)


@router.post("/{participant_id}/privileges", status_code=201, response_model=s.WriteOut)
async def decide_privilege(participant_id: ParticipantId, body: s.PrivilegeIn, request: Request,
                     services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    by, at = writer.by, effective(body.effective_on, writer.by)

    def decide(p: Participant, policy: ProgramPolicy) -> None:
        if body.action == "grant":
            p.grant_privilege(policy, by=by, privilege=body.privilege, at=at,
                              reason=body.reason, until=body.until)
        elif body.action == "revoke":
            p.revoke_privilege(policy, by=by, privilege=body.privilege, at=at,
                               reason=body.reason)
        elif body.action == "suspend":
            p.suspend_privilege(policy, by=by, privilege=body.privilege, at=at,
                                reason=body.reason, until=body.until)
        else:
            p.restore_privilege(policy, by=by, privilege=body.privilege, at=at,
                                reason=body.reason)

    return await writer.run(participant_id, decide)


@router.post("/{participant_id}/infractions", status_code=201)
async def record_infraction(participant_id: ParticipantId, body: s.InfractionIn, request: Request,
                      services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {"infraction_id": p.record_infraction(
        policy, by=writer.by, code=body.code, observed_at=body.observed_at,
        description=body.description, reason=body.reason, reporter_kind=body.reporter_kind,
        reporter_id=body.reporter_id)})


@router.post("/{participant_id}/sanctions", status_code=201)
async def impose_sanction(participant_id: ParticipantId, body: s.SanctionIn, request: Request,
                    services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {"sanction_id": p.impose_sanction(
        policy, by=writer.by, sanction=body.sanction, at=effective(body.effective_on, writer.by),
        reason=body.reason, infraction_id=body.infraction_id, due_on=body.due_on,
        override=body.override)})


SANCTION_OUTCOMES = {"completion": Participant.complete_sanction,
                     "failure": Participant.fail_sanction,
                     "rescission": Participant.rescind_sanction}


@router.post("/{participant_id}/sanctions/{sanction_id}/{outcome}", status_code=201,
             response_model=s.WriteOut)
async def close_sanction(participant_id: ParticipantId, sanction_id: str,
                   outcome: Literal["completion", "failure", "rescission"], body: s.ReasonIn,
                   request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    """Completion, failure or rescission (appeal upheld) of an open sanction."""
    writer = Writer(request, services, caller, body)
    close = SANCTION_OUTCOMES[outcome]
    return await writer.run(participant_id, lambda p, policy: close(
        p, policy, by=writer.by, sanction_id=sanction_id,
        at=effective(body.effective_on, writer.by), reason=body.reason))


@router.post("/{participant_id}/specimens", status_code=201, response_model=s.WriteOut)
async def collect_specimen(participant_id: ParticipantId, body: s.SpecimenIn, request: Request,
                     services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.collect_specimen(
        policy, by=writer.by, specimen_id=body.specimen_id, method=body.method,
        test_reason=body.test_reason, collected_at=body.collected_at,
        observed_by=body.observed_by, seal_id=body.seal_id))


@router.post("/{participant_id}/specimens/{specimen_id}/result", status_code=201,
             response_model=s.WriteOut)
async def record_result(participant_id: ParticipantId, specimen_id: str, body: s.ResultIn,
                  request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.record_result(
        policy, by=writer.by, specimen_id=specimen_id, result=body.result,
        substances=s.substances(body.substances), resulted_at=body.resulted_at or writer.by.now,
        lab=body.lab, validity=body.validity))


@router.post("/{participant_id}/specimens/{specimen_id}/confirmation", status_code=201,
             response_model=s.WriteOut)
async def confirm_result(participant_id: ParticipantId, specimen_id: str, body: s.ConfirmationIn,
                   request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.confirm_result(
        policy, by=writer.by, specimen_id=specimen_id, confirmed=body.confirmed,
        method=body.method, substances=s.substances(body.substances),
        at=effective(body.effective_on, writer.by)))


@router.post("/{participant_id}/specimens/{specimen_id}/review", status_code=201,
             response_model=s.WriteOut)
async def review_result(participant_id: ParticipantId, specimen_id: str, body: s.ReviewIn,
                  request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.review_result(
        by=writer.by, specimen_id=specimen_id, outcome=body.outcome,
        at=effective(body.effective_on, writer.by), reason=body.reason,
        medications=[*body.medications, *([body.medication] if body.medication else [])],
        medication_assisted_treatment=body.medication_assisted_treatment))


@router.post("/{participant_id}/specimens/{specimen_id}/dispute", status_code=201,
             response_model=s.WriteOut)
async def dispute_result(participant_id: ParticipantId, specimen_id: str, body: s.DisputeIn,
                   request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.dispute_result(
        by=writer.by, specimen_id=specimen_id, grounds=body.grounds,
        at=effective(body.effective_on, writer.by), reason=body.reason))


@router.post("/{participant_id}/discharge", status_code=201, response_model=s.WriteOut)
async def discharge(participant_id: ParticipantId, body: s.DischargeIn, request: Request,
              services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.discharge(
        policy, by=writer.by, discharge_type=body.type,
        at=effective(body.effective_on, writer.by), reason=body.reason,
        aftercare_referral=body.aftercare_referral))


@router.post("/{participant_id}/aftercare-handoffs", status_code=201)
async def send_handoff(participant_id: ParticipantId, body: s.HandoffIn, request: Request,
                 services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {
        "handoff_id": p.send_aftercare_handoff(
            by=writer.by, receiving_agency=body.receiving_agency, report=body.report,
            at=effective(body.effective_on, writer.by), reason=body.reason)})


@router.post("/{participant_id}/consents", status_code=201)
async def give_consent(participant_id: ParticipantId, body: s.ConsentIn, request: Request,
                 services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {"consent_id": p.give_consent(
        by=writer.by, recipient=body.recipient, purpose=body.purpose,
        categories=body.categories, at=writer.by.now, expires_on=body.expires_on,
        expiry_event=body.expiry_event,
        criminal_justice_referral=body.criminal_justice_referral, reason=body.reason)})


@router.post("/{participant_id}/consents/{consent_id}/revocation", status_code=201,
             response_model=s.WriteOut)
async def revoke_consent(participant_id: ParticipantId, consent_id: str, body: s.ReasonIn,
                   request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.revoke_consent(
        by=writer.by, consent_id=consent_id, at=effective(body.effective_on, writer.by),
        reason=body.reason))


@router.post("/{participant_id}/corrections", status_code=201, response_model=s.WriteOut)
async def correct(participant_id: ParticipantId, body: s.CorrectionIn, request: Request,
            services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)

    def decide(p: Participant, policy: ProgramPolicy) -> None:
        if body.action == "void":
            if body.changes:
                raise Problem(422, "validation", "Invalid request",
                              "changes: a void takes no changes",
                              errors=[{"field": "changes", "message": "a void takes no changes"}])
            p.void_entry(policy, by=writer.by, version=body.supersedes_version,
                         at=writer.by.now, reason=body.reason)
        else:
            p.correct_entry(policy, by=writer.by, version=body.supersedes_version,
                            changes=body.changes, at=writer.by.now, reason=body.reason)

    return await writer.run(participant_id, decide)


@router.post("/{participant_id}/counselor", status_code=201, response_model=s.WriteOut)
async def assign_counselor(participant_id: ParticipantId, body: s.CounselorIn, request: Request,
                     services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.assign_counselor(
        by=writer.by, counselor_id=body.counselor_id,
        at=effective(body.effective_on, writer.by), reason=body.reason))


@router.post("/{participant_id}/transfers", status_code=201, response_model=s.WriteOut)
async def transfer(participant_id: ParticipantId, body: s.TransferIn, request: Request,
             services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.transfer(
        by=writer.by, facility=body.facility, unit=body.unit,
        at=effective(body.effective_on, writer.by), reason=body.reason))


@router.post("/{participant_id}/release-date", status_code=201, response_model=s.WriteOut)
async def change_release_date(participant_id: ParticipantId, body: s.ReleaseDateIn,
                        request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.change_release_date(
        by=writer.by, expected_release_on=body.expected_release_on,
        at=effective(body.effective_on, writer.by), reason=body.reason))


@router.post("/{participant_id}/assessments", status_code=201)
async def record_assessment(participant_id: ParticipantId, body: s.AssessmentIn, request: Request,
                      services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {
        "assessment_id": p.record_assessment(by=writer.by, at=writer.by.now,
                                             **body.model_dump())})


@router.post("/{participant_id}/job-functions", status_code=201)
async def assign_job_function(participant_id: ParticipantId, body: s.JobFunctionIn,
                        request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {"job_id": p.assign_job_function(
        by=writer.by, function=body.function, at=effective(body.effective_on, writer.by),
        reason=body.reason)})


@router.post("/{participant_id}/job-functions/{job_id}/end", status_code=201,
             response_model=s.WriteOut)
async def end_job_function(participant_id: ParticipantId, job_id: str, body: s.ReasonIn,
                     request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.end_job_function(
        by=writer.by, job_id=job_id, at=effective(body.effective_on, writer.by),
        reason=body.reason))


@router.post("/{participant_id}/incentives", status_code=201)
async def award_incentive(participant_id: ParticipantId, body: s.IncentiveIn, request: Request,
                    services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {"incentive_id": p.award_incentive(
        by=writer.by, incentive=body.incentive, at=effective(body.effective_on, writer.by),
        reason=body.reason)})


@router.post("/{participant_id}/amendment-requests", status_code=201)
async def request_amendment(participant_id: ParticipantId, body: s.AmendmentIn, request: Request,
                      services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: {"amendment_id": p.request_amendment(
        by=writer.by, requested_change=body.requested_change, at=writer.by.now,
        reason=body.reason, target_version=body.target_version)})


@router.post("/{participant_id}/amendment-requests/{amendment_id}/denial", status_code=201,
             response_model=s.WriteOut)
async def deny_amendment(participant_id: ParticipantId, amendment_id: str, body: s.ReasonIn,
                   request: Request, services: ServicesDep, caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.deny_amendment(
        by=writer.by, amendment_id=amendment_id, at=writer.by.now, reason=body.reason))


@router.post("/{participant_id}/amendment-requests/{amendment_id}/disagreement",
             status_code=201, response_model=s.WriteOut)
async def file_disagreement(participant_id: ParticipantId, amendment_id: str,
                      body: s.DisagreementIn, request: Request, services: ServicesDep,
                      caller: Staff) -> JSONResponse:
    writer = Writer(request, services, caller, body)
    return await writer.run(participant_id, lambda p, policy: p.file_disagreement(
        by=writer.by, amendment_id=amendment_id, statement=body.statement, at=writer.by.now,
        reason=body.reason))
