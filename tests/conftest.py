"""Suite-wide fixtures and hooks.

- ``prefect_server``: ONE real Prefect server per xdist worker, shared by every tier
  that can share one (e2e, browser, cycles, faults, the infrastructure smoke test), and
  ``template_database``, the app database they copy (tests/support/stack_fixtures.py).
  Tiers that need a server of their own (one restarted or killed, API auth on, server-wide
  automations and blocks, the production topology) start it themselves.
- The run is spread over two pytest-xdist workers (``make test``: ``-n 2 --dist loadfile``),
  a whole test file to a worker at a time, each worker with its own shared Prefect server.
  Half the suite's wall time is spent waiting on servers, flow-run processes and the
  browser, so the second worker fills the first one's waits. Files are handed out in the
  order of ``FIRST`` then ``TIER_ORDER`` (the long files first, so none starts last while
  the other worker sits idle).
- At the end of a run, the time spent in each tier (the top-level directory under tests/:
  unit, integration, reports, security, cycles, e2e, faults, ui, browser, production, ...),
  setup and teardown included, so a slow tier is seen at once.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

# pytest-xdist starts its workers with COLUMNS=80. The CLI's rich consoles
# (recovery/cli/common.py) take a COLUMNS they find when they are built as a fixed width, so
# under xdist the in-process CLI would print 80-column tables even where a test's stack sets
# COLUMNS=200; without it they read the width each time they print, as in a plain run.
os.environ.pop("COLUMNS", None)

from tests.support.stack_fixtures import prefect_server, template_database  # noqa: F401

TESTS_DIR = Path(__file__).resolve().parent

#: The files that keep both cores busy (dozens of flow-run processes, CPU burners) and the
#: ones that mostly wait (automations firing, chromium, timed waits), alternated and handed
#: out first: the two workers take the next file as they finish, so a busy file tends to
#: run beside a waiting one rather than beside another busy one.
FIRST = (
    "tests/faults/test_server_restart.py",
    "tests/ui/test_runs_page.py",
    "tests/production/test_two_workers_postgres.py",
    "tests/ui/test_automations.py",
    "tests/faults/test_kill_midway.py",
    "tests/ui/test_doctor.py",
    "tests/e2e/test_busy_server.py",
    "tests/ui/test_smtp_secret.py",
    "tests/e2e/test_lifecycle_journey.py",
    "tests/e2e/test_demo.py",
    "tests/security/test_prefect_stack.py",
    "tests/cycles/test_cycles.py",
)
#: Then the remaining files tier by tier, the tiers of long files first; a tier not named
#: here goes between the Prefect tiers and the fast in-process ones.
TIER_ORDER = ("production", "faults", "ui", "e2e", "browser", "cycles", "(top)",
              "security", "integration", "reports", "unit")


SLOWEST_FILES = 15


def _tier(nodeid: str) -> str:
    """`tests/cycles/test_cycles.py::test_x` → `cycles`; a module at the top → `(top)`."""
    parts = nodeid.split("::", 1)[0].split("/")
    if parts and parts[0] == TESTS_DIR.name:
        parts = parts[1:]
    return parts[0] if len(parts) > 1 else "(top)"


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _rank(nodeid: str) -> tuple[int, int]:
    path = _file(nodeid)
    if path in FIRST:
        return (0, FIRST.index(path))
    tier = _tier(nodeid)
    order = TIER_ORDER.index(tier if tier in TIER_ORDER else "(top)")
    return (1, order)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in the order above; a file's tests stay together and in their order (the
    sort is stable), so module-scoped stacks are built once."""
    items.sort(key=lambda item: _rank(item.nodeid))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    seconds: dict[str, float] = defaultdict(float)
    tests: dict[str, set[str]] = defaultdict(set)
    files: dict[str, float] = defaultdict(float)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue
            tier = _tier(report.nodeid)
            seconds[tier] += report.duration
            files[_file(report.nodeid)] += report.duration
            tests[tier].add(report.nodeid)
    if not seconds:
        return
    terminalreporter.write_sep("-", "time per tier (setup + call + teardown)")
    for tier, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{tier:<14} {len(tests[tier]):>5} tests {spent:>9.1f} s")
    terminalreporter.write_line(f"{'total':<14} {sum(len(t) for t in tests.values()):>5} "
                                f"tests {sum(seconds.values()):>9.1f} s")
    terminalreporter.write_sep("-", f"the {SLOWEST_FILES} slowest files")
    for path, spent in sorted(files.items(), key=lambda item: -item[1])[:SLOWEST_FILES]:
        terminalreporter.write_line(f"{spent:>9.1f} s  {path}")
