"""The participant aggregate: a resident's whole TC record and the rules that guard it.

Each command method checks the program's rules against the current state and the policy,
then records facts; nothing is recorded when a rule refuses. State is only ever produced
by folding the recorded facts (see `fold`), so a correction or a void simply refolds the
history with the superseded entry changed or left out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_type_hints

from eventsourcing.domain import Aggregate

from domain import events as ev
from domain.amendment import amendments, fold_entries, live_entries, plan_correction, plan_void
from domain.coercion import coerce_changes
from domain.community import RECOVERY_SUPPORT_KINDS
from domain.disclosure import EXPIRY_EVENTS, expiry_event_code
from domain.drug_tests import (
    RESULTS,
    REVIEW_OUTCOMES,
    VALIDITIES,
    VALIDITY_OF_RESULT,
    checked_substances,
    disagreement,
)
from domain.errors import InvalidValue, NotFound, RuleViolation
from domain.policy import DISCHARGE_CATEGORIES, ProgramPolicy
from domain.provenance import CLOCK_SKEW, Provenance, new_id
from domain.state import ParticipantState

__all__ = ["RESULTS", "REVIEW_OUTCOMES", "VALIDITIES", "VALIDITY_OF_RESULT", "Participant",
           "fold"]

REPORTER_KINDS = ("staff", "peer")
CONSENT_CATEGORIES = ("admission-and-status", "stage-progress", "sanctions", "drug-tests",
                      "discharge", "treatment-participation", "aftercare")
REDISCLOSURE_NOTICE = ("42 CFR part 2 prohibits unauthorized use or disclosure of these "
                       "records.")


def fold(history: list[ev.ParticipantEvent]) -> ParticipantState:
    """The state that a history shows, with corrections applied and voided entries left out."""
    return fold_entries(live_entries(history, *amendments(history)))


class Participant(Aggregate):
    """One participant's record. Its id is random, never derived from an external id."""

    def __init__(self) -> None:
        self.state = ParticipantState()
        self._history: list[ev.ParticipantEvent] | None = []
        self._earlier: Callable[[], list[ev.ParticipantEvent]] | None = None
        self._last: ev.ParticipantEvent | None = None
        self.amended: dict[int, str] = {}

    @property
    def history(self) -> list[ev.ParticipantEvent]:
        """Every event of the record, in order. A record restored from a snapshot decodes
        its events only when first asked for them: showing the record needs its state only."""
        history = self._history
        if history is None:
            assert self._earlier is not None
            history = self._history = self._earlier()
            self._earlier = self._last = None
        return history

    @history.setter
    def history(self, events: list[ev.ParticipantEvent]) -> None:
        self._history, self._earlier, self._last = events, None, None

    def defer_history(self, load: Callable[[], list[ev.ParticipantEvent]],
                      last: ev.ParticipantEvent) -> None:
        """Restored from a snapshot: `load` decodes the events when they are first needed."""
        self._history, self._earlier, self._last = None, load, last

    @property
    def last_event(self) -> ev.ParticipantEvent | None:
        if self._history is None:
            return self._last
        return self._history[-1] if self._history else None

    def take(self, event: ev.ParticipantEvent) -> None:
        self.history.append(event)
        if isinstance(event, ev.EntryCorrected | ev.EntryVoided):
            self.amended[event.supersedes_version] = type(event).__name__
            self.state = fold(self.history)
        else:
            event.evolve(self.state)

    def __deepcopy__(self, memo: dict[int, Any]) -> Participant:
        # Events are immutable: a copy needs its own state and lists, not copies of events.
        clone = object.__new__(Participant)
        clone.__dict__.update(self.__dict__)
        clone.state = copy.deepcopy(self.state, memo)
        if self._history is not None:
            clone.history = list(self.history)
        # else: still undecoded, and the copy decodes its own list when it needs one
        clone.amended = dict(self.amended)
        clone._pending_events = list(self._pending_events)
        return clone

    # --- admission -----------------------------------------------------------------------

    @classmethod
    def admit(cls, policy: ProgramPolicy, *, by: Provenance, facility: str, unit: str,
              external_ids: dict[str, dict[str, str]], given_name: str, family_name: str,
              date_of_birth: date, admitted_on: date, expected_release_on: date | None,
              counselor_id: str | None, referral_source: str | None,
              program_agreement_signed: bool, reason: str,
              assessments: list[dict[str, Any]]) -> Participant:
        at = _start_of(admitted_on)
        _not_future(at, by, "admitted_on")
        if date_of_birth >= admitted_on:
            raise InvalidValue("date_of_birth", "must be before the admission date")
        if expected_release_on is not None and expected_release_on < admitted_on:
            raise InvalidValue("expected_release_on", "must not be before the admission date")
        for kind, ident in external_ids.items():
            if not kind or not ident.get("value", "").strip():
                raise InvalidValue("external_ids", f"{kind or 'an id'} has no value")
        participant = cls._create(
            ev.ParticipantAdmitted, **by.event_fields(reason, at),
            program=policy.code, facility=facility, unit=unit, external_ids=external_ids,
            given_name=given_name, family_name=family_name, date_of_birth=date_of_birth,
            admitted_on=admitted_on, expected_release_on=expected_release_on,
            counselor_id=counselor_id, referral_source=referral_source,
            program_agreement_signed=program_agreement_signed,
            first_stage=policy.first_stage.code)
        for assessment in assessments:
            participant.record_assessment(by=by, at=at, **assessment)
        return participant

    def assign_counselor(self, *, by: Provenance, counselor_id: str, at: datetime,
                         reason: str) -> None:
        self._active_at(at, by)
        if counselor_id == self.state.counselor_id:
            raise RuleViolation("counselor-unchanged", "that counselor is already assigned")
        self.trigger_event(ev.CounselorAssigned, **by.event_fields(reason, at),
                           counselor_id=counselor_id,
                           previous_counselor_id=self.state.counselor_id)

    def transfer(self, *, by: Provenance, facility: str, unit: str, at: datetime,
                 reason: str) -> None:
        self._active_at(at, by)
        if (facility, unit) == (self.state.facility, self.state.unit):
            raise RuleViolation("transfer-to-same-unit", "the participant is already there")
        self.trigger_event(ev.ParticipantTransferred, **by.event_fields(reason, at),
                           facility=facility, unit=unit, previous_facility=self.state.facility,
                           previous_unit=self.state.unit)

    def change_release_date(self, *, by: Provenance, expected_release_on: date | None,
                            at: datetime, reason: str) -> None:
        self._active_at(at, by)
        self.trigger_event(ev.ReleaseDateChanged, **by.event_fields(reason, at),
                           expected_release_on=expected_release_on)

    def record_assessment(self, *, by: Provenance, at: datetime, instrument: str,
                          score: float | None = None, risk_level: str | None = None,
                          instrument_version: str | None = None,
                          subscales: dict[str, float] | None = None,
                          level_of_care: str | None = None, assessor: str | None = None,
                          reason: str = "") -> str:
        self._active_at(at, by)
        if not instrument.strip():
            raise InvalidValue("instrument", "must not be empty")
        assessment_id = new_id()
        self.trigger_event(ev.AssessmentRecorded, **by.event_fields(reason, at),
                           assessment_id=assessment_id, instrument=instrument,
                           instrument_version=instrument_version, score=score,
                           subscales=dict(subscales or {}), risk_level=risk_level,
                           level_of_care=level_of_care, assessor=assessor)
        return assessment_id

    # --- stages --------------------------------------------------------------------------

    def promote(self, policy: ProgramPolicy, *, by: Provenance, to_stage: str, at: datetime,
                reason: str, override: bool = False,
                review: dict[str, Any] | None = None) -> None:
        self._active_at(at, by)
        self._known_stage(policy, to_stage)
        current = policy.stage(self.state.stage)
        assert current is not None
        following = policy.next_stage(current.code)
        if following is None:
            raise RuleViolation("no-next-stage", f"{current.code} is the last stage")
        if to_stage != following.code:
            raise RuleViolation("promotion-not-next-stage",
                                f"promotion from {current.code} goes to {following.code} only")
        days = self._days_in_stage(at)
        early = days < current.min_days
        until = self.state.stage_held_until
        held = self.state.stage_held and (until is None or at.date() < until)
        if (early or held) and not override:
            if held:
                raise RuleViolation("stage-on-hold", "the stage is held; promotion needs an "
                                    "override by a supervisor")
            raise RuleViolation("promotion-before-minimum-days",
                                f"{days} of {current.min_days} days in {current.code}; "
                                "an override by a supervisor is needed")
        if override and not by.is_supervisor:
            raise RuleViolation("override-requires-supervisor",
                                "only a supervisor may override a program rule")
        self.trigger_event(ev.StagePromoted, **by.event_fields(reason, at),
                           from_stage=current.code, to_stage=to_stage,
                           override=bool(override and (early or held)), days_in_stage=days,
                           review=dict(review or {}))

    def regress(self, policy: ProgramPolicy, *, by: Provenance, to_stage: str, at: datetime,
                reason: str) -> None:
        self._active_at(at, by)
        self._known_stage(policy, to_stage)
        if policy.stage_rank(to_stage) >= policy.stage_rank(self.state.stage):
            raise RuleViolation("regression-not-lower",
                                f"{to_stage} is not below {self.state.stage}")
        self._days_in_stage(at)
        self.trigger_event(ev.StageRegressed, **by.event_fields(reason, at),
                           from_stage=self.state.stage, to_stage=to_stage)
        self._revoke_disallowed(policy, by, at, f"stage-regression:v{self.version}")

    def repeat_stage(self, policy: ProgramPolicy, *, by: Provenance, at: datetime,
                     reason: str) -> None:
        self._active_at(at, by)
        self._days_in_stage(at)
        self.trigger_event(ev.StageRepeated, **by.event_fields(reason, at),
                           from_stage=self.state.stage, to_stage=self.state.stage)

    def hold_stage(self, *, by: Provenance, at: datetime, reason: str,
                   until: date | None = None) -> None:
        self._active_at(at, by)
        if until is not None and until <= at.date():
            raise InvalidValue("until", "must be after the effective date")
        self.trigger_event(ev.StageHeld, **by.event_fields(reason, at),
                           stage=self.state.stage, until=until)

    # --- community roles -----------------------------------------------------------------

    def assign_job_function(self, *, by: Provenance, function: str, at: datetime,
                            reason: str) -> str:
        self._active_at(at, by)
        if not function.strip():
            raise InvalidValue("function", "must not be empty")
        job_id = new_id()
        self.trigger_event(ev.JobFunctionAssigned, **by.event_fields(reason, at),
                           job_id=job_id, function=function)
        return job_id

    def end_job_function(self, *, by: Provenance, job_id: str, at: datetime,
                         reason: str) -> None:
        self._active_at(at, by)
        job = self.state.job_functions.get(job_id)
        if job is None:
            raise NotFound("job function", job_id)
        if job["ended_on"] is not None:
            raise RuleViolation("job-function-ended", "that job function has already ended")
        self.trigger_event(ev.JobFunctionEnded, **by.event_fields(reason, at), job_id=job_id)

    def award_incentive(self, *, by: Provenance, incentive: str, at: datetime,
                        reason: str) -> str:
        self._active_at(at, by)
        if not incentive.strip():
            raise InvalidValue("incentive", "must not be empty")
        incentive_id = new_id()
        self.trigger_event(ev.IncentiveAwarded, **by.event_fields(reason, at),
                           incentive_id=incentive_id, incentive=incentive)
        return incentive_id

    # --- privileges ----------------------------------------------------------------------

    def grant_privilege(self, policy: ProgramPolicy, *, by: Provenance, privilege: str,
                        at: datetime, reason: str, until: date | None = None) -> None:
        self._active_at(at, by)
        self._known_privilege(policy, privilege)
        self._allowed_in_stage(policy, privilege)
        if privilege in self.state.privileges:
            raise RuleViolation("privilege-already-held", f"{privilege} is already held")
        if until is not None and until <= at.date():
            raise InvalidValue("until", "must be after the effective date")
        self.trigger_event(ev.PrivilegeGranted, **by.event_fields(reason, at),
                           privilege=privilege, until=until)

    def revoke_privilege(self, policy: ProgramPolicy, *, by: Provenance, privilege: str,
                         at: datetime, reason: str) -> None:
        self._active_at(at, by)
        self._known_privilege(policy, privilege)
        if privilege not in self.state.privileges:
            raise RuleViolation("privilege-not-held", f"{privilege} is not held")
        self.trigger_event(ev.PrivilegeRevoked, **by.event_fields(reason, at),
                           privilege=privilege, caused_by=None)

    def suspend_privilege(self, policy: ProgramPolicy, *, by: Provenance, privilege: str,
                          at: datetime, reason: str, until: date | None = None) -> None:
        self._active_at(at, by)
        self._known_privilege(policy, privilege)
        held = self.state.privileges.get(privilege)
        if held is None or held["status"] != "active":
            raise RuleViolation("privilege-not-active", f"{privilege} is not active")
        if until is not None and until <= at.date():
            raise InvalidValue("until", "must be after the effective date")
        self.trigger_event(ev.PrivilegeSuspended, **by.event_fields(reason, at),
                           privilege=privilege, until=until, caused_by=None)

    def restore_privilege(self, policy: ProgramPolicy, *, by: Provenance, privilege: str,
                          at: datetime, reason: str) -> None:
        self._active_at(at, by)
        self._known_privilege(policy, privilege)
        held = self.state.privileges.get(privilege)
        if held is None or held["status"] != "suspended":
            raise RuleViolation("privilege-not-suspended", f"{privilege} is not suspended")
        self._allowed_in_stage(policy, privilege)
        self.trigger_event(ev.PrivilegeRestored, **by.event_fields(reason, at),
                           privilege=privilege, caused_by=None)

    # --- infractions and sanctions -------------------------------------------------------

    def record_infraction(self, policy: ProgramPolicy, *, by: Provenance, code: str,
                          observed_at: datetime, description: str, reason: str,
                          reporter_kind: str = "staff", reporter_id: str | None = None,
                          at: datetime | None = None) -> str:
        _not_future(observed_at, by, "observed_at")
        self._active_at(at or observed_at, by)
        infraction = policy.infractions.get(code)
        if infraction is None:
            raise InvalidValue("code", f"unknown infraction code {code!r}")
        if reporter_kind not in REPORTER_KINDS:
            raise InvalidValue("reporter_kind", f"expected one of {REPORTER_KINDS}")
        infraction_id = new_id()
        self.trigger_event(ev.InfractionRecorded, **by.event_fields(reason, at or observed_at),
                           infraction_id=infraction_id, code=code,
                           rule_class=infraction.rule_class, observed_at=observed_at,
                           description=description, reporter_kind=reporter_kind,
                           reporter_id=reporter_id or by.actor_id)
        return infraction_id

    def impose_sanction(self, policy: ProgramPolicy, *, by: Provenance, sanction: str,
                        at: datetime, reason: str, infraction_id: str | None = None,
                        due_on: date | None = None, override: bool = False) -> str:
        self._active_at(at, by)
        graded = policy.sanctions.get(sanction)
        if graded is None:
            raise InvalidValue("sanction", f"unknown sanction {sanction!r}")
        if due_on is not None and due_on < at.date():
            raise InvalidValue("due_on", "must not be before the effective date")
        out_of_grade = False
        if infraction_id is not None:
            infraction = self.state.infractions.get(infraction_id)
            if infraction is None:
                raise NotFound("infraction", infraction_id)
            bounds = policy.rule_classes[infraction["rule_class"]]
            out_of_grade = not bounds.min_severity <= graded.severity <= bounds.max_severity
            if out_of_grade and not override:
                raise RuleViolation(
                    "sanction-out-of-grade",
                    f"a {infraction['rule_class']} infraction draws severity "
                    f"{bounds.min_severity}-{bounds.max_severity}; {sanction} is "
                    f"{graded.severity}; an override by a supervisor is needed")
        if override and not by.is_supervisor:
            raise RuleViolation("override-requires-supervisor",
                                "only a supervisor may override a program rule")
        sanction_id = new_id()
        suspended = [p for p in graded.suspends
                     if self.state.privileges.get(p, {}).get("status") == "active"]
        self.trigger_event(ev.SanctionImposed, **by.event_fields(reason, at),
                           sanction_id=sanction_id, sanction=sanction,
                           severity=graded.severity, infraction_id=infraction_id,
                           due_on=due_on, override=out_of_grade, suspends=suspended)
        for privilege in suspended:
            self.trigger_event(ev.PrivilegeSuspended, **by.event_fields(reason, at),
                               privilege=privilege, until=None, caused_by=sanction_id)
        return sanction_id

    def complete_sanction(self, policy: ProgramPolicy, *, by: Provenance, sanction_id: str,
                          at: datetime, reason: str) -> None:
        self._close_sanction(policy, ev.SanctionCompleted, by, sanction_id, at, reason)

    def fail_sanction(self, policy: ProgramPolicy, *, by: Provenance, sanction_id: str,
                      at: datetime, reason: str) -> None:
        self._close_sanction(policy, ev.SanctionFailed, by, sanction_id, at, reason)

    def rescind_sanction(self, policy: ProgramPolicy, *, by: Provenance, sanction_id: str,
                         at: datetime, reason: str) -> None:
        self._close_sanction(policy, ev.SanctionRescinded, by, sanction_id, at, reason)

    def _close_sanction(self, policy: ProgramPolicy, kind: type[ev.SanctionClosed],
                        by: Provenance, sanction_id: str, at: datetime, reason: str) -> None:
        self._active_at(at, by)
        sanction = self.state.sanctions.get(sanction_id)
        if sanction is None:
            raise NotFound("sanction", sanction_id)
        if sanction["status"] != "open":
            raise RuleViolation("sanction-not-open", f"the sanction is {sanction['status']}")
        self.trigger_event(kind, **by.event_fields(reason, at), sanction_id=sanction_id)
        if kind is ev.SanctionFailed:
            return  # privileges lost to a failed sanction stay suspended for staff to decide
        allowed = self._stage_privileges(policy)
        for code, held in sorted(self.state.privileges.items()):
            if held.get("suspended_by") == sanction_id and code in allowed:
                self.trigger_event(ev.PrivilegeRestored, **by.event_fields(reason, at),
                                   privilege=code, caused_by=sanction_id)

    # --- drug tests ----------------------------------------------------------------------

    def collect_specimen(self, policy: ProgramPolicy, *, by: Provenance, specimen_id: str,
                         method: str, test_reason: str, collected_at: datetime,
                         observed_by: str | None = None, seal_id: str | None = None,
                         reason: str = "") -> None:
        _not_future(collected_at, by, "collected_at")
        self._active_at(collected_at, by)
        if not specimen_id.strip():
            raise InvalidValue("specimen_id", "must not be empty")
        if specimen_id in self.state.specimens:
            raise RuleViolation("specimen-already-collected",
                                "a specimen with that id is already recorded")
        if method not in policy.drug_tests.methods:
            raise InvalidValue("method", f"expected one of {policy.drug_tests.methods}")
        if test_reason not in policy.drug_tests.reasons:
            raise InvalidValue("test_reason", f"expected one of {policy.drug_tests.reasons}")
        self.trigger_event(ev.SpecimenCollected, **by.event_fields(reason, collected_at),
                           specimen_id=specimen_id, seal_id=seal_id, method=method,
                           test_reason=test_reason, collected_at=collected_at,
                           observed_by=observed_by)

    def record_result(self, policy: ProgramPolicy, *, by: Provenance, specimen_id: str,
                      result: str, substances: list[dict[str, Any]], resulted_at: datetime,
                      lab: str | None = None, validity: str | None = None,
                      reason: str = "") -> None:
        _not_future(resulted_at, by, "resulted_at")
        self._active_at(resulted_at, by)
        specimen = self._specimen(specimen_id)
        if specimen["result"] is not None:
            raise RuleViolation("specimen-already-resulted",
                                "the specimen has a result; record a correction instead")
        if result not in RESULTS:
            raise InvalidValue("result", f"expected one of {RESULTS}")
        if validity is not None and validity not in VALIDITIES:
            raise InvalidValue("validity", f"expected one of {VALIDITIES}")
        if resulted_at < datetime.fromisoformat(specimen["collected_at"]):
            raise InvalidValue("resulted_at", "must not be before the collection time")
        checked = checked_substances(policy, substances, "substances")
        problem = disagreement(result, checked)
        if problem is not None:
            raise InvalidValue(*problem)
        self.trigger_event(ev.TestResulted, **by.event_fields(reason, resulted_at),
                           specimen_id=specimen_id, result=result,
                           validity=validity or VALIDITY_OF_RESULT[result],
                           substances=checked, lab=lab, resulted_at=resulted_at)

    def confirm_result(self, policy: ProgramPolicy, *, by: Provenance, specimen_id: str,
                       confirmed: bool, method: str, substances: list[dict[str, Any]],
                       at: datetime, reason: str = "") -> None:
        self._active_at(at, by)
        specimen = self._specimen(specimen_id)
        if specimen["result"] != "positive":
            raise RuleViolation("confirmation-requires-positive",
                                "only a positive result is sent for confirmation")
        if specimen["confirmation"] is not None:
            raise RuleViolation("result-already-confirmed",
                                "a confirmation is recorded; record a correction instead")
        if method not in policy.drug_tests.confirmation_methods:
            raise InvalidValue("method",
                               f"expected one of {policy.drug_tests.confirmation_methods}")
        checked = checked_substances(policy, substances, "substances")
        if confirmed and not checked:
            raise InvalidValue("substances", "a confirmed positive names its substances")
        self.trigger_event(ev.ResultConfirmed, **by.event_fields(reason, at),
                           specimen_id=specimen_id, confirmed=confirmed, method=method,
                           substances=checked)

    def review_result(self, *, by: Provenance, specimen_id: str, outcome: str, at: datetime,
                      reason: str, medications: list[str] | None = None,
                      medication_assisted_treatment: bool = False) -> None:
        self._active_at(at, by)
        specimen = self._specimen(specimen_id)
        if specimen["result"] != "positive":
            raise RuleViolation("review-requires-positive",
                                "only a positive result goes to medical review")
        if outcome not in REVIEW_OUTCOMES:
            raise InvalidValue("outcome", f"expected one of {REVIEW_OUTCOMES}")
        self.trigger_event(ev.ResultReviewed, **by.event_fields(reason, at),
                           specimen_id=specimen_id, outcome=outcome,
                           medications=_medications(medications or [], "medications"),
                           medication_assisted_treatment=medication_assisted_treatment)

    def dispute_result(self, *, by: Provenance, specimen_id: str, grounds: str, at: datetime,
                       reason: str) -> None:
        self._active_at(at, by)
        specimen = self._specimen(specimen_id)
        if specimen["result"] in (None, "negative"):
            raise RuleViolation("dispute-requires-adverse-result",
                                "only an adverse result can be disputed")
        self.trigger_event(ev.ResultDisputed, **by.event_fields(reason, at),
                           specimen_id=specimen_id, grounds=grounds)

    # --- discharge and aftercare ---------------------------------------------------------

    def discharge(self, policy: ProgramPolicy, *, by: Provenance, discharge_type: str,
                  at: datetime, reason: str, aftercare_referral: str | None = None) -> None:
        self._active_at(at, by)
        kind = policy.discharge_types.get(discharge_type)
        if kind is None:
            raise InvalidValue("type", f"unknown discharge type {discharge_type!r}")
        reinstatement = (at.date() + timedelta(days=kind.reinstatement_after_days)
                         if kind.reinstatement_after_days is not None else None)
        for privilege in sorted(self.state.privileges):
            self.trigger_event(ev.PrivilegeRevoked, **by.event_fields(reason, at),
                               privilege=privilege, caused_by="discharge")
        self.trigger_event(ev.Discharged, **by.event_fields(reason, at),
                           discharge_type=discharge_type, category=kind.category,
                           successful=kind.successful, reinstatement_eligible_on=reinstatement,
                           aftercare_referral=aftercare_referral)

    def send_aftercare_handoff(self, *, by: Provenance, receiving_agency: str, report: str,
                               at: datetime, reason: str) -> str:
        self._recorded_at(at, by)
        handoff_id = new_id()
        self.trigger_event(ev.AftercareHandoffSent, **by.event_fields(reason, at),
                           handoff_id=handoff_id, receiving_agency=receiving_agency,
                           report=report)
        return handoff_id

    # --- consent and disclosure ----------------------------------------------------------

    def give_consent(self, *, by: Provenance, recipient: str, purpose: str,
                     categories: list[str], at: datetime, expires_on: date | None = None,
                     expiry_event: str | None = None, criminal_justice_referral: bool = False,
                     reason: str = "") -> str:
        self._recorded_at(at, by)
        if not categories:
            raise InvalidValue("categories", "name at least one category of information")
        for category in categories:
            if category not in CONSENT_CATEGORIES:
                raise InvalidValue("categories", f"unknown category {category!r}; expected "
                                   f"one of {CONSENT_CATEGORIES}")
        if expires_on is None and not expiry_event:
            raise InvalidValue("expires_on", "a consent needs an expiry date or event")
        if expires_on is None and expiry_event_code(expiry_event) is None:
            raise InvalidValue("expiry_event", "tcledger cannot see this event happen; name "
                               f"one of {', '.join(EXPIRY_EVENTS)} or give expires_on too")
        if expires_on is not None and expires_on < by.now.date():
            raise InvalidValue("expires_on", "must not be in the past")
        consent_id = new_id()
        self.trigger_event(ev.ConsentGiven, **by.event_fields(reason, at),
                           consent_id=consent_id, recipient=recipient, purpose=purpose,
                           categories=list(dict.fromkeys(categories)), expires_on=expires_on,
                           expiry_event=expiry_event,
                           criminal_justice_referral=criminal_justice_referral)
        return consent_id

    def revoke_consent(self, *, by: Provenance, consent_id: str, at: datetime,
                       reason: str) -> None:
        self._recorded_at(at, by)
        consent = self.state.consents.get(consent_id)
        if consent is None:
            raise NotFound("consent", consent_id)
        if consent["revoked_on"] is not None:
            raise RuleViolation("consent-not-active", "the consent is already revoked")
        self.trigger_event(ev.ConsentRevoked, **by.event_fields(reason, at),
                           consent_id=consent_id)

    def active_consents(self, on: date) -> list[dict[str, Any]]:
        return [c for c in self.state.consents.values() if c["revoked_on"] is None
                and (c["expires_on"] is None or date.fromisoformat(c["expires_on"]) >= on)]

    # --- amendments ----------------------------------------------------------------------

    def correct_entry(self, policy: ProgramPolicy, *, by: Provenance, version: int,
                      changes: dict[str, Any], at: datetime, reason: str) -> None:
        self._recorded_at(at, by)
        target = self._amendable(version)
        if not changes:
            raise InvalidValue("changes", "name at least one field to correct")
        for name in changes:
            if name in target.derived:
                raise InvalidValue(f"changes.{name}", f"follows from {target.derived[name]}; "
                                   "correct that and it is derived again from the policy")
        allowed = set(target.correctable) | ({"effective_at"} if target.voidable else set())
        typed = coerce_changes(type(target), changes, allowed, get_type_hints(type(target)))
        for name, value in typed.items():
            typed[name] = _check_corrected_code(policy, type(target), name, value)
            if isinstance(value, datetime):
                _not_future(value, by, f"changes.{name}")
                self._recorded_at(value, by)
        self.trigger_event(ev.EntryCorrected, **by.event_fields(reason, at),
                           supersedes_version=version,
                           changes=plan_correction(policy, self.history, version, typed))

    def void_entry(self, policy: ProgramPolicy | None = None, *, by: Provenance, version: int,
                   at: datetime, reason: str) -> None:
        """Leaves an entry out of the record, with what it caused in the same command.

        Voiding a stage decision revokes, in the same transaction, the privileges the stage
        the record returns to does not allow (as a regression does). The policy is optional
        only for callers that predate that rule: without it such a void is refused."""
        self._recorded_at(at, by)
        target = self._amendable(version)
        if not target.voidable:
            raise RuleViolation("entry-not-voidable",
                                f"a {type(target).__name__} cannot be voided; correct it")
        plan = plan_void(policy, self.history, version)
        for superseded in plan.versions:
            why = reason if superseded == version else f"voided with version {version}: {reason}"
            self.trigger_event(ev.EntryVoided, **by.event_fields(why, at),
                               supersedes_version=superseded)
        cause = f"entry-voided:v{self.version - len(plan.versions) + 1}"
        for privilege in plan.revoke:
            self.trigger_event(ev.PrivilegeRevoked, **by.event_fields(
                "not allowed in the stage the void returns to", at), privilege=privilege,
                caused_by=cause)

    def request_amendment(self, *, by: Provenance, requested_change: str, at: datetime,
                          reason: str, target_version: int | None = None) -> str:
        self._recorded_at(at, by)
        if target_version is not None:
            self._event_at(target_version)
        amendment_id = new_id()
        self.trigger_event(ev.AmendmentRequested, **by.event_fields(reason, at),
                           amendment_id=amendment_id, target_version=target_version,
                           requested_change=requested_change)
        return amendment_id

    def deny_amendment(self, *, by: Provenance, amendment_id: str, at: datetime,
                       reason: str) -> None:
        self._recorded_at(at, by)
        amendment = self.state.amendments.get(amendment_id)
        if amendment is None:
            raise NotFound("amendment", amendment_id)
        if amendment["status"] != "requested":
            raise RuleViolation("amendment-decided", "the amendment is already decided")
        self.trigger_event(ev.AmendmentDenied, **by.event_fields(reason, at),
                           amendment_id=amendment_id)

    def file_disagreement(self, *, by: Provenance, amendment_id: str, statement: str,
                          at: datetime, reason: str) -> None:
        self._recorded_at(at, by)
        amendment = self.state.amendments.get(amendment_id)
        if amendment is None:
            raise NotFound("amendment", amendment_id)
        if amendment["status"] != "denied":
            raise RuleViolation("disagreement-requires-denial",
                                "a statement of disagreement answers a denied amendment")
        self.trigger_event(ev.DisagreementFiled, **by.event_fields(reason, at),
                           amendment_id=amendment_id, statement=statement)

    # --- retention -----------------------------------------------------------------------

    def place_legal_hold(self, *, by: Provenance, matter: str, at: datetime,
                         reason: str) -> str:
        self._recorded_at(at, by)
        hold_id = new_id()
        self.trigger_event(ev.LegalHoldPlaced, **by.event_fields(reason, at), hold_id=hold_id,
                           matter=matter)
        return hold_id

    def release_legal_hold(self, *, by: Provenance, hold_id: str, at: datetime,
                           reason: str) -> None:
        self._recorded_at(at, by)
        hold = self.state.legal_holds.get(hold_id)
        if hold is None:
            raise NotFound("legal hold", hold_id)
        if hold["released_on"] is not None:
            raise RuleViolation("legal-hold-not-open", "the legal hold is already released")
        self.trigger_event(ev.LegalHoldReleased, **by.event_fields(reason, at), hold_id=hold_id)

    def check_erasable(self) -> None:
        if self.state.open_legal_holds:
            raise RuleViolation("legal-hold-open",
                                "the record is under a legal hold and cannot be erased")

    # --- the rules' own checks -----------------------------------------------------------

    def _recorded_at(self, at: datetime, by: Provenance) -> None:
        _not_future(at, by, "effective_at")
        admitted = self.state.admitted_on
        if admitted is not None and at.date() < admitted:
            raise RuleViolation("effective-before-admission",
                                "the effective date is before the admission date")

    def _active_at(self, at: datetime, by: Provenance) -> None:
        if self.state.status != "active":
            raise RuleViolation("participant-discharged",
                                "a discharged record takes only corrections, consent and "
                                "aftercare")
        self._recorded_at(at, by)

    def _days_in_stage(self, at: datetime) -> int:
        assert self.state.stage_since is not None
        days = (at.date() - self.state.stage_since).days
        if days < 0:
            raise RuleViolation("effective-before-current-stage",
                                "the effective date is before the current stage began")
        return days

    def _stage_privileges(self, policy: ProgramPolicy) -> tuple[str, ...]:
        stage = policy.stage(self.state.stage)
        return stage.privileges if stage else ()

    def _revoke_disallowed(self, policy: ProgramPolicy, by: Provenance, at: datetime,
                           cause: str) -> None:
        allowed = self._stage_privileges(policy)
        for privilege in sorted(self.state.privileges):
            if privilege not in allowed:
                self.trigger_event(ev.PrivilegeRevoked, **by.event_fields(
                    "not allowed in the new stage", at), privilege=privilege, caused_by=cause)

    def _allowed_in_stage(self, policy: ProgramPolicy, privilege: str) -> None:
        if privilege not in self._stage_privileges(policy):
            raise RuleViolation("privilege-not-allowed-in-stage",
                                f"{privilege} is not allowed in {self.state.stage}")

    @staticmethod
    def _known_privilege(policy: ProgramPolicy, privilege: str) -> None:
        if privilege not in policy.privileges:
            raise InvalidValue("privilege", f"unknown privilege {privilege!r}")

    @staticmethod
    def _known_stage(policy: ProgramPolicy, stage: str) -> None:
        if policy.stage(stage) is None:
            raise InvalidValue("to_stage", f"unknown stage {stage!r}")

    def _specimen(self, specimen_id: str) -> dict[str, Any]:
        specimen = self.state.specimens.get(specimen_id)
        if specimen is None:
            raise NotFound("specimen", specimen_id)
        return specimen

    def _event_at(self, version: int) -> ev.ParticipantEvent:
        if not 1 <= version <= len(self.history):
            raise NotFound("version", version)
        return self.history[version - 1]

    def _amendable(self, version: int) -> ev.ParticipantEvent:
        target = self._event_at(version)
        if isinstance(target, ev.EntryCorrected | ev.EntryVoided):
            raise RuleViolation("correction-target-not-correctable",
                                "a correction is itself corrected by another correction "
                                "of the original entry")
        if self.amended.get(version) == "EntryVoided":
            raise RuleViolation("entry-already-voided", f"version {version} is voided")
        return target


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _not_future(at: datetime, by: Provenance, name: str) -> None:
    if at.tzinfo is None:
        raise InvalidValue(name, "must carry a time zone")
    if at > by.now + CLOCK_SKEW:
        raise InvalidValue(name, "must not be in the future")


def _medications(names: list[str], field: str) -> list[str]:
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise InvalidValue(field, "each medication is a non-empty name")
    return list(dict.fromkeys(n.strip() for n in names))


def _check_corrected_code(policy: ProgramPolicy, kind: type, name: str, value: Any) -> Any:
    """Checks a corrected value against its catalogue; returns it as the command stores it."""
    by_event: dict[tuple[type, str], Any] = {
        (ev.SpecimenCollected, "method"): policy.drug_tests.methods,
        (ev.ResultConfirmed, "method"): policy.drug_tests.confirmation_methods,
        (ev.Discharged, "category"): DISCHARGE_CATEGORIES,
        # A status moves within its kind of entry; attended to missed is a void and a new one.
        (ev.GroupAttended, "status"): ("present", "late"),
        (ev.GroupMissed, "status"): ("excused", "absent"),
        (ev.RecoverySupportLinked, "kind"): RECOVERY_SUPPORT_KINDS}
    if (kind, name) in by_event and value not in by_event[(kind, name)]:
        raise InvalidValue(f"changes.{name}", f"unknown value {value!r}")
    catalogues: dict[str, Any] = {
        "code": policy.infractions, "privilege": policy.privileges,
        "discharge_type": policy.discharge_types, "result": RESULTS, "validity": VALIDITIES,
        "test_reason": policy.drug_tests.reasons, "outcome": REVIEW_OUTCOMES,
        "rule_class": policy.rule_classes}
    catalogue = catalogues.get(name)
    if catalogue is not None and value not in catalogue:
        raise InvalidValue(f"changes.{name}", f"unknown value {value!r}")
    if name == "substances":
        return checked_substances(policy, value, "changes.substances")
    if name == "medications":
        return _medications(value, "changes.medications")
    return value

