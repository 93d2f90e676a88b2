"""Run a review cycle from the CLI: as a Prefect flow run when the server is reachable
(visible in the UI, events emitted), else directly with the same code."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any

from recovery.adapters import db


def run_cycle(cycle: str, as_of: date) -> dict[str, Any]:
    from recovery.adapters import prefect_api

    try:
        prefect_api.check_server()
    except ConnectionError as exc:
        return _without_prefect(cycle, as_of, str(exc))
    from flows import cycles as flows

    if cycle == "daily":
        return dict(flows.daily_review(as_of=as_of))
    if cycle == "weekly":
        return dict(flows.weekly_governance(as_of=as_of))
    return dict(flows.monthly_assurance_start(as_of))


def _without_prefect(cycle: str, as_of: date, why: str) -> dict[str, Any]:
    from recovery.adapters import mail
    from recovery.application import reviews as cycles

    if cycle != "daily":
        from recovery.adapters.orchestration import PrefectUnavailable

        raise PrefectUnavailable(f"the {cycle} cycle publishes Prefect artifacts and needs "
                                 f"the Prefect server: {why}")
    with db.unit_of_work() as session:
        result = cycles.run_daily(session, as_of=as_of)
    with contextlib.suppress(Exception):  # unsent email stays queued
        mail.flush()
    data = result.model_dump(mode="json")
    data["note"] = f"ran without Prefect ({why}); escalation events are emitted by the next " \
                   "daily-review flow run"
    return data
