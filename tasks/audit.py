"""Anchoring the audit chain outside the application database (see recovery/anchors.py)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from recovery import db


@task(name="anchor-audit-chain", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def anchor_audit_chain() -> dict[str, object] | None:
    """Copy the chain's head to the anchor file and to this run's `audit-anchor` artifact,
    so entries deleted from the tail, or a rewritten chain, show in `recovery audit
    verify`."""
    from recovery import anchors

    with db.unit_of_work() as session:
        head = anchors.head(session)
    if head is None:
        return None
    anchors.record(head)
    anchors.publish_artifact(head)
    get_run_logger().info("audit chain anchored at entry %s (%s…)", head.seq, head.hash[:12])
    return {"seq": head.seq, "hash": head.hash}
