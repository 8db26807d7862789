"""Privileges: granted only where the current stage allows them; a small state machine of
active, suspended and revoked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from domain import events as ev
from domain.errors import InvalidValue, RuleViolation
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]


def test_grant_a_privilege_the_stage_allows(admitted: Participant, policy: ProgramPolicy,
                                            by: Provenance, days_ago: DaysAgo) -> None:
    admitted.collect_events()
    until = days_ago(-30).date()
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned", until=until)
    (event,) = admitted.collect_events()
    assert isinstance(event, ev.PrivilegeGranted)
    assert (event.privilege, event.until) == ("commissary", until)
    assert admitted.state.privileges["commissary"] == {
        "privilege": "commissary", "status": "active",
        "since": days_ago(10).date().isoformat(), "until": until.isoformat(),
        "suspended_by": None}
    assert admitted.state.active_privileges == ["commissary"]


@pytest.mark.parametrize("privilege", ["recreation", "tv-room", "furlough"])
def test_grant_refused_where_the_stage_does_not_allow_it(
        admitted: Participant, policy: ProgramPolicy, by: Provenance, days_ago: DaysAgo,
        privilege: str) -> None:
    with pytest.raises(RuleViolation) as exc:
        admitted.grant_privilege(policy, by=by, privilege=privilege, at=days_ago(10),
                                 reason="asked")
    assert exc.value.rule == "privilege-not-allowed-in-stage"
    assert admitted.state.privileges == {}


def test_a_promotion_opens_the_next_stage_privileges(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.promote(policy, by=by, to_stage="phase-1", at=days_ago(100), reason="criteria met")
    admitted.grant_privilege(policy, by=by, privilege="recreation", at=days_ago(90),
                             reason="earned")
    assert admitted.state.active_privileges == ["recreation"]


@pytest.mark.parametrize("command", ["grant_privilege", "revoke_privilege",
                                     "suspend_privilege", "restore_privilege"])
def test_unknown_privilege(admitted: Participant, policy: ProgramPolicy, by: Provenance,
                           days_ago: DaysAgo, command: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        getattr(admitted, command)(policy, by=by, privilege="jacuzzi", at=days_ago(10),
                                   reason="asked")
    assert exc.value.field == "privilege"


def test_double_grant_is_refused(admitted: Participant, policy: ProgramPolicy,
                                 by: Provenance, days_ago: DaysAgo) -> None:
    admitted.grant_privilege(policy, by=by, privilege="phone-basic", at=days_ago(10),
                             reason="earned")
    with pytest.raises(RuleViolation) as exc:
        admitted.grant_privilege(policy, by=by, privilege="phone-basic", at=days_ago(5),
                                 reason="again")
    assert exc.value.rule == "privilege-already-held"
    # Held though suspended is still held.
    admitted.suspend_privilege(policy, by=by, privilege="phone-basic", at=days_ago(4),
                               reason="misuse")
    with pytest.raises(RuleViolation) as exc:
        admitted.grant_privilege(policy, by=by, privilege="phone-basic", at=days_ago(3),
                                 reason="again")
    assert exc.value.rule == "privilege-already-held"


def test_grant_until_must_be_after_the_effective_date(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                                 reason="earned", until=days_ago(11).date())
    assert exc.value.field == "until"


def test_suspend_then_restore(admitted: Participant, policy: ProgramPolicy, by: Provenance,
                              days_ago: DaysAgo) -> None:
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned")
    until = days_ago(-7).date()
    admitted.suspend_privilege(policy, by=by, privilege="commissary", at=days_ago(5),
                               reason="misuse", until=until)
    held = admitted.state.privileges["commissary"]
    assert held["status"] == "suspended"
    assert held["suspended_until"] == until.isoformat()
    assert held["suspended_by"] is None
    assert admitted.state.active_privileges == []

    admitted.restore_privilege(policy, by=by, privilege="commissary", at=days_ago(1),
                               reason="served")
    held = admitted.state.privileges["commissary"]
    assert (held["status"], held["suspended_until"]) == ("active", None)
    assert admitted.state.active_privileges == ["commissary"]


def test_suspend_needs_an_active_privilege(admitted: Participant, policy: ProgramPolicy,
                                           by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:
        admitted.suspend_privilege(policy, by=by, privilege="commissary", at=days_ago(5),
                                   reason="not held")
    assert exc.value.rule == "privilege-not-active"
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned")
    admitted.suspend_privilege(policy, by=by, privilege="commissary", at=days_ago(5),
                               reason="misuse")
    with pytest.raises(RuleViolation) as exc:
        admitted.suspend_privilege(policy, by=by, privilege="commissary", at=days_ago(4),
                                   reason="again")
    assert exc.value.rule == "privilege-not-active"


def test_suspend_until_must_be_after_the_effective_date(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned")
    with pytest.raises(InvalidValue) as exc:
        admitted.suspend_privilege(policy, by=by, privilege="commissary", at=days_ago(5),
                                   reason="misuse", until=days_ago(5).date())
    assert exc.value.field == "until"


def test_restore_needs_a_suspended_privilege(admitted: Participant, policy: ProgramPolicy,
                                             by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:
        admitted.restore_privilege(policy, by=by, privilege="commissary", at=days_ago(5),
                                   reason="not held")
    assert exc.value.rule == "privilege-not-suspended"
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                             reason="earned")
    with pytest.raises(RuleViolation) as exc:
        admitted.restore_privilege(policy, by=by, privilege="commissary", at=days_ago(5),
                                   reason="active")
    assert exc.value.rule == "privilege-not-suspended"


def test_revoke_removes_an_active_or_suspended_privilege(
        admitted: Participant, policy: ProgramPolicy, by: Provenance,
        days_ago: DaysAgo) -> None:
    for privilege in ("commissary", "phone-basic"):
        admitted.grant_privilege(policy, by=by, privilege=privilege, at=days_ago(10),
                                 reason="earned")
    admitted.suspend_privilege(policy, by=by, privilege="phone-basic", at=days_ago(8),
                               reason="misuse")
    admitted.collect_events()
    admitted.revoke_privilege(policy, by=by, privilege="commissary", at=days_ago(5),
                              reason="abuse")
    admitted.revoke_privilege(policy, by=by, privilege="phone-basic", at=days_ago(5),
                              reason="abuse")
    events = admitted.collect_events()
    assert [type(e) for e in events] == [ev.PrivilegeRevoked, ev.PrivilegeRevoked]
    assert all(e.caused_by is None for e in events)
    assert admitted.state.privileges == {}
    with pytest.raises(RuleViolation) as exc:
        admitted.revoke_privilege(policy, by=by, privilege="commissary", at=days_ago(4),
                                  reason="again")
    assert exc.value.rule == "privilege-not-held"
    with pytest.raises(RuleViolation) as exc:
        admitted.suspend_privilege(policy, by=by, privilege="commissary", at=days_ago(4),
                                   reason="revoked")
    assert exc.value.rule == "privilege-not-active"
    # A revoked privilege may be granted afresh.
    admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(2),
                             reason="earned back")
    assert admitted.state.active_privileges == ["commissary"]


def test_privilege_decisions_need_a_reason(admitted: Participant, policy: ProgramPolicy,
                                           by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.grant_privilege(policy, by=by, privilege="commissary", at=days_ago(10),
                                 reason="")
    assert exc.value.field == "reason"
    assert admitted.state.privileges == {}


def test_privilege_effective_in_the_future_is_refused(
        admitted: Participant, policy: ProgramPolicy, by: Provenance) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.grant_privilege(policy, by=by, privilege="commissary",
                                 at=by.now + timedelta(hours=1), reason="earned")
    assert exc.value.field == "effective_at"
