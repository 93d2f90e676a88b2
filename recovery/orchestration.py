"""Talking to the Prefect server from the CLI: start lifecycle runs, resume waits.

Kept apart from services so the domain commands work with no Prefect server at all.
"""

from __future__ import annotations

LIFECYCLE_DEPLOYMENT = "high-risk-action/high-risk-action"


def start_or_explain(ref: str) -> str | None:
    """Start the lifecycle run for `ref`; None when started, else why not (the action stays
    a draft that `recovery action start REF` starts later)."""
    try:
        from recovery.prefect_api import start_lifecycle
    except ImportError:
        return "the lifecycle flow is not available in this build; the action stays a draft"
    try:
        start_lifecycle(ref)
    except ConnectionError as exc:
        return f"no Prefect server reachable ({exc}); {ref} stays a draft: run " \
               f"`recovery action start {ref}` once the server is up"
    return None


def nudge(ref: str) -> None:
    """Evidence or a revision arrived: wake a run that waits on it (best effort)."""
    try:
        from recovery.prefect_api import nudge_lifecycle
    except ImportError:
        return
    nudge_lifecycle(ref)
