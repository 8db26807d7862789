"""Caseload queries over the participant summary view: filters, flags and keyset pages.

Flags are computed against the day asked for, from the dates the rows keep, with the same
meaning as domain.summary.flags on a whole record: `attendance_below_requirement` from the
first day the record falls below (domain.attendance.first_day_below), `follow_up_due`
(discharged records) from the next window's due date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from domain.summary import CONSENT_HORIZON, RELEASE_HORIZON
from infra.sql import SqlStore

SORTS = {"admitted": None, "stage_since": "stage_since",
         "expected_release_on": "expected_release_on"}
LAST = "9999-12-31"  # rows without the date sort last

FLAGS = ("review_due", "sanction_overdue", "result_unconfirmed", "release_within_90_days",
         "consent_expiring", "attendance_below_requirement", "follow_up_due")


@dataclass(frozen=True)
class CaseloadQuery:
    facility: str | None = None
    unit: str | None = None
    counselor_id: str | None = None
    stage: str | None = None
    status: str | None = None
    doc_index: str | None = None
    flags: tuple[str, ...] = ()
    sort: str = "admitted"
    after_value: str | None = None
    after: int = 0
    limit: int = 50

    def sort_key(self, row: dict[str, Any]) -> str | None:
        column = SORTS[self.sort]
        return None if column is None else (row[column] or LAST)


def _flag_sql(flag: str) -> str:
    if flag == "follow_up_due":  # the one flag of a discharged record
        return "s.status = 'discharged' AND s.follow_up_due_on <= ?"
    return "s.status = 'active' AND " + {
        "review_due": "s.review_due_on <= ?",
        "sanction_overdue": "s.sanction_due_on < ?",
        "result_unconfirmed": "s.result_unconfirmed = 1 AND ? = ?",
        "release_within_90_days": "s.expected_release_on <= ?",
        "consent_expiring": "EXISTS (SELECT 1 FROM tcledger_summary_consents c WHERE "
                            "c.participant_id = s.participant_id AND c.expires_on >= ? "
                            "AND c.expires_on <= ?)",
        "attendance_below_requirement": "s.attendance_below_on <= ?",
    }[flag]


def _flag_params(flag: str, today: date) -> list[str]:
    day = today.isoformat()
    return {
        "review_due": [day], "sanction_overdue": [day], "result_unconfirmed": [day, day],
        "release_within_90_days": [(today + RELEASE_HORIZON).isoformat()],
        "consent_expiring": [day, (today + CONSENT_HORIZON).isoformat()],
        "attendance_below_requirement": [day], "follow_up_due": [day],
    }[flag]


def find(store: SqlStore, query: CaseloadQuery, today: date) -> list[dict[str, Any]]:
    column = SORTS[query.sort]
    if column is None:
        where: list[str] = ["s.admitted_position > ?"]
        params: list[Any] = [query.after]
        order = "s.admitted_position"
    else:
        key = f"COALESCE(s.{column}, '{LAST}')"
        where = [f"({key} > ? OR ({key} = ? AND s.admitted_position > ?))"]
        value = query.after_value or ""
        params = [value, value, query.after]
        order = f"{key}, s.admitted_position"
    for column in ("facility", "unit", "counselor_id", "stage", "status", "doc_index"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"s.{column} = ?")
            params.append(value)
    for flag in query.flags:
        where.append(_flag_sql(flag))
        params.extend(_flag_params(flag, today))
    rows = store.fetch_all(
        "SELECT s.* FROM tcledger_participant_summary s WHERE " + " AND ".join(where)
        + f" ORDER BY {order} LIMIT ?", (*params, query.limit + 1))
    found = [dict(r) for r in rows]
    if found:
        marks = ", ".join("?" for _ in found)
        expiries: dict[str, list[str]] = {}
        for r in store.fetch_all("SELECT participant_id, expires_on FROM "
                                 f"tcledger_summary_consents WHERE participant_id IN ({marks})",
                                 [f["participant_id"] for f in found]):
            expiries.setdefault(r["participant_id"], []).append(r["expires_on"])
        for row in found:
            row["flags"] = row_flags(row, expiries.get(row["participant_id"], []), today)
    return found


def row_flags(row: dict[str, Any], consent_expiries: list[str], today: date) -> list[str]:
    day = today.isoformat()
    if row["status"] == "discharged":
        due = row.get("follow_up_due_on")
        return ["follow_up_due"] if due and due <= day else []
    if row["status"] != "active":
        return []
    found = []
    if row["review_due_on"] and row["review_due_on"] <= day:
        found.append("review_due")
    if row["sanction_due_on"] and row["sanction_due_on"] < day:
        found.append("sanction_overdue")
    if row["result_unconfirmed"]:
        found.append("result_unconfirmed")
    if row["expected_release_on"] and \
            row["expected_release_on"] <= (today + RELEASE_HORIZON).isoformat():
        found.append("release_within_90_days")
    horizon = (today + timedelta(days=CONSENT_HORIZON.days)).isoformat()
    if any(day <= e <= horizon for e in consent_expiries):
        found.append("consent_expiring")
    below = row.get("attendance_below_on")
    if below and below <= day:
        found.append("attendance_below_requirement")
    return found
