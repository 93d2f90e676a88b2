"""The Prefect UI as operations staff use it, in Debian's chromium (Playwright, never a
downloaded browser): the Runs page finds the high-risk runs of one location by tag, a run
opens with its recovery tags, and its Artifacts tab shows the triangulation gate's verdict.

Three example actions are opened at three locations; Rose House's plan is signed off and
its lead asks for closure too early, so the gate refuses and publishes its artifact.
Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.recovery_stack import SEED, RecoveryStack

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic"]
SETTLE = 5.0  # the UI polls for ever: wait a few seconds, never for "networkidle"
RUN_LINK = "a.flow-run-bread-crumbs__flow-run-link"


def settle(seconds: float = SETTLE) -> None:
    time.sleep(seconds)


@pytest.fixture(scope="module")
def opened(stack: RecoveryStack) -> RecoveryStack:
    for plan in SEED.values():
        stack.cli_ok("action", "open", plan)
    for ref in SEED:
        stack.wait_for_wait(ref, "plan-signoff-")
    code = stack.signoff_code("ROSE-SG-001", "plan")
    stack.cli_ok("signoff", "ROSE-SG-001", "--by", "ni@harbourcare.example", "--code", code,
                 "--decision", "approve", "--rationale",
                 "Interim controls are proportionate and the steps are clear")
    stack.wait_for_wait("ROSE-SG-001", "closure-request-")
    refused = stack.cli("closure", "request", "ROSE-SG-001", "--by", "sg.lead@rose.example",
                        "--summary", "All concerns reviewed the same day for four weeks")
    assert refused.exit_code == 3, refused
    assert stack.artifacts("gate-rose-sg-001"), "the gate published no artifact"
    stack.wait_for_wait("ROSE-SG-001", "closure-request-")
    return stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is required: apt-get install -y chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def run_names(page: Any) -> list[str]:
    links = page.locator(RUN_LINK)
    return [links.nth(i).inner_text().strip() for i in range(links.count())]


def choose_tag(page: Any, tag: str) -> None:
    """Pick a tag in the Runs page's Tags filter, as a person would."""
    search = page.get_by_placeholder("Search or enter new tag")
    if not search.is_visible():
        page.locator(".flow-run-tags-input button").first.click()
        settle(1)
        if not search.is_visible():
            page.keyboard.press("ArrowDown")
    search.wait_for(state="visible")
    search.fill(tag)
    page.get_by_role("option", name=tag, exact=True).click()
    settle(1)


def test_runs_page_finds_the_high_risk_runs_of_one_location_by_tag(
    opened: RecoveryStack, page: Any, tmp_path: Path,
) -> None:
    ui = opened.server.ui_url
    page.goto(f"{ui}/runs")
    settle()
    assert sorted(n.split(" · ")[0] for n in run_names(page)) == sorted(SEED)
    page.screenshot(path=str(tmp_path / "01-runs-all.png"), full_page=True)

    choose_tag(page, "location:rose-house")
    choose_tag(page, "risk:high")
    page.keyboard.press("Escape")
    settle()
    page.screenshot(path=str(tmp_path / "02-runs-rose-house-high-risk.png"), full_page=True)
    assert re.search(r"tag=location(%3A|:)rose-house", page.url), page.url
    assert re.search(r"tag=risk(%3A|:)high", page.url), page.url
    [name] = run_names(page)
    assert name.startswith("ROSE-SG-001 · ")

    # The same question as a link (the URL a manager can bookmark): the tags are ANDed.
    page.goto(f"{ui}/runs?tag=location:quay-house&tag=risk:high")
    settle()
    assert [n.split(" · ")[0] for n in run_names(page)] == ["QUAY-MED-001"]
    page.goto(f"{ui}/runs?tag=location:rose-house&tag=location:quay-house")
    settle()
    assert run_names(page) == []


def test_a_run_opens_with_its_tags_and_its_gate_artifact(
    opened: RecoveryStack, page: Any, tmp_path: Path,
) -> None:
    ui = opened.server.ui_url
    run_id = opened.flow_run_id("ROSE-SG-001")
    page.goto(f"{ui}/runs?tag=location:rose-house&tag=risk:high")
    settle()
    page.locator(RUN_LINK).first.click()
    page.wait_for_url(re.compile(rf".*/runs/flow-run/{run_id}"))
    settle()
    page.screenshot(path=str(tmp_path / "03-run.png"), full_page=True)
    # the header shows the first tags (the wait among them) and "+N" for the rest
    assert page.get_by_text("awaiting:closure-request", exact=True).first.is_visible()
    page.get_by_text("Details", exact=True).first.click()  # every tag, none behind "+N"
    settle(2)
    page.screenshot(path=str(tmp_path / "03-run-details.png"), full_page=True)
    for tag in ("location:rose-house", "risk:high", "domain:safeguarding",
                "status:in_recovery", "action:rose-sg-001", "awaiting:closure-request"):
        assert page.get_by_text(tag, exact=True).last.is_visible(), tag
    assert page.get_by_role("button", name="Resume").is_visible()  # waiting for the lead

    page.get_by_text("Artifacts", exact=True).first.click()
    settle()
    card = page.get_by_text("gate-rose-sg-001", exact=True).first
    assert card.is_visible()
    assert page.get_by_text("Triangulation gate verdict for ROSE-SG-001").first.is_visible()
    page.screenshot(path=str(tmp_path / "04-run-artifacts.png"), full_page=True)

    card.click()
    settle()
    body = page.inner_text("body")
    assert "Triangulation gate for ROSE-SG-001: closure refused" in body, body[:3000]
    assert "no care records evidence since" in body
    page.screenshot(path=str(tmp_path / "05-gate-artifact.png"), full_page=True)
    print(f"screenshots in {tmp_path}")


LEAD_ROLE = "safeguarding lead"  # Sam Patel, Rose House (examples/people.yaml)
REVIEWER_ROLES = {"QUAY-MED-001": "registered manager", "ELM-STF-001": "provider lead"}


def test_waits_are_visible_by_tag_on_the_run_and_in_approvals(
    opened: RecoveryStack, page: Any, tmp_path: Path,
) -> None:
    """Two plans wait on their senior reviewers, Rose House's action on its lead's closure
    request: the Runs page filters each kind of wait by its `awaiting:` tag, the run says
    what it waits for and from whom without pressing Resume, and `recovery approvals`
    lists every wait on a person, the lead's included."""
    ui = opened.server.ui_url
    on_reviewers = sorted(set(SEED) - {"ROSE-SG-001"})
    page.goto(f"{ui}/runs?tag=awaiting:plan-signoff")
    settle()
    assert sorted(n.split(" · ")[0] for n in run_names(page)) == on_reviewers
    page.screenshot(path=str(tmp_path / "runs-awaiting-plan-signoff.png"), full_page=True)
    page.goto(f"{ui}/runs?tag=awaiting:closure-request")
    settle()
    assert [n.split(" · ")[0] for n in run_names(page)] == ["ROSE-SG-001"]
    page.goto(f"{ui}/runs?tag=awaiting:closure-signoff")
    settle()
    assert run_names(page) == []

    page.goto(f"{ui}/runs/flow-run/{opened.flow_run_id('ROSE-SG-001')}")
    settle()
    assert page.get_by_text("awaiting:closure-request", exact=True).first.is_visible()
    page.get_by_text("Artifacts", exact=True).first.click()
    settle()
    assert page.get_by_text("waiting-rose-sg-001", exact=True).first.is_visible()
    # the key's page lists its versions, the wait the run is in now first; open that one
    page.goto(f"{ui}/artifacts/key/waiting-rose-sg-001")
    settle()
    assert page.get_by_text("ROSE-SG-001 waits for the closure request from Sam Patel",
                            exact=True).first.is_visible()
    latest = max(opened.artifacts("waiting-rose-sg-001"), key=lambda a: a.created)
    page.goto(f"{ui}/artifacts/artifact/{latest.id}")
    settle()
    body = page.inner_text("body")
    page.screenshot(path=str(tmp_path / "waiting-artifact.png"), full_page=True)
    assert "ROSE-SG-001 waits for the closure request from" in body, body[:3000]
    assert f"Sam Patel, {LEAD_ROLE}" in body, body[:3000]
    assert "recovery closure request ROSE-SG-001 --by sg.lead@rose.example" in body

    listed = {(a["ref"], a["tag"]): a for a in opened.cli_json("approvals")}
    assert set(listed) == {("ROSE-SG-001", "awaiting:closure-request")} | {
        (ref, "awaiting:plan-signoff") for ref in on_reviewers}
    lead_wait = listed[("ROSE-SG-001", "awaiting:closure-request")]
    assert lead_wait["from_whom"].endswith("<sg.lead@rose.example>")
    assert lead_wait["role"] == LEAD_ROLE
    assert lead_wait["since"], lead_wait
    for ref in on_reviewers:
        wait = listed[(ref, "awaiting:plan-signoff")]
        assert wait["awaiting"] == "plan sign-off"
        assert wait["role"] == REVIEWER_ROLES[ref], wait
        assert wait["command"].startswith(f"recovery signoff {ref} --by ")
    human = opened.cli_ok("approvals").stdout
    assert "the closure request" in human and "plan sign-off" in human, human


UNTOUCHED_PLAN = {  # the open-action form as an operator leaves it without rating the risk
    "location": "Rose House", "title": "Night checks recorded on time",
    "risk_domain": "safety", "quality_statements": ["safe.safe_systems"],
    "accountable_lead": "sg.lead@rose.example", "senior_reviewer": "ni@harbourcare.example",
    "baseline_issue": "Night checks missed", "baseline_value": 60,
    "baseline_date": "2026-11-20", "target_measure": "Night checks on time",
    "target_value": 100, "deadline": "2027-01-20",
    "interim_controls": ["Manager checks the night log each morning"],
}


def _open_action_deployment(stack: RecoveryStack) -> Any:
    with stack.client() as client:
        return client.read_deployment_by_name("open-action/open-action")


def test_the_prefect_server_refuses_an_open_action_run_whose_risk_was_not_rated(
    stack: RecoveryStack,
) -> None:
    import httpx

    deployment = _open_action_deployment(stack)
    url = f"{stack.server.api_url}/deployments/{deployment.id}/create_flow_run"
    without_risk = httpx.post(url, json={"parameters": {"plan": UNTOUCHED_PLAN}}, timeout=30)
    assert without_risk.status_code == 409, without_risk.text
    assert "'risk' is a required property" in without_risk.text, without_risk.text
    two_factors = {**UNTOUCHED_PLAN, "risk": {"potential_harm": 4, "people_affected": 2}}
    partial = httpx.post(url, json={"parameters": {"plan": two_factors}}, timeout=30)
    assert partial.status_code == 409, partial.text
    assert "'likelihood_of_recurrence' is a required property" in partial.text, partial.text
    with stack.client() as client:  # nothing was started
        runs = client.read_flow_runs()
    assert not [r for r in runs if r.deployment_id == deployment.id]


def test_the_open_action_form_shows_every_risk_factor_as_required(
    stack: RecoveryStack, page: Any, tmp_path: Path,
) -> None:
    deployment = _open_action_deployment(stack)
    page.goto(f"{stack.server.ui_url}/deployments/deployment/{deployment.id}/run")
    settle()
    body = page.inner_text("body")
    page.screenshot(path=str(tmp_path / "open-action-form.png"), full_page=True)
    for label in ("Potential harm", "People affected", "Likelihood of recurrence",
                  "Regulatory impact", "Strength of current controls"):
        line = next((ln for ln in body.splitlines() if ln.startswith(label)), None)
        assert line is not None, (label, body[:3000])
        assert "(Optional)" not in line, line
    assert "Nothing is preset" in body  # the form says why every factor must be chosen
    print(f"screenshot in {tmp_path}")
