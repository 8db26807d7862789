"""The drug-test vocabulary and the rule that a result and its substances agree.

Shared by the command that records a result and by a correction of it, so that a corrected
result is held to exactly the rule the first entry was.
"""

from __future__ import annotations

from typing import Any

from domain.errors import InvalidValue
from domain.policy import ProgramPolicy

RESULTS = ("negative", "positive", "dilute", "invalid", "refused", "tampered")
VALIDITY_OF_RESULT = {"negative": "valid", "positive": "valid", "dilute": "dilute",
                      "invalid": "invalid", "refused": "refused", "tampered": "adulterated"}
VALIDITIES = ("valid", "dilute", "substituted", "adulterated", "invalid", "refused")
REVIEW_OUTCOMES = ("explained", "not-explained")


def checked_substances(policy: ProgramPolicy, items: list[dict[str, Any]],
                       name: str) -> list[dict[str, Any]]:
    """Each substance known to the policy, with a sane level, stamped with its cut-off."""
    checked = []
    for i, item in enumerate(items):
        code = item.get("code")
        substance = policy.drug_tests.substances.get(code) if isinstance(code, str) else None
        if substance is None:
            raise InvalidValue(f"{name}[{i}].code", f"unknown substance {code!r}")
        level = item.get("level_ng_ml")
        if level is not None and (not isinstance(level, int | float) or level < 0):
            raise InvalidValue(f"{name}[{i}].level_ng_ml", "must be a number, zero or more")
        checked.append({"code": substance.code, "level_ng_ml": level,
                        "cutoff_ng_ml": substance.cutoff_ng_ml})
    return checked


def disagreement(result: str, substances: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Where a screening result and its substances contradict each other: (field, detail).

    A positive names at least one substance, each at or above its cut-off (below it the
    specimen is negative for that substance); any other result names none.
    """
    if result == "positive":
        if not substances:
            return "substances", "a positive result names at least one substance"
        for i, item in enumerate(substances):
            level, cutoff = item.get("level_ng_ml"), item.get("cutoff_ng_ml")
            if level is not None and cutoff is not None and level < cutoff:
                return (f"substances[{i}].level_ng_ml",
                        f"{item['code']} at {level} ng/mL is below its cut-off of {cutoff} "
                        "ng/mL: that is negative for it")
        return None
    if substances:
        return "substances", f"a {result} result names no substance"
    return None
