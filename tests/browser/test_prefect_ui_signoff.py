"""A reviewer signs a plan off in the real Prefect UI.

Debian's chromium (never a downloaded browser), driven by Playwright: open the waiting
run's page, press Resume, fill the form with the code read from the SMTP sink, submit,
and find the action in recovery through `recovery action show --json`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.prefect_server import wait_until
from tests.support.recovery_stack import SEED, RecoveryStack, text_of

pytestmark = [pytest.mark.browser, pytest.mark.prefect, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
REF = "ROSE-SG-001"
REVIEWER = "ni@harbourcare.example"
RATIONALE = "Interim controls cover every shift; the steps are clear and owned"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing under CI=true: .ci/run installs Debian's "
                        "chromium; the browser tests never download one", pytrace=False)
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium "
                    "(apt-get install chromium); the browser tests never download one",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def settle(page: Any, seconds: float = 1.5) -> None:
    """The Prefect UI keeps polling, so `networkidle` never comes: wait for the document,
    then give the single-page app a moment to render."""
    page.wait_for_load_state("domcontentloaded")
    page.wait_for_timeout(seconds * 1000)


def open_signoff_form(page: Any, run_url: str, ref: str, seconds: float = 1.0) -> Any:
    """Open the run's page, press Resume as the reviewer would, and wait for the plan
    sign-off form; returns the dialog."""
    page.goto(run_url, wait_until="domcontentloaded")
    resume = page.get_by_role("button", name="Resume")
    resume.wait_for(state="visible", timeout=60_000)
    settle(page)
    resume.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Plan sign-off: {ref}").wait_for(timeout=30_000)
    settle(page, seconds)
    return dialog


def form_field(dialog: Any, label: str) -> Any:
    """The input area of the schema form property labelled `label`."""
    title = dialog.page.locator(".schema-form-property__label",
                                has_text=re.compile(f"^{label}$"))
    return dialog.locator(".p-label.schema-form-property").filter(has=title)


#: Where the form's screenshot is kept for people to see (refreshed by each run).
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "signoff-form.png"
LEAD = "sg.lead@rose.example"
MANAGER = "rm@rose.example"


def fill_and_submit(page: Any, dialog: Any, code: str, still_waits: Callable[[], bool], *,
                    screenshot: Path | None = None) -> None:
    """Fill the form as the reviewer would, submit, and wait for the UI to accept it (the
    dialog closes once the server took the resume). A refused resume shows a toast; its
    words are in the failure."""
    form_field(dialog, "Your email").locator("textarea").fill(REVIEWER)
    form_field(dialog, "One-time sign-off code").locator("textarea").fill(code)
    decision = form_field(dialog, "Decision").locator("button.p-select-button__control")
    decision.focus()
    decision.press("ArrowDown")  # opens the options (a plain click only focuses it)
    page.get_by_role("option", name="approve", exact=True).click()
    assert decision.inner_text().strip() == "approve"
    form_field(dialog, "Rationale").locator("textarea").fill(RATIONALE)
    settle(page, 0.5)
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
        assert screenshot.stat().st_size > 0
    submit_until_taken(page, dialog, still_waits)


def submit_until_taken(page: Any, dialog: Any, still_waits: Callable[[], bool]) -> int:
    """Press Submit until the UI says the server took it (the dialog closes), as the README
    tells a reviewer: Prefect's "Failed to resume" (or "Oops") toast means the server was too
    busy and nothing was recorded (checked: the run still waits), so submit again. Returns
    how many submits it took."""
    # Prefect says "Failed to resume flow run", or "Oops. Something went wrong." (a 503)
    failed = page.locator(".p-toast", has_text=re.compile("fail|went wrong", re.IGNORECASE))
    for attempt in range(1, 6):
        seen = failed.count()
        dialog.get_by_role("button", name="Submit").click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not dialog.is_visible():
                return attempt
            if failed.count() > seen:
                assert still_waits(), "a failed resume must leave the run waiting"
                break
            page.wait_for_timeout(200)
        else:
            raise AssertionError("the dialog neither closed nor said it failed in 60 s")
    raise AssertionError("five submits, each refused as busy")


def description(dialog: Any) -> str:
    """What the form says, from its first line (below the dialog's own title)."""
    text = str(dialog.inner_text()).strip()
    return text.removeprefix("Resume Flow Run").strip()


def widths(dialog: Any) -> dict[str, Any]:
    """The dialog's width and its widest table's, in CSS pixels, as the browser laid out."""
    return dict(dialog.evaluate("""(d) => {
        const tables = [...d.querySelectorAll('table')].map(t => t.scrollWidth);
        const panes = [...d.querySelectorAll('*')].filter(
            e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible');
        return {dialog: d.getBoundingClientRect().width, tables: tables,
                widest: Math.max(0, ...tables),
                scrolled: panes.map(e => e.className + ' ' + e.scrollWidth + '>' + e.clientWidth)};
    }"""))


@pytest.mark.timeout(600)
def test_reviewer_signs_off_in_the_prefect_ui(
    stack: RecoveryStack, browser: Any, tmp_path: Path
) -> None:
    stack.cli_json("action", "open", SEED[REF], "--by", MANAGER)
    stack.wait_for_wait(REF, "plan-signoff-1-")
    code = stack.signoff_code(REF, "plan")
    run_url = stack.server.flow_run_url(stack.flow_run_id(REF))
    [mail] = stack.signoff_mails(REF, "plan")
    assert run_url in text_of(mail)  # the email links straight to the run
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # the form reads well: key facts first, and no table wider than the dialog
        dialog = open_signoff_form(page, run_url, REF)
        first = description(dialog)
        assert first.startswith(f"Plan sign-off: {REF}\nYou are asked"), first[:200]
        assert "Your code expires:" in first.split("Action:")[0]  # before the plan itself
        laid_out = widths(dialog)
        assert laid_out["tables"] and laid_out["widest"] <= laid_out["dialog"], laid_out
        assert laid_out["scrolled"] == [], laid_out
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)

        # a wrong code: within 15 s the run waits again, the refusal first on its form
        def still_waits(key: str = "plan-signoff-1-1") -> Callable[[], bool]:
            return lambda: stack.flow_run(REF).state.state_details.pause_key == key

        fill_and_submit(page, dialog, wrong, still_waits(), screenshot=SCREENSHOT)
        submitted = time.monotonic()
        stack.wait_for_wait(REF, "plan-signoff-1-2", timeout=60)
        again = time.monotonic() - submitted
        assert again <= 15, f"the run waited again {again:.1f} s after the refused submit"
        dialog = open_signoff_form(page, run_url, REF)
        first = description(dialog)
        assert first.startswith("Your last submission was not accepted: nothing was "
                                "decided."), first[:300]
        assert "the sign-off code is wrong" in first.split(f"Plan sign-off: {REF}")[0]
        page.screenshot(path=str(SCREENSHOT.with_name("signoff-form-refused.png")))
        [refusal] = stack.wait_for_mails(1, to=REVIEWER, subject="was not accepted")
        body = text_of(refusal)
        assert "the sign-off code is wrong" in body and "4 more wrong codes" in body, body
        assert code not in body and wrong not in body  # never a code

        # the right code: applied, and the people concerned are told
        fill_and_submit(page, dialog, code, still_waits("plan-signoff-1-2"))
    except Exception as exc:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        shown = page.get_by_role("dialog").all_inner_texts()
        toasts = page.locator(".p-toast").all_inner_texts()
        raise AssertionError(f"{exc}\nthe dialog shows: {shown}\ntoasts: {toasts}\n"
                             f"screenshot: {tmp_path / 'failure.png'}") from exc
    finally:
        page.close()

    # the run takes the input, restarts, validates it in the domain and applies it once
    stack.wait_for_wait(REF, "closure-request-1-", timeout=120)
    wait_until(lambda: stack.status(REF) == "in_recovery", timeout=30,
               message=f"{REF} in recovery")
    shown = stack.action(REF)
    assert shown["status"] == "in_recovery"
    decisions = stack.query("SELECT d.reviewer_email, d.decision, d.rationale FROM decision d "
                            "JOIN recovery_action a ON a.id = d.action_id WHERE a.ref = :r",
                            r=REF)
    assert decisions == [(REVIEWER, "approve", RATIONALE)]
    assert stack.audit_events(REF).count("status.approve_plan") == 1
    subject = f"{REF}: plan approved by"
    for person in (REVIEWER, LEAD, MANAGER):  # the reviewer, the lead, the RM (high risk)
        [confirmation] = stack.wait_for_mails(1, to=person, subject=subject)
    body = text_of(confirmation)
    assert "What happens next: The action is in recovery" in body, body
    assert code not in body
