"""Serve every deployment from one process: `recovery serve`.

On one machine this is the whole engine. Beyond one machine the same flows are deployed
with deployments/prefect.yaml to a process work pool and run by `prefect worker start`.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import serve

from deployments.definitions import all_deployments

#: Put first on the PYTHONPATH of the flow-run processes this process starts: their
#: start-up (see its sitecustomize.py)
STARTUP = Path(__file__).resolve().parent / "startup"


def flow_run_pythonpath(current: str | None) -> str:
    """PYTHONPATH for the flow-run processes: the start-up folder, then what was there."""
    parts = [p for p in (current or "").split(os.pathsep) if p and p != str(STARTUP)]
    return os.pathsep.join([str(STARTUP), *parts])


def main(poll_seconds: float | None = None) -> None:
    """Serve until stopped. `poll_seconds`: the runner's poll interval (its
    ``query_seconds``); None takes PREFECT_RUNNER_POLL_FREQUENCY (Prefect's default 10 s)."""
    # the runner starts each flow run with this process's environment
    os.environ["PYTHONPATH"] = flow_run_pythonpath(os.environ.get("PYTHONPATH"))
    serve(*all_deployments(), print_starting_message=True, limit=None,
          query_seconds=poll_seconds)


if __name__ == "__main__":
    main()
