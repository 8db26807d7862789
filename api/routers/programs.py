"""The program policies, as loaded at start."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import Reader, ReadYourWrites, ServicesDep, authenticate
from api.problems import Problem
from domain.policy import ProgramPolicy
from projections.stats import StatsQuery, program_stats

router = APIRouter(prefix="/programs", tags=["programs"], dependencies=[Depends(authenticate)])


def policy_view(p: ProgramPolicy) -> dict[str, Any]:
    return {
        "code": p.code, "name": p.name,
        "stages": [{"code": s.code, "name": s.name, "min_days": s.min_days,
                    "privileges": list(s.privileges), "curfew": s.curfew,
                    "groups_per_week": dict(s.groups_per_week)} for s in p.stages],
        "group_kinds": [{"code": k.code, "name": k.name} for k in p.group_kinds.values()],
        "follow_up_windows": [{"code": w.code, "days": w.days} for w in p.follow_up_windows],
        "privileges": [{"code": x.code, "name": x.name} for x in p.privileges.values()],
        "rule_classes": [{"code": r.code, "min_severity": r.min_severity,
                          "max_severity": r.max_severity} for r in p.rule_classes.values()],
        "infractions": [{"code": i.code, "name": i.name, "rule_class": i.rule_class}
                        for i in p.infractions.values()],
        "sanctions": [{"code": x.code, "name": x.name, "severity": x.severity,
                       "suspends": list(x.suspends)} for x in p.sanctions.values()],
        "discharge_types": [{"code": d.code, "name": d.name, "category": d.category,
                             "successful": d.successful,
                             "reinstatement_after_days": d.reinstatement_after_days}
                            for d in p.discharge_types.values()],
        "drug_tests": {
            "methods": list(p.drug_tests.methods), "reasons": list(p.drug_tests.reasons),
            "confirmation_methods": list(p.drug_tests.confirmation_methods),
            "positive_requires_confirmation": p.drug_tests.positive_requires_confirmation,
            "substances": [{"code": x.code, "name": x.name, "cutoff_ng_ml": x.cutoff_ng_ml}
                           for x in p.drug_tests.substances.values()]},
    }


@router.get("")
def list_programs(services: ServicesDep) -> dict[str, Any]:
    return {"items": [policy_view(p) for p in services.policies.all()]}


@router.get("/{program}/stats", dependencies=[ReadYourWrites])
def program_statistics(program: str, services: ServicesDep, caller: Reader,
                       facility: str | None = None,
                       from_: Annotated[date | None, Query(alias="from")] = None,
                       to: date | None = None) -> dict[str, Any]:
    """Census by stage (now), and for the period: admissions, discharges by type, completion
    rate, median days per completed stage, tests by result, positive rate, sanctions by
    severity, attendance by group kind, follow-ups by window (reached, outcomes).
    Counselors and supervisors see their own facility."""
    policy = services.policies.get(program)
    if policy is None:
        raise Problem(404, "not-found", "Unknown program", f"no program {program!r}")
    if caller.role in ("counselor", "supervisor"):
        if facility is not None and facility != caller.facility:
            raise Problem(403, "forbidden", "Not allowed", "statistics of your own facility only")
        facility = caller.facility
    last = to or datetime.now(UTC).date()
    first = from_ or last.replace(month=1, day=1)
    if first > last:
        raise Problem(422, "validation", "Invalid request", "from: after to",
                      errors=[{"field": "from", "message": "must not be after to"}])
    return program_stats(services.store, StatsQuery(
        program, facility, first, last, group_kinds=tuple(policy.group_kinds),
        follow_up_windows=tuple(w.code for w in policy.follow_up_windows)))


@router.get("/{program}")
def get_program(program: str, services: ServicesDep) -> dict[str, Any]:
    policy = services.policies.get(program)
    if policy is None:
        raise Problem(404, "not-found", "Unknown program", f"no program {program!r}")
    return policy_view(policy)
