"""The participant summary view: one row per participant, the caseload's source.

In clear only what is filtered, sorted and counted: program, facility, unit, counselor,
status, stage and the dates the flags are computed from. Names, the DOC number,
privileges, sanctions and the last result are sealed under the participant's own key;
the DOC number is found through its blind index. Rows hold no "now": flags are computed
when asked, so a rebuild gives the same rows whenever it runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from domain import attendance
from domain.community import attendance_lines, next_follow_up_due, stage_requirement
from domain.errors import ParticipantErased
from domain.participant import Participant
from domain.policy import PolicyBook
from infra.blind_index import BlindIndex
from infra.cipher import FieldSealer
from infra.sql import SqlStore
from projections.folding import Folded, RecordFolder
from projections.runner import LoggedEvent

SEALED = "participant_summary"


# Columns added after the table first shipped: a table made before gains them at start
# (its rows show the new fields after `tcledger projections rebuild participant_summary`).
ADDED_COLUMNS = ("attendance_below_on", "follow_up_due_on")


def _tables(blob: str, bigint: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS tcledger_participant_summary ("
        " participant_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
        f" admitted_position {bigint} NOT NULL, program TEXT NOT NULL, facility TEXT NOT NULL,"
        " unit TEXT NOT NULL, counselor_id TEXT, status TEXT NOT NULL, stage TEXT NOT NULL,"
        " stage_since TEXT, admitted_on TEXT, expected_release_on TEXT, discharged_on TEXT,"
        " review_due_on TEXT, sanction_due_on TEXT, result_unconfirmed INTEGER NOT NULL,"
        f" doc_index TEXT, sealed {blob} NOT NULL,"
        " attendance_below_on TEXT, follow_up_due_on TEXT)",
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility"
        " ON tcledger_participant_summary (facility, status, admitted_position)",
        # A caseload page is a facility's rows in one order, read from an index in that
        # order: no sort of the whole facility per page (measured: 61 ms -> see bench).
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility_admitted"
        " ON tcledger_participant_summary (facility, admitted_position)",
        # The flags of active records, in the caseload's order: early admissions are mostly
        # discharged, and an index over every row of the facility read ~3,300 of them to
        # find a page of `review_due` at 100,000 participants (10-15 ms; this: 0.6 ms).
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility_active"
        " ON tcledger_participant_summary (facility, admitted_position)"
        " WHERE status = 'active'",
        # A rare flag: its few rows, found without reading the others.
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility_unconfirmed"
        " ON tcledger_participant_summary (facility, admitted_position)"
        " WHERE status = 'active' AND result_unconfirmed = 1",
        "CREATE INDEX IF NOT EXISTS tcledger_summary_unit_admitted"
        " ON tcledger_participant_summary (facility, unit, admitted_position)",
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility_release"
        " ON tcledger_participant_summary"
        " (facility, COALESCE(expected_release_on, '9999-12-31'), admitted_position)",
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility_stage_since"
        " ON tcledger_participant_summary"
        " (facility, COALESCE(stage_since, '9999-12-31'), admitted_position)",
        "CREATE INDEX IF NOT EXISTS tcledger_summary_doc"
        " ON tcledger_participant_summary (doc_index)",
        # The community flags pick few rows of a facility: found by their date, not by
        # reading the facility's rows in order and dropping most.
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility_attendance"
        " ON tcledger_participant_summary (facility, status, attendance_below_on)",
        "CREATE INDEX IF NOT EXISTS tcledger_summary_facility_follow_up"
        " ON tcledger_participant_summary (facility, status, follow_up_due_on)",
        "CREATE TABLE IF NOT EXISTS tcledger_summary_consents ("
        " participant_id TEXT NOT NULL, expires_on TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS tcledger_summary_consents_participant"
        " ON tcledger_summary_consents (participant_id)",
    ]


class ParticipantSummaryView:
    name = "participant_summary"
    partitioned = True  # rows of one participant each: a rebuild may split them

    def __init__(self, policies: PolicyBook, sealer: FieldSealer, index: BlindIndex,
                 records: RecordFolder) -> None:
        self.policies = policies
        self.sealer = sealer
        self.index = index
        self.records = records  # may be shared with other views of the same records
        self._pending: Folded = {}
        self._admitted: dict[UUID, int] = {}

    def reset(self) -> None:
        self.records.reset()

    def rebuilding(self, on: bool) -> None:
        self.records.hold_all(on)

    # --- Projection --------------------------------------------------------------------

    def create_tables(self, cur: Any, store: SqlStore) -> None:
        statements = _tables("BYTEA" if store.postgres else "BLOB",
                             "BIGINT" if store.postgres else "INTEGER")
        cur.execute(statements[0])
        _add_missing_columns(cur, store)
        for statement in statements[1:]:
            cur.execute(statement)

    def clear(self, cur: Any, store: SqlStore) -> None:
        cur.execute("DELETE FROM tcledger_summary_consents")
        cur.execute("DELETE FROM tcledger_participant_summary")

    def apply(self, cur: Any, store: SqlStore, batch: Sequence[LoggedEvent]) -> None:
        """Folds the batch; the rows are written when the runner flushes, once for every
        record the transaction touched however many of its events it saw."""
        for e in batch:
            if e.version == 1 and e.event is not None:
                self._admitted.setdefault(e.stream_id, e.position)
        self._pending.update(self.records.fold_batch(batch))

    def flush(self, cur: Any, store: SqlStore) -> None:
        rows: list[tuple[Any, ...]] = []
        consents: list[tuple[str, str]] = []
        gone: list[str] = []
        for participant_id, participant in self._pending.items():
            row = None if participant is None else \
                self._row(participant, self._admitted.get(participant_id, -1))
            if row is None:  # erased (in this batch, or since its events were read)
                gone.append(str(participant_id))
                continue
            rows.append(row)
            assert participant is not None
            consents += [(row[0], c["expires_on"])
                         for c in participant.state.consents.values()
                         if c["revoked_on"] is None and c["expires_on"]]
        self.discard()
        self._delete(cur, store, gone)
        self._write(cur, store, rows, consents)

    def discard(self) -> None:
        """Forgets what was applied but not flushed (its transaction rolled back)."""
        self._pending, self._admitted = {}, {}

    # --- rows --------------------------------------------------------------------------

    def _delete(self, cur: Any, store: SqlStore, keys: list[str]) -> None:
        for table in ("tcledger_summary_consents", "tcledger_participant_summary"):
            store.delete_keys(cur, table, "participant_id", keys)

    def _row(self, p: Participant, admitted: int) -> tuple[Any, ...] | None:
        st = p.state
        policy = self.policies.get(st.program)
        stage = policy.stage(st.stage) if policy else None
        following = policy.next_stage(st.stage) if policy and stage else None
        review_due = (st.stage_since + timedelta(days=stage.min_days)
                      if stage and following and st.stage_since else None)
        dues = [s["due_on"] for s in st.open_sanctions if s["due_on"]]
        last_test = max(st.specimens.values(), key=lambda x: x["collected_at"], default=None)
        unconfirmed = bool(policy and policy.drug_tests.positive_requires_confirmation) and any(
            s["result"] == "positive" and s["confirmation"] is None
            for s in st.specimens.values())
        doc = st.external_ids.get("DOC", {}).get("value")
        lines = attendance.recent(attendance_lines(st))
        weekly = stage_requirement(policy, st.stage) if policy else {}
        follow_up = next_follow_up_due(st, policy) if policy else None
        try:
            sealed = self._seal(p, doc, last_test, lines, follow_up)
        except ParticipantErased:
            return None
        return (str(p.id), admitted, p.version, st.program, st.facility, st.unit,
                st.counselor_id, st.status, st.stage, _iso(st.stage_since),
                _iso(st.admitted_on), _iso(st.expected_release_on),
                st.discharge["effective_on"] if st.discharge else None, _iso(review_due),
                min(dues) if dues else None, 1 if unconfirmed else 0,
                self.index.digest("DOC", doc) if doc else None, sealed,
                _iso(attendance.first_day_below(lines, weekly, st.admitted_on)),
                follow_up["due_on"] if follow_up else None)

    def _seal(self, p: Participant, doc: str | None, last_test: dict[str, Any] | None,
              lines: list[attendance.Line], follow_up: dict[str, Any] | None) -> bytes:
        st = p.state
        mentor = next((m for m in st.mentorships.values()
                       if m["side"] == "mentee" and m["ended_on"] is None), None)
        return self.sealer.seal(p.id, SEALED, json.dumps({
            # The lines that can still fall in the 28 days, and the mentor as the record
            # holds them (a sealed link): both are read against the day and the link keys
            # of the moment the caseload is asked.
            "attendance_lines": lines,
            "mentor": None if mentor is None else {
                k: mentor[k] for k in ("mentor_id", "link_id", "peer", "started_on")},
            "recovery_supports": [
                {k: r[k] for k in ("support_id", "kind", "provider", "started_on")}
                for r in st.recovery_supports.values() if r["ended_on"] is None],
            "next_follow_up_due": follow_up,
            "given_name": st.given_name, "family_name": st.family_name, "doc_number": doc,
            "privileges": st.active_privileges,
            "open_sanctions": [{k: s[k] for k in ("sanction_id", "sanction", "severity",
                                                  "due_on", "imposed_on")}
                               for s in st.open_sanctions],
            "last_test": None if last_test is None else {
                "specimen_id": last_test["specimen_id"],
                "collected_at": last_test["collected_at"], "result": last_test["result"]},
        }, sort_keys=True).encode())

    def _write(self, cur: Any, store: SqlStore, rows: list[tuple[Any, ...]],
               consents: list[tuple[str, str]]) -> None:
        """One upsert for the batch's rows; a row keeps its admission position."""
        if not rows:
            return
        store.upsert_many(cur, "tcledger_participant_summary", COLUMNS, rows, ON_CONFLICT)
        store.delete_keys(cur, "tcledger_summary_consents", "participant_id",
                          [r[0] for r in rows])
        store.insert_many(cur, "tcledger_summary_consents", ("participant_id", "expires_on"),
                          consents)


COLUMNS = ("participant_id", "admitted_position", "version", "program", "facility", "unit",
           "counselor_id", "status", "stage", "stage_since", "admitted_on",
           "expected_release_on", "discharged_on", "review_due_on", "sanction_due_on",
           "result_unconfirmed", "doc_index", "sealed", "attendance_below_on",
           "follow_up_due_on")
ON_CONFLICT = ("ON CONFLICT (participant_id) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[2:]))


def _add_missing_columns(cur: Any, store: SqlStore) -> None:
    if store.postgres:
        cur.execute("SELECT column_name AS name FROM information_schema.columns"
                    " WHERE table_schema = current_schema()"
                    " AND table_name = 'tcledger_participant_summary'")
        have = {row["name"] for row in cur.fetchall()}
    else:
        cur.execute("PRAGMA table_info(tcledger_participant_summary)")
        have = {row[1] for row in cur.fetchall()}
    for column in ADDED_COLUMNS:
        if column not in have:
            cur.execute(f"ALTER TABLE tcledger_participant_summary ADD COLUMN {column} TEXT")


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
