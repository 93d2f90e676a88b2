"""Housekeeping that keeps the lifecycle honest without anyone remembering to run it."""

from __future__ import annotations

from prefect import flow

from recovery.application.reconcile import DEFAULT_OLDER_THAN
from tasks.audit import reconcile_lost_runs as reconcile_task


@flow(name="reconcile-lost-runs", persist_result=False)
def reconcile_lost_runs(older_than_seconds: float = DEFAULT_OLDER_THAN) -> list[str]:
    """Lifecycle and review-cycle runs left Running or Pending by a process that died
    (no heartbeat for `older_than_seconds`): marked Crashed and scheduled again, so they
    finish from where they stopped (every stage is idempotent against the database)."""
    return reconcile_task(older_than_seconds)
