"""Named domain errors: each says which rule or which input was wrong, never whose record.

Messages must carry no personal data (names, DOC numbers, results, reasons): they reach
logs and HTTP answers. They name codes, fields, ids and versions only.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error raised by the rules of the program."""


class InvalidValue(DomainError):
    """An input that no rule could accept (unknown code, future date, empty reason)."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


class RuleViolation(DomainError):
    """A program rule that the current record does not allow; `rule` names it."""

    def __init__(self, rule: str, detail: str) -> None:
        self.rule = rule
        self.detail = detail
        super().__init__(f"{rule}: {detail}")


class NotFound(DomainError):
    """Something the command refers to (a sanction, a specimen, a version) does not exist."""

    def __init__(self, what: str, ident: object) -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"{what} {ident} not found")


class ParticipantNotFound(NotFound):
    def __init__(self, ident: object) -> None:
        super().__init__("participant", ident)


class ParticipantErased(DomainError):
    """The participant's data key was destroyed: the record can no longer be read."""

    def __init__(self, ident: object) -> None:
        self.ident = ident
        super().__init__(f"participant {ident} was erased")


class VersionMismatch(DomainError):
    """The caller's expected stream version (If-Match) is not the current one."""

    def __init__(self, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"expected version {expected}, record is at version {actual}")
