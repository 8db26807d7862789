"""The program policy: the stage ladder and the catalogues a program runs by.

A policy is data (a TOML file), loaded and validated once at start. Every problem in a
file is reported at once, each with the path of the offending value, so that a deployment
fixing its policy sees the whole list rather than one error per restart.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

RULE_CLASSES = ("house", "major", "cardinal")
DISCHARGE_CATEGORIES = ("successful", "administrative", "therapeutic", "voluntary", "absconded")


class PolicyError(ValueError):
    """A policy file that cannot be used; `problems` lists every defect found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid program policy {source}: " + "; ".join(problems))


@dataclass(frozen=True)
class Stage:
    code: str
    name: str
    min_days: int
    privileges: tuple[str, ...]
    curfew: str | None
    # Sessions of each group kind a resident of this stage is expected at, per week.
    groups_per_week: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupKind:
    code: str
    name: str


@dataclass(frozen=True)
class FollowUpWindow:
    """A post-discharge follow-up, due `days` after the discharge date."""

    code: str
    days: int


DEFAULT_FOLLOW_UP_WINDOWS = (FollowUpWindow("30d", 30), FollowUpWindow("90d", 90),
                             FollowUpWindow("180d", 180), FollowUpWindow("365d", 365))


@dataclass(frozen=True)
class Privilege:
    code: str
    name: str


@dataclass(frozen=True)
class RuleClass:
    code: str
    min_severity: int
    max_severity: int


@dataclass(frozen=True)
class Infraction:
    code: str
    name: str
    rule_class: str


@dataclass(frozen=True)
class Sanction:
    code: str
    name: str
    severity: int
    suspends: tuple[str, ...]


@dataclass(frozen=True)
class DischargeType:
    code: str
    name: str
    category: str
    successful: bool
    reinstatement_after_days: int | None


@dataclass(frozen=True)
class Substance:
    code: str
    name: str
    cutoff_ng_ml: float


@dataclass(frozen=True)
class DrugTestRules:
    methods: tuple[str, ...]
    reasons: tuple[str, ...]
    confirmation_methods: tuple[str, ...]
    positive_requires_confirmation: bool
    substances: dict[str, Substance]


@dataclass(frozen=True)
class ProgramPolicy:
    code: str
    name: str
    stages: tuple[Stage, ...]
    privileges: dict[str, Privilege]
    rule_classes: dict[str, RuleClass]
    infractions: dict[str, Infraction]
    sanctions: dict[str, Sanction]
    discharge_types: dict[str, DischargeType]
    drug_tests: DrugTestRules
    group_kinds: dict[str, GroupKind] = field(default_factory=dict)
    follow_up_windows: tuple[FollowUpWindow, ...] = DEFAULT_FOLLOW_UP_WINDOWS
    _stage_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._stage_index.update({s.code: i for i, s in enumerate(self.stages)})

    @property
    def first_stage(self) -> Stage:
        return self.stages[0]

    def stage(self, code: str) -> Stage | None:
        index = self._stage_index.get(code)
        return None if index is None else self.stages[index]

    def stage_rank(self, code: str) -> int:
        return self._stage_index[code]

    def next_stage(self, code: str) -> Stage | None:
        index = self._stage_index[code] + 1
        return self.stages[index] if index < len(self.stages) else None

    def follow_up_window(self, code: str) -> FollowUpWindow | None:
        return next((w for w in self.follow_up_windows if w.code == code), None)


class _Reader:
    """Reads typed values out of parsed TOML, collecting a problem per bad value."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def get(self, table: Any, key: str, kind: type | tuple[type, ...], path: str,
            default: Any = ...) -> Any:
        if not isinstance(table, dict) or key not in table:
            if default is not ...:
                return default
            self.problems.append(f"{path}.{key}: required")
            return None
        value = table[key]
        # bool is an int in Python: an int field must not accept true/false.
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            self.problems.append(f"{path}.{key}: expected {_kind_name(kind)}")
            return None
        if not isinstance(value, kind):
            self.problems.append(f"{path}.{key}: expected {_kind_name(kind)}")
            return None
        return value

    def strings(self, table: Any, key: str, path: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(table, key, list, path, default)
        if values is None:
            return ()
        if not all(isinstance(v, str) and v for v in values):
            self.problems.append(f"{path}.{key}: expected a list of non-empty strings")
            return ()
        return tuple(values)

    def tables(self, document: Any, key: str) -> list[tuple[str, dict[str, Any]]]:
        items = self.get(document, key, list, "policy")
        if not items:
            if items is not None:
                self.problems.append(f"policy.{key}: must not be empty")
            return []
        out = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                out.append((f"{key}[{i}]", item))
            else:
                self.problems.append(f"{key}[{i}]: expected a table")
        return out

    def unique(self, codes: list[str], what: str) -> None:
        seen: set[str] = set()
        for code in codes:
            if code in seen:
                self.problems.append(f"{what}: duplicate code {code!r}")
            seen.add(code)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             dict: "a table", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def parse_policy(document: dict[str, Any], source: str = "<policy>") -> ProgramPolicy:
    """Builds a validated policy from parsed TOML, or raises PolicyError naming every defect."""
    r = _Reader()
    program = r.get(document, "program", dict, "policy") or {}
    code = r.get(program, "code", str, "program")
    name = r.get(program, "name", str, "program")

    privileges = {}
    codes_privileges = []
    for path, t in r.tables(document, "privileges"):
        p = Privilege(r.get(t, "code", str, path), r.get(t, "name", str, path))
        privileges[p.code] = p
        codes_privileges.append(p.code)
    r.unique(codes_privileges, "privileges")

    group_kinds = _group_kinds(r, document)

    stages = []
    for path, t in r.tables(document, "stages"):
        min_days = r.get(t, "min_days", int, path)
        if isinstance(min_days, int) and min_days < 0:
            r.problems.append(f"{path}.min_days: must be zero or more")
        allowed = r.strings(t, "privileges", path, default=[])
        for p_code in allowed:
            if p_code not in privileges:
                r.problems.append(f"{path}.privileges: unknown privilege {p_code!r}")
        stages.append(Stage(r.get(t, "code", str, path), r.get(t, "name", str, path),
                            min_days or 0, allowed, r.get(t, "curfew", str, path, None),
                            _groups_per_week(r, t, path, group_kinds)))
    r.unique([s.code for s in stages if s.code], "stages")

    rule_classes = {}
    raw_classes = r.get(document, "rule_classes", dict, "policy") or {}
    for rc_code, t in raw_classes.items():
        path = f"rule_classes.{rc_code}"
        if rc_code not in RULE_CLASSES:
            r.problems.append(f"{path}: unknown rule class (expected one of {RULE_CLASSES})")
        lo = r.get(t, "min_severity", int, path)
        hi = r.get(t, "max_severity", int, path)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            r.problems.append(f"{path}: min_severity is above max_severity")
        rule_classes[rc_code] = RuleClass(rc_code, lo or 0, hi or 0)

    infractions = {}
    codes_infractions = []
    for path, t in r.tables(document, "infractions"):
        rc = r.get(t, "rule_class", str, path)
        if rc is not None and rc not in rule_classes:
            r.problems.append(f"{path}.rule_class: unknown rule class {rc!r}")
        i = Infraction(r.get(t, "code", str, path), r.get(t, "name", str, path), rc)
        infractions[i.code] = i
        codes_infractions.append(i.code)
    r.unique(codes_infractions, "infractions")

    sanctions = {}
    codes_sanctions = []
    for path, t in r.tables(document, "sanctions"):
        severity = r.get(t, "severity", int, path)
        if isinstance(severity, int) and severity < 1:
            r.problems.append(f"{path}.severity: must be 1 or more")
        suspends = r.strings(t, "suspends", path, default=[])
        for p_code in suspends:
            if p_code not in privileges:
                r.problems.append(f"{path}.suspends: unknown privilege {p_code!r}")
        s = Sanction(r.get(t, "code", str, path), r.get(t, "name", str, path),
                     severity or 0, suspends)
        sanctions[s.code] = s
        codes_sanctions.append(s.code)
    r.unique(codes_sanctions, "sanctions")

    discharge_types = {}
    codes_discharge_types = []
    for path, t in r.tables(document, "discharge_types"):
        category = r.get(t, "category", str, path)
        if category is not None and category not in DISCHARGE_CATEGORIES:
            r.problems.append(f"{path}.category: expected one of {DISCHARGE_CATEGORIES}")
        d = DischargeType(r.get(t, "code", str, path), r.get(t, "name", str, path), category,
                          r.get(t, "successful", bool, path),
                          r.get(t, "reinstatement_after_days", int, path, None))
        discharge_types[d.code] = d
        codes_discharge_types.append(d.code)
    r.unique(codes_discharge_types, "discharge_types")

    tests = r.get(document, "drug_tests", dict, "policy") or {}
    substances = {}
    codes_substances = []
    for n, t in enumerate(r.get(tests, "substances", list, "drug_tests") or []):
        path = f"drug_tests.substances[{n}]"
        cutoff = r.get(t, "cutoff_ng_ml", (int, float), path)
        s_code = r.get(t, "code", str, path)
        substances[s_code] = Substance(s_code, r.get(t, "name", str, path), float(cutoff or 0))
        codes_substances.append(s_code)
    r.unique(codes_substances, "drug_tests.substances")
    drug_tests = DrugTestRules(
        methods=r.strings(tests, "methods", "drug_tests"),
        reasons=r.strings(tests, "reasons", "drug_tests"),
        confirmation_methods=r.strings(tests, "confirmation_methods", "drug_tests"),
        positive_requires_confirmation=r.get(
            tests, "positive_requires_confirmation", bool, "drug_tests", True),
        substances=substances,
    )
    windows = _follow_up_windows(r, document)
    if r.problems:
        raise PolicyError(source, r.problems)
    return ProgramPolicy(code, name, tuple(stages), privileges, rule_classes, infractions,
                         sanctions, discharge_types, drug_tests, group_kinds, windows)


def _group_kinds(r: _Reader, document: dict[str, Any]) -> dict[str, GroupKind]:
    """The kinds of group session the program runs; optional (a program without them
    records no attendance)."""
    kinds: dict[str, GroupKind] = {}
    if "group_kinds" not in document:
        return kinds
    codes = []
    for path, t in r.tables(document, "group_kinds"):
        kind = GroupKind(r.get(t, "code", str, path), r.get(t, "name", str, path))
        kinds[kind.code] = kind
        codes.append(kind.code)
    r.unique(codes, "group_kinds")
    return kinds


def _groups_per_week(r: _Reader, stage: dict[str, Any], path: str,
                     kinds: dict[str, GroupKind]) -> dict[str, int]:
    table = r.get(stage, "groups_per_week", dict, path, {})
    required: dict[str, int] = {}
    for kind, count in (table or {}).items():
        where = f"{path}.groups_per_week.{kind}"
        if kind not in kinds:
            r.problems.append(f"{where}: unknown group kind {kind!r} (not in group_kinds)")
        elif isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 50:
            r.problems.append(f"{where}: expected an integer from 0 to 50")
        else:
            required[kind] = count
    return required


def _follow_up_windows(r: _Reader, document: dict[str, Any]) -> tuple[FollowUpWindow, ...]:
    """Follow-ups after discharge; 30, 90, 180 and 365 days unless the program says."""
    if "follow_up_windows" not in document:
        return DEFAULT_FOLLOW_UP_WINDOWS
    windows = []
    for path, t in r.tables(document, "follow_up_windows"):
        days = r.get(t, "days", int, path)
        if isinstance(days, int) and not 1 <= days <= 3650:
            r.problems.append(f"{path}.days: expected 1 to 3650 days after discharge")
        windows.append(FollowUpWindow(r.get(t, "code", str, path), days or 0))
    r.unique([w.code for w in windows if w.code], "follow_up_windows")
    days_seen = [w.days for w in windows]
    if days_seen != sorted(set(days_seen)):
        r.problems.append("follow_up_windows: days must increase from one window to the next")
    return tuple(windows)


def load_policy(path: Path) -> ProgramPolicy:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_policy(document, str(path))


def default_policy() -> ProgramPolicy:
    text = resources.files("domain").joinpath("policies/default.toml").read_text("utf-8")
    return parse_policy(tomllib.loads(text), "default.toml")


class PolicyBook:
    """The programs a deployment runs, by code."""

    def __init__(self, policies: list[ProgramPolicy]) -> None:
        self._by_code = {p.code: p for p in policies}
        if len(self._by_code) != len(policies):
            raise PolicyError("policies", ["two policy files declare the same program code"])

    def get(self, code: str) -> ProgramPolicy | None:
        return self._by_code.get(code)

    def all(self) -> list[ProgramPolicy]:
        return list(self._by_code.values())
