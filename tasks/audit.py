"""Housekeeping tasks: anchoring the audit chain outside the application database (see
recovery/adapters/anchors.py) and re-running runs whose process was lost
(recovery/application/reconcile.py)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from recovery.adapters import db


@task(name="anchor-audit-chain", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def anchor_audit_chain() -> dict[str, object] | None:
    """Copy the chain's head to the anchor file and to this run's `audit-anchor` artifact,
    so entries deleted from the tail, or a rewritten chain, show in `recovery audit
    verify`."""
    from recovery.adapters import anchors

    with db.unit_of_work() as session:
        head = anchors.publish(session)
    if head is None:
        return None
    get_run_logger().info("audit chain anchored at entry %s (%s…)", head.seq, head.hash[:12])
    return {"seq": head.seq, "hash": head.hash}


@task(name="reconcile-lost-runs", cache_policy=NO_CACHE)
def reconcile_lost_runs(older_than_seconds: float) -> list[str]:
    """Mark lifecycle and cycle runs with no sign of life Crashed and schedule them again."""
    from recovery.application.reconcile import reconcile

    changed = reconcile(older_than_seconds)
    get_run_logger().info(
        "%s lost run(s) found and run again%s", len(changed),
        f": {', '.join(changed)}" if changed else "")
    return changed
