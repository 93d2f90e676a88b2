"""Tiny flows for infrastructure tests: a gate that suspends for typed input.

Serve them in a child process with ``python -m tests.support.demo_flows`` (the environment
comes from ``PrefectServer.subprocess_env()``). Deployment: ``demo-gate/demo-gate``.
"""

from __future__ import annotations

from typing import cast

from prefect import State, flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.states import Completed
from pydantic import Field

DEPLOYMENT_NAME = "demo-gate/demo-gate"


class DemoInput(RunInput):
    value: str = Field(min_length=3)


@flow(name="demo-gate")
def demo_gate(label: str = "demo") -> State[str]:
    """Ask for ``DemoInput`` under ``key=f"{label}-1"``; a value of ``"again"`` is refused and
    asked for once more under ``f"{label}-2"``. Completes with message ``value=<value>``."""
    attempt = 1
    while True:
        received = suspend_flow_run(
            wait_for_input=DemoInput.with_initial_data(
                description=f"## Demo gate `{label}`\n\nAttempt **{attempt}**"
            ),
            key=f"{label}-{attempt}",
            timeout=None,
        )
        if received.value != "again":
            break
        attempt += 1
    return Completed(message=f"value={received.value} attempts={attempt}", data=received.value)


def main() -> None:
    # to_deployment is sync/async-dispatched; its declared type is a union with a coroutine.
    serve(cast(RunnerDeployment, demo_gate.to_deployment(name="demo-gate")))


if __name__ == "__main__":
    main()
