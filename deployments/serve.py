"""Serve every deployment from one process: `recovery serve`.

On one machine this is the whole engine. Beyond one machine the same flows are deployed
with deployments/prefect.yaml to a process work pool and run by `prefect worker start`.
"""

from __future__ import annotations

from prefect import serve

from deployments.definitions import all_deployments


def main(poll_seconds: float | None = None) -> None:
    """Serve until stopped. `poll_seconds`: the runner's poll interval (its
    ``query_seconds``); None takes PREFECT_RUNNER_POLL_FREQUENCY (Prefect's default 10 s)."""
    serve(*all_deployments(), print_starting_message=True, limit=None,
          query_seconds=poll_seconds)


if __name__ == "__main__":
    main()
