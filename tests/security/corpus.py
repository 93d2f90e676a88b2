"""The bad-input corpus: one row per way a person (or a file) can get it wrong.

Every row is run against the security "world" (catalogue, staff directory, ROSE-SG-001 as
a draft with its baseline ten days ago) and must give exactly one clear error: exit 2 and
one stderr line `error <field>: <rule>` (with --json, `{"error", "field"}`), or exit 3 and
`refused by <rule>:` with every reason, and leave the database byte-for-byte as it was.

`CLI` holds the rows driven through the `recovery` command line (plan, people and
framework files, and arguments). `SIGNOFF_FORM` and `CLOSURE_FORM` hold what a person can
type into the sign-off and closure-request forms; the Prefect server refuses them against
the form's schema when the run is resumed (tests/security/test_prefect_stack.py).
`SIGNOFF_DOMAIN` holds form answers that pass the schema and are refused by the domain.
`TRACKER` holds `recovery import tracker` files: all-or-nothing, so the contract there is
exit 2, `error file: N of M rows have errors; nothing was imported` and one line per bad
row naming the row and the column (with --json, `field: file` and every row's error), or
one line naming the bound a file passes (rows, columns, cells, bytes after decompression),
the file being read with the work bounded by what is really in it; they run on PostgreSQL
too.

Rows marked `postgres=True` also run on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.integration.helpers import relative_plan
from tests.security.conftest import LEAD, MANAGER, PWNED, REF, REVIEWER

Args = Callable[[Path, date], list[str]]

MEGABYTE = 1024 * 1024
HUGE = "x" * MEGABYTE
HTML = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
SQL = "Rose'); DROP TABLE recovery_action; --"


@dataclass(frozen=True)
class Case:
    name: str
    args: Args
    exit_code: int
    field: str
    says: str = ""  # a fragment of the message (exit 2) or of one of the reasons (exit 3)
    postgres: bool = False


# ---------------------------------------------------------------- builders


def _plan(today: date, overrides: dict[str, Any]) -> dict[str, Any]:
    return relative_plan(today, **overrides)


def plan(**overrides: Any) -> Args:
    """`action open` of the world's valid plan with some keys replaced (None drops one)."""

    def build(tmp: Path, today: date) -> list[str]:
        path = tmp / "plan.yaml"
        path.write_text(yaml.safe_dump(_plan(today, overrides), sort_keys=False),
                        encoding="utf-8")
        return ["action", "open", str(path), "--no-flow"]

    return build


def risk(**factors: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"potential_harm": 5, "people_affected": 3,
                            "likelihood_of_recurrence": 4, "regulatory_impact": 4,
                            "control_strength": 4}
    for key, value in factors.items():
        if value is None:
            base.pop(key)
        else:
            base[key] = value
    return base


def baseline(today: date, **fields: Any) -> dict[str, Any]:
    return {"issue": "Delayed escalation decisions", "value": 60,
            "as_of": today - timedelta(days=10), **fields}


def dated_plan(**build: Callable[[date], Any]) -> Args:
    """Like `plan`, for overrides that depend on today."""

    def make(tmp: Path, today: date) -> list[str]:
        return plan(**{key: fn(today) for key, fn in build.items()})(tmp, today)

    return make


def plan_text(edit: Callable[[str], str]) -> Args:
    """`action open` of the valid plan's YAML text after a textual edit (for what a dict
    cannot hold: duplicate keys, tags, raw YAML values)."""

    def build(tmp: Path, today: date) -> list[str]:
        text = yaml.safe_dump(_plan(today, {}), sort_keys=False)
        path = tmp / "plan.yaml"
        path.write_text(edit(text), encoding="utf-8")
        return ["action", "open", str(path), "--no-flow"]

    return build


def plan_bytes(data: bytes) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        path = tmp / "plan.yaml"
        path.write_bytes(data)
        return ["action", "open", str(path), "--no-flow"]

    return build


def after(line: str, insert: str) -> Callable[[str], str]:
    """Insert `insert` right after the first line equal to `line`."""

    def edit(text: str) -> str:
        assert f"\n{line}\n" in f"\n{text}", (line, text)
        return text.replace(f"{line}\n", f"{line}\n{insert}\n", 1)

    return edit


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, (old, text)
        return text.replace(old, new, 1)

    return edit


def evidence(*, ref: str = REF, source: str = "audits", value: str | None = "90",
             sample: str | None = "20", observed: Callable[[date], str] = lambda d: str(d),
             reference: str = "Safeguarding audit file, week 3", by: str = MANAGER) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        args = ["evidence", "add", ref, "--source", source, "--observed-on", observed(today),
                "--reference", reference, "--by", by]
        if value is not None:
            args += ["--value", value]
        if sample is not None:
            args += ["--sample", sample]
        return args

    return build


def extend(*, deadline: Callable[[date], str] = lambda d: str(d + timedelta(days=90)),
           control_change: str = "A second senior carer on every morning shift",
           by: str = REVIEWER) -> Args:
    return lambda tmp, today: ["action", "extend", REF, "--deadline", deadline(today),
                               "--control-change", control_change, "--by", by]


def fixed(*args: str) -> Args:
    return lambda tmp, today: list(args)


def a_file(name: str, text: str, *command: str) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        path = tmp / name
        path.write_text(text, encoding="utf-8")
        return [*command, str(path)]

    return build


def people_file(text: str) -> Args:
    return a_file("people.yaml", "provider: Harbour Care Group\n" + text, "people", "import")


def framework_file(text: str) -> Args:
    return a_file("framework.yaml", text, "catalogue", "load")


ALIAS_BOMB = b"""\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]
"""
PYTHON_APPLY = f"""\
location: !!python/object/apply:os.system ["touch {PWNED}"]
title: x
""".encode()
PYTHON_NEW = f"""\
location: !!python/object/new:subprocess.Popen [["touch", "{PWNED}"]]
""".encode()
PYTHON_NAME = b"title: !!python/name:os.system\n"
#: Addresses that cannot be delivered, or that would reach someone else (issue 15 part 5):
#: (what it is, the address, a fragment of the rule it breaks).
BAD_ADDRESSES = [
    ("a header break", "ni@x.example\nbcc:evil@evil.example", "invalid characters"),
    ("two addresses", "a@x.example,b@y.example", "invalid characters"),
    ("a tab", "ni\t@x.example", "invalid characters"),
    ("markup", "<script>@x.example", "not one email address"),
    ("a Cyrillic lookalike", "n\u0456@x.example", "must be plain ASCII"),
    ("a lookalike domain in punycode", "ni@xn--80ak6aa92e.example", "internationalised"),
    ("a trailing dot", "ni@x.example.", "cannot end with a period"),
    ("a display name", "Nina <ni@x.example>", "display name"),
    ("a quoted local part", '"ni x"@x.example', "Quoting"),
    ("no domain", "ni@", "not one email address"),
]
#: The few of them also driven through every other way an address enters.
SOME_BAD_ADDRESSES = [BAD_ADDRESSES[i] for i in (0, 1, 4)]


def person_with(address: str) -> Args:
    return people_file(yaml.safe_dump(
        {"people": [{"name": "A", "email": address, "role": "provider_lead"}]}))


def people_add(address: str) -> Args:
    return fixed("people", "add", "--name", "A", "--email", address, "--role",
                 "provider_lead", "--provider", "Harbour Care Group")


FRAMEWORK_HEAD = ("framework_id: cqc-sector-2026\nname: Draft\nversion: '2026'\n"
                  "evidence_categories: []\n")
FRAMEWORK_OK = FRAMEWORK_HEAD + ("quality_statements:\n"
                                 "  - {id: safe.a, key_question: Safe, title: A}\n")


# ---------------------------------------------------------------- the command line

CLI: list[Case] = [
    # ---- plan files: risk factors
    Case("factor above 5", plan(risk=risk(potential_harm=6)), 2, "risk.potential_harm",
         postgres=True),
    Case("factor 0", plan(risk=risk(people_affected=0)), 2, "risk.people_affected"),
    Case("factor negative", plan(risk=risk(likelihood_of_recurrence=-1)), 2,
         "risk.likelihood_of_recurrence"),
    Case("factor not a number", plan(risk=risk(regulatory_impact="high")), 2,
         "risk.regulatory_impact", "integer"),
    Case("factor with a fraction", plan(risk=risk(control_strength=4.5)), 2,
         "risk.control_strength", "integer"),
    Case("factor yes (a YAML boolean)",
         plan_text(replace("potential_harm: 5", "potential_harm: yes")), 2,
         "risk.potential_harm", "integer"),
    Case("factor NaN", plan_text(replace("potential_harm: 5", "potential_harm: .nan")), 2,
         "risk.potential_harm"),
    Case("factor infinite", plan_text(replace("control_strength: 4", "control_strength: .inf")),
         2, "risk.control_strength"),
    Case("factor missing", plan(risk=risk(control_strength=None)), 2, "risk.control_strength",
         "is required", postgres=True),
    Case("risk not a mapping", plan(risk="very high"), 2, "risk"),
    # ---- plan files: missing, duplicated and unknown fields
    Case("location missing", plan(location=None), 2, "location", "is required"),
    Case("accountable lead missing", plan(accountable_lead=None), 2, "accountable_lead",
         "is required"),
    Case("target missing", plan(target=None), 2, "target", "is required"),
    Case("title empty", plan(title="   "), 2, "title", "must not be empty"),
    Case("duplicate top-level key",
         plan_text(lambda t: t + "title: A second title that would silently win\n"), 2,
         "title", "given twice", postgres=True),
    Case("duplicate risk factor",
         plan_text(after("risk:", "  potential_harm: 1")), 2, "risk.potential_harm",
         "given twice"),
    Case("duplicate baseline value",
         plan_text(after("baseline:", "  value: 99")), 2, "baseline.value", "given twice"),
    Case("duplicate senior reviewer (the lead, second)",
         plan_text(lambda t: t + f"senior_reviewer: {LEAD}\n"), 2, "senior_reviewer",
         "given twice", postgres=True),
    Case("unknown key", plan(colour="red"), 2, "colour", "not a known key"),
    Case("unknown nested key", dated_plan(baseline=lambda d: baseline(d, colour="red")), 2,
         "baseline.colour", "not a known key"),
    # ---- plan files: unknown statements, people and references
    Case("unknown quality statement",
         plan(quality_statements=["safe.safeguarding", "safe.teleportation"]), 2,
         "quality_statements", "safe.teleportation", postgres=True),
    Case("quality statement twice",
         plan(quality_statements=["safe.safeguarding", "safe.safeguarding"]), 2,
         "quality_statements", "twice"),
    Case("no quality statement", plan(quality_statements=[]), 2, "quality_statements"),
    Case("unknown framework", plan(framework_id="cqc-1999"), 2, "framework_id", "cqc-1999"),
    Case("unknown location", plan(location="Nowhere House"), 2, "location", "Nowhere House"),
    Case("unknown accountable lead", plan(accountable_lead="Nobody@Rose.example"), 2,
         "accountable_lead", "nobody@rose.example", postgres=True),
    Case("unknown senior reviewer", plan(senior_reviewer="ghost@harbourcare.example"), 2,
         "senior_reviewer", "ghost@harbourcare.example"),
    Case("reviewer with a space inside the email",
         plan(senior_reviewer="ni @harbourcare.example"), 2, "senior_reviewer"),
    Case("unknown template", plan(template="make-it-better"), 2, "template"),
    Case("unknown risk domain", plan(risk_domain="astrology"), 2, "risk_domain"),
    # ---- plan files: separation of duties
    Case("lead is the reviewer", plan(senior_reviewer=LEAD), 3, "separation of duties",
         "different person"),
    Case("lead is the reviewer, other letter case",
         plan(accountable_lead=MANAGER, senior_reviewer="RM@Rose.EXAMPLE"), 3,
         "separation of duties", "different person", postgres=True),
    Case("lead is the reviewer, spaces and case",
         plan(accountable_lead=f"  {MANAGER.upper()}\t", senior_reviewer=f" {MANAGER} "), 3,
         "separation of duties", "different person"),
    Case("junior reviewer", plan(senior_reviewer="team.leader@rose.example"), 3,
         "separation of duties", "team leader"),
    # ---- plan files: percentages and dates
    Case("baseline over 100%", dated_plan(baseline=lambda d: baseline(d, value=101)), 2,
         "baseline.value", postgres=True),
    Case("baseline negative", dated_plan(baseline=lambda d: baseline(d, value=-5)), 2,
         "baseline.value"),
    Case("baseline NaN", plan_text(replace("value: 60", "value: .nan")), 2, "baseline.value"),
    Case("baseline not a number", dated_plan(baseline=lambda d: baseline(d, value="sixty")),
         2, "baseline.value"),
    Case("target infinite", plan_text(replace("value: 95", "value: .inf")), 2,
         "target.value"),
    Case("target over 100%", plan_text(replace("value: 95", "value: 150")), 2,
         "target.value"),
    Case("target no better than the baseline", plan_text(replace("value: 95", "value: 50")),
         2, "target", "no improvement"),
    Case("deadline before the baseline",
         dated_plan(target=lambda d: {"measure": "m", "direction": "at_least", "value": 95,
                                      "deadline": d - timedelta(days=30)}),
         2, "target", "after the baseline"),
    Case("baseline in the future",
         dated_plan(baseline=lambda d: baseline(d, as_of=d + timedelta(days=1))), 2,
         "baseline.as_of", "in the future", postgres=True),
    Case("impossible date", dated_plan(baseline=lambda d: baseline(d, as_of="2026-02-30")),
         2, "baseline.as_of"),
    Case("impossible unquoted date", plan_text(
        lambda t: t.replace("as_of: ", "as_of: 2026-11-31 #", 1)), 2, "file",
        "day is out of range"),
    Case("date in words", dated_plan(baseline=lambda d: baseline(d, as_of="last Tuesday")),
         2, "baseline.as_of"),
    # ---- plan files: size, encoding and YAML itself
    Case("plan file of 1 MB", plan(title=HUGE), 2, "file", "larger than 256 KiB"),
    Case("title of 200 KB", plan(title="t" * 200_000), 2, "title", "at most 200"),
    Case("baseline issue of 100 KB",
         dated_plan(baseline=lambda d: baseline(d, issue="i" * 100_000)), 2,
         "baseline.issue", "at most 2000"),
    Case("non-UTF-8 bytes", plan_bytes(b"location: Ros\xe9 House\ntitle: x\n"), 2, "file",
         "UTF-8", postgres=True),
    Case("UTF-16 file", plan_bytes("location: Rose House\n".encode("utf-16")), 2, "file",
         "UTF-8"),
    Case("NUL byte", plan_bytes(b"location: Rose\x00House\n"), 2, "file", "not valid YAML"),
    Case("YAML alias bomb", plan_bytes(ALIAS_BOMB), 2, "file", "aliases", postgres=True),
    Case("deeply nested YAML", plan_bytes(b"steps: " + b"[" * 100_000), 2, "file",
         "nested more than"),
    Case("python/object/apply tag", plan_bytes(PYTHON_APPLY), 2, "file", "tag",
         postgres=True),
    Case("python/object/new tag", plan_bytes(PYTHON_NEW), 2, "file", "tag"),
    Case("python/name tag", plan_bytes(PYTHON_NAME), 2, "file", "tag"),
    Case("set tag as a title", plan_text(
        lambda t: "\n".join("title: !!set {a: null, b: null}" if line.startswith("title:")
                            else line for line in t.splitlines()) + "\n"),
        2, "title"),
    Case("plan file is a list", plan_bytes(b"- a\n- b\n"), 2, "file", "mapping"),
    Case("plan file is empty", plan_bytes(b""), 2, "file", "mapping"),
    Case("plan file missing", fixed("action", "open", "/nonexistent/plan.yaml", "--no-flow"),
         2, "file", "cannot read"),
    Case("plan path is a directory", lambda tmp, today: ["action", "open", str(tmp),
                                                         "--no-flow"], 2, "file"),
    # ---- people and framework files
    Case("person listed twice by letter case",
         people_file("people:\n  - {name: A, email: a@p.example, role: provider_lead}\n"
                     "  - {name: B, email: ' A@P.example', role: provider_lead}\n"),
         2, "people.1.email", "listed twice", postgres=True),
    Case("person with a duplicate YAML key",
         people_file("people:\n  - name: A\n    email: a@p.example\n    email: b@p.example\n"
                     "    role: provider_lead\n"), 2, "people.0.email", "given twice"),
    Case("person with an unknown role",
         people_file("people:\n  - {name: A, email: a@p.example, role: wizard}\n"), 2,
         "people.0.role"),
    Case("person with a bad email",
         people_file("people:\n  - {name: A, email: not-an-email, role: provider_lead}\n"),
         2, "people.0.email", "email address"),
    Case("person with a name of 300 characters",
         people_file("people:\n  - {name: " + "n" * 300
                     + ", email: a@p.example, role: provider_lead}\n"), 2, "people.0.name"),
    Case("people file alias bomb",
         a_file("people.yaml", ALIAS_BOMB.decode(), "people", "import"), 2, "file",
         "aliases"),
    Case("person at a location the file does not declare",
         people_file("people:\n  - {name: New Starter, email: new@rose.example, "
                     "role: senior_carer, location: Rose Hosue}\n"),
         2, "people.0.location", "not among the file's locations", postgres=True),
    Case("person added at an unknown location",
         fixed("people", "add", "--name", "New Starter", "--email", "new@rose.example",
               "--role", "senior_carer", "--provider", "Harbour Care Group", "--location",
               "Birch Lodge"), 2, "location", "not a location in the directory", postgres=True),
    Case("people file of a second provider",
         a_file("people.yaml", "provider: Another Provider\nlocations:\n"
                "  - {name: Birch Lodge, code: BIRCH}\npeople:\n  - {name: A Manager, "
                "email: am@other.example, role: registered_manager, location: Birch Lodge}\n",
                "people", "import"),
         2, "provider", "not the provider of this database", postgres=True),
    Case("person added for a second provider",
         fixed("people", "add", "--name", "New Starter", "--email", "new@rose.example",
               "--role", "senior_carer", "--provider", "Another Provider", "--location",
               "Rose House"), 2, "provider", "one provider", postgres=True),
    Case("framework with a statement twice",
         framework_file(FRAMEWORK_HEAD + "quality_statements:\n"
                        "  - {id: safe.a, key_question: Safe, title: A}\n"
                        "  - {id: safe.a, key_question: Safe, title: A again}\n"),
         2, "quality_statements", "listed twice"),
    Case("framework with a duplicate key",
         framework_file(FRAMEWORK_OK + "framework_id: cqc-saf-2024\n"), 2, "framework_id",
         "given twice"),
    Case("framework python tag",
         framework_file(PYTHON_APPLY.decode()), 2, "file", "tag"),
    # ---- evidence arguments
    Case("value over 100%", evidence(value="100.5"), 2, "value", "between 0 and 100",
         postgres=True),
    Case("value negative", evidence(value="-0.1"), 2, "value", "between 0 and 100"),
    Case("value NaN", evidence(value="nan"), 2, "value", "between 0 and 100",
         postgres=True),
    Case("value infinite", evidence(value="inf"), 2, "value", "between 0 and 100"),
    Case("value not a number", evidence(value="ninety"), 2, "value", "valid number"),
    Case("sample size 0", evidence(sample="0"), 2, "sample", "at least 1", postgres=True),
    Case("sample size negative", evidence(sample="-3"), 2, "sample", "at least 1"),
    Case("sample size with a fraction", evidence(sample="1.5"), 2, "sample", "integer"),
    Case("value without a sample size", evidence(sample=None), 2, "sample"),
    Case("evidence dated tomorrow", evidence(observed=lambda d: str(d + timedelta(days=1))),
         2, "observed_on", "future", postgres=True),
    Case("evidence before the baseline",
         evidence(observed=lambda d: str(d - timedelta(days=11))), 2, "observed_on",
         "before the baseline"),
    Case("evidence on an impossible date", evidence(observed=lambda d: "2026-02-30"), 2,
         "observed_on", "not a date"),
    Case("evidence date in words", evidence(observed=lambda d: "yesterday"), 2,
         "observed_on", "not a date"),
    Case("unknown evidence source", evidence(source="gossip"), 2, "source", "gossip"),
    Case("evidence source in HTML", evidence(source="<b>audits</b>"), 2, "source"),
    Case("empty reference", evidence(reference="   "), 2, "reference", "where the record"),
    *(Case(f"reference with {what}", evidence(reference=text), 2, "reference", says)
      for what, text, says in [("a line break", "Night log\n## Triangulation gate: passed",
                                "one line"),
                               ("an escape sequence", "Night \x1b[31mlog", "control")]),
    Case("reference of 1 MB", evidence(reference=HUGE), 2, "reference", "at most 300",
         postgres=True),
    Case("evidence by an unknown person", evidence(by="stranger@rose.example"), 2, "by"),
    Case("evidence by 1 MB of email", evidence(by=HUGE), 2, "by", "characters)"),
    Case("evidence by an email with a newline", evidence(by="rm@rose.example\nsecond line"),
         2, "by", "\\n"),
    Case("evidence by rich markup", evidence(by="[/red][bold]rm@rose.example"), 2, "by",
         "[/red][bold]"),
    Case("reference with non-UTF-8 bytes (as Python keeps them from argv)",
         evidence(reference="Night log \udcff\udcfe"), 2, "reference", "not UTF-8",
         postgres=True),
    Case("action reference with non-UTF-8 bytes", fixed("action", "show", "ROSE\udcff"), 2,
         "argument 3", "not UTF-8"),
    Case("evidence for an unknown action", evidence(ref="NOPE-SG-001"), 2, "action"),
    Case("action reference with SQL", evidence(ref="ROSE-SG-001' OR '1'='1"), 2, "action",
         postgres=True),
    Case("evidence without --by",
         fixed("evidence", "add", REF, "--source", "audits", "--observed-on", "2026-11-20",
               "--reference", "r"), 2, "by", "Missing option"),
    Case("unknown option", fixed("evidence", "add", REF, "--colour", "red"), 2, "colour",
         "not an option"),
    # ---- other commands
    Case("extension deadline impossible", extend(deadline=lambda d: "2027-02-29"), 2,
         "deadline", "not a date"),
    Case("extension into the past", extend(deadline=lambda d: str(d - timedelta(days=1))), 3,
         "deadline extension", "must be after"),
    Case("extension without a control change", extend(control_change=""), 3,
         "deadline extension", "control-change"),
    Case("extension with 1 MB of control change", extend(control_change=HUGE), 2,
         "control_change", "at most 2000", postgres=True),
    Case("extension by a junior", extend(by="team.leader@rose.example"), 3,
         "deadline extension", "team leader"),
    Case("reopen by a junior",
         fixed("action", "reopen", REF, "--by", "team.leader@rose.example", "--reason",
               "New concerns were not reviewed the same day"), 3, "reopen", "team leader",
         postgres=True),
    Case("reopen of an action that is not closed",
         fixed("action", "reopen", REF, "--by", MANAGER, "--reason",
               "New concerns were not reviewed the same day"), 3, "reopen", "not closed",
         postgres=True),
    Case("reopen without a reason worth the name",
         fixed("action", "reopen", REF, "--by", MANAGER, "--reason", "relapse"), 2, "reason",
         "at least 20"),
    Case("reopen with 1 MB of reason",
         fixed("action", "reopen", REF, "--by", MANAGER, "--reason", HUGE), 2, "reason",
         "at most 2000"),
    Case("control change of 1 MB",
         fixed("action", "control-change", REF, "--what", HUGE, "--by", MANAGER), 2, "what",
         "at most 2000", postgres=True),
    Case("control change too short",
         fixed("action", "control-change", REF, "--what", "more staff", "--by", MANAGER), 2,
         "what", "at least 20"),
    Case("control change with an escape sequence",
         fixed("action", "control-change", REF, "--what",
               "Night checks \x1b[8mhidden by a second registered manager", "--by", MANAGER),
         2, "what", "control characters"),
    Case("reopen with a right-to-left override",
         fixed("action", "reopen", REF, "--by", MANAGER, "--reason",
               "New concerns \u202ewere not reviewed the same day"), 2, "reason",
         "control characters"),
    Case("gate as of an impossible date", fixed("gate", REF, "--as-of", "2026-13-01"), 2,
         "as_of", "not a date"),
    Case("unknown review cycle", fixed("review", "run", "hourly"), 2, "cycle", "hourly"),
    Case("unknown status filter", fixed("action", "list", "--status", "done';--"), 2,
         "status"),
    Case("unknown risk level filter", fixed("action", "list", "--level", "extreme"), 2,
         "level"),
    Case("show an unknown action with rich markup", fixed("action", "show", "[/x]"), 2,
         "action", "[/x]"),
    Case("sign-off for an unknown action",
         fixed("signoff", "NOPE-SG-001", "--by", REVIEWER, "--code", "123456", "--decision",
               "approve", "--rationale", "All four pillars agree on the improvement"), 2,
         "action"),
    Case("sign-off with an unknown decision flag",
         fixed("signoff", REF, "--by", REVIEWER, "--code", "123456", "--verdict", "yes"), 2,
         "verdict", "not an option"),
    Case("reassign a sign-off of an unknown action",
         fixed("signoff", "reassign", "NOPE-SG-001", "--to", MANAGER, "--by", REVIEWER,
               "--reason", "The reviewer is on leave this week"), 2, "action"),
    Case("reassign with a control character in the reason",
         fixed("signoff", "reassign", REF, "--to", MANAGER, "--by", REVIEWER, "--reason",
               "The reviewer is on leave\x1b[2J this week"), 2, "reason",
         "control characters"),
    Case("reassign when no sign-off waits",
         fixed("signoff", "reassign", REF, "--to", MANAGER, "--by", REVIEWER, "--reason",
               "The reviewer is on leave this week"), 3, "sign-off reassignment",
         "no sign-off waiting"),
    Case("reassign to someone not in the directory",
         fixed("signoff", "reassign", REF, "--to", "nobody@rose.example", "--by", REVIEWER,
               "--reason", "The reviewer is on leave this week"), 2, "to"),
    Case("absence with an impossible date",
         fixed("people", "away", REVIEWER, "--from", "2026-13-01", "--to", "2026-12-10",
               "--by", REVIEWER), 2, "from", "not a date"),
    Case("absence ending before it starts",
         fixed("people", "away", REVIEWER, "--from", "10/12/2099", "--to", "01/12/2099",
               "--by", REVIEWER), 2, "to", "before the first day away"),
    Case("absence starting years ahead",
         fixed("people", "away", REVIEWER, "--from", "2099-12-01", "--to", "2099-12-02",
               "--by", REVIEWER), 2, "from", "more than 1 year ahead"),
    Case("absence recorded for someone else by a junior",
         lambda tmp, today: ["people", "away", REVIEWER, "--from", today.isoformat(), "--to",
                             today.isoformat(), "--by", "team.leader@rose.example"], 3,
         "absence", "only ni@harbourcare.example or a registered manager"),
]

# ---- addresses: every way one enters (files, options, plans), each refused with its rule
CLI += [
    *(Case(f"person with {what}", person_with(address), 2, "people.0.email", says,
           postgres=what == "a Cyrillic lookalike") for what, address, says in BAD_ADDRESSES),
    *(Case(f"people add with {what}", people_add(address), 2, "email", says)
      for what, address, says in BAD_ADDRESSES),
    *(Case(f"accountable lead with {what}", plan(accountable_lead=address), 2,
           "accountable_lead", says, postgres=what == "two addresses")
      for what, address, says in BAD_ADDRESSES),
    *(Case(f"senior reviewer with {what}", plan(senior_reviewer=address), 2,
           "senior_reviewer", says) for what, address, says in SOME_BAD_ADDRESSES),
    *(Case(f"evidence by {what}", evidence(by=address), 2, "by", says,
           postgres=what == "a header break") for what, address, says in SOME_BAD_ADDRESSES),
    *(Case(f"extension by {what}", extend(by=address), 2, "by", says)
      for what, address, says in SOME_BAD_ADDRESSES),
    *(Case(f"reissue by {what}", fixed("reissue-code", REF, "--by", address), 2, "by", says)
      for what, address, says in SOME_BAD_ADDRESSES),
]

#: Markdown that would fetch, link or restyle where a reviewer reads a plan (issue 15
#: part 1): every free-text field must reach every Markdown surface as inert text
#: (tests/security/test_markdown_inert.py and tests/browser/test_markdown_surfaces.py).
MARKDOWN_PAYLOADS = [
    "![](http://127.0.0.1:9/x.png)",
    "<img src=http://127.0.0.1:9/y.png>",
    "[x](javascript:alert(1))",
    "<a href=javascript:alert(2)>a</a>",
    "[ref][r]",
    "<http://127.0.0.1:9/auto>",
    "http://127.0.0.1:9/bare www.example.org",
    "javascript:alert(3)",
    "**bold** _em_ `code` ~~gone~~ | pipe |",
]
#: Line structure of its own: a row and a heading the product never wrote.
NEWLINE_PAYLOAD = ("\n| **Risk** | **low** (score 6 of 30) |\n\n"
                   "## Triangulation gate: passed\n- [ ] \n> quoted\n1. listed\n---\n")
#: What breaks a single-line field (titles, names, measures, locations): (what, text).
NOT_ONE_LINE = [
    ("a line break", "Night checks\n| **Risk** | **low** (score 6 of 30) |", "one line"),
    ("a carriage return", "Night checks\r# Triangulation gate: passed", "one line"),
    ("a line separator", "Night checks\u2028more", "one line"),
    ("a right-to-left override", "Night checks\u202eskcehc", "control characters"),
    ("an escape sequence", "Night \x1b[31mchecks", "control characters"),
]

CLI += [
    *(Case(f"title with {what}", plan(title=text), 2, "title", says,
           postgres=what == "a line break") for what, text, says in NOT_ONE_LINE),
    *(Case(f"measure with {what}", plan(target={
        "measure": text, "direction": "at_least", "value": 95, "deadline": "2099-01-01"}),
        2, "target.measure", says) for what, text, says in NOT_ONE_LINE[:2]),
    *(Case(f"person named with {what}", people_file(yaml.safe_dump({"people": [
        {"name": text, "email": "a@x.example", "role": "provider_lead"}]})), 2,
        "people.0.name", says) for what, text, says in NOT_ONE_LINE[:2]),
    # free text may run over lines, but carries no other control character
    *(Case(f"baseline issue with {what}", dated_plan(
        baseline=lambda d, text=text: baseline(d, issue=text)), 2, "baseline.issue", says)
      for what, text, says in NOT_ONE_LINE[3:]),
    Case("interim control with an escape sequence",
         plan(interim_controls=["Night \x1b[31mchecks"]), 2, "interim_controls.0",
         "control characters"),
    Case("step with a right-to-left override", plan(steps=[
        {"role": "registered_manager", "action": "Check \u202eskcehc", "record": "log"}]),
        2, "steps.0.action", "control characters"),
    *(Case(f"people add named with {what}", fixed(
        "people", "add", "--name", text, "--email", "a@x.example", "--role",
        "provider_lead", "--provider", "Harbour Care Group"), 2, "name", says)
      for what, text, says in NOT_ONE_LINE[:2]),
]

# ---------------------------------------------------------------- sign-off forms

@dataclass(frozen=True)
class FormCase:
    """What a person types into a form: `args` completes `recovery signoff REF` or
    `recovery closure request REF`."""

    name: str
    answer: dict[str, str]
    exit_code: int
    field: str
    says: str = ""
    reasons: tuple[str, ...] = field(default_factory=tuple)


GOOD_RATIONALE = "Interim controls are proportionate and the steps are clear"


#: Placeholders filled in for the action the form belongs to: <code> (the emailed code),
#: <wrong> (another code), <reviewer> (its senior reviewer), <lead>, <LEAD> (its lead in
#: capitals with spaces around).
def signoff(**changes: str) -> dict[str, str]:
    answer = {"by": "<reviewer>", "code": "<code>", "decision": "approve",
              "rationale": GOOD_RATIONALE}
    answer.update(changes)
    return answer


#: Refused by the Prefect server against the form's schema: the run never wakes.
SIGNOFF_FORM: list[FormCase] = [
    FormCase("code of five digits", signoff(code="12345"), 2, "code"),
    FormCase("code of seven digits", signoff(code="1234567"), 2, "code"),
    FormCase("code in letters", signoff(code="abcdef"), 2, "code"),
    FormCase("code with SQL", signoff(code="1' OR '1'='1"), 2, "code"),
    FormCase("empty code", signoff(code=""), 2, "code"),
    FormCase("unknown decision", signoff(decision="maybe"), 2, "decision"),
    FormCase("decision in capitals", signoff(decision="APPROVE"), 2, "decision"),
    FormCase("rationale too short", signoff(rationale="fine"), 2, "rationale"),
    FormCase("rationale of 1 MB", signoff(rationale=HUGE), 2, "rationale"),
    FormCase("email of 300 characters", signoff(by="r" * 290 + "@x.example"), 2,
             "reviewer_email"),
]

#: Pass the schema, refused by the domain: the run records the refusal and asks again.
SIGNOFF_DOMAIN: list[FormCase] = [
    FormCase("wrong code", signoff(code="<wrong>"), 3, "sign-off",
             reasons=("the sign-off code is wrong",)),
    FormCase("the lead signs, in capitals with spaces",
             signoff(by="<LEAD>"), 3, "sign-off",
             reasons=("the accountable lead may not sign off their own action",
                      "only the named senior reviewer",
                      "the sign-off code was withdrawn")),
    FormCase("rationale of twenty spaces", signoff(rationale=" " * 25), 3, "sign-off",
             reasons=("the rationale must be at least 20 characters",)),
]

#: The lead's closure request form, refused by the server's schema.
CLOSURE_FORM: list[FormCase] = [
    FormCase("summary too short", {"by": "<lead>", "summary": "done"}, 2, "summary"),
    FormCase("summary of 1 MB", {"by": "<lead>", "summary": HUGE}, 2, "summary"),
    FormCase("requester of 300 characters",
             {"by": "l" * 290 + "@x.example", "summary": "All four pillars at 100%"}, 2,
             "requested_by"),
]


# ---------------------------------------------------------------- tracker imports

TRACKER_HEADER = ("Title,Location,Risk Domain,Quality Statements,Potential Harm,"
                  "People Affected,Likelihood of Recurrence,Regulatory Impact,"
                  "Control Strength,Accountable Lead,Senior Reviewer,Baseline Issue,"
                  "Baseline Value,Baseline Date,Target Measure,Direction,Target Value,"
                  "Deadline,Interim Controls,Steps")


def tracker_row(today: date, **cells: str) -> dict[str, str]:
    row = {
        "Title": "Night checks recorded on every shift", "Location": "Rose House",
        "Risk Domain": "safety", "Quality Statements": "safe.safeguarding",
        "Potential Harm": "4", "People Affected": "3", "Likelihood of Recurrence": "3",
        "Regulatory Impact": "3", "Control Strength": "3", "Accountable Lead": LEAD,
        "Senior Reviewer": REVIEWER, "Baseline Issue": "Night checks are not recorded",
        "Baseline Value": "60", "Baseline Date": (today - timedelta(days=7)).strftime("%d/%m/%Y"),
        "Target Measure": "Shifts with every night check recorded", "Direction": "at least",
        "Target Value": "95", "Deadline": (today + timedelta(days=60)).strftime("%d/%m/%Y"),
        "Interim Controls": "Duty manager checks the night log each morning",
        "Steps": "duty manager: Check the night log each morning -> Night log",
    }
    row.update(cells)
    return row


def _csv_line(values: list[str]) -> str:
    return ",".join('"' + v.replace('"', '""') + '"' for v in values)


#: The command a file of each kind is given to.
TRACKER_COMMAND = ("import", "tracker", "--no-flow")


def _command(command: tuple[str, ...], path: Path) -> list[str]:
    return [*command[:2], str(path), *command[2:]]


def tracker(*rows: Callable[[date], dict[str, str]], header: str = TRACKER_HEADER,
            valid: Callable[..., dict[str, str]] = tracker_row,
            command: tuple[str, ...] = TRACKER_COMMAND) -> Args:
    """`import tracker --no-flow` of a CSV (or, with `valid` and `command`, another
    import): a valid row first, then the bad ones."""

    def build(tmp: Path, today: date) -> list[str]:
        columns = header.split(",")
        lines = [header, _csv_line([valid(today)[c] for c in columns if c in valid(today)])]
        for row in rows:
            cells = row(today)
            lines.append(_csv_line([cells.get(c, "") for c in columns]))
        path = tmp / f"{command[1]}.csv"
        path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
        return _command(command, path)

    return build


def cells(**values: str | Callable[[date], str]) -> Callable[[date], dict[str, str]]:
    keys = {k.replace("_", " ").title().replace("Of", "of"): v for k, v in values.items()}

    def make(today: date) -> dict[str, str]:
        values = {k: v(today) if callable(v) else v for k, v in keys.items()}
        values.setdefault("Title", f"Tracker row {sorted(keys)}")
        return tracker_row(today, **values)

    return make


def tracker_bytes(data: bytes, name: str = "tracker.xlsx",
                  command: tuple[str, ...] = TRACKER_COMMAND) -> Args:
    return tracker_file(lambda today: data, name, command)


def workbook(*rows: Callable[[date], dict[str, str]],
             change: Callable[[Any], None] = lambda sheet: None,
             header: str = TRACKER_HEADER, valid: Callable[..., dict[str, str]] = tracker_row,
             title: str = "Tracker") -> Callable[[date], bytes]:
    """An .xlsx tracker (built with openpyxl; or, with `header`, `valid` and `title`,
    another import's file): the valid row, then `rows`, then `change` applied to the
    sheet."""

    def build(today: date) -> bytes:
        import io

        import openpyxl

        columns = header.split(",")
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.title = title
        sheet.append(columns)
        for row in (lambda d: valid(d), *rows):
            cells = row(today)
            sheet.append([cells.get(c, "") for c in columns])
        change(sheet)
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()

    return build


def with_member(make: Callable[[date], bytes], member: str, size: int,
                declared: int | None = None) -> Callable[[date], bytes]:
    """The workbook with `member` replaced or added: `size` zero bytes, deflated (a zip
    bomb: 64 MB packs into about 64 KB); with `declared`, the zip's headers claim that
    uncompressed size instead."""

    def build(today: date) -> bytes:
        import io
        import struct
        import zipfile

        original = zipfile.ZipFile(io.BytesIO(make(today)))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
            for info in original.infolist():
                if info.filename != member:
                    out.writestr(info, original.read(info))
            out.writestr(member, bytes(size))
        data = bytearray(buffer.getvalue())
        if declared is not None:
            # (signature, offset of the uncompressed size; the name's length follows it
            # and the name starts at name_at): the local header, then the central one
            for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30),
                                                (b"PK\x01\x02", 24, 46)):
                at = data.find(signature)
                while at != -1:
                    length = struct.unpack_from("<H", data, at + size_at + 4)[0]
                    if data[at + name_at:at + name_at + length] == member.encode():
                        struct.pack_into("<I", data, at + size_at, declared)
                    at = data.find(signature, at + 4)
        return bytes(data)

    return build


def rewritten(make: Callable[[date], bytes], member: str, old: bytes,
              new: bytes) -> Callable[[date], bytes]:
    """The workbook with `old` replaced by `new` in one member's XML: what openpyxl will
    not write (it cuts a cell's text at Excel's 32,767 characters)."""

    def build(today: date) -> bytes:
        import io
        import zipfile

        original = zipfile.ZipFile(io.BytesIO(make(today)))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
            for info in original.infolist():
                data = original.read(info)
                if info.filename == member:
                    assert old in data
                    data = data.replace(old, new)
                out.writestr(info, data)
        return buffer.getvalue()

    return build


def tracker_file(make: Callable[[date], bytes], name: str = "tracker.xlsx",
                 command: tuple[str, ...] = TRACKER_COMMAND) -> Args:
    def build(tmp: Path, today: date) -> list[str]:
        path = tmp / name
        path.write_bytes(make(today))
        return _command(command, path)

    return build


def _far_corner(sheet: Any) -> None:
    sheet["XFD1048576"] = ""  # one blank cell: the sheet is 16,384 by 1,048,576


def _far_right(sheet: Any) -> None:
    sheet["XFD1"] = " "


def _merged_location(sheet: Any) -> None:
    sheet.merge_cells("B2:B3")


@dataclass(frozen=True)
class TrackerCase:
    name: str
    args: Args
    column: str  # the column a row error names ("" for an error about the whole file)
    says: str = ""


TRACKER: list[TrackerCase] = [
    TrackerCase("factor 6", tracker(cells(potential_harm="6")), "Potential Harm", "1 to 5"),
    TrackerCase("factor in words", tracker(cells(control_strength="weak")),
                "Control Strength", "whole number"),
    TrackerCase("factor with a fraction", tracker(cells(people_affected="2.5")),
                "People Affected", "whole number"),
    TrackerCase("baseline over 100%", tracker(cells(baseline_value="150%")),
                "Baseline Value", "0 to 100"),
    TrackerCase("baseline negative", tracker(cells(baseline_value="-5")), "Baseline Value",
                "0 to 100"),
    TrackerCase("baseline NaN", tracker(cells(baseline_value="NaN")), "Baseline Value"),
    TrackerCase("baseline date in the future",
                tracker(cells(baseline_date=lambda d: (d + timedelta(days=3))
                              .strftime("%d/%m/%Y"))), "Baseline Date", "future"),
    TrackerCase("impossible baseline date", tracker(cells(baseline_date="31/02/2026")),
                "Baseline Date"),
    TrackerCase("unknown lead", tracker(cells(accountable_lead="ghost@rose.example")),
                "Accountable Lead"),
    TrackerCase("lead is the reviewer by letter case",
                tracker(cells(accountable_lead=MANAGER, senior_reviewer=" RM@ROSE.example")),
                "Senior Reviewer", "different person"),
    TrackerCase("unknown statement", tracker(cells(quality_statements="safe.teleportation")),
                "Quality Statements", "safe.teleportation"),
    TrackerCase("missing required column",
                tracker(header=TRACKER_HEADER.replace("Location,", "")), "Location",
                "missing"),
    TrackerCase("title of 1 MB (a CSV field over the limit)", tracker(cells(title=HUGE)), "",
                ""),
    TrackerCase("title of 300 characters", tracker(cells(title="t" * 300)), "Title",
                "at most 200"),
    TrackerCase("not a spreadsheet", tracker_bytes(b"PK\x03\x04 this is not a zip"), "",
                ""),
    # bounded by what is really in the file (issue 15, part 2)
    TrackerCase("a blank cell at XFD1048576 (a whole-sheet dimension)",
                tracker_file(workbook(change=_far_corner)), "", "the row bound"),
    TrackerCase("a blank cell in column XFD", tracker_file(workbook(change=_far_right)), "",
                "the column bound"),
    TrackerCase("a CSV of blank lines", tracker_bytes(
        TRACKER_HEADER.encode() + b"\r\n" + b" , \r\n" * 6000, "tracker.csv"), "",
        "the row bound"),
    TrackerCase("a member that inflates to 64 MB (zip bomb)", tracker_file(with_member(
        workbook(), "xl/media/image1.png", 64 * MEGABYTE)), "",
        "the bound on bytes after decompression"),
    TrackerCase("a sheet that inflates past the size its headers declare (zip bomb)",
                tracker_file(with_member(workbook(), "xl/worksheets/sheet1.xml",
                                         64 * MEGABYTE, declared=4096)), "", "xlsx"),
    TrackerCase("interim controls of 5 MB in one workbook cell", tracker_file(rewritten(
        workbook(cells(interim_controls="LONG-CELL")), "xl/worksheets/sheet1.xml",
        b"LONG-CELL", b"Check;" * (5 * MEGABYTE // 6))), "", "the cell size bound"),
    TrackerCase("a HYPERLINK formula in the title", tracker_file(workbook(cells(
        title='=HYPERLINK("http://127.0.0.1:9/x","Open the action")'))), "Title", "formula"),
    TrackerCase("a DDE formula in the steps", tracker_file(workbook(cells(
        steps="=cmd|' /C calc'!A0"))), "Steps", "formula"),
    TrackerCase("merged cells", tracker_file(workbook(cells(location="Rose House"),
                                                      change=_merged_location)), "",
                "merged cells (B2:B3)"),
    TrackerCase("a deadline typed as words", tracker_file(workbook(cells(
        deadline="next Tuesday"))), "Deadline", "is not a date"),
    TrackerCase("a baseline date typed month first", tracker_file(workbook(cells(
        baseline_date="11/28/2026"))), "Baseline Date", "DD/MM/YYYY"),
]


# ---------------------------------------------------------------- evidence imports

EVIDENCE_HEADER = "Action,Source,Value,Sample size,Observed on,Reference,Recorded by"
EVIDENCE_COMMAND = ("import", "evidence")


def evidence_row(today: date, **cells: str) -> dict[str, str]:
    row = {"Action": REF, "Source": "audits", "Value": "90", "Sample size": "12",
           "Observed on": (today - timedelta(days=2)).strftime("%d/%m/%Y"),
           "Reference": "Safeguarding audit tool export entry 4", "Recorded by": MANAGER}
    row.update(cells)
    return row


def evidence_item(**values: str | Callable[[date], str]) -> Callable[[date], dict[str, str]]:
    """An evidence row with these cells changed (keys: the header with _ for spaces)."""
    keys = {k.replace("_", " ").capitalize(): v for k, v in values.items()}

    def make(today: date) -> dict[str, str]:
        return evidence_row(today, **{k: v(today) if callable(v) else v
                                      for k, v in keys.items()})

    return make


def evidence_csv(*rows: Callable[[date], dict[str, str]], header: str = EVIDENCE_HEADER) -> Args:
    return tracker(*rows, header=header, valid=evidence_row, command=EVIDENCE_COMMAND)


def evidence_workbook(*rows: Callable[[date], dict[str, str]],
                      change: Callable[[Any], None] = lambda sheet: None,
                      header: str = EVIDENCE_HEADER) -> Args:
    return tracker_file(workbook(*rows, change=change, header=header, valid=evidence_row,
                                 title="Evidence"), "evidence.xlsx", EVIDENCE_COMMAND)


def evidence_of(make: Callable[[date], bytes], name: str = "evidence.xlsx") -> Args:
    return tracker_file(make, name, EVIDENCE_COMMAND)


def _day_text(days: int) -> Callable[[date], str]:
    return lambda today: (today + timedelta(days=days)).strftime("%d/%m/%Y")


#: `recovery import evidence` files: the same contract as TRACKER (all or nothing, every
#: bad row and column named, or one line naming the bound a file passes).
EVIDENCE: list[TrackerCase] = [
    # formulas
    TrackerCase("a HYPERLINK formula as the reference", evidence_workbook(evidence_item(
        reference='=HYPERLINK("http://127.0.0.1:9/x","Care record")')), "Reference",
        "formula"),
    TrackerCase("a DDE formula as the value", evidence_workbook(evidence_item(
        value="=cmd|' /C calc'!A0")), "Value", "formula"),
    TrackerCase("formula-like text as a CSV reference", evidence_csv(evidence_item(
        reference="=HYPERLINK(\"http://127.0.0.1:9/x\")")), "Reference", "formula"),
    TrackerCase("a reference starting with @", evidence_csv(evidence_item(reference="@SUM(1+1)")),
                "Reference", "formula"),
    # huge dimensions
    TrackerCase("a blank cell at XFD1048576 (a whole-sheet dimension)",
                evidence_workbook(change=_far_corner), "", "the row bound"),
    TrackerCase("a blank cell in column XFD", evidence_workbook(change=_far_right), "",
                "the column bound"),
    TrackerCase("a CSV of blank lines", tracker_bytes(
        EVIDENCE_HEADER.encode() + b"\r\n" + b" , \r\n" * 60_000, "evidence.csv",
        EVIDENCE_COMMAND), "", "the row bound"),
    TrackerCase("a member that inflates to 96 MB (zip bomb)", evidence_of(with_member(
        workbook(header=EVIDENCE_HEADER, valid=evidence_row), "xl/media/image1.png",
        96 * MEGABYTE)), "", "the bound on bytes after decompression"),
    TrackerCase("a reference of 5 MB in one workbook cell", evidence_of(rewritten(
        workbook(evidence_item(reference="LONG-CELL"), header=EVIDENCE_HEADER, valid=evidence_row),
        "xl/worksheets/sheet1.xml", b"LONG-CELL", b"Care record " * (5 * MEGABYTE // 12))),
        "", "the cell size bound"),
    TrackerCase("a reference of 1 MB in a CSV (a field over the limit)",
                evidence_csv(evidence_item(reference=HUGE)), "", ""),
    TrackerCase("merged cells", evidence_workbook(change=_merged_location), "",
                "merged cells (B2:B3)"),
    # dates as text
    TrackerCase("observed on typed as words", evidence_workbook(evidence_item(
        observed_on="last Tuesday")), "Observed on", "is not a date"),
    TrackerCase("observed on typed month first", evidence_workbook(evidence_item(
        observed_on="11/28/2026")), "Observed on", "day first"),
    TrackerCase("observed on as a serial number in text", evidence_csv(evidence_item(
        observed_on="46359")), "Observed on", "is not a date"),
    TrackerCase("an impossible date", evidence_csv(evidence_item(observed_on="31/02/2026")),
                "Observed on", "is not a date"),
    TrackerCase("observed tomorrow", evidence_csv(evidence_item(observed_on=_day_text(1))),
                "Observed on", "in the future"),
    TrackerCase("observed before the baseline",
                evidence_csv(evidence_item(observed_on=_day_text(-40))), "Observed on",
                "before the baseline"),
    # unknown columns: summaries, not records
    TrackerCase("a column the format does not know",
                evidence_csv(header=EVIDENCE_HEADER + ",Resident name"), "Resident name",
                "summaries, not records"),
    TrackerCase("a notes column in a workbook", evidence_workbook(
        header=EVIDENCE_HEADER + ",Notes"), "Notes", "summaries, not records"),
    TrackerCase("values in a column with no name", evidence_workbook(
        change=lambda sheet: sheet.cell(row=2, column=9, value="Mrs Jones")), "I",
        "no name"),
    TrackerCase("a reference that reads as sentences", evidence_csv(evidence_item(
        reference="Care plan. She declined her medicines twice")), "Reference",
        "sentences"),
    TrackerCase("a reference of 20 words", evidence_csv(evidence_item(
        reference=" ".join(["word"] * 20))), "Reference", "12 words"),
    TrackerCase("a reference holding an NHS number", evidence_csv(evidence_item(
        reference="Care record 943 476 5919")), "Reference", "NHS number"),
    TrackerCase("a reference holding an email address", evidence_csv(evidence_item(
        reference="Feedback from relative@family.example")), "Reference", "email address"),
    TrackerCase("a reference over two lines", evidence_csv(evidence_item(
        reference="Care record\nentry 4")), "Reference", "one line"),
    # the single item's rules, per row
    TrackerCase("recorded by someone not in the directory", evidence_csv(evidence_item(
        recorded_by="ghost@rose.example")), "Recorded by", "staff directory"),
    TrackerCase("recorded by no address", evidence_csv(evidence_item(recorded_by="Grace Okafor")),
                "Recorded by", "email address"),
    TrackerCase("an action that does not exist", evidence_csv(evidence_item(action="ROSE-SG-999")),
                "Action", "no action"),
    TrackerCase("an action written as SQL", evidence_csv(evidence_item(action=SQL)), "Action",
                "no action"),
    TrackerCase("an unknown source", evidence_csv(evidence_item(source="gossip")), "Source",
                "not an evidence source"),
    TrackerCase("a value of 150%", evidence_csv(evidence_item(value="150%")), "Value", "0 to 100"),
    TrackerCase("a value of NaN", evidence_csv(evidence_item(value="NaN")), "Value", "0 to 100"),
    TrackerCase("a sample of 0", evidence_csv(evidence_item(sample_size="0")), "Sample size",
                "at least 1"),
    TrackerCase("a sample of 2.5", evidence_csv(evidence_item(sample_size="2.5")), "Sample size",
                "whole number"),
    TrackerCase("a value without its sample", evidence_csv(evidence_item(sample_size="")),
                "Sample size", "sample size"),
    TrackerCase("the same item twice with two values",
                evidence_csv(evidence_item(value="91")), "Value", "the same item as row 2"),
    TrackerCase("a required column missing",
                evidence_csv(header=EVIDENCE_HEADER.replace("Observed on,", "")), "Observed on",
                "missing"),
]
