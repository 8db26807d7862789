"""Every 422 names its field in one format: the JSON path of the value in the body
(`substances[0].code`), or the parameter's name, whether pydantic or the domain found it."""

from __future__ import annotations

import pytest

from api.problems import field_path


@pytest.mark.parametrize(("loc", "expected"), [
    (("body", "substances", 0, "SubstanceIn", "code"), "substances[0].code"),
    (("body", "substances", 1, "constrained-str"), "substances[1]"),
    (("body", "external_ids", "SID", "value"), "external_ids.SID.value"),
    (("body", "assessments", 2, "score"), "assessments[2].score"),
    (("body", "changes"), "changes"),
    (("body",), "body"),
    (("query", "limit"), "limit"),
    (("path", "participant_id"), "participant_id"),
    (("body", "review", "function-after[_check(), str]"), "review"),
])
def test_a_location_becomes_one_field_path(loc: tuple[str | int, ...], expected: str) -> None:
    assert field_path(loc) == expected
