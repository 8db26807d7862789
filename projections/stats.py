"""Program statistics: de-identified counts for funders and departments.

The view keeps counters by program, facility, day and measure, and no row that names a
participant in clear. Each participant's own contribution (which counters it adds to) is
kept sealed under a statistics key of the deployment's own, so that a correction can
replace it and an erasure can subtract it, even after the participant's key is gone.
Measures: admissions; discharges by type (and whether successful); completed stage stays
with their length in days; test results; sanctions by severity; attendance lines by group
kind and status (on the session's day, under the session's facility: a resident moved
since is still counted where they attended); follow-ups, one per person and window (on the
day of the contact that counts), whether reached, and the outcomes of those reached; and
each window's due date after a discharge, with whether that person was followed up in it
(attempted or reached). The census by stage is read from the participant summary view
when asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.attendance import STATUSES, line_of
from domain.community import OUTCOMES
from domain.participant import Participant
from domain.policy import PolicyBook, ProgramPolicy
from domain.state import ParticipantState
from infra.keys import KeyStore
from infra.sql import SqlStore
from projections.contributions import SealedContributions
from projections.folding import Folded, RecordFolder
from projections.runner import LoggedEvent

STATS_KEY_STREAM = uuid5(NAMESPACE_URL, "tcledger:statistics:v1")
Fact = tuple[str, str, str, str, str, int]  # program, facility, day, measure, code, value


def contribution(p: Participant, policy: ProgramPolicy | None) -> list[Fact]:
    """The counters one record adds to, from its folded state."""
    st = p.state
    base = (st.program, st.facility)
    facts: list[Fact] = []
    if st.admitted_on:
        facts.append((*base, st.admitted_on.isoformat(), "admission", "", 0))
    if st.discharge:
        facts.append((*base, st.discharge["effective_on"], "discharge", st.discharge["type"],
                      1 if st.discharge["successful"] else 0))
    stays = st.stage_history
    for stay, following in zip(stays, stays[1:], strict=False):
        days = (date.fromisoformat(following["since"]) - date.fromisoformat(stay["since"])).days
        facts.append((*base, following["since"], "stage_stay", stay["stage"], max(days, 0)))
    for specimen in st.specimens.values():
        if specimen["result"]:
            facts.append((*base, specimen["resulted_at"][:10], "test", specimen["result"], 0))
    for sanction in st.sanctions.values():
        facts.append((*base, sanction["imposed_on"], "sanction", str(sanction["severity"]), 0))
    for entry in st.attendance.values():
        day, kind, status = line_of(entry)
        facts.append((st.program, entry["facility"], day, "attendance",
                      f"{kind}/{status}", 0))
    chosen = follow_ups_by_window(st)
    if st.discharge and policy is not None:
        discharged = date.fromisoformat(st.discharge["effective_on"])
        for due in policy.follow_up_windows:
            done = chosen.get(due.code)
            facts.append((*base, (discharged + timedelta(days=due.days)).isoformat(),
                          "follow_up_due", due.code,
                          0 if done is None else 2 if done["reached"] else 1))
    for window, follow_up in chosen.items():
        day = follow_up["contacted_on"]
        facts.append((*base, day, "follow_up", window, 1 if follow_up["reached"] else 0))
        if follow_up["reached"]:
            facts += [(*base, day, "follow_up_outcome", f"{window}/{outcome}", OUTCOME[known])
                      for outcome, known in sorted(follow_up["outcomes"].items())]
    return sorted(facts)


OUTCOME = {True: 1, False: 0, None: 2}  # a follow-up outcome as a counter's value


def follow_ups_by_window(st: ParticipantState) -> dict[str, dict[str, Any]]:
    """The follow-up that counts for each window: the last that reached the person, or
    the last attempt when none did. A person counts once per window, however many calls
    it took."""
    chosen: dict[str, dict[str, Any]] = {}
    for f in sorted(st.follow_ups.values(), key=lambda f: f["contacted_on"]):  # stable
        if f["reached"] or not chosen.get(f["window"], {}).get("reached"):
            chosen[f["window"]] = f
    return chosen


COUNT_COLUMNS = ("program", "facility", "day", "measure", "code", "value", "n")
ADD_COUNTS = ("ON CONFLICT (program, facility, day, measure, code, value) DO UPDATE SET "
              "n = tcledger_stats_counts.n + excluded.n")


class ProgramStatsView:
    name = "program_stats"
    # Contributions are one participant's each and counters are sums: a rebuild may split.
    partitioned = True

    def __init__(self, keys: KeyStore, records: RecordFolder, policies: PolicyBook) -> None:
        self.policies = policies
        self.contributions = SealedContributions(keys, STATS_KEY_STREAM,
                                                 "tcledger_stats_contributions")
        self.records = records  # may be shared with other views of the same records
        self._pending: Folded = {}

    def reset(self) -> None:
        self.records.reset()

    def rebuilding(self, on: bool) -> None:
        self.records.hold_all(on)

    def prepare(self) -> None:
        self.contributions.prepare()

    def create_tables(self, cur: Any, store: SqlStore) -> None:
        cur.execute("CREATE TABLE IF NOT EXISTS tcledger_stats_counts ("
                    " program TEXT NOT NULL, facility TEXT NOT NULL, day TEXT NOT NULL,"
                    " measure TEXT NOT NULL, code TEXT NOT NULL, value INTEGER NOT NULL,"
                    " n INTEGER NOT NULL,"
                    " PRIMARY KEY (program, facility, day, measure, code, value))")
        self.contributions.create_table(cur, store)

    def clear(self, cur: Any, store: SqlStore) -> None:
        cur.execute("DELETE FROM tcledger_stats_counts")
        self.contributions.clear(cur)

    def apply(self, cur: Any, store: SqlStore, batch: Sequence[LoggedEvent]) -> None:
        """Folds the batch; the counters change when the runner flushes, once for every
        record the transaction touched."""
        self._pending.update(self.records.fold_batch(batch))

    def flush(self, cur: Any, store: SqlStore) -> None:
        pending = self._pending
        self.discard()
        self._replace(cur, store, {
            pid: contribution(p, self.policies.get(p.state.program)) if p is not None else []
            for pid, p in pending.items()})

    def discard(self) -> None:
        """Forgets what was applied but not flushed (its transaction rolled back)."""
        self._pending = {}

    def _replace(self, cur: Any, store: SqlStore, facts_of: dict[UUID, list[Fact]]) -> None:
        """Swaps each record's old contribution for its new one, summed over the batch."""
        change = self.contributions.replace(cur, store, dict(facts_of))
        # In key order: processes rebuilding partitions at once add to the same counters,
        # and rows locked in one order cannot deadlock.
        deltas = sorted((*fact, delta) for fact, delta in change.items())
        store.upsert_many(cur, "tcledger_stats_counts", COUNT_COLUMNS, deltas, ADD_COUNTS)
        if any(d[-1] < 0 for d in deltas):
            cur.execute("DELETE FROM tcledger_stats_counts WHERE n = 0")


@dataclass(frozen=True)
class StatsQuery:
    program: str
    facility: str | None
    first_day: date
    last_day: date
    group_kinds: tuple[str, ...] = ()  # shown even when none was held in the period
    follow_up_windows: tuple[str, ...] = ()  # in the policy's order


def program_stats(store: SqlStore, query: StatsQuery) -> dict[str, Any]:
    """The figures programs report, for a facility (or all) and a period of days."""
    where = "program = ? AND day >= ? AND day <= ?"
    params: list[Any] = [query.program, query.first_day.isoformat(),
                         query.last_day.isoformat()]
    if query.facility is not None:
        where += " AND facility = ?"
        params.append(query.facility)
    rows = store.fetch_all(
        "SELECT measure, code, value, SUM(n) AS n FROM tcledger_stats_counts "
        f"WHERE {where} GROUP BY measure, code, value", params)
    by: dict[str, Counter[str]] = {m: Counter() for m in
                                   ("admission", "discharge", "test", "sanction", "attendance",
                                    "follow_up_outcome")}
    follow_ups: dict[str, Counter[int]] = {}
    due: dict[str, Counter[int]] = {}
    stays: dict[str, Counter[int]] = {}
    successful = 0
    for r in rows:
        measure, code, value, n = r["measure"], r["code"], int(r["value"]), int(r["n"])
        if measure == "stage_stay":
            stays.setdefault(code, Counter())[value] += n
        elif measure == "follow_up":
            follow_ups.setdefault(code, Counter())[value] += n
        elif measure == "follow_up_due":
            due.setdefault(code, Counter())[value] += n
        elif measure == "follow_up_outcome":
            by[measure][f"{code}/{value}"] += n
        else:
            by[measure][code] += n
            if measure == "discharge" and value == 1:
                successful += n
    discharges = sum(by["discharge"].values())
    tests = sum(by["test"].values())
    census_where, census_params = "program = ? AND status = 'active'", [query.program]
    if query.facility is not None:
        census_where += " AND facility = ?"
        census_params.append(query.facility)
    census = {r["stage"]: int(r["n"]) for r in store.fetch_all(
        "SELECT stage, COUNT(*) AS n FROM tcledger_participant_summary "
        f"WHERE {census_where} GROUP BY stage", census_params)}
    return {
        "program": query.program, "facility": query.facility,
        "from": query.first_day.isoformat(), "to": query.last_day.isoformat(),
        "census_by_stage": census,
        "admissions": by["admission"][""],
        "discharges_by_type": dict(sorted(by["discharge"].items())),
        "completion_rate": round(successful / discharges, 4) if discharges else None,
        "median_days_per_stage": {stage: _median(c) for stage, c in sorted(stays.items())},
        "tests_by_result": dict(sorted(by["test"].items())),
        "positive_rate": round(by["test"]["positive"] / tests, 4) if tests else None,
        "sanctions_by_severity": dict(sorted(by["sanction"].items())),
        "attendance_by_kind": _attendance(by["attendance"], query.group_kinds),
        "follow_ups_by_window": _follow_ups(follow_ups, by["follow_up_outcome"], due,
                                            query.follow_up_windows),
    }


def _attendance(lines: Counter[str], kinds: tuple[str, ...]) -> dict[str, Any]:
    """Per kind: each status's count; `rate` = attended (present or late) over attended
    and absent; excused absences are left out of it and shown as their own share."""
    counts: dict[str, dict[str, int]] = {k: dict.fromkeys(STATUSES, 0) for k in kinds}
    for code, n in lines.items():
        kind, _, status = code.rpartition("/")
        counts.setdefault(kind, dict.fromkeys(STATUSES, 0))[status] += n
    shown = {}
    for kind, c in sorted(counts.items()):
        attended = c["present"] + c["late"]
        total = attended + c["excused"] + c["absent"]
        shown[kind] = {**c, "attended": attended,
                       "rate": _share(attended, attended + c["absent"]),
                       "excused_share": _share(c["excused"], total)}
    return shown


def _follow_ups(reached: dict[str, Counter[int]], outcomes: Counter[str],
                due: dict[str, Counter[int]], windows: tuple[str, ...]) -> dict[str, Any]:
    """Per window: people followed up, how many were reached and their share, and for
    each outcome among those reached how many were known true, false or unknown, and the
    share true; and the people whose window came due in the period, with the share of them
    followed up in it (attempted or reached) and the share reached."""
    shown = {}
    for window in (*windows, *sorted((set(reached) | set(due)) - set(windows))):
        counts = reached.get(window, Counter())
        n, hits = sum(counts.values()), counts[1]
        came = due.get(window, Counter())
        owed = sum(came.values())
        shown[window] = {
            "due": owed, "due_followed_up": came[1] + came[2], "due_reached": came[2],
            "due_followed_up_share": _share(came[1] + came[2], owed),
            "due_reached_share": _share(came[2], owed),
            "followed_up": n, "reached": hits, "reached_share": _share(hits, n),
            "outcomes": {outcome: {
                "true": outcomes[f"{window}/{outcome}/1"],
                "false": outcomes[f"{window}/{outcome}/0"],
                "unknown": outcomes[f"{window}/{outcome}/2"],
                "share": _share(outcomes[f"{window}/{outcome}/1"], hits)}
                for outcome in OUTCOMES}}
    return shown


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _median(histogram: Counter[int]) -> float:
    values = sorted(histogram.elements())
    middle = len(values) // 2
    return float(values[middle]) if len(values) % 2 else (values[middle - 1] +
                                                          values[middle]) / 2
