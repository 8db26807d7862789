"""Attendance against a stage's weekly requirement, as arithmetic over roster lines.

A line is what a record keeps of one session: its day (UTC), group kind and status. The
window is the last 28 days up to a day, starting no earlier than the admission; each
kind's requirement is its weekly figure prorated to the days of the window. Excused
absences count toward the requirement, absences do not.

The record shows this against today; a view that must not hold "now" keeps instead the
first day from which the record falls below the requirement (`first_day_below`): with no
further line, the count in the window only falls and the requirement only rises as the
days pass, so the record is below on every day from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

WINDOW_DAYS = 28
STATUSES = ("present", "late", "excused", "absent")
CREDITED = frozenset({"present", "late", "excused"})

Line = tuple[str, str, str]  # day (ISO), kind, status


def line_of(entry: Mapping[str, Any]) -> Line:
    """A record's attendance entry as a line, its day taken in UTC like "today" (the fold
    keeps it in the entry: views derive every line of a record at each change)."""
    day = entry.get("day") or datetime.fromisoformat(entry["held_at"]).astimezone(UTC) \
        .date().isoformat()
    return day, entry["kind"], entry["status"]


def window(admitted_on: date | None, today: date) -> tuple[date, int]:
    """The first day of the window ending today, and its length in days."""
    start = today - timedelta(days=WINDOW_DAYS - 1)
    if admitted_on is not None and admitted_on > start:
        start = admitted_on
    return start, max((today - start).days + 1, 0)


def summary(lines: Iterable[Line], weekly: Mapping[str, int], admitted_on: date | None,
            today: date, stage: str) -> dict[str, Any]:
    """Counts per status for each kind in the window, against the prorated requirement."""
    start, days = window(admitted_on, today)
    first, last = start.isoformat(), today.isoformat()
    by_kind: dict[str, dict[str, int]] = {k: dict.fromkeys(STATUSES, 0) for k in weekly}
    for day, kind, status in lines:
        if first <= day <= last:
            by_kind.setdefault(kind, dict.fromkeys(STATUSES, 0))[status] += 1
    kinds = {}
    for k, counts in sorted(by_kind.items()):
        required = weekly.get(k, 0) * days // 7
        credited = sum(counts[s] for s in CREDITED)
        kinds[k] = {**counts, "attended": counts["present"] + counts["late"],
                    "required": required, "below_requirement": credited < required}
    return {"from": first, "to": last, "days": days, "stage": stage, "kinds": kinds,
            "below_requirement": sorted(k for k, v in kinds.items() if v["below_requirement"])}


def below(lines: Iterable[Line], weekly: Mapping[str, int], admitted_on: date | None,
          today: date) -> bool:
    """Whether any kind falls short of its requirement in the window ending today."""
    start, days = window(admitted_on, today)
    first, last = start.isoformat(), today.isoformat()
    credited: dict[str, int] = {}
    for day, kind, status in lines:
        if first <= day <= last and status in CREDITED:
            credited[kind] = credited.get(kind, 0) + 1
    return any(credited.get(k, 0) < n * days // 7 for k, n in weekly.items())


def recent(lines: Iterable[Line]) -> list[Line]:
    """The lines that can still fall in a window ending on or after the latest of them:
    what a view keeps to show the window later without holding every line."""
    kept = sorted(lines)
    if not kept:
        return []
    earliest = (date.fromisoformat(kept[-1][0]) - timedelta(days=WINDOW_DAYS - 1)).isoformat()
    return [line for line in kept if line[0] >= earliest]


def first_day_below(lines: Iterable[Line], weekly: Mapping[str, int],
                    admitted_on: date | None) -> date | None:
    """The first day, from the admission or the latest line on, on which the record is
    below the requirement; it stays below from then on until a new line or stage. None:
    nothing is required, or the admission is unknown."""
    if admitted_on is None or not any(weekly.values()):
        return None
    kept = recent(lines)
    start = max(admitted_on, date.fromisoformat(kept[-1][0])) if kept else admitted_on
    # WINDOW_DAYS after the latest line the window holds none of them while the
    # requirement is whole: below by then at the latest.
    for n in range(WINDOW_DAYS + 1):
        day = start + timedelta(days=n)
        if below(kept, weekly, admitted_on, day):
            return day
    return None  # pragma: no cover - unreachable, see above
