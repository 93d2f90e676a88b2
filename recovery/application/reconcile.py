"""Runs whose process died: find them and run them again (`recovery reconcile`).

Prefect leaves a flow run "Running" (or "Pending") for ever when the process executing it
is SIGKILLed: a machine lost, the OOM killer, `kill -9` on `recovery serve` or on a worker.
Nothing is left to report the crash. Every flow run emits a heartbeat event
(`prefect.flow-run.heartbeat`) every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (180 by
default, 30 at least), so a run in Running or Pending whose latest sign of life (its last
heartbeat, or the moment it entered that state) is older than the threshold has lost its
process. Keep the threshold well above the heartbeat frequency (the default, 600 s, is more
than three missed heartbeats at the default 180 s).

`reconcile` marks such a run Crashed (the reason stays in its state history) and, when it
belongs to a deployment, Scheduled again, so that `recovery serve` or a worker runs it
from the top. That is safe because every task of the lifecycle and of the review cycles
is idempotent against the database: the re-run finds the work done (reviews are unique
per action and date, decisions per request, audit entries and emails carry dedupe keys)
and carries on from where the lost process stopped. A run without a deployment (a cycle
started in-process by `recovery review run`) is only marked Crashed: running the same
command again completes it, and a second run for the same date repeats nothing.

Only the product's lifecycle and review-cycle flows are touched; a suspended run (waiting
for a person) is Paused, not Running, and is never touched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

#: The flows whose runs are safe to run again from the top.
FLOWS = ("high-risk-action", "daily-review", "weekly-governance", "monthly-assurance")
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
DEFAULT_OLDER_THAN = 600.0


def _stuck_runs(client: Any, cutoff: datetime) -> list[Any]:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    runs: list[Any] = []
    offset = 0
    while True:
        page = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS))),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))),
            limit=200, offset=offset,
        )
        runs.extend(page)
        if len(page) < 200:
            break
        offset += 200
    return [r for r in runs if r.state is not None and r.state.timestamp < cutoff]


def _alive(client: Any, run_ids: list[str], since: datetime, until: datetime) -> set[str]:
    """Runs that sent a heartbeat since `since`."""
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    seen: set[str] = set()
    for start in range(0, len(run_ids), 50):
        ids = [f"prefect.flow-run.{r}" for r in run_ids[start:start + 50]]
        page = client.read_events(
            filter=EventFilter(
                occurred=EventOccurredFilter(since=since, until=until),
                event=EventNameFilter(name=[HEARTBEAT_EVENT]),
                resource=EventResourceFilter(id=ids),
            ),
            limit=50,  # the most the API returns per page
        )
        while True:
            seen.update(e.resource.id.removeprefix("prefect.flow-run.") for e in page.events)
            if not page.next_page or seen.issuperset(r[len("prefect.flow-run."):] for r in ids):
                break
            page = client.read_events_page(page.next_page)
    return seen


def reconcile(older_than_seconds: float = DEFAULT_OLDER_THAN) -> list[str]:
    """Find lifecycle and cycle runs in Running/Pending with no sign of life for
    `older_than_seconds`; mark each Crashed and, when it has a deployment, schedule it to
    run again now. Returns the ids of the runs changed (rescheduled or only crashed)."""
    from prefect import get_client
    from prefect.states import Crashed, Scheduled

    from recovery.adapters.prefect_api import check_server

    check_server()
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=older_than_seconds)
    changed: list[str] = []
    with get_client(sync_client=True) as client:
        candidates = _stuck_runs(client, cutoff)
        if not candidates:
            return []
        alive = _alive(client, [str(r.id) for r in candidates], cutoff, now)
        for run in candidates:
            if str(run.id) in alive:
                continue
            state = run.state
            last = state.timestamp.astimezone(UTC).isoformat(timespec="seconds")
            client.set_flow_run_state(
                run.id, force=True,
                state=Crashed(message=(
                    f"The process running this flow run was lost: {state.name} since {last} "
                    f"with no heartbeat for {older_than_seconds:g} s (found by recovery "
                    f"reconcile)")),
            )
            if run.deployment_id is not None:
                client.set_flow_run_state(
                    run.id, force=True,
                    state=Scheduled(scheduled_time=datetime.now(UTC), name="Rescheduled"),
                )
            changed.append(str(run.id))
    return changed
