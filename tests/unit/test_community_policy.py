"""The community part of the program policy: group kinds, groups required per week per
stage, follow-up windows after discharge; a bad file names every defect."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from typing import Any

import pytest

from domain.policy import DEFAULT_FOLLOW_UP_WINDOWS, PolicyError, ProgramPolicy, parse_policy


@pytest.fixture
def document() -> dict[str, Any]:
    text = resources.files("domain").joinpath("policies/default.toml").read_text("utf-8")
    return copy.deepcopy(tomllib.loads(text))


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        parse_policy(document, "synthetic.toml")
    return exc.value.problems


def test_default_policy_ships_group_kinds_requirements_and_windows(
        policy: ProgramPolicy) -> None:
    assert {"morning-meeting", "community-meeting", "encounter", "seminar", "static-group",
            "relapse-prevention", "family"} <= set(policy.group_kinds)
    orientation = policy.stage("orientation")
    assert orientation is not None
    assert orientation.groups_per_week["morning-meeting"] == 5
    assert "encounter" not in orientation.groups_per_week  # newcomers observe first
    for stage in policy.stages:
        assert stage.groups_per_week["community-meeting"] >= 1
        assert set(stage.groups_per_week) <= set(policy.group_kinds)
    assert [(w.code, w.days) for w in policy.follow_up_windows] == [
        ("30d", 30), ("90d", 90), ("180d", 180), ("365d", 365)]
    window = policy.follow_up_window("90d")
    assert window is not None and window.days == 90
    assert policy.follow_up_window("7d") is None


def test_a_policy_without_community_tables_keeps_the_default_windows(
        document: dict[str, Any]) -> None:
    del document["group_kinds"], document["follow_up_windows"]
    for stage in document["stages"]:
        del stage["groups_per_week"]
    parsed = parse_policy(document)
    assert parsed.group_kinds == {}
    assert parsed.follow_up_windows == DEFAULT_FOLLOW_UP_WINDOWS
    assert all(s.groups_per_week == {} for s in parsed.stages)


def test_every_community_defect_is_named_at_once(document: dict[str, Any]) -> None:
    document["group_kinds"].append({"code": "seminar", "name": "Again"})
    document["group_kinds"].append({"code": "yoga"})
    document["stages"][0]["groups_per_week"] = {"knitting": 1, "seminar": -1,
                                                "encounter": True}
    document["stages"][1]["groups_per_week"] = "daily"
    document["follow_up_windows"] = [{"code": "30d", "days": 30}, {"code": "30d", "days": 0},
                                     {"code": "10d", "days": 10}, {"days": "ninety"}]
    problems = problems_of(document)
    expected = [
        "group_kinds: duplicate code 'seminar'",
        "group_kinds[11].name: required",
        "stages[0].groups_per_week.knitting: unknown group kind 'knitting'",
        "stages[0].groups_per_week.seminar: expected an integer from 0 to 50",
        "stages[0].groups_per_week.encounter: expected an integer from 0 to 50",
        "stages[1].groups_per_week: expected a table",
        "follow_up_windows[1].days: expected 1 to 3650 days",
        "follow_up_windows: duplicate code '30d'",
        "follow_up_windows[3].days: expected an integer",
        "follow_up_windows[3].code: required",
        "follow_up_windows: days must increase",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)


def test_empty_community_tables_are_refused(document: dict[str, Any]) -> None:
    document["group_kinds"] = []
    document["follow_up_windows"] = []
    problems = problems_of(document)
    assert "policy.group_kinds: must not be empty" in problems
    assert "policy.follow_up_windows: must not be empty" in problems
