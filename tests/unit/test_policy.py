"""The program policy: the default file loads, and a broken file reports every defect at once."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from domain.policy import (
    PolicyBook,
    PolicyError,
    ProgramPolicy,
    default_policy,
    load_policy,
    parse_policy,
)


@pytest.fixture(scope="module")
def default_document() -> dict[str, Any]:
    text = resources.files("domain").joinpath("policies/default.toml").read_text("utf-8")
    return tomllib.loads(text)


@pytest.fixture
def document(default_document: dict[str, Any]) -> dict[str, Any]:
    """A private, mutable copy of the default policy document."""
    return copy.deepcopy(default_document)


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        parse_policy(document, "synthetic.toml")
    assert exc.value.source == "synthetic.toml"
    # The message carries every problem too, so a log line shows the whole list.
    for problem in exc.value.problems:
        assert problem in str(exc.value)
    return exc.value.problems


def has(problems: list[str], *fragments: str) -> bool:
    return any(all(f in p for f in fragments) for p in problems)


# --- the default policy ----------------------------------------------------------------

def test_default_policy_loads_with_its_catalogues(policy: ProgramPolicy) -> None:
    assert policy.code == "tc-default"
    assert set(policy.rule_classes) == {"house", "major", "cardinal"}
    assert policy.rule_classes["major"].min_severity == 3
    assert policy.rule_classes["major"].max_severity == 5
    assert policy.infractions["violence"].rule_class == "cardinal"
    assert policy.sanctions["ban"].severity == 4
    assert policy.sanctions["ban"].suspends == ("recreation", "tv-room")
    assert policy.discharge_types["therapeutic-termination"].reinstatement_after_days == 90
    assert policy.discharge_types["successful-completion"].successful is True
    assert policy.discharge_types["absconded"].reinstatement_after_days is None
    assert policy.drug_tests.substances["fentanyl"].cutoff_ng_ml == 1.0
    assert "GC-MS" in policy.drug_tests.confirmation_methods
    assert policy.drug_tests.positive_requires_confirmation is True


def test_default_policy_is_the_same_as_parsing_its_file(
        default_document: dict[str, Any]) -> None:
    assert parse_policy(copy.deepcopy(default_document)) == default_policy()


def test_stages_are_in_ladder_order(policy: ProgramPolicy) -> None:
    codes = [s.code for s in policy.stages]
    assert codes == ["orientation", "phase-1", "phase-2", "re-entry"]
    assert policy.first_stage.code == "orientation"
    assert [policy.stage_rank(c) for c in codes] == [0, 1, 2, 3]
    assert [getattr(policy.next_stage(c), "code", None) for c in codes] == [
        "phase-1", "phase-2", "re-entry", None]
    assert policy.stage("no-such-stage") is None
    orientation = policy.stage("orientation")
    assert orientation is not None
    assert orientation.min_days == 30
    assert orientation.privileges == ("commissary", "phone-basic")


def test_every_stage_privilege_is_in_the_catalogue(policy: ProgramPolicy) -> None:
    for stage in policy.stages:
        assert set(stage.privileges) <= set(policy.privileges)
    # Each stage allows at least what the stage before it allowed.
    for lower, higher in zip(policy.stages, policy.stages[1:], strict=False):
        assert set(lower.privileges) <= set(higher.privileges)


# --- broken policies -------------------------------------------------------------------

def test_every_problem_is_reported_at_once_with_its_path(document: dict[str, Any]) -> None:
    del document["stages"][0]["name"]
    document["stages"][1]["privileges"].append("jacuzzi")
    document["stages"][2]["min_days"] = -5
    document["stages"][3]["min_days"] = "ten"
    document["infractions"][0]["rule_class"] = "petty"
    document["sanctions"].append(dict(document["sanctions"][0]))

    problems = problems_of(document)

    assert "stages[0].name: required" in problems
    assert has(problems, "stages[1].privileges", "unknown privilege", "jacuzzi")
    assert "stages[2].min_days: must be zero or more" in problems
    assert "stages[3].min_days: expected an integer" in problems
    assert has(problems, "infractions[0].rule_class", "unknown rule class", "petty")
    assert has(problems, "sanctions", "duplicate code", "talk-to")
    assert len(problems) == 6


def test_missing_stage_name(document: dict[str, Any]) -> None:
    del document["stages"][2]["name"]
    assert problems_of(document) == ["stages[2].name: required"]


def test_unknown_privilege_in_a_stage(document: dict[str, Any]) -> None:
    document["stages"][0]["privileges"] = ["commissary", "helicopter"]
    assert problems_of(document) == ["stages[0].privileges: unknown privilege 'helicopter'"]


def test_negative_min_days(document: dict[str, Any]) -> None:
    document["stages"][1]["min_days"] = -1
    assert problems_of(document) == ["stages[1].min_days: must be zero or more"]


@pytest.mark.parametrize("value", ["ten", 10.5, True, [10]])
def test_min_days_of_the_wrong_type(document: dict[str, Any], value: Any) -> None:
    document["stages"][0]["min_days"] = value
    assert problems_of(document) == ["stages[0].min_days: expected an integer"]


@pytest.mark.parametrize("table", ["privileges", "stages", "infractions", "sanctions",
                                   "discharge_types"])
def test_duplicate_codes_in_a_catalogue(document: dict[str, Any], table: str) -> None:
    duplicate = dict(document[table][-1])
    document[table].append(duplicate)
    problems = problems_of(document)
    assert has(problems, table, "duplicate code", repr(duplicate["code"]))


def test_duplicate_substance_codes(document: dict[str, Any]) -> None:
    substances = document["drug_tests"]["substances"]
    substances.append({"code": "thc", "name": "THC again", "cutoff_ng_ml": 20})
    problems = problems_of(document)
    assert has(problems, "substances", "duplicate code", "'thc'")


def test_unknown_rule_class_on_an_infraction(document: dict[str, Any]) -> None:
    document["infractions"][3]["rule_class"] = "minor"
    assert problems_of(document) == ["infractions[3].rule_class: unknown rule class 'minor'"]


def test_unknown_rule_class_in_the_rule_class_table(document: dict[str, Any]) -> None:
    document["rule_classes"]["petty"] = {"min_severity": 1, "max_severity": 1}
    problems = problems_of(document)
    assert has(problems, "rule_classes.petty", "unknown rule class")


def test_rule_class_band_upside_down(document: dict[str, Any]) -> None:
    document["rule_classes"]["house"] = {"min_severity": 3, "max_severity": 1}
    assert problems_of(document) == ["rule_classes.house: min_severity is above max_severity"]


def test_wrong_types_and_unknown_references_elsewhere(document: dict[str, Any]) -> None:
    document["program"]["code"] = 7
    document["sanctions"][0]["severity"] = 0
    document["sanctions"][1]["suspends"] = ["sunbathing"]
    document["discharge_types"][0]["category"] = "graduated"
    document["discharge_types"][1]["successful"] = "yes"
    document["drug_tests"]["substances"][0]["cutoff_ng_ml"] = "fifty"
    document["drug_tests"]["methods"] = ["urine", ""]

    problems = problems_of(document)

    assert "program.code: expected a string" in problems
    assert "sanctions[0].severity: must be 1 or more" in problems
    assert "sanctions[1].suspends: unknown privilege 'sunbathing'" in problems
    assert has(problems, "discharge_types[0].category: expected one of")
    assert "discharge_types[1].successful: expected true or false" in problems
    assert "drug_tests.substances[0].cutoff_ng_ml: expected an integer or a number" in problems
    assert "drug_tests.methods: expected a list of non-empty strings" in problems
    assert len(problems) == 7


def test_missing_sections_are_each_reported(document: dict[str, Any]) -> None:
    del document["program"]
    del document["drug_tests"]
    document["stages"] = []
    problems = problems_of(document)
    assert "policy.program: required" in problems
    assert "program.code: required" in problems
    assert "policy.stages: must not be empty" in problems
    assert "policy.drug_tests: required" in problems
    assert "drug_tests.substances: required" in problems


def test_a_stage_that_is_not_a_table(document: dict[str, Any]) -> None:
    document["stages"].append("phase-3")
    assert problems_of(document) == ["stages[4]: expected a table"]


# --- files -----------------------------------------------------------------------------

def test_load_policy_reads_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    text = resources.files("domain").joinpath("policies/default.toml").read_text("utf-8")
    path.write_text(text.replace('code = "tc-default"', 'code = "tc-synthetic"'), "utf-8")
    loaded = load_policy(path)
    assert loaded.code == "tc-synthetic"
    assert [s.code for s in loaded.stages] == [s.code for s in default_policy().stages]


def test_load_policy_with_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[program]\ncode = "tc-synthetic\n', "utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert exc.value.source == str(path)
    assert len(exc.value.problems) == 1
    assert exc.value.problems[0].startswith("not valid TOML")


def test_load_policy_with_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert exc.value.source == str(path)
    assert exc.value.problems == ["cannot read file: No such file or directory"]


def test_load_policy_reports_every_problem_with_the_file_as_source(tmp_path: Path) -> None:
    path = tmp_path / "partial.toml"
    path.write_text('[program]\nname = "Synthetic"\n\n[[stages]]\ncode = "only"\n', "utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    problems = exc.value.problems
    assert exc.value.source == str(path)
    for expected in ("program.code: required", "stages[0].name: required",
                     "stages[0].min_days: required", "policy.privileges: required",
                     "policy.rule_classes: required", "policy.infractions: required",
                     "policy.sanctions: required", "policy.discharge_types: required",
                     "policy.drug_tests: required"):
        assert expected in problems


def test_policy_book_refuses_two_programs_with_one_code(policy: ProgramPolicy) -> None:
    with pytest.raises(PolicyError):
        PolicyBook([policy, default_policy()])
    book = PolicyBook([policy])
    assert book.get("tc-default") is policy
    assert book.get("tc-other") is None
    assert book.all() == [policy]
