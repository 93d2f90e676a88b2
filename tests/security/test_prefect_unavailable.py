"""Commands that need Prefect, when the server answers but nothing is served (no
`recovery serve`, so no deployment exists) or no server answers at all: one line on
stderr saying what is missing and how to start it, exit 4, and what was already recorded
(a draft, a revision) kept. Never a traceback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.prefect_server import PrefectServer, free_port, start_prefect_server
from tests.support.recovery_stack import EXAMPLES, SEED, RecoveryStack, Result

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

ROSE, QUAY, ELM = "ROSE-SG-001", "QUAY-MED-001", "ELM-STF-001"
REVIEWER, LEAD, QUAY_LEAD = "ni@harbourcare.example", "sg.lead@rose.example", \
    "meds.lead@quay.example"
RATIONALE = "Evidence reviewed against the plan; controls in place"


@pytest.fixture(scope="module")
def empty_server() -> Iterator[PrefectServer]:
    """A Prefect server of this module's own: the worker's shared one (tests/conftest.py) has
    the product's deployments, registered by other modules' `recovery serve`."""
    with start_prefect_server() as server:
        yield server


@pytest.fixture(scope="module")
def unserved(empty_server: PrefectServer, template_database: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecoveryStack]:
    """The real Prefect server with none of the product's deployments on it."""
    stack = RecoveryStack(empty_server, tmp_path_factory.mktemp("unserved"),
                          template=template_database).start(serve=False)
    try:
        yield stack
    finally:
        stack.stop()


def one_prefect_line(result: Result, *needles: str) -> str:
    assert result.exit_code == 4, str(result)
    assert "Traceback" not in result.stderr, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error prefect: "), str(result)
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def test_opening_with_nothing_served_keeps_the_draft_and_says_to_start_serve(
    unserved: RecoveryStack,
) -> None:
    opened = unserved.cli("action", "open", SEED[ROSE], "--by", "rm@rose.example")
    one_prefect_line(opened, "deployment high-risk-action/high-risk-action",
                     unserved.server.api_url, "`recovery serve`",
                     f"`recovery action start {ROSE}`")
    assert f"{ROSE} · " in opened.stdout  # the summary of what was recorded
    assert unserved.query("SELECT status, flow_run_id FROM recovery_action WHERE ref = :r",
                          r=ROSE) == [("draft", None)]
    again = unserved.cli("action", "start", ROSE)
    one_prefect_line(again, "deployment high-risk-action/high-risk-action", "`recovery serve`")
    assert unserved.status(ROSE) == "draft"


def test_opening_with_json_puts_the_summary_on_stdout_and_the_error_on_stderr(
    unserved: RecoveryStack,
) -> None:
    opened = unserved.cli("action", "open", SEED[QUAY], "--json")
    assert opened.exit_code == 4 and "Traceback" not in opened.stderr, str(opened)
    assert opened.json()["ref"] == QUAY and opened.json()["status"] == "draft"
    error = opened.error_json()
    assert error["field"] == "prefect"
    assert "high-risk-action/high-risk-action" in error["error"]


def test_the_monthly_cycle_with_nothing_served_names_its_deployment(
    unserved: RecoveryStack,
) -> None:
    one_prefect_line(unserved.cli("review", "run", "monthly"),
                     "deployment monthly-assurance/monthly-assurance", "`recovery serve`")


def test_a_run_the_server_does_not_have_is_named_instead_of_a_traceback(
    unserved: RecoveryStack,
) -> None:
    """The app database names a run this server never had (its database was reset, or
    PREFECT_API_URL points at another server): no command can make that state."""
    unserved.cli("action", "open", SEED[ELM], "--no-flow")
    lost = str(uuid.uuid4())
    unserved.execute("UPDATE recovery_action SET flow_run_id = :id, "
                     "status = 'awaiting_plan_signoff' WHERE ref = :r", id=lost, r=ELM)
    for args in (
        ["signoff", ELM, "--by", REVIEWER, "--code", "123456", "--decision", "approve",
         "--rationale", RATIONALE],
        ["closure", "request", ELM, "--by", "rota@elm.example", "--summary", RATIONALE],
        ["action", "start", ELM],
    ):
        one_prefect_line(unserved.cli(*args), f"lifecycle run {lost} of {ELM}",
                         unserved.server.api_url)


def test_with_no_server_every_prefect_command_says_so_in_one_line(
    unserved: RecoveryStack,
) -> None:
    def drafts() -> int:
        return int(unserved.query("SELECT COUNT(*) FROM recovery_action WHERE "
                                  "status = 'draft' AND flow_run_id IS NULL")[0][0])

    dead = f"http://127.0.0.1:{free_port()}/api"
    unserved.env.update(PREFECT_API_URL=dead, RECOVERY_PREFECT_API_URL=dead)
    try:
        # a rejected plan whose revision is recorded while the server is down
        unserved.execute("UPDATE recovery_action SET status = 'plan_rejected' "
                         "WHERE ref = :r", r=QUAY)
        revised = unserved.cli("action", "revise", QUAY, SEED[QUAY], "--by", QUAY_LEAD)
        one_prefect_line(revised, f"no Prefect server answers at {dead}", "`make run`",
                         f"the revision of {QUAY} is recorded",
                         f"`recovery action start {QUAY}`")
        assert unserved.status(QUAY) == "awaiting_plan_signoff"
        drafts_before = drafts()
        for args in (
            ["action", "open", SEED[ROSE]],  # a second draft of the same plan
            ["import", "tracker", EXAMPLES / "tracker.csv"],
            ["action", "start", ROSE],
            ["signoff", ROSE, "--by", REVIEWER, "--code", "123456", "--decision", "approve",
             "--rationale", RATIONALE],
            ["closure", "request", ROSE, "--by", LEAD, "--summary", RATIONALE],
            ["review", "run", "weekly"],
            ["review", "run", "monthly"],
        ):
            one_prefect_line(unserved.cli(*args), f"no Prefect server answers at {dead}",
                             "`make run`")
        # the second draft of ROSE's plan and the tracker's actions were kept as drafts
        assert drafts() >= drafts_before + 2
        # what reads only the app database still answers
        assert unserved.cli("approvals").exit_code == 0
        daily = unserved.cli("review", "run", "daily", "--json")
        assert daily.exit_code == 0 and "ran without Prefect" in daily.json()["note"]
    finally:
        unserved.env.update(PREFECT_API_URL=unserved.server.api_url,
                            RECOVERY_PREFECT_API_URL=unserved.server.api_url)
