"""The Prefect server restarted (same PREFECT_HOME, same database, same port) while 50
actions wait on plan sign-off: afterwards every one resumes correctly.

The 50 actions are opened from a generated people file and 50 plan files through the
services and `recovery.adapters.prefect_api.start_lifecycle` in this process (50 CLI processes would
each import Prefect); their lifecycle runs are executed by the deployments of `recovery
serve` (at most SERVE_LIMIT at once: tests/faults/serve_limited.py), which keeps running
through the outage. Sign-off: 47 reviewers answer through Prefect's own `resume_flow_run`
with the code from their email, 3 through `recovery signoff`.

100 flow-run processes in all (each run starts once, and once more after its resume),
about 4.5 s of CPU each here: the slowest test of the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from devstack.mailsink import MailSink
from tests.faults.conftest import SERVER_ENV, SITES
from tests.faults.helpers import (
    RATIONALE,
    App,
    new_sqlite_app,
    open_actions,
    prefect_client,
    read_runs,
    reviewer_of,
    signoff_codes,
    wait_all_paused,
    write_plans,
)
from tests.support.prefect_server import PrefectServer, free_port, start_prefect_server

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

ACTIONS = 50
BY_CLI = 3
#: flow runs executed at once by the serve process (see tests/faults/serve_limited.py)
SERVE_LIMIT = 6
#: 50 flow-run processes per phase: about 2 minutes on an idle two-CPU machine, far more
#: when it is shared
PHASE_TIMEOUT = 1800


class Restartable:
    """A Prefect server on a fixed home and port that can be stopped and started again."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.server = self._start()

    def _start(self) -> PrefectServer:
        return start_prefect_server(home=self.home, port=self.port, extra_env=SERVER_ENV)

    def restart(self) -> PrefectServer:
        self.server.stop(remove_home=False)
        assert not self.server.healthy()
        self.server = self._start()
        return self.server

    def stop(self) -> None:
        self.server.stop(remove_home=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, app_template: Path
          ) -> Iterator[tuple[Restartable, App]]:
    base = tmp_path_factory.mktemp("server-restart")
    prefect = Restartable(base / "prefect-home")
    app = new_sqlite_app(base / "app", app_template, server=prefect.server,
                         sink=MailSink(base / "app" / "mail", port=None))
    assert app.sink is not None
    app.sink.start()
    try:
        app.start_serve(limit=SERVE_LIMIT)
        yield prefect, app
    finally:
        app.stop()
        prefect.stop()


def _signoff_input(ref: str, code: str) -> dict[str, Any]:
    site = int(ref[1:3])
    return {"reviewer_email": reviewer_of(site), "code": code, "decision": "approve",
            "rationale": RATIONALE}


@pytest.mark.timeout(3600)
def test_fifty_waits_survive_a_server_restart(
    stack: tuple[Restartable, App], tmp_path: Path
) -> None:
    from prefect.flow_runs import resume_flow_run

    from recovery.adapters import audit_log, db, prefect_api

    prefect, app = stack
    # the provider is the generated people file of tests/faults/conftest.py (the template
    # database); the 50 plans are written out and parsed as `recovery action open` does
    plans = write_plans(tmp_path / "plans", ACTIONS, SITES)

    with app.inprocess():
        refs = open_actions(plans)
        runs = {ref: prefect_api.start_lifecycle(ref) for ref in refs}
        # asking again is idempotent: the same run, not a second one
        assert prefect_api.start_lifecycle(refs[0]) == runs[refs[0]]
    assert len(set(runs.values())) == ACTIONS

    with prefect.server.settings(), prefect_client(prefect.server) as client:
        before = wait_all_paused(client, list(runs.values()), "plan-signoff-1-",
                                 timeout=PHASE_TIMEOUT, app=app)
    assert set(app.status_of(refs).values()) == {"awaiting_plan_signoff"}
    codes = signoff_codes(app)
    assert sorted(codes) == sorted(refs) and all(len(c) == 1 for c in codes.values()), codes

    # ---- the restart: nothing runs meanwhile; `recovery serve` sees the API go away
    server = prefect.restart()
    app.server = server
    assert app.serve is not None and app.serve.is_running(), app.diagnostics()

    with server.settings(), prefect_client(server) as client:
        after = wait_all_paused(client, list(runs.values()), "plan-signoff-1-", timeout=60,
                                app=app)
        for run_id, run in before.items():
            assert after[run_id].state.state_details.pause_key == \
                run.state.state_details.pause_key

        # 47 answers through Prefect's own resume, 3 through `recovery signoff`
        by_cli, by_api = refs[:BY_CLI], refs[BY_CLI:]
        procs = app.cli_parallel(*[
            ["signoff", ref, "--by", reviewer_of(int(ref[1:3])), "--code", codes[ref][0],
             "--decision", "approve", "--rationale", RATIONALE, "--json"] for ref in by_cli],
            env={"PREFECT_API_URL": server.api_url})
        for ref in by_api:
            resume_flow_run(UUID(runs[ref]), run_input=_signoff_input(ref, codes[ref][0]))
        for result in procs:
            assert result.exit_code == 0, f"{result}\n{app.diagnostics()}"
            assert result.json()["applied"] is True, str(result)

        wait_all_paused(client, list(runs.values()), "closure-request-1-",
                        timeout=PHASE_TIMEOUT, app=app)
        states = {str(r.id): r.state for r in read_runs(client, list(runs.values()))}
        deployment = client.read_deployment_by_name(prefect_api.LIFECYCLE_DEPLOYMENT)
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        lifecycle_runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            limit=200)
    assert len(lifecycle_runs) == ACTIONS  # no run was started twice
    assert all(s.is_paused() for s in states.values())

    # ---- every action resumed correctly, exactly once
    assert app.status_of(refs) == dict.fromkeys(refs, "in_recovery")
    decisions = app.query(
        "SELECT a.ref, d.kind, d.attempt, d.decision, d.reviewer_email FROM decision d "
        "JOIN recovery_action a ON a.id = d.action_id")
    assert sorted(r[0] for r in decisions) == sorted(refs)
    assert {(r[1], r[2], r[3]) for r in decisions} == {("plan", 1, "approve")}
    assert all(r[4] == reviewer_of(int(r[0][1:3])) for r in decisions)
    assert app.audit_events("status.approve_plan") == dict.fromkeys(refs, 1)
    assert app.audit_events("signoff.requested") == dict.fromkeys(refs, 1)
    assert app.audit_events("signoff.refused") == {}
    waits = app.per_action(
        "SELECT a.ref, COUNT(*) FROM lifecycle_wait w JOIN recovery_action a "
        "ON a.id = w.action_id WHERE w.base = 'plan-signoff-1' GROUP BY a.ref")
    assert waits == dict.fromkeys(refs, 1)
    # one sign-off email per action, none sent again after the restart
    assert sorted(signoff_codes(app)) == sorted(refs)
    assert len(app.mails("your plan sign-off is needed")) == ACTIONS
    dedupe = [k for k in app.mail_keys() if k.startswith("signoff:")]
    assert len(dedupe) == len(set(dedupe)) == ACTIONS

    with app.inprocess():
        with db.unit_of_work() as session:
            verified = audit_log.verify(session)
        db.get_engine().dispose()
    assert verified.ok, verified
