"""The plan's own text cannot spoof what the senior reviewer reads (issue #15, part 1).

A plan whose every free-text field carries the corpus's Markdown payloads is opened on
the real stack; Debian's chromium opens the sign-off form and the weekly
governance-report artifact in the Prefect UI. Every request the page makes goes to the
Prefect server, no `javascript:` link and no outside image exists, and the form's
summary rows and the report's headings are exactly the product's own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.browser.test_prefect_ui_signoff import (  # noqa: F401 - browser is a fixture
    browser,
    open_signoff_form,
    settle,
)
from tests.security.corpus import MARKDOWN_PAYLOADS, NEWLINE_PAYLOAD
from tests.security.test_markdown_inert import KEY_FACTS, PLAN_FACTS
from tests.support.recovery_stack import SEED, RecoveryStack

pytestmark = [pytest.mark.browser, pytest.mark.prefect, pytest.mark.slow]

REF = "ROSE-SG-001"
SHORT = " ".join(MARKDOWN_PAYLOADS[:3])
MULTILINE = " ".join(MARKDOWN_PAYLOADS) + NEWLINE_PAYLOAD
LIVE = """() => ({
  scripts: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
             .filter(h => h.trim().toLowerCase().startsWith('javascript:')),
  images: [...document.querySelectorAll('img[src]')].map(i => i.src)
             .filter(s => !s.startsWith(location.origin) && !s.startsWith('data:')),
})"""


def payload_plan(tmp_path: Path) -> Path:
    plan = yaml.safe_load(SEED[REF].read_text(encoding="utf-8"))
    plan["title"] = f"Night checks {SHORT}"
    plan["baseline"]["issue"] = MULTILINE
    plan["target"]["measure"] = f"Checks done {SHORT}"
    plan["interim_controls"] = [MULTILINE, SHORT]
    plan["steps"] = [{"role": "registered_manager", "action": MULTILINE, "record": MULTILINE}]
    for key in ("what_can_go_wrong", "warning_signs", "escalation_actions"):
        plan[key] = [MULTILINE]
    path = tmp_path / "payload.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path


def watch(page: Any) -> list[str]:
    """Every URL the page asks for, from now on."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    return requested


def assert_nothing_live(page: Any, requested: list[str], server: str) -> None:
    outside = [u for u in requested
               if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != server]
    assert outside == [], outside
    live = page.evaluate(LIVE)
    assert live == {"scripts": [], "images": []}, live


@pytest.mark.timeout(900)
def test_the_form_and_the_weekly_report_show_the_plan_as_inert_text(
    stack: RecoveryStack, browser: Any, tmp_path: Path  # noqa: F811
) -> None:
    stack.cli_json("action", "open", str(payload_plan(tmp_path)), "--by", "rm@rose.example")
    stack.wait_for_wait(REF, "plan-signoff-1-")
    run_url = stack.server.flow_run_url(stack.flow_run_id(REF))
    server = urlsplit(stack.server.ui_url).netloc

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requested = watch(page)
    try:
        dialog = open_signoff_form(page, run_url, REF, seconds=2.0)
        # Prefect's renderer draws bold as a div of class markdown-renderer__text--strong
        labels = dialog.evaluate("""(d) => [...d.querySelectorAll('li')].flatMap(li => {
            const s = li.querySelector('strong, .markdown-renderer__text--strong');
            return s && li.textContent.trim().startsWith(s.textContent.trim())
                ? [s.textContent.trim()] : [];
        })""")
        assert labels == KEY_FACTS["plan"] + PLAN_FACTS
        rows = dialog.locator("table").first.locator("tbody tr")
        assert [rows.nth(i).locator("td").first.inner_text().strip().lower()
                for i in range(rows.count())] == ["care records", "audits", "feedback",
                                                  "staff practice"]
        assert dialog.locator("h1, h2, h3").all_inner_texts() == [f"Plan sign-off: {REF}",
                                                                  "The plan"]
        assert "![](http://127.0.0.1:9/x.png)" in dialog.inner_text()  # shown as typed
        assert_nothing_live(page, requested, server)

        asked = datetime.now(UTC)
        stack.cli_ok("review", "run", "weekly", "--as-of", date.today().isoformat(),
                     timeout=300)
        # this run's report: the worker's Prefect server also holds earlier modules' ones
        [report] = [a for a in stack.artifacts("governance-report") if a.created >= asked]
        requested.clear()
        page.goto(f"{stack.server.ui_url}/artifacts/artifact/{report.id}",
                  wait_until="domcontentloaded")
        page.get_by_text("High-risk actions").first.wait_for(timeout=60_000)
        settle(page, 2.0)
        # prefect-ui's Markdown component: `.markdown-renderer`, headings as h1-h6
        body = page.locator(".markdown-renderer").filter(has_text="High-risk actions").first
        headings = [h.strip() for h in body.locator("h1, h2, h3, h4, h5, h6").all_inner_texts()]
        assert headings == [
            f"Provider governance summary · {date.today():%-d %B %Y}", "High-risk actions",
            "Governance weaknesses", "Escalations open", "Overdue reviews",
            "The governance pack"], headings
        assert REF in body.inner_text()
        assert "![](http://127.0.0.1:9/x.png)" in body.inner_text()  # the title, as typed
        assert_nothing_live(page, requested, server)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        page.close()
