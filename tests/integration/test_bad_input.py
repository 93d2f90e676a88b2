"""Bad input through the CLI: exit 2 with one line naming the field (exit 3 with every reason
for a rule refusal), the same as JSON on stderr with --json, and nothing written (a full
dump of every table is compared before and after). On SQLite: these are argument errors
and refusals; that nothing is written on PostgreSQL either is proved by
tests/security/test_bad_input_corpus.py (`..._on_postgresql_and_nothing_written`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from models.planfile import parse_plan
from recovery.settings import get_settings
from tests.integration.helpers import (
    SEED_PLANS,
    Outcome,
    cli,
    dump_tables,
    open_plan,
    relative_plan,
    seed_directory,
    write_plan,
)

#: The seed safeguarding action every case can refer to (baseline 2026-11-20).
pytestmark = pytest.mark.sqlite_only

REF = "ROSE-SG-001"
ROSE_BASELINE = date(2026, 11, 20)

Args = Callable[[Path, date], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    args: Args
    exit_code: int
    field: str
    says: str = ""  # a fragment the message (or one of the reasons) must contain


def plan(**overrides: object) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        path = write_plan(tmp / "plan.yaml", relative_plan(today, **overrides))
        return ["action", "open", str(path), "--no-flow"]

    return build


def plan_bytes(data: bytes) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        path = tmp / "plan.yaml"
        path.write_bytes(data)
        return ["action", "open", str(path), "--no-flow"]

    return build


def evidence(ref: str = REF, *, source: str = "audits", value: str | None = "90",
             sample: str | None = "20", observed: Callable[[date], date] = lambda d: d,
             by: str = "rm@rose.example") -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        args = ["evidence", "add", ref, "--source", source,
                "--observed-on", observed(today).isoformat(),
                "--reference", "Safeguarding audit file, week 3", "--by", by]
        if value is not None:
            args += ["--value", value]
        if sample is not None:
            args += ["--sample", sample]
        return args

    return build


def people_file(text: str) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        path = tmp / "people.yaml"
        path.write_text(text, encoding="utf-8")
        return ["people", "import", str(path)]

    return build


def framework_file(text: str) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        path = tmp / "framework.yaml"
        path.write_text(text, encoding="utf-8")
        return ["catalogue", "load", str(path)]

    return build


FRAMEWORK_HEAD = ("framework_id: cqc-sector-2026\nname: Draft\nversion: '2026'\n"
                  "evidence_categories: []\n")


def fixed(*args: str) -> Args:
    return lambda tmp, today: list(args)


ALIAS_BOMB = b"""\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]
"""
PYTHON_TAG = b"""\
location: !!python/object/apply:os.system ["touch /tmp/recovery-gates-pwned"]
title: x
"""

CASES = [
    Case("factor out of range",
         plan(risk={"potential_harm": 6, "people_affected": 3, "likelihood_of_recurrence": 4,
                    "regulatory_impact": 4, "control_strength": 4}),
         2, "risk.potential_harm"),
    Case("factor zero",
         plan(risk={"potential_harm": 5, "people_affected": 0, "likelihood_of_recurrence": 4,
                    "regulatory_impact": 4, "control_strength": 4}),
         2, "risk.people_affected"),
    Case("lead is the reviewer",
         plan(accountable_lead="rm@rose.example", senior_reviewer="rm@rose.example"),
         3, "separation of duties", "different person"),
    Case("lead is the reviewer up to case and spaces",
         plan(accountable_lead="rm@rose.example", senior_reviewer="  RM@Rose.Example "),
         3, "separation of duties", "different person"),
    Case("junior reviewer",
         plan(senior_reviewer="team.leader@rose.example"),
         3, "separation of duties", "team leader"),
    Case("registered manager lead with a location-level reviewer",
         plan(accountable_lead="rm@rose.example", senior_reviewer="rm@quay.example"),
         3, "separation of duties", "provider-level"),
    Case("unknown statement id",
         plan(quality_statements=["safe.safeguarding", "safe.teleportation"]),
         2, "quality_statements", "safe.teleportation"),
    Case("baseline over 100%",
         plan(baseline={"issue": "x", "value": 101, "as_of": date(2026, 11, 1)}),
         2, "baseline.value"),
    Case("missing target", plan(target=None), 2, "target", "required"),
    Case("target no better than baseline",
         plan(target={"measure": "m", "direction": "at_least", "value": 50,
                      "deadline": date(2027, 6, 1)}),
         2, "target", "no improvement"),
    Case("unknown location", plan(location="Nowhere House"), 2, "location", "Nowhere House"),
    Case("unknown person", plan(accountable_lead="Nobody@Rose.example"), 2, "accountable_lead",
         "nobody@rose.example"),
    Case("unknown template", plan(template="make-it-better"), 2, "template"),
    Case("unknown key", plan(colour="red"), 2, "colour", "not a known key"),
    Case("non-UTF-8 plan file", plan_bytes(b"location: Ros\xe9 House\ntitle: x\n"), 2, "file",
         "UTF-8"),
    Case("YAML alias bomb", plan_bytes(ALIAS_BOMB), 2, "file", "aliases"),
    Case("python object tag", plan_bytes(PYTHON_TAG), 2, "file", "tag"),
    Case("impossible date in a plan",
         plan_bytes(SEED_PLANS[REF].read_bytes().replace(b"2026-11-20", b"2026-11-31")),
         2, "file", "day is out of range"),
    Case("impossible quoted date in a plan",
         plan(baseline={"issue": "x", "value": 60, "as_of": "2026-02-30"}),
         2, "baseline.as_of"),
    Case("framework with a statement twice",
         framework_file(FRAMEWORK_HEAD + "quality_statements:\n"
                        "  - {id: safe.a, key_question: Safe, title: A}\n"
                        "  - {id: safe.a, key_question: Safe, title: A again}\n"),
         2, "quality_statements", "listed twice"),
    Case("framework without statements",
         framework_file(FRAMEWORK_HEAD + "quality_statements: []\n"),
         2, "quality_statements", "at least one"),
    Case("framework missing a key", framework_file("framework_id: x\nname: n\n"), 2,
         "version", "required"),
    Case("framework alias bomb", framework_file(ALIAS_BOMB.decode()), 2, "file", "aliases"),
    Case("framework python tag", framework_file(PYTHON_TAG.decode()), 2, "file", "tag"),
    Case("plan file is a list", plan_bytes(b"- a\n- b\n"), 2, "file"),
    Case("plan file missing", fixed("action", "open", "/nonexistent/plan.yaml", "--no-flow"),
         2, "file"),
    Case("evidence dated in the future", evidence(observed=lambda d: d + timedelta(days=1)),
         2, "observed_on", "future"),
    Case("evidence before the baseline",
         evidence(observed=lambda d: ROSE_BASELINE - timedelta(days=1)),
         2, "observed_on", "before the baseline"),
    Case("evidence date not a date",
         fixed("evidence", "add", REF, "--source", "audits", "--observed-on", "2026-13-01",
               "--reference", "r", "--by", "rm@rose.example"),
         2, "observed_on", "not a date"),
    Case("value over 100%", evidence(value="100.5"), 2, "value", "between 0 and 100"),
    Case("negative value", evidence(value="-1"), 2, "value"),
    Case("sample size 0", evidence(sample="0"), 2, "sample", "at least 1"),
    Case("value without sample", evidence(sample=None), 2, "sample"),
    Case("unknown evidence source", evidence(source="gossip"), 2, "source", "gossip"),
    Case("evidence by unknown person", evidence(by="stranger@rose.example"), 2, "by"),
    Case("person without a location",
         people_file("provider: Harbour Care Group\npeople:\n"
                     "  - {name: New Starter, email: new@rose.example, role: senior_carer,"
                     " location: Rose House}\n"
                     "  - {name: No Home, email: nohome@rose.example, role: team_leader}\n"),
         2, "people.nohome@rose.example.location", "must belong to a location"),
    Case("person listed twice",
         people_file("provider: P\npeople:\n"
                     "  - {name: A, email: a@p.example, role: provider_lead}\n"
                     "  - {name: B, email: ' A@P.example', role: provider_lead}\n"),
         2, "people.1.email", "listed twice"),
    Case("unknown role",
         fixed("people", "add", "--name", "X", "--email", "x@rose.example", "--role",
               "wizard", "--provider", "Harbour Care Group", "--location", "Rose House"),
         2, "role"),
    Case("location code already taken",
         people_file("provider: Harbour Care Group\nlocations:\n"
                     "  - {name: Rose Annexe, code: rose}\npeople: []\n"),
         2, "locations.Rose Annexe.code", "already used"),
    Case("unknown action reference (show)", fixed("action", "show", "ROSE-SG-999"), 2,
         "action", "ROSE-SG-999"),
    Case("unknown action reference (evidence)", evidence(ref="NOPE-SG-001"), 2, "action"),
    Case("unknown action reference (gate)", fixed("gate", "ROSE-MED-001"), 2, "action"),
    Case("unknown action reference (extend)",
         fixed("action", "extend", "ELM-SG-001", "--deadline", "2027-06-01",
               "--control-change", "A second senior carer on every morning shift",
               "--by", "rm@elm.example"),
         2, "action"),
    Case("extension without a control change",
         fixed("action", "extend", REF, "--deadline", "2027-02-01", "--control-change", "",
               "--by", "ni@harbourcare.example"),
         3, "deadline extension", "control-change"),
    Case("extension by a junior",
         fixed("action", "extend", REF, "--deadline", "2027-02-01", "--control-change",
               "A second senior carer on every morning shift", "--by",
               "team.leader@rose.example"),
         3, "deadline extension", "team leader"),
    # the date horizons (models/dates.py): a far date is refused where it enters
    Case("deadline in the year 9999",
         lambda tmp, today: plan(target={
             "measure": "Concerns with same-day review", "direction": "at_least", "value": 95,
             "deadline": date(9999, 12, 31)})(tmp, today),
         2, "target.deadline", "more than 2 years after the baseline"),
    Case("baseline more than three years old",
         lambda tmp, today: plan(baseline={
             "issue": "Delayed escalation decisions", "value": 60,
             "as_of": today - timedelta(days=3 * 366 + 1)})(tmp, today),
         2, "baseline.as_of", "more than 3 years ago"),
    Case("extension to the year 9999",
         fixed("action", "extend", REF, "--deadline", "9999-12-31", "--control-change",
               "A second senior carer on every morning shift", "--by",
               "ni@harbourcare.example"),
         2, "deadline", "more than 2 years ahead"),
    Case("gate as of the year 9999", fixed("gate", REF, "--as-of", "9999-12-31"), 2,
         "as_of", "10 years back"),
    Case("review run as of the year 1", fixed("review", "run", "weekly", "--as-of",
                                              "0001-01-01"), 2, "as_of", "10 years back"),
    Case("governance pack as of the year 9999",
         lambda tmp, today: ["report", "governance", "--out", str(tmp / "g.html"), "--as-of",
                             "9999-12-31"], 2, "as_of", "1 year ahead"),
    Case("tracker export as of the year 9999",
         lambda tmp, today: ["export", "tracker", "--out", str(tmp / "t.csv"), "--as-of",
                             "9999-12-31"], 2, "as_of", "1 year ahead"),
]


@pytest.fixture
def prepared(database_url: str) -> str:
    """Catalogue, staff directory and the seed safeguarding action."""
    seed_directory()
    assert open_plan(parse_plan(SEED_PLANS[REF].read_bytes())) == REF
    return database_url


def _check_human(case: Case, result: Outcome) -> None:
    assert result.exit_code == case.exit_code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr_lines()
    if case.exit_code == 2:
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"error {case.field}: "), lines
        assert case.says in lines[0]
    else:
        assert lines[0] == f"refused by {case.field}:"
        assert len(lines) >= 2 and all(line.startswith("  - ") for line in lines[1:])
        assert any(case.says in line for line in lines[1:]), lines


def _check_json(case: Case, result: Outcome) -> None:
    assert result.exit_code == case.exit_code
    assert result.stdout == ""
    assert len(result.stderr_lines()) == 1
    error = result.error_json()
    assert error["field"] == case.field
    assert isinstance(error["error"], str) and error["error"]
    if case.exit_code == 2:
        assert set(error) == {"error", "field"}
        assert case.says in error["error"]
    else:
        assert error["error"] == f"refused by {case.field}"
        assert any(case.says in reason for reason in error["reasons"])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_and_writes_nothing(
    case: Case, prepared: str, tmp_path: Path
) -> None:
    today = get_settings().today()
    args = case.args(tmp_path, today)
    before = dump_tables(prepared)

    _check_human(case, cli(*args))
    _check_json(case, cli(*args, "--json"))

    assert dump_tables(prepared) == before
    assert not Path("/tmp/recovery-gates-pwned").exists()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_business_date_outside_the_horizon_is_refused_before_anything_runs(
    day: str, prepared: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump_tables(prepared)
    monkeypatch.setenv("RECOVERY_BUSINESS_DATE", day)
    get_settings.cache_clear()
    try:
        result = cli("review", "run", "weekly", "--json")
    finally:
        monkeypatch.delenv("RECOVERY_BUSINESS_DATE")
        get_settings.cache_clear()
    assert result.exit_code == 2, (result.stdout, result.stderr)
    error = result.error_json()
    assert error["field"] == "RECOVERY_BUSINESS_DATE" and "10 years back" in error["error"]
    assert dump_tables(prepared) == before
