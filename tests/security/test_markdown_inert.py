"""What people type reaches every Markdown surface as inert text (issue #15, part 1): the
sign-off form's description, the weekly governance-report artifact, the gate artifact,
the tracker table's cells and the Markdown packs. Each is rendered for a plan whose every
free-text field carries the payloads of the corpus (MARKDOWN_PAYLOADS) and parsed as
Markdown: no image, link or HTML token exists, and the headings and summary rows are
exactly the product's own. Single-line fields refuse
line breaks at the boundary: rows of the corpus (NOT_ONE_LINE)."""

from __future__ import annotations

import html
from datetime import datetime
from types import SimpleNamespace

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from models.planfile import plan_from_mapping
from recovery.adapters import db, escaping, mail
from recovery.application import action_plans, forms
from recovery.reporting import packs as reports
from recovery.reporting import snapshot as governance
from recovery.reporting import weekly
from recovery.settings import get_settings
from tests.integration.helpers import relative_plan
from tests.security.conftest import World
from tests.security.corpus import MARKDOWN_PAYLOADS, NEWLINE_PAYLOAD

PAYLOAD = " ".join(MARKDOWN_PAYLOADS)
#: What fits a title (200 characters): an image, a tag and a script link.
SHORT = " ".join(MARKDOWN_PAYLOADS[:3])
#: Multi-line fields may hold line breaks; each must still render on the product's line.
MULTILINE = f"{PAYLOAD}{NEWLINE_PAYLOAD}"
#: The form's key facts and plan, label by label: the product's labels and nothing else.
KEY_FACTS = {"plan": ["Decision needed:", "Your code expires:", "Action:", "Risk:"],
             "closure": ["Decision needed:", "Your code expires:", "Action:", "Risk:",
                         "Triangulation gate:"],
             "closure-request": ["Action:", "Risk:"], "revision": ["Action:", "Risk:"]}
PLAN_FACTS = ["Status:", "Accountable lead:", "Senior reviewer:", "Baseline:", "Target:",
              "Review cadence:"]


def parse(markdown: str) -> list[Token]:
    """Every token, children included, as a GFM renderer (tables on) would read it."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    flat: list[Token] = []
    for token in tokens:
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def assert_inert(markdown: str) -> None:
    tokens = parse(markdown)
    live = [t.type for t in tokens
            if t.type in ("image", "link_open", "html_inline", "html_block")]
    assert live == [], (live, markdown)
    assert "javascript:" not in markdown.lower()
    assert "http://127.0.0.1:9" not in markdown  # the address would become a link


def headings(markdown: str) -> list[str]:
    tokens = parse(markdown)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def labels(markdown: str) -> list[str]:
    """The bold label that opens each item of every top-level list."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    found = []
    for i, token in enumerate(tokens):
        if token.type == "inline" and tokens[i - 1].type == "paragraph_open" and (
                tokens[i - 1].level == 2):
            children = [c for c in token.children or [] if c.content or c.type != "text"]
            if len(children) > 1 and children[0].type == "strong_open":
                found.append(children[1].content)
    return found


def first_cells(markdown: str) -> list[str]:
    """The first cell of every body row of every table."""
    tokens = parse(markdown)
    cells: list[str] = []
    in_body = False
    for i, token in enumerate(tokens):
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "tbody_close":
            in_body = False
        elif in_body and token.type == "tr_open":
            cells.append(tokens[i + 2].content)
    return cells


@pytest.fixture
def payload_ref(sqlite_world: World) -> str:
    """A plan whose every free-text field carries the payloads, opened beside the world's."""
    today = get_settings().today()
    plan = relative_plan(
        today, title=f"Night checks {SHORT}", interim_controls=[MULTILINE, PAYLOAD],
        baseline={"issue": MULTILINE, "value": 60, "as_of": str(today)},
        target={"measure": f"Checks done {SHORT}", "direction": "at_least", "value": 95,
                "deadline": str(today.replace(year=today.year + 1))},
        what_can_go_wrong=[MULTILINE], warning_signs=[MULTILINE],
        escalation_actions=[MULTILINE],
        steps=[{"role": "registered_manager", "action": MULTILINE, "record": MULTILINE}],
    )
    with db.unit_of_work() as session:
        return action_plans.open_action(session, plan_from_mapping(plan), actor="test").ref


@pytest.mark.parametrize("kind", ["plan", "closure", "closure-request", "revision"])
def test_the_signoff_form_shows_the_plan_as_inert_text(payload_ref: str, kind: str) -> None:
    wait = SimpleNamespace(kind=kind, reviewer_email="ni@harbourcare.example",
                           refused_before=[MULTILINE], locked=False,
                           expires_at=datetime(2026, 12, 5, 14, 5))
    with db.unit_of_work() as session:
        text = forms.action_brief(session, payload_ref, wait=wait)
    assert_inert(text)
    pillars = ["care records", "audits", "feedback", "staff practice"]
    assert [c.lower() for c in first_cells(text)] == pillars
    assert labels(text) == KEY_FACTS[kind] + PLAN_FACTS
    own = {"plan": "Plan sign-off", "closure": "Closure sign-off",
           "closure-request": "In recovery", "revision": "Plan rejected"}[kind]
    assert headings(text) == [f"{own}: {payload_ref}", "The plan"]
    # the refusal comes first, before the heading
    assert text.lstrip().startswith("> **Your last submission was not accepted")
    starts = [line.strip("*# ") for line in text.splitlines()]
    assert not any(line.startswith("Triangulation gate: passed") for line in starts)
    # the payload reads as typed once rendered (only its line breaks become spaces)
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "![](http://127.0.0.1:9/x.png)" in rendered.replace("&#64;", "@")


def test_the_weekly_governance_report_and_tracker_are_inert(payload_ref: str) -> None:
    today = get_settings().today()
    with db.unit_of_work() as session:
        snapshot = governance.build_snapshot(session, as_of=today)
    text = weekly.report_markdown(snapshot)
    assert payload_ref in text
    assert_inert(text)
    assert headings(text) == [f"Provider governance summary · {today:%-d %B %Y}",
                              "High-risk actions", "Governance weaknesses",
                              "Escalations open", "Overdue reviews"]
    refs = {line.ref for line in snapshot.high}
    assert {cell.split(" · ")[0] for cell in first_cells(text)} == refs
    for row in weekly.tracker_rows(snapshot):
        for value in row.values():
            if isinstance(value, str):
                assert_inert(value)
                assert "\n" not in value


@pytest.mark.parametrize("kind", ["governance", "commissioner", "inspector"])
def test_the_markdown_packs_are_inert(payload_ref: str, kind: str) -> None:
    with db.unit_of_work() as session:
        pack = reports.build_pack(session, kind, as_of=get_settings().today())
    text = reports.render_markdown(pack)
    assert payload_ref in text
    assert_inert(text)


def test_the_gate_artifact_lists_reasons_as_inert_text() -> None:
    text = mail.environment().get_template("artifacts/gate_verdict.md").render(
        ref="ROSE-SG-001", attempt=2, passed=False, reasons=[MULTILINE, "no feedback"])
    assert_inert(text)
    assert headings(text) == ["Triangulation gate for ROSE-SG-001: closure refused"]
    items = [t for t in parse(text) if t.type == "list_item_open"]
    assert len(items) == 2


def test_an_email_keeps_each_value_on_its_line() -> None:
    """The sign-off request's text part has the product's lines whatever the title holds;
    its HTML part shows the payload as text (autoescaped)."""
    def email(title: str) -> tuple[str, str, str]:
        return mail.render("signoff_request", {
            "ref": "ROSE-SG-001", "title": title, "kind": "plan", "reviewer_name": title,
            "code": "123456", "expires_at": datetime(2026, 12, 4, 12, 0), "risk_level": "high",
            "run_url": "http://127.0.0.1:4200/runs/flow-run/x", "cli": "recovery signoff",
            "snapshot_ref": None})

    subject, text, html_part = email(MULTILINE)
    _, plain, _ = email("Night checks")
    assert len(text.splitlines()) == len(plain.splitlines())
    assert "![](http://127.0.0.1:9/x.png)" in text and "\n" not in subject
    assert "<img" not in html_part and "&lt;img src=http://127.0.0.1:9/y.png&gt;" in html_part
    kept = escaping.finalize(SimpleNamespace(name="email/x.html"), MULTILINE)
    assert kept == MULTILINE  # the HTML part is escaped by autoescape instead


def test_code_spans_hold_backticks_without_breaking_out() -> None:
    assert escaping.code("a`b") == "`` a`b ``"
    assert escaping.code("") == ""


@pytest.mark.parametrize("value", [*MARKDOWN_PAYLOADS, MULTILINE, "12.5", "3. listed",
                                   "1) first", "- item", "+ item", "= under", "2026-12-04",
                                   "a & b < c > d", "x@y.example"])
def test_an_escaped_value_renders_exactly_as_typed(value: str) -> None:
    """Inert, not mangled: a number such as 12.5 must not show a stray backslash."""
    rendered = MarkdownIt("commonmark").render(escaping.markdown_text(value))
    assert rendered.startswith("<p>") and rendered.endswith("</p>\n"), rendered
    assert html.unescape(rendered[3:-5]) == escaping.one_line(value)
