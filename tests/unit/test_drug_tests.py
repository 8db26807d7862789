"""Drug tests: collection, result, confirmation, medical review and dispute."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from domain import events as ev
from domain.errors import InvalidValue, NotFound, RuleViolation
from domain.participant import Participant
from domain.policy import ProgramPolicy
from domain.provenance import Provenance

DaysAgo = Callable[[float], datetime]

SPECIMEN = "SYN-SPEC-0001"


@pytest.fixture
def collected(admitted: Participant, policy: ProgramPolicy, by: Provenance,
              days_ago: DaysAgo) -> Participant:
    admitted.collect_specimen(policy, by=by, specimen_id=SPECIMEN, method="urine",
                              test_reason="random", collected_at=days_ago(5),
                              observed_by="staff-officer-2", seal_id="SYN-SEAL-9")
    return admitted


def result(p: Participant, policy: ProgramPolicy, by: Provenance, at: datetime, value: str,
           substances: list[dict[str, Any]] | None = None, **kw: Any) -> None:
    p.record_result(policy, by=by, specimen_id=SPECIMEN, result=value,
                    substances=substances or [], resulted_at=at, **kw)


@pytest.fixture
def positive(collected: Participant, policy: ProgramPolicy, by: Provenance,
             days_ago: DaysAgo) -> Participant:
    result(collected, policy, by, days_ago(4), "positive",
           [{"code": "thc", "level_ng_ml": 80}], lab="SYN-LAB")
    return collected


def test_collect_a_specimen(collected: Participant, days_ago: DaysAgo) -> None:
    specimen = collected.state.specimens[SPECIMEN]
    assert specimen["method"] == "urine"
    assert specimen["test_reason"] == "random"
    assert specimen["collected_at"] == days_ago(5).isoformat()
    assert (specimen["seal_id"], specimen["observed_by"]) == ("SYN-SEAL-9", "staff-officer-2")
    assert specimen["result"] is None
    # Recording a specimen is routine: no reason is demanded.
    assert collected.history[-1].reason == ""


def test_duplicate_specimen_id(collected: Participant, policy: ProgramPolicy,
                               by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:
        collected.collect_specimen(policy, by=by, specimen_id=SPECIMEN, method="oral-fluid",
                                   test_reason="for-cause", collected_at=days_ago(1))
    assert exc.value.rule == "specimen-already-collected"
    assert collected.state.specimens[SPECIMEN]["method"] == "urine"


@pytest.mark.parametrize(("field", "kwargs"), [
    ("method", {"method": "blood"}),
    ("test_reason", {"test_reason": "curiosity"}),
    ("specimen_id", {"specimen_id": "  "}),
])
def test_collection_with_bad_values(admitted: Participant, policy: ProgramPolicy,
                                    by: Provenance, days_ago: DaysAgo, field: str,
                                    kwargs: dict[str, str]) -> None:
    args = {"specimen_id": SPECIMEN, "method": "urine", "test_reason": "random"} | kwargs
    with pytest.raises(InvalidValue) as exc:
        admitted.collect_specimen(policy, by=by, collected_at=days_ago(1), **args)
    assert exc.value.field == field


def test_collection_in_the_future(admitted: Participant, policy: ProgramPolicy,
                                  by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        admitted.collect_specimen(policy, by=by, specimen_id=SPECIMEN, method="urine",
                                  test_reason="random", collected_at=days_ago(-1))
    assert exc.value.field == "collected_at"


def test_positive_result_carries_the_policy_cutoffs(positive: Participant,
                                                    days_ago: DaysAgo) -> None:
    specimen = positive.state.specimens[SPECIMEN]
    assert (specimen["result"], specimen["validity"], specimen["lab"]) == (
        "positive", "valid", "SYN-LAB")
    assert specimen["substances"] == [{"code": "thc", "level_ng_ml": 80,
                                       "cutoff_ng_ml": 50.0}]
    assert specimen["resulted_at"] == days_ago(4).isoformat()


def test_result_for_an_unknown_specimen(admitted: Participant, policy: ProgramPolicy,
                                        by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(NotFound) as exc:
        result(admitted, policy, by, days_ago(1), "negative")
    assert exc.value.what == "specimen"


def test_result_before_collection_time(collected: Participant, policy: ProgramPolicy,
                                       by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        result(collected, policy, by, days_ago(6), "negative")
    assert exc.value.field == "resulted_at"
    assert collected.state.specimens[SPECIMEN]["result"] is None


def test_positive_without_a_substance(collected: Participant, policy: ProgramPolicy,
                                      by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        result(collected, policy, by, days_ago(4), "positive", [])
    assert exc.value.field == "substances"


@pytest.mark.parametrize("value", ["negative", "dilute", "invalid", "refused", "tampered"])
def test_non_positive_with_a_substance(collected: Participant, policy: ProgramPolicy,
                                       by: Provenance, days_ago: DaysAgo, value: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        result(collected, policy, by, days_ago(4), value, [{"code": "cocaine"}])
    assert exc.value.field == "substances"


def test_unknown_substance(collected: Participant, policy: ProgramPolicy, by: Provenance,
                           days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        result(collected, policy, by, days_ago(4), "positive",
               [{"code": "thc"}, {"code": "kryptonite"}])
    assert exc.value.field == "substances[1].code"


def test_negative_level_of_a_substance(collected: Participant, policy: ProgramPolicy,
                                       by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        result(collected, policy, by, days_ago(4), "positive",
               [{"code": "thc", "level_ng_ml": -3}])
    assert exc.value.field == "substances[0].level_ng_ml"


def test_unknown_result_or_validity(collected: Participant, policy: ProgramPolicy,
                                    by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        result(collected, policy, by, days_ago(4), "maybe")
    assert exc.value.field == "result"
    with pytest.raises(InvalidValue) as exc:
        result(collected, policy, by, days_ago(4), "negative", validity="suspicious")
    assert exc.value.field == "validity"


def test_double_result(positive: Participant, policy: ProgramPolicy, by: Provenance,
                       days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:
        result(positive, policy, by, days_ago(3), "negative")
    assert exc.value.rule == "specimen-already-resulted"
    assert positive.state.specimens[SPECIMEN]["result"] == "positive"


@pytest.mark.parametrize(("value", "validity"), [
    ("negative", "valid"), ("dilute", "dilute"), ("invalid", "invalid"),
    ("refused", "refused"), ("tampered", "adulterated")])
def test_validity_follows_the_result(collected: Participant, policy: ProgramPolicy,
                                     by: Provenance, days_ago: DaysAgo, value: str,
                                     validity: str) -> None:
    collected.collect_events()
    result(collected, policy, by, days_ago(4), value)
    (event,) = collected.collect_events()
    assert isinstance(event, ev.TestResulted)
    assert event.validity == validity
    assert collected.state.specimens[SPECIMEN]["validity"] == validity


def test_an_explicit_validity_is_kept(collected: Participant, policy: ProgramPolicy,
                                      by: Provenance, days_ago: DaysAgo) -> None:
    result(collected, policy, by, days_ago(4), "invalid", validity="substituted")
    assert collected.state.specimens[SPECIMEN]["validity"] == "substituted"


def test_confirmation_of_a_positive(positive: Participant, policy: ProgramPolicy,
                                    by: Provenance, days_ago: DaysAgo) -> None:
    positive.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=True,
                            method="GC-MS", substances=[{"code": "thc", "level_ng_ml": 60}],
                            at=days_ago(2))
    confirmation = positive.state.specimens[SPECIMEN]["confirmation"]
    assert confirmation == {"confirmed": True, "method": "GC-MS",
                            "substances": [{"code": "thc", "level_ng_ml": 60,
                                            "cutoff_ng_ml": 50.0}],
                            "confirmed_on": days_ago(2).date().isoformat()}


def test_confirmation_only_for_a_positive(collected: Participant, policy: ProgramPolicy,
                                          by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:  # no result yet
        collected.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=False,
                                 method="GC-MS", substances=[], at=days_ago(2))
    assert exc.value.rule == "confirmation-requires-positive"
    result(collected, policy, by, days_ago(4), "negative")
    with pytest.raises(RuleViolation) as exc:
        collected.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=False,
                                 method="GC-MS", substances=[], at=days_ago(2))
    assert exc.value.rule == "confirmation-requires-positive"


def test_double_confirmation(positive: Participant, policy: ProgramPolicy, by: Provenance,
                             days_ago: DaysAgo) -> None:
    positive.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=False,
                            method="LC-MS-MS", substances=[], at=days_ago(2))
    with pytest.raises(RuleViolation) as exc:
        positive.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=True,
                                method="GC-MS", substances=[{"code": "thc"}], at=days_ago(1))
    assert exc.value.rule == "result-already-confirmed"
    assert positive.state.specimens[SPECIMEN]["confirmation"]["confirmed"] is False


def test_confirmation_with_bad_values(positive: Participant, policy: ProgramPolicy,
                                      by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(InvalidValue) as exc:
        positive.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=True,
                                method="urine", substances=[{"code": "thc"}], at=days_ago(2))
    assert exc.value.field == "method"
    with pytest.raises(InvalidValue) as exc:
        positive.confirm_result(policy, by=by, specimen_id=SPECIMEN, confirmed=True,
                                method="GC-MS", substances=[], at=days_ago(2))
    assert exc.value.field == "substances"
    assert positive.state.specimens[SPECIMEN]["confirmation"] is None


def test_medical_review_of_a_positive(positive: Participant, by: Provenance,
                                      days_ago: DaysAgo) -> None:
    positive.review_result(by=by, specimen_id=SPECIMEN, outcome="explained",
                           at=days_ago(1), reason="prescribed",
                           medications=["SYN-MED", "SYN-MED-2"],
                           medication_assisted_treatment=True)
    review = positive.state.specimens[SPECIMEN]["review"]
    assert review["outcome"] == "explained"
    assert review["medications"] == ["SYN-MED", "SYN-MED-2"]
    assert review["medication_assisted_treatment"] is True
    with pytest.raises(InvalidValue) as exc:
        positive.review_result(by=by, specimen_id=SPECIMEN, outcome="shrug", at=days_ago(1),
                               reason="x")
    assert exc.value.field == "outcome"


def test_medical_review_only_for_a_positive(collected: Participant, policy: ProgramPolicy,
                                            by: Provenance, days_ago: DaysAgo) -> None:
    result(collected, policy, by, days_ago(4), "dilute")
    with pytest.raises(RuleViolation) as exc:
        collected.review_result(by=by, specimen_id=SPECIMEN, outcome="explained",
                                at=days_ago(1), reason="x")
    assert exc.value.rule == "review-requires-positive"


def test_dispute_of_an_adverse_result(collected: Participant, policy: ProgramPolicy,
                                      by: Provenance, days_ago: DaysAgo) -> None:
    with pytest.raises(RuleViolation) as exc:  # no result yet
        collected.dispute_result(by=by, specimen_id=SPECIMEN, grounds="chain of custody",
                                 at=days_ago(3), reason="resident disputes")
    assert exc.value.rule == "dispute-requires-adverse-result"
    result(collected, policy, by, days_ago(4), "tampered")
    collected.dispute_result(by=by, specimen_id=SPECIMEN, grounds="seal intact",
                             at=days_ago(3), reason="resident disputes")
    collected.dispute_result(by=by, specimen_id=SPECIMEN, grounds="second opinion",
                             at=days_ago(2), reason="resident disputes")
    disputes = collected.state.specimens[SPECIMEN]["disputes"]
    assert [d["grounds"] for d in disputes] == ["seal intact", "second opinion"]


def test_a_negative_cannot_be_disputed(collected: Participant, policy: ProgramPolicy,
                                       by: Provenance, days_ago: DaysAgo) -> None:
    result(collected, policy, by, days_ago(4), "negative")
    with pytest.raises(RuleViolation) as exc:
        collected.dispute_result(by=by, specimen_id=SPECIMEN, grounds="none",
                                 at=days_ago(3), reason="x")
    assert exc.value.rule == "dispute-requires-adverse-result"
