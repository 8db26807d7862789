"""422 problems name fields in one format across endpoints, whichever layer refused: the
value's JSON path in the body (`substances[0].code`) or the parameter's name. Synthetic data."""

from __future__ import annotations

from typing import Any

from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import moment_ago, ok
from tests.e2e.test_bad_input import invalid, writes_nothing


def fields(r: Any) -> list[str]:
    return [e["field"] for e in invalid(r)["errors"]]


def with_specimen(api: Any, seed: int) -> tuple[str, str]:
    pid = ok(api.post("/participants", synthetic_admission(seed)))["id"]
    base = f"/participants/{pid}"
    ok(api.post(f"{base}/specimens", {"specimen_id": f"SYN-SPC-{seed}", "method": "urine",
                                      "test_reason": "random", "collected_at": moment_ago(3)}))
    return pid, f"{base}/specimens/SYN-SPC-{seed}/result"


def test_a_list_item_is_named_alike_by_the_schema_and_by_the_domain(api):
    pid, result = with_specimen(api, 401)
    with writes_nothing(api, pid):
        by_schema = fields(api.post(result, {"result": "positive",
                                             "substances": [{"code": 5}]}))
        by_domain = fields(api.post(result, {"result": "positive",
                                             "substances": [{"code": "kryptonite"}]}))
    assert by_schema == ["substances[0].code", "substances[0]"]
    assert by_domain == ["substances[0].code"]

    history = ok(api.get(f"/participants/{pid}/history"), 200)["events"]
    with writes_nothing(api, pid):
        corrected = fields(api.post(f"/participants/{pid}/corrections", {
            "supersedes_version": history[-1]["version"], "action": "correct",
            "changes": {"method": "telepathy"}, "reason": "x"}))
    assert corrected == ["changes.method"]


def test_nested_keys_and_parameters(api):
    admission = synthetic_admission(402, external_ids={"SID": {"value": 3}},
                                    assessments=[{"instrument": "SYN", "score": "high"}])
    with writes_nothing(api):
        assert sorted(fields(api.post("/participants", admission))) == [
            "assessments[0].score", "external_ids.SID.value"]
    assert fields(api.get("/participants", params={"limit": "many"})) == ["limit"]
    assert fields(api.get("/participants/not-a-uuid")) == ["participant_id"]
