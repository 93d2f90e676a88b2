"""`recovery serve` with a cap on concurrent flow-run processes: ``python -m
tests.faults.serve_limited LIMIT``.

The same deployments and environment handling as `recovery serve` (recovery.cli.admin.serve),
except that at most LIMIT flow runs execute at once (the product's serve has no limit).
On a two-CPU test machine 50 runs resumed at the same moment would otherwise start 50
Python processes together and starve the Prefect server they all talk to; the others
stay Scheduled until a slot frees, exactly as under a work pool's concurrency limit.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from recovery.adapters import prefect_api
    from recovery.settings import get_settings

    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    prefect_api.api_url()
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY",
                          str(max(1, int(get_settings().signoff_poll_seconds))))
    from prefect import serve

    from deployments.definitions import all_deployments

    serve(*all_deployments(), print_starting_message=True, limit=limit)


if __name__ == "__main__":
    main()
