"""What a counselor sees first about a record: days counted and the flags that ask for action."""

from __future__ import annotations

from datetime import date, timedelta

from domain.community import attendance_summary, next_follow_up_due
from domain.policy import ProgramPolicy
from domain.state import ParticipantState

RELEASE_HORIZON = timedelta(days=90)
CONSENT_HORIZON = timedelta(days=30)


def days_in_stage(s: ParticipantState, today: date) -> int:
    return (today - s.stage_since).days if s.stage_since else 0


def days_in_program(s: ParticipantState, today: date) -> int:
    if s.admitted_on is None:
        return 0
    end = date.fromisoformat(s.discharge["effective_on"]) if s.discharge else today
    return (end - s.admitted_on).days


def flags(s: ParticipantState, policy: ProgramPolicy, today: date) -> list[str]:
    """What asks for action today: on an active record, the program's own flags; on a
    discharged one, a follow-up whose window has come."""
    if s.status == "discharged":
        due = next_follow_up_due(s, policy)
        return ["follow_up_due"] if due and due["due_on"] <= today.isoformat() else []
    if s.status != "active":
        return []
    found = []
    stage = policy.stage(s.stage)
    following = policy.next_stage(s.stage) if stage else None
    if stage and following and days_in_stage(s, today) >= stage.min_days:
        found.append("review_due")
    if any(x["due_on"] and date.fromisoformat(x["due_on"]) < today for x in s.open_sanctions):
        found.append("sanction_overdue")
    if policy.drug_tests.positive_requires_confirmation and any(
            sp["result"] == "positive" and sp["confirmation"] is None
            for sp in s.specimens.values()):
        found.append("result_unconfirmed")
    if s.expected_release_on and s.expected_release_on - today <= RELEASE_HORIZON:
        found.append("release_within_90_days")
    if any(c["revoked_on"] is None and c["expires_on"]
           and today <= date.fromisoformat(c["expires_on"]) <= today + CONSENT_HORIZON
           for c in s.consents.values()):
        found.append("consent_expiring")
    if attendance_summary(s, policy, today)["below_requirement"]:
        found.append("attendance_below_requirement")
    return found
