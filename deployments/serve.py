"""Serve every deployment from one process: `recovery serve`.

On one machine this is the whole engine. Beyond one machine the same flows are deployed
with deployments/prefect.yaml to a process work pool and run by `prefect worker start`.
"""

from __future__ import annotations

from prefect import serve

from deployments.definitions import all_deployments


def main() -> None:
    serve(*all_deployments(), print_starting_message=True, limit=None)


if __name__ == "__main__":
    main()
