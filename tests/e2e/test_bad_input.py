"""Bad input over HTTP: every refusal is a clear 4xx problem, and a refusal writes nothing.

Each test captures the global log position (`max_notification_id`) before the bad request
and checks it is unchanged afterwards; for writes to an existing participant it also checks
that the record's ETag (its stream version) did not move. Runs against SQLite and PostgreSQL
through the `api` fixture. All people and numbers are synthetic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit.access import ACCESS_TOPIC
from tests.e2e.people import synthetic_admission

PROBLEM = "application/problem+json"
MAX_BODY = 65536  # Settings.max_body_bytes default


# --- helpers -------------------------------------------------------------------------------

def now() -> datetime:
    return datetime.now(UTC)


def today() -> str:
    return now().date().isoformat()


def tomorrow() -> str:
    return (now().date() + timedelta(days=1)).isoformat()


def an_hour_ago() -> str:
    return (now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")


def this_time_tomorrow() -> str:
    return (now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")


def naive_an_hour_ago() -> str:
    return (now() - timedelta(hours=1)).replace(tzinfo=None).isoformat()


def in_days(days: int) -> str:
    return (now().date() + timedelta(days=days)).isoformat()


def log_position(api: Any) -> int | None:
    """The last position of a record's event: the access log's own entries (a refused
    attempt is logged, as who tried what) are not facts of anyone's record."""
    column = "notification_id" if api.services.settings.uses_postgres else "rowid"
    row = api.services.store.fetch_one(
        f"SELECT MAX({column}) AS head FROM tcledger_events WHERE topic <> ?", (ACCESS_TOPIC,))
    return row["head"]


def etag(api: Any, pid: str) -> str:
    r = api.get(f"/participants/{pid}")
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == f'"{r.json()["version"]}"'
    return str(r.headers["etag"])


@contextmanager
def writes_nothing(api: Any, pid: str | None = None) -> Iterator[None]:
    """The block may send any request; afterwards the log and the record are as before."""
    before = log_position(api)
    tag = etag(api, pid) if pid else None
    yield
    assert log_position(api) == before, "a refused request wrote to the event log"
    if pid:
        assert etag(api, pid) == tag, "a refused request moved the participant's version"


def problem(r: Any, status: int, type_: str | None = None) -> dict[str, Any]:
    """Asserts an RFC 9457 problem of this status (and type) and returns its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0].strip() == PROBLEM, r.headers
    body = r.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, f"problem lacks {key!r}: {body}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"].startswith("urn:tcledger:")
    if type_ is not None:
        assert body["type"] == type_, body
    return body  # type: ignore[no-any-return]


def invalid(r: Any, *fields: str) -> dict[str, Any]:
    """A 422 validation problem whose `errors` name each of these fields."""
    body = problem(r, 422, "urn:tcledger:problem:validation")
    assert isinstance(body.get("errors"), list) and body["errors"], body
    for error in body["errors"]:
        assert isinstance(error.get("field"), str) and error["field"], error
        assert isinstance(error.get("message"), str) and error["message"], error
    named = [e["field"] for e in body["errors"]]
    for field in fields:
        assert any(_names(n, field) for n in named), f"{field!r} not named in {named}"
    return body


def _names(named: str, field: str) -> bool:
    """`field` is named exactly, or as the last part of a located name (path.participant_id)."""
    return named == field or named.endswith("." + field)


def admit(api: Any, seed: int, **overrides: Any) -> str:
    r = api.post("/participants", synthetic_admission(seed, **overrides))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def raw_post(api: Any, path: str, content: str | bytes, role: str = "counselor",
             **headers: str) -> Any:
    return api.client.post(path, content=content, headers=api.headers(
        role, **{"Content-Type": "application/json", **headers}))


@pytest.fixture
def pid(api: Any) -> str:
    """A participant admitted 200 days ago into F-NORTH, in orientation."""
    return admit(api, 101)


SPECIMEN_ID = "SYN-SPEC-0001"


def collect(api: Any, pid: str) -> None:
    r = api.post(f"/participants/{pid}/specimens", {
        "specimen_id": SPECIMEN_ID, "method": "urine", "test_reason": "random",
        "collected_at": (now() - timedelta(hours=2)).isoformat()})
    assert r.status_code == 201, r.text


def collect_positive(api: Any, pid: str) -> None:
    collect(api, pid)
    r = api.post(f"/participants/{pid}/specimens/{SPECIMEN_ID}/result",
                 {"result": "positive", "substances": ["thc"], "lab": "Synthetic Lab"})
    assert r.status_code == 201, r.text


def no_setup(api: Any, pid: str) -> None:
    return None


# --- wrong types, missing and unknown fields -------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"given_name": 123}, "given_name"),
    ({"family_name": ["Vexmoorton"]}, "family_name"),
    ({"date_of_birth": "the first of May"}, "date_of_birth"),
    ({"date_of_birth": "1990-02-30"}, "date_of_birth"),
    ({"assessments": [{"instrument": "TCU Drug Screen 5", "score": "high"}]},
     "assessments[0].score"),
    ({"assessments": "TCU Drug Screen 5"}, "assessments"),
    ({"program_agreement_signed": "yes"}, "program_agreement_signed"),
    ({"facility": {"id": "F-NORTH"}}, "facility"),
], ids=["given_name-int", "family_name-list", "dob-text", "dob-feb-30", "score-text",
        "assessments-str", "agreement-str", "facility-object"])
def test_admission_with_a_wrong_type_is_422_naming_the_field(api, overrides, field):
    body = synthetic_admission(7, **overrides)
    with writes_nothing(api):
        got = invalid(api.post("/participants", body), field)
    # Never echo personal data back (the problem may end up in a browser or a ticket).
    text = json.dumps(got)
    for personal in ("doc_number", "given_name", "family_name"):
        if isinstance(body[personal], str):
            assert body[personal] not in text


@pytest.mark.parametrize("path, body, field", [
    ("stage-changes", {"direction": "hold", "reason": "r", "override": "yes"}, "override"),
    ("stage-changes", {"direction": "hold", "reason": 42}, "reason"),
    ("stage-changes", {"direction": ["promote"], "reason": "r"}, "direction"),
    ("privileges", {"action": "grant", "privilege": 7, "reason": "r"}, "privilege"),
    ("privileges", {"action": "grant", "privilege": "commissary", "reason": "r",
                    "until": "soon"}, "until"),
    ("consents", {"recipient": "Synthetic Probation Office", "purpose": "supervision",
                  "categories": "x", "expires_on": in_days(90)}, "categories"),
    ("consents", {"recipient": "Synthetic Probation Office", "purpose": "supervision",
                  "categories": [], "expires_on": in_days(90)}, "categories"),
    ("specimens/ANY/confirmation", {"confirmed": "true", "method": "GC-MS"}, "confirmed"),
    ("corrections", {"supersedes_version": "two", "action": "void", "reason": "r"},
     "supersedes_version"),
    ("corrections", {"supersedes_version": 0, "action": "void", "reason": "r"},
     "supersedes_version"),
    ("corrections", {"supersedes_version": 1, "action": "void", "reason": "r",
                     "changes": ["x"]}, "changes"),
    ("infractions", {"code": "disrespect", "observed_at": "2026-01-01T09:00:00Z", "reason": "r",
                     "reporter_kind": "ghost"}, "reporter_kind"),
], ids=["override-str", "reason-int", "direction-list", "privilege-int", "until-text",
        "categories-str", "categories-empty", "confirmed-str", "version-str", "version-zero",
        "changes-list", "reporter-kind"])
def test_a_write_with_a_wrong_type_is_422_naming_the_field(api, pid, path, body, field):
    with writes_nothing(api, pid):
        invalid(api.post(f"/participants/{pid}/{path}", body), field)


@pytest.mark.parametrize("path, body, field", [
    ("stage-changes", {"direction": "hold"}, "reason"),
    ("stage-changes", {"direction": "hold", "reason": "   "}, "reason"),
    ("stage-changes", {"direction": "hold", "reason": ""}, "reason"),
    ("stage-changes", {"direction": "hold", "reason": "\t\n "}, "reason"),
    ("stage-changes", {"direction": "hold", "reason": "r" * 4001}, "reason"),
    ("stage-changes", {"reason": "r"}, "direction"),
    ("privileges", {"action": "grant", "reason": "r"}, "privilege"),
    ("privileges", {"action": "grant", "privilege": "commissary"}, "reason"),
    ("infractions", {"code": "disrespect", "reason": "r"}, "observed_at"),
    ("sanctions/S-1/completion", {}, "reason"),
    ("sanctions/S-1/completion", {"reason": "  "}, "reason"),
    ("discharge", {"reason": "r"}, "type"),
    ("specimens", {"method": "urine", "test_reason": "random",
                   "collected_at": "2026-01-01T00:00:00Z"}, "specimen_id"),
], ids=["stage-no-reason", "stage-blank-reason", "stage-empty-reason", "stage-ws-reason",
        "stage-reason-too-long", "stage-no-direction", "privilege-missing",
        "privilege-no-reason", "infraction-no-observed-at", "completion-no-reason",
        "completion-blank-reason", "discharge-no-type", "specimen-no-id"])
def test_a_missing_or_blank_required_field_is_422_naming_it(api, pid, path, body, field):
    with writes_nothing(api, pid):
        invalid(api.post(f"/participants/{pid}/{path}", body), field)


@pytest.mark.parametrize("drop", ["reason", "given_name", "doc_number", "program",
                                  "date_of_birth"])
def test_an_admission_missing_a_required_field_is_422(api, drop):
    body = synthetic_admission(8)
    del body[drop]
    with writes_nothing(api):
        invalid(api.post("/participants", body), drop)


def test_an_admission_with_a_whitespace_reason_is_422(api):
    with writes_nothing(api):
        invalid(api.post("/participants", synthetic_admission(9, reason="   ")), "reason")


def test_an_unknown_field_is_422_naming_it(api, pid):
    with writes_nothing(api):
        body = invalid(api.post("/participants", synthetic_admission(10, nickname="Zed")),
                       "nickname")
        assert "Zed" not in json.dumps(body)
    with writes_nothing(api):
        assessment = {"instrument": "TCU Drug Screen 5", "score": 3, "colour": "blue"}
        invalid(api.post("/participants", synthetic_admission(11, assessments=[assessment])),
                "assessments[0].colour")
    with writes_nothing(api, pid):
        # A misspelt field is an error, not silently ignored: the typo and the missing
        # field are both named.
        invalid(api.post(f"/participants/{pid}/privileges",
                         {"action": "grant", "privilege": "commissary", "reasn": "r"}),
                "reasn", "reason")


def test_a_body_that_is_not_an_object_is_422(api, pid):
    with writes_nothing(api, pid):
        invalid(raw_post(api, f"/participants/{pid}/privileges", "[]"), "body")
        invalid(raw_post(api, f"/participants/{pid}/privileges", '"grant"'), "body")
        invalid(raw_post(api, f"/participants/{pid}/privileges", "null"), "body")
        invalid(raw_post(api, f"/participants/{pid}/privileges", ""), "body")


# --- unknown codes ----------------------------------------------------------------------------

def test_an_unknown_program_is_422(api):
    with writes_nothing(api):
        invalid(api.post("/participants", synthetic_admission(12, program="tc-nowhere")),
                "program")


UNKNOWN_CODES: list[tuple[str, Callable[[Any, str], None], str, Callable[[], dict[str, Any]],
                          str]] = [
    ("to_stage", no_setup, "stage-changes",
     lambda: {"direction": "promote", "to_stage": "phase-9", "reason": "r"}, "to_stage"),
    ("regress-to_stage", no_setup, "stage-changes",
     lambda: {"direction": "regress", "to_stage": "basement", "reason": "r"}, "to_stage"),
    ("direction", no_setup, "stage-changes",
     lambda: {"direction": "sideways", "to_stage": "phase-1", "reason": "r"}, "direction"),
    ("privilege", no_setup, "privileges",
     lambda: {"action": "grant", "privilege": "jetpack", "reason": "r"}, "privilege"),
    ("privilege-action", no_setup, "privileges",
     lambda: {"action": "bestow", "privilege": "commissary", "reason": "r"}, "action"),
    ("infraction-code", no_setup, "infractions",
     lambda: {"code": "jaywalking", "observed_at": an_hour_ago(), "reason": "r"}, "code"),
    ("sanction", no_setup, "sanctions",
     lambda: {"sanction": "flogging", "reason": "r"}, "sanction"),
    ("discharge-type", no_setup, "discharge",
     lambda: {"type": "teleported", "reason": "r"}, "type"),
    ("specimen-method", no_setup, "specimens",
     lambda: {"specimen_id": "SYN-SPEC-0002", "method": "telepathy", "test_reason": "random",
              "collected_at": an_hour_ago()}, "method"),
    ("specimen-test_reason", no_setup, "specimens",
     lambda: {"specimen_id": "SYN-SPEC-0003", "method": "urine", "test_reason": "whim",
              "collected_at": an_hour_ago()}, "test_reason"),
    ("result", collect, f"specimens/{SPECIMEN_ID}/result",
     lambda: {"result": "maybe"}, "result"),
    ("substance", collect, f"specimens/{SPECIMEN_ID}/result",
     lambda: {"result": "positive", "substances": ["unobtainium"]}, "substances"),
    ("substance-object", collect, f"specimens/{SPECIMEN_ID}/result",
     lambda: {"result": "positive", "substances": [{"code": "thc"}, {"code": "moonrock"}]},
     "substances"),
    ("confirmation-method", collect_positive, f"specimens/{SPECIMEN_ID}/confirmation",
     lambda: {"confirmed": True, "method": "guesswork", "substances": ["thc"]}, "method"),
    ("consent-category", no_setup, "consents",
     lambda: {"recipient": "Synthetic Probation Office", "purpose": "supervision",
              "categories": ["horoscope"], "expires_on": in_days(90)}, "categories"),
    ("correction-action", no_setup, "corrections",
     lambda: {"supersedes_version": 1, "action": "erase", "reason": "r"}, "action"),
]


@pytest.mark.parametrize("setup, path, make_body, field",
                         [case[1:] for case in UNKNOWN_CODES],
                         ids=[case[0] for case in UNKNOWN_CODES])
def test_an_unknown_code_is_422_naming_the_field(api, pid, setup, path, make_body, field):
    setup(api, pid)
    with writes_nothing(api, pid):
        body = invalid(api.post(f"/participants/{pid}/{path}", make_body()))
        named = [e["field"] for e in body["errors"]]
        # A list item is named as substances[0].code whoever refused it (api.problems).
        assert any(n == field or n.startswith((field + "[", field + ".")) for n in named), named


# --- dates ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["admitted_on", "date_of_birth"])
def test_an_admission_dated_in_the_future_is_422(api, field):
    with writes_nothing(api):
        got = invalid(api.post("/participants", synthetic_admission(13, **{field: tomorrow()})),
                      field)
        assert "future" in got["detail"]


@pytest.mark.parametrize("make_overrides, field", [
    (lambda: {"expected_release_on": "2000-01-01"}, "expected_release_on"),
    (lambda: {"date_of_birth": today(), "admitted_on": in_days(-10)}, "date_of_birth"),
], ids=["release-before-admission", "dob-after-admission"])
def test_an_admission_with_inconsistent_dates_is_422(api, make_overrides, field):
    with writes_nothing(api):
        invalid(api.post("/participants", synthetic_admission(14, **make_overrides())), field)


@pytest.mark.parametrize("path, make_body, field", [
    ("stage-changes", lambda: {"direction": "hold", "effective_on": tomorrow(), "reason": "r"},
     "effective_on"),
    ("privileges", lambda: {"action": "grant", "privilege": "commissary",
                            "effective_on": tomorrow(), "reason": "r"}, "effective_on"),
    ("discharge", lambda: {"type": "successful-completion", "effective_on": tomorrow(),
                           "reason": "r"}, "effective_on"),
    ("sanctions", lambda: {"sanction": "talk-to", "effective_on": tomorrow(), "reason": "r"},
     "effective_on"),
    ("infractions", lambda: {"code": "disrespect", "observed_at": this_time_tomorrow(),
                             "reason": "r"}, "observed_at"),
    ("specimens", lambda: {"specimen_id": "SYN-SPEC-0004", "method": "urine",
                           "test_reason": "random", "collected_at": this_time_tomorrow()},
     "collected_at"),
], ids=["stage-effective_on", "privilege-effective_on", "discharge-effective_on",
        "sanction-effective_on", "infraction-observed_at", "specimen-collected_at"])
def test_a_write_dated_in_the_future_is_422(api, pid, path, make_body, field):
    with writes_nothing(api, pid):
        got = invalid(api.post(f"/participants/{pid}/{path}", make_body()), field)
        assert "future" in got["detail"]


@pytest.mark.parametrize("path, make_body, field", [
    ("infractions", lambda: {"code": "disrespect", "observed_at": naive_an_hour_ago(),
                             "reason": "r"}, "observed_at"),
    ("specimens", lambda: {"specimen_id": "SYN-SPEC-0005", "method": "urine",
                           "test_reason": "random", "collected_at": naive_an_hour_ago()},
     "collected_at"),
], ids=["observed_at", "collected_at"])
def test_a_datetime_without_a_time_zone_is_422(api, pid, path, make_body, field):
    with writes_nothing(api, pid):
        got = invalid(api.post(f"/participants/{pid}/{path}", make_body()), field)
        assert "time zone" in got["detail"]


def test_a_privilege_until_before_its_effective_date_is_422(api, pid):
    with writes_nothing(api, pid):
        invalid(api.post(f"/participants/{pid}/privileges",
                         {"action": "grant", "privilege": "commissary", "until": in_days(-1),
                          "reason": "r"}), "until")


def test_a_consent_without_expiry_or_expired_is_422(api, pid):
    base = {"recipient": "Synthetic Probation Office", "purpose": "supervision",
            "categories": ["stage-progress"]}
    with writes_nothing(api, pid):
        invalid(api.post(f"/participants/{pid}/consents", base), "expires_on")
        invalid(api.post(f"/participants/{pid}/consents", {**base, "expires_on": in_days(-1)}),
                "expires_on")


# --- numbers that JSON cannot carry back ----------------------------------------------------

def test_a_non_finite_score_is_422_and_writes_nothing(api):
    raw = json.dumps(synthetic_admission(15)).replace('"score": 7', '"score": NaN')
    assert "NaN" in raw
    with writes_nothing(api):
        invalid(raw_post(api, "/participants", raw), "assessments[0].score")
    raw = json.dumps(synthetic_admission(16)).replace('"score": 7', '"score": Infinity')
    with writes_nothing(api):
        invalid(raw_post(api, "/participants", raw), "assessments[0].score")
    raw = json.dumps(synthetic_admission(24)).replace('"score": 7',
                                                      '"score": 7, "subscales": {"x": -Infinity}')
    with writes_nothing(api):
        invalid(raw_post(api, "/participants", raw), "assessments[0].subscales.x")


def test_a_non_finite_substance_level_is_422_and_writes_nothing(api, pid):
    collect(api, pid)
    raw = ('{"result": "positive", "substances": [{"code": "thc", "level_ng_ml": Infinity}]}')
    with writes_nothing(api, pid):
        invalid(raw_post(api, f"/participants/{pid}/specimens/{SPECIMEN_ID}/result", raw))
    assert api.get(f"/participants/{pid}").status_code == 200


# --- malformed and oversized bodies ---------------------------------------------------------

@pytest.mark.parametrize("content", ["{not json", '{"reason": "r"} trailing', "{'a': 1}",
                                     '{"reason": "r",}', b"\xff\xfe"],
                         ids=["not-json", "trailing-garbage", "single-quotes",
                              "trailing-comma", "bom-only"])
def test_malformed_json_is_400(api, pid, content):
    with writes_nothing(api, pid):
        problem(raw_post(api, f"/participants/{pid}/privileges", content), 400,
                "urn:tcledger:problem:malformed-json")
    with writes_nothing(api):
        problem(raw_post(api, "/participants", content), 400,
                "urn:tcledger:problem:malformed-json")


UNDECODABLE = b"\xff\xfe\x00"  # a UTF-16 byte-order mark, then half a character


def test_an_undecodable_body_is_400_and_writes_nothing(api, pid):
    with writes_nothing(api, pid):
        problem(raw_post(api, f"/participants/{pid}/privileges", UNDECODABLE), 400)
    with writes_nothing(api):
        problem(raw_post(api, "/participants", UNDECODABLE), 400)


def test_an_undecodable_body_is_malformed_json(api, pid):
    problem(raw_post(api, f"/participants/{pid}/privileges", UNDECODABLE), 400,
            "urn:tcledger:problem:malformed-json")


def test_an_oversized_body_is_413(api, pid):
    big = "r" * 70000
    with writes_nothing(api, pid):
        got = problem(api.post(f"/participants/{pid}/privileges",
                               {"action": "grant", "privilege": "commissary", "reason": big}),
                      413, "urn:tcledger:problem:body-too-large")
        assert str(MAX_BODY) in got["detail"]
    with writes_nothing(api):
        problem(api.post("/participants", synthetic_admission(17, reason=big)), 413,
                "urn:tcledger:problem:body-too-large")


def test_an_oversized_chunked_body_is_413(api, pid):
    def chunks() -> Iterator[bytes]:
        yield b'{"action": "grant", "privilege": "commissary", "reason": "'
        for _ in range(14):
            yield b"r" * 5000
        yield b'"}'
    with writes_nothing(api, pid):
        problem(api.client.post(f"/participants/{pid}/privileges", content=chunks(),
                                headers=api.headers("counselor",
                                                    **{"Content-Type": "application/json"})),
                413, "urn:tcledger:problem:body-too-large")


# --- unknown and malformed ids --------------------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("", None),
    ("/history", None),
    ("/stage-changes", {"direction": "hold", "reason": "r"}),
    ("/privileges", {"action": "grant", "privilege": "commissary", "reason": "r"}),
    ("/discharge", {"type": "successful-completion", "reason": "r"}),
], ids=["read", "history", "stage", "privilege", "discharge"])
def test_an_unknown_participant_is_404(api, path, body):
    missing = uuid.uuid4()
    with writes_nothing(api):
        r = (api.get(f"/participants/{missing}{path}") if body is None
             else api.post(f"/participants/{missing}{path}", body))
        problem(r, 404, "urn:tcledger:problem:not-found")


@pytest.mark.parametrize("bad", ["not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_participant_id_is_422(api, bad):
    with writes_nothing(api):
        invalid(api.get(f"/participants/{bad}"), "participant_id")
        invalid(api.post(f"/participants/{bad}/privileges",
                         {"action": "grant", "privilege": "commissary", "reason": "r"}),
                "participant_id")
        invalid(api.post(f"/admin/participants/{bad}/erasure", {"reason": "r"}, role="admin"),
                "participant_id")


@pytest.mark.parametrize("path", ["sanctions/{x}/completion", "sanctions/{x}/rescission",
                                  "sanctions/{x}/failure", "consents/{x}/revocation"])
def test_closing_an_unknown_sanction_or_consent_is_404(api, pid, path):
    with writes_nothing(api, pid):
        got = problem(api.post(f"/participants/{pid}/{path.format(x='no-such-id')}",
                               {"reason": "r"}), 404, "urn:tcledger:problem:not-found")
        assert "no-such-id" in got["detail"]


def test_a_result_for_an_unknown_specimen_is_404(api, pid):
    with writes_nothing(api, pid):
        problem(api.post(f"/participants/{pid}/specimens/SYN-NOPE/result",
                         {"result": "negative"}), 404, "urn:tcledger:problem:not-found")


def test_a_sanction_for_an_unknown_infraction_is_404(api, pid):
    with writes_nothing(api, pid):
        problem(api.post(f"/participants/{pid}/sanctions",
                         {"sanction": "talk-to", "infraction_id": "no-such-infraction",
                          "reason": "r"}), 404, "urn:tcledger:problem:not-found")


def test_a_correction_of_an_unknown_version_is_404(api, pid):
    with writes_nothing(api, pid):
        problem(api.post(f"/participants/{pid}/corrections",
                         {"supersedes_version": 999, "action": "void", "reason": "r"}),
                404, "urn:tcledger:problem:not-found")


# --- authentication and authorisation -------------------------------------------------------

GRANT = {"action": "grant", "privilege": "commissary", "reason": "earned"}


def _assert_401(r: Any) -> None:
    problem(r, 401, "urn:tcledger:problem:unauthenticated")
    assert r.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-real-token", "Bearer ",
                                           "Basic dXNlcjpwYXNz", "not-a-token"],
                         ids=["none", "bad-token", "empty-bearer", "basic", "no-scheme"])
def test_without_a_valid_token_it_is_401(api, pid, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    with writes_nothing(api, pid):
        _assert_401(api.client.get(f"/participants/{pid}", headers=headers))
        _assert_401(api.client.get("/participants", headers=headers))
        _assert_401(api.client.post(f"/participants/{pid}/privileges", json=GRANT,
                                    headers=headers))
        _assert_401(api.client.post("/participants", json=synthetic_admission(18),
                                    headers=headers))
        _assert_401(api.client.post(f"/admin/participants/{pid}/erasure", json={"reason": "r"},
                                    headers=headers))


def test_a_token_without_the_role_is_403(api, pid):
    with writes_nothing(api, pid):
        for role in ("auditor", "integration", "admin"):
            problem(api.post(f"/participants/{pid}/privileges", GRANT, role=role), 403,
                    "urn:tcledger:problem:forbidden")
            problem(api.post("/participants", synthetic_admission(19), role=role), 403,
                    "urn:tcledger:problem:forbidden")
        for role in ("admin", "integration"):
            problem(api.client.get(f"/participants/{pid}", headers=api.headers(role)), 403,
                    "urn:tcledger:problem:forbidden")
            problem(api.client.get(f"/participants/{pid}/history", headers=api.headers(role)),
                    403, "urn:tcledger:problem:forbidden")


def test_another_facility_cannot_see_or_write_the_participant(api, pid):
    south = api.headers("counselor", facility="F-SOUTH")
    missing = uuid.uuid4()
    with writes_nothing(api, pid):
        for path in (f"/participants/{pid}", f"/participants/{pid}/history"):
            got = problem(api.client.get(path, headers=south), 404,
                          "urn:tcledger:problem:not-found")
            unknown = problem(api.client.get(path.replace(pid, str(missing)), headers=south),
                              404)
            # Indistinguishable from a participant that does not exist.
            assert got["title"] == unknown["title"]
            assert got["detail"].replace(pid, "ID") == unknown["detail"].replace(
                str(missing), "ID")
        for path, body in ((f"/participants/{pid}/privileges", GRANT),
                           (f"/participants/{pid}/stage-changes",
                            {"direction": "hold", "reason": "r"}),
                           (f"/participants/{pid}/discharge",
                            {"type": "successful-completion", "reason": "r"}),
                           (f"/participants/{pid}/privileges",
                            {"action": "grant", "privilege": "jetpack", "reason": "r"})):
            problem(api.client.post(path, json=body, headers=south), 404,
                    "urn:tcledger:problem:not-found")
        # Nor is it listed, even when asked for by DOC number or facility.
        listing = api.client.get("/participants", headers=south,
                                 params={"facility": "F-NORTH"})
        assert listing.status_code == 200 and listing.json()["items"] == []
        doc = synthetic_admission(101)["doc_number"]
        listing = api.client.get("/participants", headers=south, params={"doc_number": doc})
        assert listing.status_code == 200 and listing.json()["items"] == []


def test_a_counselor_admits_only_into_their_own_facility(api):
    with writes_nothing(api):
        problem(api.client.post("/participants", json=synthetic_admission(20, facility="F-NORTH"),
                                headers=api.headers("counselor", facility="F-SOUTH")), 403,
                "urn:tcledger:problem:forbidden")


# --- If-Match --------------------------------------------------------------------------------

def test_a_stale_if_match_is_412_and_writes_nothing(api, pid):
    first = api.get(f"/participants/{pid}").json()["version"]
    ok = api.post(f"/participants/{pid}/privileges", GRANT, **{"If-Match": f'"{first}"'})
    assert ok.status_code == 201, ok.text
    current = ok.json()["version"]
    assert current == first + 1
    for stale in ('"999"', "999", f'"{first}"', 'W/"1"'):
        with writes_nothing(api, pid):
            r = api.client.post(f"/participants/{pid}/stage-changes",
                                json={"direction": "hold", "reason": "r"},
                                headers=api.headers("counselor", **{"If-Match": stale}))
            problem(r, 412, "urn:tcledger:problem:stale-version")
            assert r.headers["etag"] == f'"{current}"'
    # The current version still writes.
    r = api.client.post(f"/participants/{pid}/stage-changes",
                        json={"direction": "hold", "reason": "r"},
                        headers=api.headers("counselor", **{"If-Match": f'"{current}"'}))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("if_match", ['"abc"', "three", '"-1"', '"1.0"', '"1", "2"', '""'])
def test_a_malformed_if_match_is_400(api, pid, if_match):
    with writes_nothing(api, pid):
        problem(api.client.post(f"/participants/{pid}/privileges", json=GRANT,
                                headers=api.headers("counselor", **{"If-Match": if_match})),
                400, "urn:tcledger:problem:bad-if-match")


# --- Idempotency-Key -------------------------------------------------------------------------

def _post_with_key(api: Any, path: str, body: Any, key: str, role: str = "counselor") -> Any:
    return api.client.post(path, json=body,
                           headers=api.headers(role, **{"Idempotency-Key": key}))


def test_the_same_key_and_body_replays_the_first_answer(api, pid):
    path = f"/participants/{pid}/privileges"
    before = log_position(api)
    first = _post_with_key(api, path, GRANT, "key-grant-1")
    assert first.status_code == 201, first.text
    after_first = log_position(api)
    assert after_first == first.json()["position"] > (before or 0)  # one PrivilegeGranted
    tag = etag(api, pid)
    again = _post_with_key(api, path, GRANT, "key-grant-1")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert log_position(api) == after_first
    assert etag(api, pid) == tag
    history = api.get(f"/participants/{pid}/history").json()["events"]
    assert [e["type"] for e in history].count("PrivilegeGranted") == 1


def test_the_same_key_replays_an_admission_once(api):
    body = synthetic_admission(21)
    first = _post_with_key(api, "/participants", body, "key-admit-21")
    assert first.status_code == 201, first.text
    with writes_nothing(api):
        again = _post_with_key(api, "/participants", body, "key-admit-21")
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
    listing = api.get("/participants", params={"doc_number": body["doc_number"],
                                               "min_position": first.json()["position"]}).json()
    assert [item["id"] for item in listing["items"]] == [first.json()["id"]]


def test_the_same_key_with_a_different_request_is_422(api, pid):
    path = f"/participants/{pid}/privileges"
    first = _post_with_key(api, path, GRANT, "key-grant-2")
    assert first.status_code == 201, first.text
    with writes_nothing(api, pid):
        problem(_post_with_key(api, path, {**GRANT, "privilege": "phone-basic"}, "key-grant-2"),
                422, "urn:tcledger:problem:idempotency-key-reused")
        problem(_post_with_key(api, path, {**GRANT, "reason": "a different reason"},
                               "key-grant-2"),
                422, "urn:tcledger:problem:idempotency-key-reused")
        # The same body to another path is another request.
        problem(_post_with_key(api, f"/participants/{pid}/stage-changes",
                               {"direction": "hold", "reason": "r"}, "key-grant-2"),
                422, "urn:tcledger:problem:idempotency-key-reused")
        problem(_post_with_key(api, "/participants", synthetic_admission(22), "key-grant-2"),
                422, "urn:tcledger:problem:idempotency-key-reused")


def test_a_refused_request_does_not_use_up_its_key(api, pid):
    path = f"/participants/{pid}/privileges"
    with writes_nothing(api, pid):
        invalid(_post_with_key(api, path, {**GRANT, "privilege": "jetpack"}, "key-grant-3"),
                "privilege")
    fixed = _post_with_key(api, path, GRANT, "key-grant-3")
    assert fixed.status_code == 201, fixed.text


@pytest.mark.parametrize("key", ["", "k" * 201], ids=["empty", "too-long"])
def test_a_malformed_idempotency_key_is_400(api, pid, key):
    with writes_nothing(api, pid):
        problem(_post_with_key(api, f"/participants/{pid}/privileges", GRANT, key), 400,
                "urn:tcledger:problem:bad-idempotency-key")


# --- program rules ----------------------------------------------------------------------------

def test_promotion_before_the_minimum_days_is_409_and_writes_nothing(api):
    new = admit(api, 23, days_ago=0)
    with writes_nothing(api, new):
        got = problem(api.post(f"/participants/{new}/stage-changes",
                               {"direction": "promote", "to_stage": "phase-1",
                                "reason": "doing well"}),
                      409, "urn:tcledger:rule:promotion-before-minimum-days")
        assert got["rule"] == "promotion-before-minimum-days"
    with writes_nothing(api, new):
        problem(api.post(f"/participants/{new}/stage-changes",
                         {"direction": "promote", "to_stage": "phase-1", "override": True,
                          "reason": "doing well"}),
                409, "urn:tcledger:rule:override-requires-supervisor")
    with writes_nothing(api, new):
        problem(api.post(f"/participants/{new}/stage-changes",
                         {"direction": "promote", "to_stage": "phase-2", "reason": "r"}),
                409, "urn:tcledger:rule:promotion-not-next-stage")


def test_writes_to_a_discharged_record_are_409(api, pid):
    r = api.post(f"/participants/{pid}/discharge",
                 {"type": "successful-completion", "reason": "completed"})
    assert r.status_code == 201, r.text
    with writes_nothing(api, pid):
        problem(api.post(f"/participants/{pid}/privileges", GRANT), 409,
                "urn:tcledger:rule:participant-discharged")
        problem(api.post(f"/participants/{pid}/discharge",
                         {"type": "successful-completion", "reason": "again"}), 409,
                "urn:tcledger:rule:participant-discharged")


def test_a_write_dated_before_admission_is_409(api, pid):
    with writes_nothing(api, pid):
        problem(api.post(f"/participants/{pid}/stage-changes",
                         {"direction": "hold", "effective_on": "2000-01-01", "reason": "r"}),
                409, "urn:tcledger:rule:effective-before-admission")


# --- erasure ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [{}, {"reason": "   "}, {"reason": ""}, {"reason": None}],
                         ids=["missing", "blank", "empty", "null"])
def test_erasure_without_a_reason_is_422(api, pid, body):
    with writes_nothing(api, pid):
        invalid(api.post(f"/admin/participants/{pid}/erasure", body, role="admin"), "reason")
    assert api.get(f"/participants/{pid}").status_code == 200


@pytest.mark.parametrize("role", ["counselor", "supervisor", "auditor", "integration"])
def test_erasure_by_anyone_but_an_admin_is_403(api, pid, role):
    with writes_nothing(api, pid):
        problem(api.post(f"/admin/participants/{pid}/erasure", {"reason": "requested"},
                         role=role), 403, "urn:tcledger:problem:forbidden")
    assert api.get(f"/participants/{pid}").status_code == 200


def test_erasure_of_an_unknown_participant_is_404(api):
    with writes_nothing(api):
        problem(api.post(f"/admin/participants/{uuid.uuid4()}/erasure", {"reason": "requested"},
                         role="admin"), 404, "urn:tcledger:problem:not-found")


def test_erasure_under_a_legal_hold_is_409(api, pid):
    r = api.post(f"/admin/participants/{pid}/legal-holds",
                 {"matter": "synthetic matter 1", "reason": "litigation hold"}, role="admin")
    assert r.status_code == 201, r.text
    with writes_nothing(api, pid):
        problem(api.post(f"/admin/participants/{pid}/erasure", {"reason": "requested"},
                         role="admin"), 409, "urn:tcledger:rule:legal-hold-open")
    assert api.get(f"/participants/{pid}").status_code == 200


# --- bad query parameters on reads ----------------------------------------------------------

@pytest.mark.parametrize("params, field", [
    ({"as_of": "2026-01-01T00:00:00"}, "as_of"),
    ({"as_of": "yesterday"}, "as_of"),
], ids=["as_of-naive", "as_of-text"])
def test_a_bad_as_of_is_422(api, pid, params, field):
    with writes_nothing(api, pid):
        invalid(api.get(f"/participants/{pid}", params=params), field)


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"status": "asleep"}, "status"),
    ({"cursor": "abc"}, "cursor"),
    ({"cursor": "-1"}, "cursor"),
    ({"cursor": "\u00b2"}, "cursor"),
    ({"cursor": "9" * 30}, "cursor"),
], ids=["limit-0", "limit-501", "limit-text", "status", "cursor-text", "cursor-negative",
        "cursor-superscript-digit", "cursor-huge"])
def test_a_bad_caseload_query_is_422(api, pid, params, field):
    with writes_nothing(api, pid):
        invalid(api.get("/participants", params=params), field)


def test_an_unknown_route_or_method_is_a_problem(api, pid):
    with writes_nothing(api, pid):
        problem(api.post(f"/participants/{pid}/teleport", {"reason": "r"}), 404)
        problem(api.client.delete(f"/participants/{pid}", headers=api.headers("counselor")),
                405)


def test_no_token_is_401_even_with_a_malformed_body(api):
    with writes_nothing(api):
        for content in (b"{not json", b"\xff\xfe\x00"):
            got = api.client.post("/participants", content=content,
                                  headers={"Content-Type": "application/json"})
            problem(got, 401, "urn:tcledger:problem:unauthenticated")
            assert got.headers["www-authenticate"].startswith("Bearer")
        got = api.client.post("/participants", json={"given_name": 1})
        problem(got, 401, "urn:tcledger:problem:unauthenticated")
