"""The caseload through HTTP, served by the participant summary view."""

from __future__ import annotations

import time

from tests.e2e.people import synthetic_admission
from tests.e2e.scenario import days_ago, moment_ago, ok


def test_caseload_filters_flags_lookup_and_pages(api):
    ids, last = [], 0
    for seed in range(7):
        written = ok(api.post("/participants", synthetic_admission(
            seed, days_ago=5 if seed % 2 else 120, expected_release_on=days_ago(-400))))
        ids.append(written["id"])
    positive = ids[0]
    ok(api.post(f"/participants/{positive}/specimens", {
        "specimen_id": "SPC-C1", "method": "urine", "test_reason": "random",
        "collected_at": moment_ago(1)}))
    last = ok(api.post(f"/participants/{positive}/specimens/SPC-C1/result", {
        "result": "positive", "substances": ["fentanyl"]}))["position"]
    other = ok(api.post("/participants", synthetic_admission(50, facility="F-SOUTH"),
                        role="counselor", facility="F-SOUTH"))

    def caseload(**params):
        return ok(api.client.get("/participants", params={"min_position": last, **params},
                                 headers=api.headers("counselor")), 200)

    everyone = caseload(limit=500)["items"]
    assert [p["id"] for p in everyone] == ids  # own facility only, in admission order
    assert other["id"] not in [p["id"] for p in everyone]
    first = everyone[0]
    assert first["given_name"] and first["doc_number"].startswith("SYN-")
    assert first["last_test"]["result"] == "positive"
    assert "result_unconfirmed" in first["flags"] and "review_due" in first["flags"]

    flagged = caseload(flag="result_unconfirmed")["items"]
    assert [p["id"] for p in flagged] == [positive]
    due = caseload(flag="review_due")["items"]
    assert [p["id"] for p in due] == ids[0::2]  # the ones admitted 120 days ago
    assert caseload(flag=["review_due", "result_unconfirmed"])["items"][0]["id"] == positive

    doc = everyone[3]["doc_number"]
    assert [p["id"] for p in caseload(doc_number=doc.lower())["items"]] == [ids[3]]

    page, seen = caseload(limit=3), []
    while True:
        seen += [p["id"] for p in page["items"]]
        if page["next_cursor"] is None:
            break
        page = caseload(limit=3, cursor=page["next_cursor"])
    assert seen == ids

    bad = api.client.get("/participants", params={"flag": "nonsense"},
                         headers=api.headers("counselor"))
    assert bad.status_code == 422


def test_health_shows_each_projection(api):
    written = ok(api.post("/participants", synthetic_admission(3)))
    api.get("/participants", params={"min_position": written["position"]})
    deadline = time.monotonic() + 10
    while True:  # the caseload read's own access entry is one more event to follow
        health = api.client.get("/health").json()
        if all(p["lag"] == 0 for p in health["projections"]) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert health["status"] == "ok"
    summary = next(p for p in health["projections"] if p["name"] == "participant_summary")
    assert summary["position"] >= written["position"] and summary["lag"] == 0
    assert summary["stalled"] is False


def test_caseload_sorts_with_keyset_pages(api):
    written = None
    for seed, release in enumerate((300, 20, 150, None, 60)):
        written = ok(api.post("/participants", synthetic_admission(
            40 + seed, expected_release_on=days_ago(-release) if release else None)))
    params = {"min_position": written["position"], "sort": "expected_release_on", "limit": 2}
    seen, cursor = [], None
    while True:
        page = ok(api.client.get("/participants", headers=api.headers("counselor"),
                                 params={**params, **({"cursor": cursor} if cursor else {})}),
                  200)
        seen += [p["expected_release_on"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    dated = [d for d in seen if d]
    assert dated == sorted(dated) and len(dated) == 4 and seen[-1] is None
    mismatched = api.client.get("/participants", headers=api.headers("counselor"),
                                params={"sort": "admitted", "cursor": cursor or page_cursor(api)})
    assert mismatched.status_code == 422


def page_cursor(api) -> str:
    page = api.client.get("/participants", headers=api.headers("counselor"),
                          params={"sort": "stage_since", "limit": 1}).json()
    return page["next_cursor"]
