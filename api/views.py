"""How a record, a summary and an event look in JSON answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

from domain import attendance
from domain.community import attendance_summary, next_follow_up_due, stage_requirement
from domain.events import ParticipantEvent
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.summary import days_in_program, days_in_stage, flags
from infra.peers import PeerLinks
from infra.wiring import Services
from projections.timeline import describe, jsonable


def summary_view(p: Participant, policy: ProgramPolicy, today: date) -> dict[str, Any]:
    st = p.state
    last_test = max(st.specimens.values(), key=lambda x: x["collected_at"], default=None)
    return {
        "id": str(p.id), "version": p.version, "program": st.program,
        "facility": st.facility, "unit": st.unit, "counselor_id": st.counselor_id,
        "doc_number": st.external_ids.get("DOC", {}).get("value"),
        "given_name": st.given_name, "family_name": st.family_name,
        "status": st.status, "stage": st.stage, "stage_since": jsonable(st.stage_since),
        "days_in_stage": days_in_stage(st, today), "days_in_program": days_in_program(st, today),
        "admitted_on": jsonable(st.admitted_on),
        "expected_release_on": jsonable(st.expected_release_on),
        "privileges": st.active_privileges, "open_sanctions": jsonable(st.open_sanctions),
        "last_test": None if last_test is None else {
            "specimen_id": last_test["specimen_id"], "collected_at": last_test["collected_at"],
            "result": last_test["result"]},
        "flags": flags(st, policy, today),
    }


def caseload_item(row: dict[str, Any], personal: dict[str, Any], today: date,
                  policy: ProgramPolicy | None, peers: PeerResolver | None) -> dict[str, Any]:
    """A caseload entry from a summary row and its unsealed personal part; the attendance
    window and the mentor are read against today and the link keys of now."""
    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    since, admitted = day(row["stage_since"]), day(row["admitted_on"])
    end = day(row["discharged_on"]) or today
    return {
        "id": row["participant_id"], "version": row["version"], "program": row["program"],
        "facility": row["facility"], "unit": row["unit"], "counselor_id": row["counselor_id"],
        "doc_number": personal["doc_number"], "given_name": personal["given_name"],
        "family_name": personal["family_name"], "status": row["status"],
        "stage": row["stage"], "stage_since": row["stage_since"],
        "days_in_stage": (today - since).days if since else 0,
        "days_in_program": (end - admitted).days if admitted else 0,
        "admitted_on": row["admitted_on"], "expected_release_on": row["expected_release_on"],
        "privileges": personal["privileges"], "open_sanctions": personal["open_sanctions"],
        "last_test": personal["last_test"], "flags": row["flags"],
        **caseload_community(row, personal, today, policy, peers),
    }


def caseload_community(row: dict[str, Any], personal: dict[str, Any], today: date,
                       policy: ProgramPolicy | None,
                       peers: PeerResolver | None) -> dict[str, Any]:
    """The community part of a caseload entry, in the record's own shapes. A row written
    before the view kept it (not yet rebuilt) shows none."""
    lines = [(day, kind, status) for day, kind, status in personal.get("attendance_lines", [])]
    weekly = stage_requirement(policy, row["stage"]) if policy else {}
    admitted = date.fromisoformat(row["admitted_on"]) if row["admitted_on"] else None
    mentor = personal.get("mentor")
    return {
        "attendance": attendance.summary(lines, weekly, admitted, today, row["stage"]),
        "mentor": None if mentor is None else {
            "mentor_id": mentor["mentor_id"], "side": "mentee",
            "peer": shown_peer(mentor, UUID(row["participant_id"]), peers),
            "started_on": mentor["started_on"], "ended_on": None},
        "recovery_supports": [{**r, "ended_on": None}
                              for r in personal.get("recovery_supports", [])],
        "next_follow_up_due": personal.get("next_follow_up_due"),
    }


# Who a peer link names, from the holding record: None once either side was erased.
PeerResolver = Callable[[str, str, UUID], UUID | None]


def shown_peer(entry: dict[str, Any], holder: UUID,
               peers: PeerResolver | None) -> dict[str, Any]:
    """The peer of a link as a record shows it: the id while both records exist, else
    "a peer" (and "a peer" without a resolver)."""
    found = peers(entry["link_id"], entry["peer"], holder) if peers else None
    return {"id": str(found)} if found else {"id": None, "label": "a peer"}


def record_view(p: Participant, policy: ProgramPolicy, today: date,
                peers: PeerResolver | None = None) -> dict[str, Any]:
    st = p.state
    body = summary_view(p, policy, today)
    body.update(community_view(p, policy, today, peers))
    body.update({
        "date_of_birth": jsonable(st.date_of_birth), "external_ids": jsonable(st.external_ids),
        "referral_source": st.referral_source,
        "program_agreement_signed": st.program_agreement_signed,
        "stage_held": st.stage_held, "stage_held_until": jsonable(st.stage_held_until),
        "stage_history": jsonable(st.stage_history),
        "privilege_details": jsonable(list(st.privileges.values())),
        "assessments": jsonable(list(st.assessments.values())),
        "job_functions": jsonable(list(st.job_functions.values())),
        "incentives": jsonable(st.incentives),
        "infractions": jsonable(list(st.infractions.values())),
        "sanctions": jsonable(list(st.sanctions.values())),
        "specimens": jsonable(list(st.specimens.values())),
        "consents": jsonable(list(st.consents.values())),
        "disclosures": jsonable(st.disclosures),
        "legal_holds": jsonable(list(st.legal_holds.values())),
        "discharge": jsonable(st.discharge),
        "aftercare_handoffs": jsonable(st.aftercare_handoffs),
        "amendments": jsonable(list(st.amendments.values())),
        "amended_versions": {str(k): v for k, v in p.amended.items()},
        "recorded_at": jsonable(p.modified_on),
    })
    return body


def community_view(p: Participant, policy: ProgramPolicy, today: date,
                   peers: PeerResolver | None) -> dict[str, Any]:
    """Attendance against the stage's requirement, peers (named only while both records
    exist), aftercare. Without a resolver every peer is "a peer"."""
    st = p.state

    def peer(entry: dict[str, Any]) -> dict[str, Any]:
        return shown_peer(entry, p.id, peers)

    def mentorship(m: dict[str, Any]) -> dict[str, Any]:
        return {"mentor_id": m["mentor_id"], "side": m["side"], "peer": peer(m),
                "started_on": m["started_on"], "ended_on": m["ended_on"]}

    mentorships = [mentorship(m) for m in st.mentorships.values()]
    return {
        "attendance": attendance_summary(st, policy, today),
        "mentor": next((m for m in mentorships if m["side"] == "mentee"
                        and m["ended_on"] is None), None),
        "mentees": [m for m in mentorships if m["side"] == "mentor" and m["ended_on"] is None],
        "mentorships": mentorships,
        "groups_facilitated": list(st.groups_facilitated.values()),
        "peer_feedback": [
            {"feedback_id": f["feedback_id"], "kind": f["kind"], "side": f["side"],
             "peer": peer(f), "behaviour": f["behaviour"], "observed_at": f["observed_at"],
             "infraction_id": f["infraction_id"]} for f in st.peer_feedback.values()],
        "recovery_supports": jsonable(list(st.recovery_supports.values())),
        "follow_ups": jsonable(list(st.follow_ups.values())),
        "next_follow_up_due": next_follow_up_due(st, policy),
    }


def event_view(e: ParticipantEvent, position: int | None) -> dict[str, Any]:
    return {**describe(e), "position": position}


def peer_resolver(services: Services,
                  held: list[tuple[str, str, UUID]] | None = None) -> PeerResolver:
    """Resolves peer links through their keys, each link once per request; `held`: links
    known to be asked, resolved together up front (a caseload page)."""
    links = PeerLinks(services.keys)
    seen: dict[tuple[str, str, UUID], UUID | None] = links.resolve_many(held) if held else {}

    def resolve(link_id: str, sealed: str, holder: UUID) -> UUID | None:
        key = (link_id, sealed, holder)
        if key not in seen:
            seen[key] = links.resolve(link_id, sealed, holder)
        return seen[key]
    return resolve
