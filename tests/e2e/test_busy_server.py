"""A busy machine never loses or garbles a sign-off.

Ten plan sign-offs are submitted through the CLI at the same moment, on ten actions, while
CPU-bound processes keep every core busy. Each call ends in one of three plain ways:
applied (exit 0), refused with a reason (exit 3: the wrong codes), or "nothing was
recorded; try again" (exit 1) when the Prefect server stayed too busy through every retry.
Never a traceback, and never a half-applied decision: every submission the CLI called
applied has exactly one decision, every refused one none, and a "try again" is true (the
run still waits and a second try applies it).
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.prefect_server import wait_until
from tests.support.recovery_stack import EXAMPLES, RecoveryStack

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

PLAN = EXAMPLES / "medicines-quay-house.yaml"
REVIEWER = "rm@quay.example"
ACTIONS = 10
WRONG = {2, 5, 8}  # these submissions carry a wrong code
#: What the server logs for each "busy" (503) answer (PREFECT_API_LOG_RETRYABLE_ERRORS).
BUSY_LOG = "Encountered retryable exception in request"


def _spin() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


@pytest.fixture
def busy_machine() -> Iterator[Callable[[], int]]:
    """Calling it starts one CPU-bound process per core, busy until the test ends (the
    ten actions are opened and brought to their sign-off wait before, at normal speed)."""
    burners = [multiprocessing.Process(target=_spin, daemon=True)
               for _ in range(os.cpu_count() or 1)]

    def start() -> int:
        for burner in burners:
            burner.start()
        return len(burners)

    try:
        yield start
    finally:
        for burner in burners:
            if burner.pid is not None:
                burner.kill()
                burner.join(5)


def _plans(tmp_path: Path) -> list[Path]:
    text = PLAN.read_text()
    title = re.search(r"^title: (.+)$", text, re.M)
    assert title is not None
    plans = []
    for n in range(ACTIONS):
        path = tmp_path / f"plan-{n}.yaml"
        path.write_text(text.replace(title.group(0), f"title: {title.group(1)} (unit {n})"))
        plans.append(path)
    return plans


@pytest.mark.timeout(900)
def test_ten_signoffs_at_once_on_a_busy_machine(
    stack: RecoveryStack, tmp_path: Path, busy_machine: Callable[[], int]
) -> None:
    refs = [stack.cli_json("action", "open", plan, "--by", REVIEWER)["ref"]
            for plan in _plans(tmp_path)]
    codes = {}
    for ref in refs:
        stack.wait_for_wait(ref, "plan-signoff-1-", timeout=240)
        codes[ref] = stack.signoff_code(ref, "plan")

    def submission(n: int, ref: str) -> list[str]:
        code = codes[ref] if n not in WRONG else f"{(int(codes[ref]) + 1) % 1_000_000:06d}"
        return ["signoff", ref, "--by", REVIEWER, "--code", code, "--decision", "approve",
                "--rationale", f"Unit {n}: the controls cover every shift", "--json"]

    burning = busy_machine()
    busy_before = stack.server.log().count(BUSY_LOG)
    results = stack.cli_parallel(*[submission(n, ref) for n, ref in enumerate(refs)],
                                 timeout=600)

    def decisions(ref: str) -> int:
        return int(stack.query("SELECT count(*) FROM decision d JOIN recovery_action a "
                               "ON a.id = d.action_id WHERE a.ref = :r", r=ref)[0][0])

    retried = []
    for n, (ref, result) in enumerate(zip(refs, results, strict=True)):
        assert "Traceback" not in result.stderr + result.stdout, str(result)
        if result.exit_code == 0:
            # applied, or taken by the run and not yet processed (a slow machine)
            assert result.json()["applied"] is (None if n in WRONG else True) or (
                result.json()["applied"] is None), str(result)
        elif result.exit_code == 3:
            error = result.error_json()
            assert n in WRONG and any("code" in r for r in error["reasons"]), str(result)
            assert decisions(ref) == 0
        else:
            assert result.exit_code == 1, str(result)
            error = result.error_json()
            assert error["field"] == "prefect", str(result)
            assert "nothing was recorded" in error["error"], str(result)
            assert "try again" in error["error"], str(result)
            assert decisions(ref) == 0
            assert stack.flow_run(ref).state.is_paused()
            retried.append((n, ref))
    # a "try again" is true: the run still waits, and trying again is answered
    for n, ref in retried:
        again = stack.cli(*submission(n, ref))
        assert again.exit_code in (0, 3), str(again)
    # every right code is applied exactly once, every wrong one refused and nothing changed
    for n, ref in enumerate(refs):
        if n in WRONG:
            wait_until(lambda ref=ref: stack.count("lifecycle_wait", ref, "outcome = 'refused'"),
                       timeout=240, message=f"{ref}: the wrong code refused")
            assert decisions(ref) == 0 and stack.status(ref) == "awaiting_plan_signoff"
        else:
            stack.wait_for_wait(ref, "closure-request-1-", timeout=240)
            assert decisions(ref) == 1 and stack.status(ref) == "in_recovery"
    print(f"\n{len(results)} submissions beside {burning} CPU-bound processes: "
          f"{sum(r.exit_code == 0 for r in results)} applied, "
          f"{sum(r.exit_code == 3 for r in results)} refused, {len(retried)} to try again; "
          f"slowest {max(r.seconds for r in results):.1f}s; the server answered busy "
          f"{stack.server.log().count(BUSY_LOG) - busy_before} times")
