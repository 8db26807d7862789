"""RFC 9457 problem details: every error leaves the API through here, mapped once.

Details name fields, codes, rules and ids, never personal data: they end up in browsers,
integration logs and tickets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from eventsourcing.persistence import RecordConflictError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import schemas
from domain.errors import (
    DomainError,
    InvalidValue,
    NotFound,
    ParticipantErased,
    RuleViolation,
    VersionMismatch,
)
from infra.cipher import EventDecryptionError

PROBLEM = "application/problem+json"
# FastAPI's words for a body it could not read.
BODY_PARSE_ERROR = "There was an error parsing the body"
log = structlog.get_logger("tcledger.api")


class Problem(Exception):
    def __init__(self, status: int, kind: str, title: str, detail: str = "",
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.headers = headers
        self.extra = extra
        super().__init__(title)


class Answered(Exception):
    """Carries a finished answer (the first answer to a raced retry, or a 401)."""

    def __init__(self, response: JSONResponse) -> None:
        self.response = response
        super().__init__("replayed")


def problem_response(status: int, kind: str, title: str, detail: str = "",
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:tcledger:problem:{kind}", "title": title, "status": status,
            "detail": detail or title, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def unauthenticated(request: Request) -> JSONResponse | None:
    """FastAPI reads the body before it checks the token: a caller without a valid token
    must learn that, not how its body was wrong (API.md: missing or bad token is 401)."""
    if request.url.path == "/health":
        return None
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    tokens = request.app.state.services.tokens
    if scheme.lower() == "bearer" and tokens.authenticate(secret.strip()) is not None:
        return None
    return problem_response(401, "unauthenticated", "Authentication required",
                            "send a valid token as 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": 'Bearer realm="tcledger"'})


LOCATIONS = ("body", "query", "path", "header", "cookie")
# pydantic names the branch of a union it tried (`SubstanceIn`, `constrained-str`) in the
# error's location; that is how the schema is built, not where the caller's value was.
_MODELS = frozenset(name for name, value in vars(schemas).items()
                    if isinstance(value, type) and issubclass(value, BaseModel))
_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "date", "datetime", "none",
                          "constrained-str", "constrained-int", "constrained-float"})


def field_path(loc: Sequence[str | int]) -> str:
    """One format for every `errors[].field`, whoever found the error: the value's JSON path
    in the body (`substances[0].code`, `external_ids.SID.value`, as the domain names its
    fields), or the parameter's name (`limit`, `participant_id`)."""
    parts = list(loc[1:] if loc and loc[0] in LOCATIONS else loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _MODELS or part in _SCALAR_TAGS or "[" in part:
            continue
        else:
            path += f".{part}" if path else part
    return path or "body"


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    refused = unauthenticated(request)
    if refused is not None:
        return refused
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return problem_response(400, "malformed-json", "Malformed JSON",
                                    "the request body is not valid JSON")
        # Never echo the offending value back: it may be a name or a DOC number.
        found = {"field": field_path(error.get("loc", ())), "message": error.get("msg", "")}
        if found not in errors:  # each branch of a union reports the same miss
            errors.append(found)
    return problem_response(422, "validation", "Invalid request",
                            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                            errors=errors)


def install(app: FastAPI) -> None:
    """Maps every error type to its problem response."""

    @app.exception_handler(Problem)
    def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.kind, exc.title, exc.detail, exc.headers,
                                **exc.extra)

    app.add_exception_handler(RequestValidationError, _validation)

    @app.exception_handler(Answered)
    def _answered(request: Request, exc: Answered) -> JSONResponse:
        return exc.response

    @app.exception_handler(InvalidValue)
    def _invalid(request: Request, exc: InvalidValue) -> JSONResponse:
        return problem_response(422, "validation", "Invalid request", str(exc),
                                errors=[{"field": exc.field, "message": exc.detail}])

    @app.exception_handler(RuleViolation)
    def _rule(request: Request, exc: RuleViolation) -> JSONResponse:
        body = {"type": f"urn:tcledger:rule:{exc.rule}", "title": "A program rule refused this",
                "status": 409, "detail": exc.detail, "rule": exc.rule}
        return JSONResponse(body, status_code=409, media_type=PROBLEM)

    @app.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem_response(404, "not-found", f"Unknown {exc.what}", str(exc))

    @app.exception_handler(ParticipantErased)
    def _erased(request: Request, exc: ParticipantErased) -> JSONResponse:
        return problem_response(410, "erased", "Participant erased",
                                "this participant's record was erased and cannot be read")

    @app.exception_handler(VersionMismatch)
    def _stale(request: Request, exc: VersionMismatch) -> JSONResponse:
        return problem_response(412, "stale-version", "The record has changed", str(exc),
                                headers={"ETag": f'"{exc.actual}"'})

    @app.exception_handler(RecordConflictError)
    def _conflict(request: Request, exc: RecordConflictError) -> JSONResponse:
        return problem_response(409, "concurrent-write", "Concurrent write",
                                "another write to this record won the race; read and retry")

    @app.exception_handler(EventDecryptionError)
    def _undecryptable(request: Request, exc: EventDecryptionError) -> JSONResponse:
        log.error("event_decryption_failed", detail=str(exc))
        return problem_response(500, "integrity", "Stored record failed authentication",
                                "a stored event does not authenticate; an operator was alerted")

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if getattr(request.state, "body_too_large", False):
            limit = getattr(request.state, "body_limit",
                            request.app.state.services.settings.max_body_bytes)
            return problem_response(413, "body-too-large", "Request body too large",
                                    f"the limit is {limit} bytes")
        refused = unauthenticated(request) if exc.status_code in (400, 422) else None
        if refused is not None:
            return refused
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
            return problem_response(400, "malformed-json", "Malformed JSON",
                                    "the request body is not valid UTF-8 JSON")
        titles = {404: "Not found", 405: "Method not allowed"}
        return problem_response(exc.status_code, "http", titles.get(exc.status_code, "Error"),
                                str(exc.detail))

    @app.exception_handler(Exception)
    def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error_type=type(exc).__name__)
        return problem_response(500, "internal", "Internal error",
                                "the request failed; quote the X-Request-ID to an operator")


def refusal_body(exc: DomainError, field_prefix: str = "") -> dict[str, Any]:
    """A domain refusal as the problem body its own request would have got: for one line
    of a request that is answered line by line (a roster)."""
    if isinstance(exc, RuleViolation):
        return {"type": f"urn:tcledger:rule:{exc.rule}", "title": "A program rule refused this",
                "status": 409, "detail": exc.detail, "rule": exc.rule}
    if isinstance(exc, InvalidValue):
        field = f"{field_prefix}{exc.field}"
        return {"type": "urn:tcledger:problem:validation", "title": "Invalid request",
                "status": 422, "detail": f"{field}: {exc.detail}",
                "errors": [{"field": field, "message": exc.detail}]}
    if isinstance(exc, ParticipantErased):
        return {"type": "urn:tcledger:problem:erased", "title": "Participant erased",
                "status": 410, "detail": "this participant's record was erased"}
    if isinstance(exc, NotFound):
        return {"type": "urn:tcledger:problem:not-found", "title": f"Unknown {exc.what}",
                "status": 404, "detail": str(exc)}
    return {"type": "urn:tcledger:problem:refused", "title": "Refused", "status": 409,
            "detail": type(exc).__name__}
