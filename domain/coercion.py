"""Turning the JSON values of a correction into the typed values of the event it corrects."""

from __future__ import annotations

import types
from datetime import date, datetime
from typing import Any, Union, get_args, get_origin

from domain.errors import InvalidValue


def coerce_changes(event_class: type, changes: dict[str, Any], allowed: set[str],
                   hints: dict[str, Any]) -> dict[str, Any]:
    """Checks each changed field may be corrected; converts its value to the field type."""
    typed: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in allowed:
            raise InvalidValue(f"changes.{name}",
                               f"cannot be corrected on a {event_class.__name__}; correctable: "
                               f"{', '.join(sorted(allowed)) or 'nothing'}")
        typed[name] = coerce(hints[name], value, f"changes.{name}")
    return typed


def coerce(hint: Any, value: Any, name: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, name)
            except InvalidValue as exc:
                errors.append(exc.detail)
        raise InvalidValue(name, errors[0] if errors else "has the wrong type")
    if origin is not None:
        hint = origin
    if hint is datetime:
        return _parse(datetime, value, name)
    if hint is date:
        return _parse(date, value, name)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str) and not value.strip():
        raise InvalidValue(name, "must not be empty")
    if isinstance(value, bool) and hint is not bool:
        raise InvalidValue(name, f"expected {hint.__name__}")
    if not isinstance(value, hint):
        raise InvalidValue(name, f"expected {hint.__name__}")
    return value


def _parse(kind: type[date] | type[datetime], value: Any, name: str) -> Any:
    if not isinstance(value, str):
        raise InvalidValue(name, f"expected an ISO 8601 {kind.__name__}")
    try:
        parsed = kind.fromisoformat(value)
    except ValueError:
        raise InvalidValue(name, f"expected an ISO 8601 {kind.__name__}") from None
    if isinstance(parsed, datetime) and parsed.tzinfo is None:
        raise InvalidValue(name, "must carry a time zone")
    if kind is date and isinstance(parsed, datetime):
        raise InvalidValue(name, "expected a date")
    return parsed
