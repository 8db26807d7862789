"""Community life, as rules on a participant's record: attendance at group sessions, peer
feedback (pull-ups and affirmations), mentors, follow-ups after discharge and recovery
supports; and what the record shows of them (attendance against the stage's requirement,
the next follow-up due).

A peer is never named in clear in a record. A command that involves two participants gets,
for each side, a `PeerSeal`: the id of a link between the two records and the other's id
sealed under that link's own key (sealing is infrastructure's business; the rules only
carry the sealed text). Erasing either participant destroys the link's key, so the other
record keeps the fact ("a pull-up from a peer") but no longer who it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain import attendance
from domain import events as ev
from domain.errors import InvalidValue, NotFound, RuleViolation
from domain.policy import ProgramPolicy
from domain.provenance import Provenance, new_id
from domain.state import ParticipantState

if TYPE_CHECKING:
    from domain.participant import Participant

ATTENDANCE_STATUSES: dict[str, type[ev.GroupAttendanceEvent]] = {
    "present": ev.GroupAttended, "late": ev.GroupAttended,
    "excused": ev.GroupMissed, "absent": ev.GroupMissed}
FEEDBACK_KINDS = ("pull-up", "affirmation")
OUTCOMES = ("abstinent", "relapsed", "rearrested", "reincarcerated", "employed_or_in_school",
            "stably_housed", "in_aftercare")
RECOVERY_SUPPORT_KINDS = ("peer-recovery-coach", "alumni-group", "mutual-aid",
                          "recovery-housing", "outpatient")
ATTENDANCE_WINDOW_DAYS = attendance.WINDOW_DAYS


@dataclass(frozen=True)
class Session:
    """What a roster needs to know of a group session (domain.groups)."""

    group_id: str
    kind: str
    facility: str
    held_at: datetime


@dataclass(frozen=True)
class PeerSeal:
    """The other participant as one record holds it: a link id and the sealed peer id."""

    link_id: str
    sealed: str


# Makes the link between two records when called: the rules call it only once they have
# passed, so that a refused command leaves no link key behind. `seals()` answers the peer
# as the first record holds it, then the first as the peer's record holds it.
Seals = Callable[[], tuple[PeerSeal, PeerSeal]]


# --- attendance ------------------------------------------------------------------------

def record_attendance(p: Participant, session: Session, *, by: Provenance, status: str,
                      note: str | None = None) -> bool:
    """Records one roster line. False: the same status was already recorded (a replay)."""
    kind = ATTENDANCE_STATUSES.get(status)
    if kind is None:
        raise InvalidValue("status", f"unknown status {status!r}; expected one of "
                           f"{', '.join(ATTENDANCE_STATUSES)}")
    taken = p.state.attendance.get(session.group_id)
    if taken is not None:
        if taken["status"] == status:
            return False
        raise RuleViolation("attendance-already-recorded",
                            f"this session is recorded as {taken['status']} for the "
                            "participant; correct that entry instead")
    p._active_at(session.held_at, by)
    if facility_at(p, session.held_at) != session.facility:
        raise RuleViolation("not-in-facility-at-session",
                            "the participant was not in the session's facility at its time")
    p.trigger_event(kind, **by.event_fields("", session.held_at), group_id=session.group_id,
                    kind=session.kind, facility=session.facility, held_at=session.held_at,
                    status=status, note=note)
    return True


def record_facilitation(p: Participant, session: Session, *, by: Provenance) -> None:
    """A resident leading a peer-led session: recorded on their own record, with the
    session. The peer must be active in the session's facility at its time."""
    p._active_at(session.held_at, by)
    if facility_at(p, session.held_at) != session.facility:
        raise RuleViolation("facilitator-not-in-facility",
                            "a peer facilitator is a participant of the session's facility "
                            "at its time")
    p.trigger_event(ev.GroupFacilitated, **by.event_fields("", session.held_at),
                    group_id=session.group_id, kind=session.kind, facility=session.facility,
                    held_at=session.held_at)


def facility_at(p: Participant, at: datetime) -> str | None:
    """Where the record placed the participant at a time: admission, then transfers (a
    transfer entered late takes effect from its own effective time)."""
    before = [f for when, _, f in sorted(p.state.placements) if when <= at]
    return before[-1] if before else None


def attendance_summary(state: ParticipantState, policy: ProgramPolicy,
                       today: date) -> dict[str, Any]:
    """The last 28 days by group kind against the current stage's weekly requirement
    (domain.attendance)."""
    return attendance.summary(attendance_lines(state), stage_requirement(policy, state.stage),
                              state.admitted_on, today, state.stage)


def attendance_lines(state: ParticipantState) -> list[attendance.Line]:
    return [attendance.line_of(entry) for entry in state.attendance.values()]


def stage_requirement(policy: ProgramPolicy, stage_code: str) -> dict[str, int]:
    """Sessions of each kind a resident of the stage is expected at, per week."""
    stage = policy.stage(stage_code)
    return dict(stage.groups_per_week) if stage is not None else {}


# --- peer feedback and mentors ---------------------------------------------------------

def record_peer_feedback(receiver: Participant, giver: Participant, *, by: Provenance,
                         kind: str, behaviour: str, observed_at: datetime, reason: str,
                         seals: Seals, infraction_id: str | None = None) -> str:
    """A pull-up or affirmation from `giver` to `receiver`, on both records. `seals`: the
    giver as the receiver's record holds it, then the receiver as the giver's does."""
    if kind not in FEEDBACK_KINDS:
        raise InvalidValue("kind", f"unknown kind {kind!r}; expected one of {FEEDBACK_KINDS}")
    if not behaviour.strip():
        raise InvalidValue("behaviour", "must not be empty")
    _two_people(receiver, giver, "from_participant")
    receiver._active_at(observed_at, by)
    _peer_active(giver, observed_at, by, "the participant giving the feedback")
    if facility_at(receiver, observed_at) != facility_at(giver, observed_at):
        raise RuleViolation("peer-not-in-facility",
                            "peer feedback is between participants of the same facility")
    if infraction_id is not None:
        if kind != "pull-up":
            raise InvalidValue("infraction_id", "only a pull-up becomes an infraction")
        if infraction_id not in receiver.state.infractions:
            raise NotFound("infraction", infraction_id)
    feedback_id, (held, holding) = new_id(), seals()
    for side, p, seal, infraction in (("received", receiver, held, infraction_id),
                                      ("given", giver, holding, None)):
        p.trigger_event(ev.PeerFeedbackRecorded, **by.event_fields(reason, observed_at),
                        feedback_id=feedback_id, kind=kind, side=side, link_id=seal.link_id,
                        peer=seal.sealed, behaviour=behaviour, observed_at=observed_at,
                        infraction_id=infraction)
    return feedback_id


def assign_mentor(mentee: Participant, mentor: Participant, policy: ProgramPolicy, *,
                  by: Provenance, at: datetime, reason: str, seals: Seals) -> str:
    """A senior resident mentoring a newer one, on both records. `seals`: the mentor as the
    mentee's record holds it, then the mentee as the mentor's does."""
    _two_people(mentee, mentor, "mentor_participant_id")
    mentee._active_at(at, by)
    _peer_active(mentor, at, by, "the mentor")
    if facility_at(mentee, at) != facility_at(mentor, at):
        raise RuleViolation("mentor-not-in-facility",
                            "a mentor is a participant of the same facility")
    if mentor.state.program != mentee.state.program \
            or policy.stage_rank(mentor.state.stage) <= policy.stage_rank(mentee.state.stage):
        raise RuleViolation("mentor-not-senior",
                            "a mentor is in a later stage of the program than the mentee")
    if any(m["side"] == "mentee" and m["ended_on"] is None
           for m in mentee.state.mentorships.values()):
        raise RuleViolation("mentor-already-assigned",
                            "the participant has a mentor; end that mentorship first")
    mentor_id, (held, holding) = new_id(), seals()
    for side, p, seal in (("mentee", mentee, held), ("mentor", mentor, holding)):
        p.trigger_event(ev.MentorAssigned, **by.event_fields(reason, at), mentor_id=mentor_id,
                        side=side, link_id=seal.link_id, peer=seal.sealed)
    return mentor_id


def end_mentor(p: Participant, *, by: Provenance, mentor_id: str, at: datetime,
               reason: str) -> None:
    """Ends a mentorship on one of its two records (a discharged one too: the discharge
    may be what ended it)."""
    p._recorded_at(at, by)
    mentorship = p.state.mentorships.get(mentor_id)
    if mentorship is None:
        raise NotFound("mentor", mentor_id)
    if mentorship["ended_on"] is not None:
        raise RuleViolation("mentor-ended", "that mentorship has already ended")
    if at.date().isoformat() < mentorship["started_on"]:
        raise InvalidValue("ended_on", "must not be before the mentorship started")
    p.trigger_event(ev.MentorEnded, **by.event_fields(reason, at), mentor_id=mentor_id)


def open_mentorships(p: Participant) -> list[dict[str, Any]]:
    return [m for m in p.state.mentorships.values() if m["ended_on"] is None]


def mentorships_ending(p: Participant) -> list[dict[str, Any]]:
    """The open mentorships that a discharge this command is recording ends."""
    return open_mentorships(p) if _pending_discharge(p) is not None else []


def end_mentorships_with_discharge(p: Participant, peers: Mapping[str, Participant]) -> None:
    """A mentorship lasts only while both are in the program: a discharge ends each open
    mentorship of the record, on its own record and on the other's (`peers`, by
    mentorship; absent when that record was erased), with the discharge's date and
    author, so that no record goes on naming a discharged mentor or mentee."""
    discharge = _pending_discharge(p)
    if discharge is None:
        return
    by = Provenance(discharge.actor_id, discharge.actor_role, discharge.source,
                    discharge.correlation_id, discharge.causation_id, now=discharge.timestamp)
    for m in open_mentorships(p):
        # A discharge entered with an earlier date ends it no earlier than it began.
        at = max(discharge.effective_at, _start_of(m["started_on"]))
        end_mentor(p, by=by, mentor_id=m["mentor_id"], at=at,
                   reason="ended with this participant's discharge")
        _end_other_side(peers.get(m["mentor_id"]), m["mentor_id"], by, at,
                        "ended with the other participant's discharge")


def end_mentorship_of_erased_peer(p: Participant, mentor_id: str, by: Provenance) -> None:
    """Ends, on the surviving record, a mentorship whose other record is being erased."""
    m = p.state.mentorships.get(mentor_id)
    if m is not None:
        _end_other_side(p, mentor_id, by, max(by.now, _start_of(m["started_on"])),
                        "ended: the other participant's record was erased")


def _end_other_side(p: Participant | None, mentor_id: str, by: Provenance, at: datetime,
                    reason: str) -> None:
    m = None if p is None else p.state.mentorships.get(mentor_id)
    if p is not None and m is not None and m["ended_on"] is None:
        end_mentor(p, by=by, mentor_id=mentor_id, at=at, reason=reason)


def _pending_discharge(p: Participant) -> ev.Discharged | None:
    return next((e for e in reversed(p.pending_events) if isinstance(e, ev.Discharged)), None)


def _start_of(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)


def peer_links(history: list[ev.ParticipantEvent]) -> list[str]:
    """Every link this record ever made to a peer, voided entries too: erasing the record
    destroys each link's key."""
    links = [e.link_id for e in history
             if isinstance(e, ev.PeerFeedbackRecorded | ev.MentorAssigned)]
    return list(dict.fromkeys(links))


def _two_people(p: Participant, peer: Participant, field: str) -> None:
    if p.id == peer.id:
        raise InvalidValue(field, "names the participant themselves; a peer is someone else")


def _peer_active(peer: Participant, at: datetime, by: Provenance, who: str) -> None:
    if peer.state.status != "active":
        raise RuleViolation("peer-not-active", f"{who} is not an active participant")
    peer._recorded_at(at, by)


# --- aftercare -------------------------------------------------------------------------

def record_follow_up(p: Participant, policy: ProgramPolicy, *, by: Provenance, window: str,
                     at: datetime, method: str, reached: bool,
                     outcomes: dict[str, bool | None], reason: str) -> str:
    if p.state.status != "discharged" or p.state.discharge is None:
        raise RuleViolation("follow-up-before-discharge",
                            "a follow-up is recorded on a discharged record only")
    if policy.follow_up_window(window) is None:
        raise InvalidValue("window", f"unknown window {window!r}; expected one of "
                           f"{', '.join(w.code for w in policy.follow_up_windows)}")
    p._recorded_at(at, by)
    if at.date().isoformat() < p.state.discharge["effective_on"]:
        raise InvalidValue("contacted_on", "must not be before the discharge")
    if not method.strip():
        raise InvalidValue("method", "must not be empty")
    follow_up_id = new_id()
    p.trigger_event(ev.FollowUpRecorded, **by.event_fields(reason, at),
                    follow_up_id=follow_up_id, window=window, method=method, reached=reached,
                    outcomes=checked_outcomes(reached, outcomes, "outcomes"))
    return follow_up_id


def checked_outcomes(reached: bool, outcomes: dict[str, Any],
                     field: str) -> dict[str, bool | None]:
    """Every outcome, true, false or null (unknown); none known without reaching the person."""
    if not isinstance(outcomes, dict):
        raise InvalidValue(field, "expected an object of outcomes")
    for name, value in outcomes.items():
        if name not in OUTCOMES:
            raise InvalidValue(f"{field}.{name}", f"unknown outcome; expected one of "
                               f"{', '.join(OUTCOMES)}")
        if value is not None and not isinstance(value, bool):
            raise InvalidValue(f"{field}.{name}", "expected true, false or null (unknown)")
    full: dict[str, bool | None] = {name: outcomes.get(name) for name in OUTCOMES}
    if not reached and any(v is not None for v in full.values()):
        raise InvalidValue(field, "a follow-up that did not reach the person knows no outcome")
    return full


def next_follow_up_due(state: ParticipantState, policy: ProgramPolicy) -> dict[str, Any] | None:
    """The earliest window with no follow-up that reached the person, and its due date."""
    if state.status != "discharged" or state.discharge is None:
        return None
    discharged = date.fromisoformat(state.discharge["effective_on"])
    done = {f["window"] for f in state.follow_ups.values() if f["reached"]}
    for window in policy.follow_up_windows:
        if window.code not in done:
            due = discharged + timedelta(days=window.days)
            return {"window": window.code, "due_on": due.isoformat()}
    return None


def link_recovery_support(p: Participant, *, by: Provenance, kind: str,
                          provider: str | None, at: datetime, reason: str) -> str:
    """A link into the community of recovery: before or after discharge."""
    if kind not in RECOVERY_SUPPORT_KINDS:
        raise InvalidValue("kind", f"unknown kind {kind!r}; expected one of "
                           f"{', '.join(RECOVERY_SUPPORT_KINDS)}")
    p._recorded_at(at, by)
    support_id = new_id()
    p.trigger_event(ev.RecoverySupportLinked, **by.event_fields(reason, at),
                    support_id=support_id, kind=kind, provider=provider)
    return support_id


def end_recovery_support(p: Participant, *, by: Provenance, support_id: str, at: datetime,
                         reason: str) -> None:
    p._recorded_at(at, by)
    support = p.state.recovery_supports.get(support_id)
    if support is None:
        raise NotFound("recovery support", support_id)
    if support["ended_on"] is not None:
        raise RuleViolation("recovery-support-ended", "that recovery support has already ended")
    if at.date().isoformat() < support["started_on"]:
        raise InvalidValue("ended_on", "must not be before the support started")
    p.trigger_event(ev.RecoverySupportEnded, **by.event_fields(reason, at),
                    support_id=support_id)
