"""Talking to the Prefect server from the CLI: start lifecycle runs, resume waits.

Kept apart from services so the domain commands work with no Prefect server at all.
"""

from __future__ import annotations

LIFECYCLE_DEPLOYMENT = "high-risk-action/high-risk-action"


class PrefectUnavailable(ConnectionError):
    """What a command needs from Prefect is not there: no server answers, a deployment is
    not served, or a run is not on this server. The message says what and how to start it;
    the CLI prints it as one line (exit 4), keeping whatever was already recorded."""


class PrefectBusy(ConnectionError):
    """The Prefect server answered "busy" (503, e.g. its SQLite database was locked) to
    every retry of Prefect's client (`PREFECT_CLIENT_MAX_RETRIES`, backing off 2, 4, 8,
    ... seconds) and nothing was recorded: the run still waits and the person tries again.
    The CLI prints the message as one line (exit 1)."""


def start_or_explain(ref: str) -> str | None:
    """Start the lifecycle run for `ref`; None when started, else one line saying what is
    missing and how to start it (the action stays a draft that `recovery action start REF`
    starts later)."""
    try:
        from recovery.adapters.prefect_api import start_lifecycle
    except ImportError:
        return "the lifecycle flow is not available in this build; the action stays a draft"
    try:
        start_lifecycle(ref)
    except PrefectUnavailable as exc:
        return f"{exc}; {ref} stays a draft: then run `recovery action start {ref}`"
    return None


def nudge(ref: str) -> str | None:
    """A revision arrived: wake the run that waits on it. None when woken (or nothing
    waits), else one line saying what is missing and how to wake it later."""
    try:
        from recovery.adapters.prefect_api import nudge_lifecycle
    except ImportError:
        return None
    try:
        nudge_lifecycle(ref)
    except PrefectUnavailable as exc:
        return (f"{exc}; the revision of {ref} is recorded but its run was not woken: then "
                f"run `recovery action start {ref}`")
    return None
