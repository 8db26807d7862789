"""Corrections and voids that leave the record as consistent as the first entry left it.

A correction changes how an earlier entry reads and a void leaves it out; the state is then
refolded from the history. The command that first recorded an entry checked the program's
rules and derived some fields from the policy. An amendment keeps what that command
guaranteed, because counselors act on the refolded record and auditors must be able to trust
that it never showed what no command would have allowed:

- a derived field follows what it derives from: a discharge's category, success and
  reinstatement date follow its type and date, an infraction's rule class its code, a test's
  validity and substances its result; the correction records them explicitly, so the stored
  correction says everything that changed;
- what an entry caused in the same command (privileges suspended by a sanction, revoked by a
  regression or a discharge, restored when a sanction closed) is voided with it, and cannot
  be amended on its own;
- an entry that later entries build on (a result under a confirmation, a sanction that was
  closed, the stage a later stage decision left) is not voided from under them;
- the refolded record must not break a rule it kept before. Otherwise the amendment is
  refused with a RuleViolation naming the rule, and nothing is recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from domain import events as ev
from domain.disclosure import EXPIRY_EVENTS, expiry_event_code
from domain.drug_tests import VALIDITY_OF_RESULT, disagreement
from domain.errors import InvalidValue, RuleViolation
from domain.policy import ProgramPolicy
from domain.state import ParticipantState

History = Sequence[ev.ParticipantEvent]
Changes = dict[int, dict[str, Any]]

STAGE_DECISIONS = (ev.StageEvent, ev.StageHeld)
PRIVILEGE_ENTRIES = (ev.PrivilegeGranted, ev.PrivilegeRevoked, ev.PrivilegeSuspended,
                     ev.PrivilegeRestored)
# Entries that refer to an earlier one by its id: the later ones build on the earlier.
BUILDS_ON: tuple[tuple[type[ev.ParticipantEvent], tuple[type[ev.ParticipantEvent], ...], str],
                 ...] = (
    (ev.SpecimenCollected, (ev.TestResulted, ev.ResultConfirmed, ev.ResultReviewed,
                            ev.ResultDisputed), "specimen_id"),
    (ev.TestResulted, (ev.ResultConfirmed, ev.ResultReviewed, ev.ResultDisputed),
     "specimen_id"),
    (ev.InfractionRecorded, (ev.SanctionImposed, ev.PeerFeedbackRecorded), "infraction_id"),
    (ev.SanctionImposed, (ev.SanctionClosed,), "sanction_id"),
    (ev.JobFunctionAssigned, (ev.JobFunctionEnded,), "job_id"),
    (ev.ConsentGiven, (ev.ConsentRevoked, ev.DisclosureMade), "consent_id"),
    (ev.AmendmentRequested, (ev.AmendmentDenied, ev.DisagreementFiled), "amendment_id"),
    (ev.AmendmentDenied, (ev.DisagreementFiled,), "amendment_id"),
    (ev.MentorAssigned, (ev.MentorEnded,), "mentor_id"),
    (ev.RecoverySupportLinked, (ev.RecoverySupportEnded,), "support_id"),
)
# What no command records on a discharged record: their dates bound a discharge's date.
AFTER_DISCHARGE = (ev.ConsentGiven, ev.ConsentRevoked, ev.DisclosureMade,
                   ev.AftercareHandoffSent, ev.AmendmentRequested, ev.AmendmentDenied,
                   ev.DisagreementFiled, ev.LegalHoldPlaced, ev.LegalHoldReleased,
                   ev.Discharged, ev.FollowUpRecorded, ev.RecoverySupportLinked,
                   ev.RecoverySupportEnded, ev.MentorEnded)


# --- reading a history -----------------------------------------------------------------

def amendments(history: History) -> tuple[set[int], Changes]:
    """The versions voided, and the accumulated field changes of each corrected version.
    `history` is a whole stream: the entry of version v stands at index v - 1."""
    voided: set[int] = set()
    changes: Changes = {}
    for e in history:
        if isinstance(e, ev.EntryVoided):
            voided.add(e.supersedes_version)
        elif isinstance(e, ev.EntryCorrected):
            # Upcast each correction before the next one lands on it: a later correction in
            # today's field names must win over an earlier one in a field's older name.
            target = type(history[e.supersedes_version - 1])
            changes.setdefault(e.supersedes_version, {}).update(
                target.upcast_changes(e.changes))
    return voided, changes


def live_entries(history: History, voided: set[int],
                 changes: Changes) -> list[ev.ParticipantEvent]:
    """The entries the record shows: corrections applied, voids and amendments left out."""
    live = []
    for e in history:
        if e.originator_version in voided or isinstance(e, ev.EntryCorrected | ev.EntryVoided):
            continue
        if e.originator_version in changes:
            e = dataclasses.replace(e, **changes[e.originator_version])
        live.append(e)
    return live


def fold_entries(entries: Iterable[ev.ParticipantEvent]) -> ParticipantState:
    state = ParticipantState()
    for e in entries:
        e.evolve(state)
    return state


# --- voids -----------------------------------------------------------------------------

@dataclass(frozen=True)
class VoidPlan:
    """The versions to void (the entry first, then what it caused) and the privileges that
    the stage the record returns to does not allow, to revoke in the same transaction."""

    versions: tuple[int, ...]
    revoke: tuple[str, ...]


def plan_void(policy: ProgramPolicy | None, history: History, version: int) -> VoidPlan:
    voided, changes = amendments(history)
    entries = live_entries(history, voided, changes)
    target = _reading(entries, version)
    _not_a_consequence(target)
    gone = (version, *consequences(history, voided, target))
    after = live_entries(history, voided | set(gone), changes)
    blockers = [e for e in entries if e.originator_version > version
                and e.originator_version not in gone
                and any(_builds_on(e, x) for x in entries if x.originator_version in gone)]
    if blockers:
        raise RuleViolation("later-entries-depend",
                            f"later entries build on version {version}: "
                            f"{_named(blockers)}; void those first, latest first")
    state = fold_entries(after)
    if isinstance(target, STAGE_DECISIONS):
        # Voiding a stage decision moves the record back down (or up) the ladder: like a
        # regression, it takes away in the same transaction what the stage does not allow.
        if policy is None:
            if state.privileges:
                raise RuleViolation("void-needs-program-policy",
                                    "voiding a stage decision re-checks privileges against "
                                    "the program policy")
            return VoidPlan(gone, ())
        return VoidPlan(gone, tuple(sorted(_disallowed(policy, state))))
    if policy is not None:
        _no_new_violation(policy, fold_entries(entries), state)
    return VoidPlan(gone, ())


def consequences(history: History, voided: set[int],
                 cause: ev.ParticipantEvent) -> tuple[int, ...]:
    """The live entries recorded by the same command as `cause`, because of it.

    They stand next to it in the stream: a discharge revokes privileges just before it, a
    sanction suspends and a closing or a regression restores or revokes just after it."""
    def caused(e: ev.ParticipantEvent) -> bool:
        ref = getattr(e, "caused_by", None)
        if isinstance(cause, ev.Discharged):
            return isinstance(e, ev.PrivilegeRevoked) and ref == "discharge"
        if isinstance(cause, ev.StageRegressed):
            return (isinstance(e, ev.PrivilegeRevoked)
                    and ref == f"stage-regression:v{cause.originator_version}")
        if isinstance(cause, ev.SanctionImposed):
            return isinstance(e, ev.PrivilegeSuspended) and ref == cause.sanction_id
        if isinstance(cause, ev.SanctionCompleted | ev.SanctionRescinded):
            return isinstance(e, ev.PrivilegeRestored) and ref == cause.sanction_id
        return False

    step = -1 if isinstance(cause, ev.Discharged) else 1
    found = []
    v = cause.originator_version + step
    while 1 <= v <= len(history) and caused(history[v - 1]):
        if v not in voided:
            found.append(v)
        v += step
    return tuple(sorted(found))


def _builds_on(later: ev.ParticipantEvent, earlier: ev.ParticipantEvent) -> bool:
    if isinstance(later, STAGE_DECISIONS) and isinstance(earlier, STAGE_DECISIONS):
        return True  # each stage decision starts from the stage the one before left
    if isinstance(later, PRIVILEGE_ENTRIES) and isinstance(earlier, PRIVILEGE_ENTRIES):
        return later.privilege == earlier.privilege
    return any(isinstance(earlier, kind) and isinstance(later, followers)
               and getattr(later, key) == getattr(earlier, key)
               for kind, followers, key in BUILDS_ON)


def _not_a_consequence(target: ev.ParticipantEvent) -> None:
    cause = getattr(target, "caused_by", None)
    if cause is not None:
        raise RuleViolation("entry-is-consequence",
                            f"version {target.originator_version} was recorded because of "
                            "another entry; correct or void that entry instead")


# --- corrections -----------------------------------------------------------------------

def plan_correction(policy: ProgramPolicy, history: History, version: int,
                    changes: dict[str, Any]) -> dict[str, Any]:
    """The changes to record: the caller's and the fields derived from them. Raises when the
    record refolded with them would break a rule that it kept before."""
    voided, pending = amendments(history)
    entries = live_entries(history, voided, pending)
    current = _reading(entries, version)
    _not_a_consequence(current)
    before = fold_entries(e for e in entries if e.originator_version < version)
    full = _derive(policy, current, before, changes)
    corrected = dataclasses.replace(current, **full)
    pending = {**pending, version: {**pending.get(version, {}), **full}}
    after = live_entries(history, voided, pending)
    earlier = [e for e in after if e.originator_version < version]
    later = [e for e in after if e.originator_version > version]
    _check(policy, corrected, before, later, full)
    if "effective_at" in full:
        _check_discharge_order(corrected, earlier, later)
    if isinstance(corrected, STAGE_DECISIONS) and "effective_at" in full:
        _check_ladder(policy, after)
    _no_new_violation(policy, fold_entries(entries), fold_entries(after))
    return full


def _derive(policy: ProgramPolicy, current: ev.ParticipantEvent, before: ParticipantState,
            changes: dict[str, Any]) -> dict[str, Any]:
    full = dict(changes)
    if isinstance(current, ev.Discharged):
        _derive_discharge(policy, current, full)
    elif isinstance(current, ev.InfractionRecorded) and "code" in changes:
        full["rule_class"] = policy.infractions[changes["code"]].rule_class
    elif isinstance(current, ev.TestResulted):
        result = changes.get("result")
        if result is not None and "validity" not in changes:
            full["validity"] = VALIDITY_OF_RESULT[result]
        if result not in (None, "positive") and "substances" not in changes:
            full["substances"] = []  # a negative names no substance: the old ones go
        _follow(current, full, "resulted_at")
    elif isinstance(current, ev.SpecimenCollected):
        _follow(current, full, "collected_at")
    elif isinstance(current, ev.StagePromoted) and "effective_at" in changes:
        assert before.stage_since is not None
        full["days_in_stage"] = (changes["effective_at"].date() - before.stage_since).days
    # Record only what changes: a derived field that keeps its value is not news.
    return {k: v for k, v in full.items() if k in changes or getattr(current, k) != v}


def _derive_discharge(policy: ProgramPolicy, current: ev.Discharged,
                      full: dict[str, Any]) -> None:
    kind = policy.discharge_types.get(full.get("discharge_type", current.discharge_type))
    if kind is None:
        return  # a type no longer in the policy keeps what was derived when it was
    if "discharge_type" in full:
        full["category"], full["successful"] = kind.category, kind.successful
    day = full.get("effective_at", current.effective_at).date()
    explicit = full.get("reinstatement_eligible_on")
    if "reinstatement_eligible_on" in full:
        if explicit is not None and kind.reinstatement_after_days is None:
            raise RuleViolation("reinstatement-not-applicable",
                                f"a {kind.code} discharge carries no reinstatement date")
        if explicit is not None and explicit <= day:
            raise InvalidValue("changes.reinstatement_eligible_on",
                               "must be after the discharge date")
    elif "discharge_type" in full or "effective_at" in full:
        full["reinstatement_eligible_on"] = (
            day + timedelta(days=kind.reinstatement_after_days)
            if kind.reinstatement_after_days is not None else None)


def _follow(current: ev.ParticipantEvent, full: dict[str, Any], moment: str) -> None:
    """The effective time of an entry dated by its own moment (a collection, a result)
    moves with that moment, unless it was set apart from it."""
    if moment in full and "effective_at" not in full \
            and current.effective_at == getattr(current, moment):
        full["effective_at"] = full[moment]


def _check(policy: ProgramPolicy, e: ev.ParticipantEvent, before: ParticipantState,
           later: list[ev.ParticipantEvent], changed: dict[str, Any]) -> None:
    """The rules the command that recorded `e` checked, re-checked on its corrected reading."""
    if isinstance(e, ev.ParticipantAdmitted):
        _check_admission(e)
    elif isinstance(e, ev.TestResulted):
        _check_result(e, before, later)
    elif isinstance(e, ev.ResultConfirmed) and e.confirmed and not e.substances:
        raise RuleViolation("result-substances-inconsistent",
                            "a confirmed positive names its substances")
    elif isinstance(e, ev.SpecimenCollected):
        for r in later:
            if isinstance(r, ev.TestResulted) and r.specimen_id == e.specimen_id \
                    and r.resulted_at < e.collected_at:
                raise InvalidValue("changes.collected_at",
                                   f"must not be after the result of version "
                                   f"{r.originator_version}")
    elif isinstance(e, ev.InfractionRecorded):
        _check_sanction_grades(policy, e, later)
    elif isinstance(e, ev.ConsentGiven):
        _check_consent(e, later)
    elif isinstance(e, ev.FollowUpRecorded):
        _check_follow_up(e, before)
    _check_window(e, changed)


def _check_admission(e: ev.ParticipantAdmitted) -> None:
    if e.date_of_birth >= e.admitted_on:
        raise InvalidValue("changes.date_of_birth", "must be before the admission date")
    if e.expected_release_on is not None and e.expected_release_on < e.admitted_on:
        raise InvalidValue("changes.expected_release_on",
                           "must not be before the admission date")
    for kind, ident in e.external_ids.items():
        if not kind or not isinstance(ident, dict) \
                or not isinstance(ident.get("value"), str) or not ident["value"].strip() \
                or not all(isinstance(v, str | None) for v in ident.values()):
            raise InvalidValue(f"changes.external_ids.{kind}",
                               "expected {\"value\": ..., \"issuer\": ...} with a value")
    if "DOC" not in e.external_ids:
        raise InvalidValue("changes.external_ids.DOC",
                           "the DOC number cannot be removed; correct its value")


def _check_result(e: ev.TestResulted, before: ParticipantState,
                  later: list[ev.ParticipantEvent]) -> None:
    problem = disagreement(e.result, e.substances)
    if problem is not None:
        raise RuleViolation("result-substances-inconsistent",
                            f"changes.{problem[0]}: {problem[1]}")
    specimen = before.specimens.get(e.specimen_id)
    if specimen is not None and e.resulted_at.isoformat() < specimen["collected_at"]:
        raise InvalidValue("changes.resulted_at", "must not be before the collection time")
    # Confirmation and medical review follow a positive only; a dispute an adverse result.
    needs_positive = (ev.ResultConfirmed, ev.ResultReviewed)
    blockers = [f for f in later if getattr(f, "specimen_id", None) == e.specimen_id and (
        (isinstance(f, needs_positive) and e.result != "positive")
        or (isinstance(f, ev.ResultDisputed) and e.result == "negative"))]
    if blockers:
        raise RuleViolation("later-entries-depend",
                            f"a {e.result} result cannot stand under {_named(blockers)}; "
                            "void those first, latest first")


def _check_sanction_grades(policy: ProgramPolicy, e: ev.InfractionRecorded,
                           later: list[ev.ParticipantEvent]) -> None:
    bounds = policy.rule_classes.get(e.rule_class)
    for s in later:
        if isinstance(s, ev.SanctionImposed) and s.infraction_id == e.infraction_id \
                and bounds is not None and not s.override \
                and not bounds.min_severity <= s.severity <= bounds.max_severity:
            raise RuleViolation("sanction-out-of-grade",
                                f"the sanction of version {s.originator_version} (severity "
                                f"{s.severity}) is out of grade for a {e.rule_class} "
                                "infraction; correct or void it first")


def _check_consent(e: ev.ConsentGiven, later: list[ev.ParticipantEvent]) -> None:
    # Unlike a new consent, a corrected expiry may lie in the past (the consent may have
    # lapsed since); what it may not do is leave a disclosure made under it uncovered:
    # that would turn a lawful disclosure into an unlawful one by a stroke of the pen.
    if e.expires_on is None and not e.expiry_event:
        raise InvalidValue("changes.expires_on", "a consent needs an expiry date or event")
    if e.expires_on is None and expiry_event_code(e.expiry_event) is None:
        raise InvalidValue("changes.expiry_event", "tcledger cannot see this event happen; "
                           f"name one of {', '.join(EXPIRY_EVENTS)} or give expires_on too")
    for d in later:
        if isinstance(d, ev.DisclosureMade) and d.consent_id == e.consent_id \
                and e.expires_on is not None and d.effective_on > e.expires_on:
            raise RuleViolation("disclosure-outside-consent",
                                f"the disclosure of version {d.originator_version} was made "
                                "after that expiry date; request an amendment instead")


def _check_follow_up(e: ev.FollowUpRecorded, before: ParticipantState) -> None:
    from domain.community import checked_outcomes  # not at the top: community builds on this

    checked_outcomes(e.reached, e.outcomes, "changes.outcomes")
    if before.discharge is not None and e.effective_on.isoformat() < \
            before.discharge["effective_on"]:
        raise InvalidValue("changes.effective_at", "must not be before the discharge")


def _check_discharge_order(e: ev.ParticipantEvent, earlier: list[ev.ParticipantEvent],
                           later: list[ev.ParticipantEvent]) -> None:
    """Program activity takes effect before the discharge that ended the program: a
    discharge is not dated before it, and it is not dated after a discharge."""
    if isinstance(e, ev.Discharged):
        active = [a for a in earlier if not isinstance(a, AFTER_DISCHARGE)
                  and getattr(a, "caused_by", None) != "discharge"
                  and a.effective_on > e.effective_on]
        if active:
            raise RuleViolation("effective-date-out-of-order",
                                f"{_named(active[-1:])} took effect after that date; a "
                                "discharge comes after the program activity it ends")
    elif not isinstance(e, AFTER_DISCHARGE):
        for d in later:
            if isinstance(d, ev.Discharged) and e.effective_on > d.effective_on:
                raise RuleViolation("effective-date-out-of-order",
                                    f"the record was discharged by version "
                                    f"{d.originator_version} before that date")


def _check_window(e: ev.ParticipantEvent, changed: dict[str, Any]) -> None:
    """An `until` or due date stays after the effective date it was checked against."""
    if not {"until", "due_on", "effective_at"} & changed.keys():
        return
    day = e.effective_on
    until: date | None = getattr(e, "until", None)
    if until is not None and until <= day:
        raise InvalidValue("changes.until", "must be after the effective date")
    due: date | None = getattr(e, "due_on", None)
    if due is not None and due < day:
        raise InvalidValue("changes.due_on", "must not be before the effective date")


def _check_ladder(policy: ProgramPolicy, entries: list[ev.ParticipantEvent]) -> None:
    """Stage decisions in order, each after the stage it leaves began, and each promotion
    after that stage's minimum days unless a supervisor's override was recorded with it."""
    state = ParticipantState()
    for e in entries:
        if isinstance(e, ev.StageEvent) and state.stage_since is not None:
            days = (e.effective_on - state.stage_since).days
            if days < 0:
                raise RuleViolation("effective-before-current-stage",
                                    f"version {e.originator_version} would take effect before "
                                    "the stage it leaves began")
            stage = policy.stage(e.from_stage)
            if isinstance(e, ev.StagePromoted) and not e.override and stage is not None \
                    and days < stage.min_days:
                raise RuleViolation("promotion-before-minimum-days",
                                    f"version {e.originator_version} would come after {days} "
                                    f"of {stage.min_days} days in {stage.code}; a correction "
                                    "cannot add an override")
        e.evolve(state)


# --- the record as a whole -------------------------------------------------------------

def _disallowed(policy: ProgramPolicy, state: ParticipantState) -> set[str]:
    stage = policy.stage(state.stage)
    allowed = stage.privileges if stage is not None else ()
    return {p for p in state.privileges if p not in allowed}


def _no_new_violation(policy: ProgramPolicy, was: ParticipantState,
                      now: ParticipantState) -> None:
    """An amendment need not cure an old inconsistency, but must not make a new one."""
    if now.status != "active" and set(now.privileges) - set(was.privileges):
        raise RuleViolation("participant-discharged",
                            "the record would hold a privilege after its discharge")
    new = _disallowed(policy, now) - _disallowed(policy, was)
    if new:
        raise RuleViolation("privilege-not-allowed-in-stage",
                            f"the record would hold {', '.join(sorted(new))} in {now.stage}, "
                            "which does not allow it")


def _reading(entries: list[ev.ParticipantEvent], version: int) -> ev.ParticipantEvent:
    for e in entries:
        if e.originator_version == version:
            return e
    raise AssertionError(f"version {version} is not live")  # the caller checked


def _named(entries: Iterable[ev.ParticipantEvent]) -> str:
    return ", ".join(f"version {e.originator_version} ({type(e).__name__})" for e in entries)
