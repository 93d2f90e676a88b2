"""The production topology on one machine: a Prefect server on PostgreSQL, the app database
on PostgreSQL, a process work pool with two priority queues made with the Prefect CLI,
the deployments of deployments/prefect.yaml made with `prefect deploy`, and two
`prefect worker start --pool recovery` processes polling the same pool.

20 actions (15 high risk, 5 medium) are driven through plan sign-off and a daily review
cycle, and each is asserted to have been processed exactly once: one sign-off request and
email, one decision, one review and one escalation for the day; every flow-run execution
(each Running state) submitted by exactly one of the workers (Prefect's
`prefect.worker.submitted-flow-run` event names the worker that won the run; the loser of
a race logs "Aborted submission"), and both workers took part.

The workers run in a directory of their own: the deployments' pull step
(`set_working_directory: {{ $RECOVERY_CODE_DIR }}`) is what finds the code.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from devstack.mailsink import MailSink
from tests.faults.helpers import (
    CHAIN_LOCK,
    PG_ADMIN_URL,
    RATIONALE,
    REPO_ROOT,
    TODAY,
    App,
    clean_environ,
    escalation_events,
    open_actions,
    people_file,
    plan_file,
    prefect_client,
    read_runs,
    reviewer_of,
    signoff_codes,
    wait_all_paused,
    waiting_on_chain_lock,
    write_yaml,
)
from tests.support.prefect_server import (
    PrefectServer,
    ServeProcess,
    start_prefect_server,
    temporary_postgres_database,
    wait_for_final,
    wait_until,
)

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.postgres]

PREFECT = REPO_ROOT / ".venv" / "bin" / "prefect"
SITES = 4
HIGH, MEDIUM = 15, 5
WORKERS = ("worker-a", "worker-b")
WORKER_LIMIT = 3
MEDIUM_RISK = {"potential_harm": 3, "people_affected": 2, "likelihood_of_recurrence": 2,
               "regulatory_impact": 2, "control_strength": 2}


@dataclass
class Production:
    server: PrefectServer
    app: App
    workers: list[ServeProcess]
    plans: Path

    def housekeeping(self) -> set[str]:
        """Runs of the scheduled reconcile-lost-runs deployment (every 5 minutes)."""
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        with self.server.settings(), prefect_client(self.server) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(
                name=FlowFilterName(any_=["reconcile-lost-runs"])))
        return {str(r.id) for r in runs}


@contextlib.contextmanager
def app_database() -> Iterator[str]:
    """An empty PostgreSQL database for the app; `recovery init` migrates it."""
    import uuid

    name = f"rg_prod_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        from recovery.adapters import db

        db.engine_for(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}").dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(argv: list[str], env: dict[str, str], cwd: Path = REPO_ROOT) -> str:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    base = tmp_path_factory.mktemp("production")
    with temporary_postgres_database() as prefect_db, app_database() as app_url:
        server = start_prefect_server(database_url=prefect_db, extra_env={
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5"})
        app = App(home=base / "app", database_url=app_url, server=server,
                  sink=MailSink(base / "mail", port=None),
                  extra_env={"RECOVERY_WORK_POOL_QUEUES": "true",
                             "RECOVERY_CODE_DIR": str(REPO_ROOT)})
        assert app.sink is not None
        app.sink.start()
        workers: list[ServeProcess] = []
        try:
            # the app database, as an operator sets it up
            people = write_yaml(base / "people.yaml", people_file(SITES))
            for args in (["init"], ["people", "import", str(people)]):
                result = app.cli(*args, "--json")
                assert result.exit_code == 0, str(result)

            # the pool, its queues and the deployments, with Prefect's own CLI
            env = {**clean_environ(), **server.env, "RECOVERY_CODE_DIR": str(REPO_ROOT)}
            run([str(PREFECT), "work-pool", "create", "recovery", "--type", "process"], env)
            for queue, priority in (("high-risk", "1"), ("routine", "10")):
                run([str(PREFECT), "work-queue", "create", queue, "--pool", "recovery",
                     "--priority", priority], env)
            run([str(PREFECT), "--no-prompt", "deploy", "--all", "--prefect-file",
                 "deployments/prefect.yaml"], env)

            work_dir = base / "worker"
            work_dir.mkdir()
            for name in WORKERS:
                worker = ServeProcess(
                    [str(PREFECT), "worker", "start", "--pool", "recovery", "--name", name,
                     "--limit", str(WORKER_LIMIT)],
                    env={**app.env, "PREFECT_WORKER_QUERY_SECONDS": "1",
                         "PREFECT_WORKER_PREFETCH_SECONDS": "1"},
                    cwd=work_dir, log_path=base / f"{name}.log")
                workers.append(worker.start())
            for worker in workers:
                worker.wait_for_output("started!", timeout=180)
            yield Production(server, app, workers, base / "plans")
        finally:
            for worker in workers:
                with contextlib.suppress(Exception):
                    worker.stop(idle_timeout=15)
            app.stop()
            server.stop()


def _diagnostics(production: Production) -> str:
    return "\n".join(f"--- {w.log_path.stem} (tail) ---\n{w.output(since_start=False)[-4000:]}"
                     for w in production.workers)


def _submissions(client: Any, since: datetime) -> dict[str, list[str]]:
    """{flow run id: [name of the worker of each submission]} from Prefect's
    `prefect.worker.submitted-flow-run` events, emitted once a worker has won the run
    (moved it to Pending) and started its process. A worker that loses the race for a run
    logs "Aborted submission" and emits nothing."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    found: dict[str, list[str]] = {}
    page = client.read_events(filter=EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(name=["prefect.worker.submitted-flow-run"])), limit=50)
    while True:
        for event in page.events:
            worker = str(event.resource.get("prefect.resource.name"))
            for related in event.related:
                if related.role == "flow-run":
                    run_id = related.id.removeprefix("prefect.flow-run.")
                    found.setdefault(run_id, []).append(worker)
        if not page.next_page:
            return found
        page = client.read_events_page(page.next_page)


@pytest.mark.timeout(2400)
def test_twenty_actions_on_two_workers(production: Production) -> None:
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run

    from recovery.adapters import prefect_api

    server, app = production.server, production.app
    plans = [write_yaml(production.plans / f"plan-{n:02d}.yaml", plan_file(
        (n - 1) % SITES + 1, n, baseline_on=TODAY - timedelta(days=30),
        **({"risk": MEDIUM_RISK} if n > HIGH else {})))
        for n in range(1, HIGH + MEDIUM + 1)]

    with server.settings(), prefect_client(server) as client:
        # the deployments prefect.yaml describes, on the pool and queues it names
        deployments = {d.name: d for d in client.read_deployments()}
        assert {"high-risk-action", "daily-review", "weekly-governance", "monthly-assurance",
                "open-action", "record-evidence", "recovery-notify",
                "reconcile-lost-runs"} <= set(deployments)
        assert {d.work_pool_name for d in deployments.values()} == {"recovery"}
        assert deployments["daily-review"].work_queue_name == "high-risk"
        assert deployments["high-risk-action"].work_queue_name == "routine"
        [schedule] = deployments["daily-review"].schedules
        assert schedule.schedule.cron == "0 7 * * *"
        assert schedule.schedule.timezone == "Europe/London"
        wait_until(lambda: {w.name for w in client.read_workers_for_work_pool("recovery")
                            if w.status.value == "ONLINE"} >= set(WORKERS), timeout=120,
                   message="both workers online")

        opened = datetime.now(UTC)
        with app.inprocess():
            refs = open_actions(plans)
            runs = {ref: prefect_api.start_lifecycle(ref) for ref in refs}
        wait_all_paused(client, list(runs.values()), "plan-signoff-1-", timeout=900)
        by_run = {str(r.id): r for r in read_runs(client, list(runs.values()))}
        queues = Counter(by_run[runs[ref]].work_queue_name for ref in refs)
        assert queues == {"high-risk": HIGH, "routine": MEDIUM}, queues

        codes = signoff_codes(app)
        assert sorted(codes) == sorted(refs) and all(len(c) == 1 for c in codes.values())
        cli = app.cli("signoff", refs[0], "--by", reviewer_of(int(refs[0][1:3])),
                      "--code", codes[refs[0]][0], "--decision", "approve",
                      "--rationale", RATIONALE, "--json")
        assert cli.exit_code == 0 and cli.json()["applied"] is True, \
            f"{cli}\n{_diagnostics(production)}"
        for ref in refs[1:]:
            resume_flow_run(UUID(runs[ref]), run_input={
                "reviewer_email": reviewer_of(int(ref[1:3])), "code": codes[ref][0],
                "decision": "approve", "rationale": RATIONALE})
        wait_all_paused(client, list(runs.values()), "closure-request-1-", timeout=900)

        # the day's review cycle, on the pool like the 07:00 schedule
        started = time.time()
        daily = run_deployment("daily-review/daily-review",
                               parameters={"as_of": TODAY.isoformat()}, timeout=0)
        final = wait_for_final(client, daily.id, timeout=600)
        assert final.state.is_completed(), f"{final.state}\n{_diagnostics(production)}"
        assert final.work_queue_name == "high-risk"
        since = datetime.fromtimestamp(started, UTC) - timedelta(minutes=1)
        wait_until(lambda: len(escalation_events(client, since, refs)) >= len(refs),
                   timeout=60, message="escalation events")
        time.sleep(1.5)
        emitted = escalation_events(client, since, refs)

        # each flow-run execution submitted by exactly one worker
        all_runs = [*runs.values(), str(daily.id)]
        submissions = wait_until(
            lambda: (found := _submissions(client, opened))
            and sum(len(found.get(r, [])) for r in all_runs) >= 2 * len(refs) + 1 and found,
            timeout=60, message="worker submission events")
        executions = {
            run_id: sum(1 for s in client.read_flow_run_states(UUID(run_id))
                        if s.type.value == "RUNNING")
            for run_id in all_runs}
        states = {str(r.id): r.state for r in read_runs(client, list(runs.values()))}

    assert sorted(emitted) == sorted(f"recovery.action.{r}" for r in refs)
    for run_id in runs.values():
        assert states[run_id].is_paused(), states[run_id]
        assert states[run_id].state_details.pause_key == "closure-request-1-1"
        assert executions[run_id] == 2, (run_id, executions[run_id])  # open, resume
    assert executions[str(daily.id)] == 1
    for run_id in all_runs:
        workers = submissions.get(run_id, [])
        assert len(workers) == executions[run_id], (run_id, workers, executions[run_id])
        assert set(workers) <= set(WORKERS), workers
    ours = {r: w for r, w in submissions.items() if r not in production.housekeeping()}
    assert set(ours) == set(all_runs), set(ours) - set(all_runs)
    used = Counter(w for workers in ours.values() for w in workers)
    assert set(used) == set(WORKERS), used  # both workers took part

    # each action processed exactly once
    assert app.status_of(refs) == dict.fromkeys(refs, "in_recovery")
    assert app.query("SELECT a.ref, d.decision FROM decision d JOIN recovery_action a "
                     "ON a.id = d.action_id ORDER BY a.ref") == \
        [(ref, "approve") for ref in sorted(refs)]
    for table in ("signoff_request", "escalation"):
        assert app.per_action(f"SELECT a.ref, COUNT(*) FROM {table} t JOIN recovery_action a "
                              f"ON a.id = t.action_id GROUP BY a.ref") == dict.fromkeys(refs, 1)
    assert app.per_action("SELECT a.ref, COUNT(*) FROM review r JOIN recovery_action a "
                          "ON a.id = r.action_id WHERE r.as_of = :d GROUP BY a.ref",
                          d=TODAY) == dict.fromkeys(refs, 1)
    for event in ("signoff.requested", "status.approve_plan", "action.escalated",
                  "stage.risk_rated"):
        assert app.audit_events(event) == dict.fromkeys(refs, 1), event
    keys = app.mail_keys()
    assert len(keys) == len(set(keys)), keys
    assert sorted(k for k in keys if k.startswith("signoff:")) == \
        sorted(f"signoff:{r}:plan:1" for r in refs)
    # one escalation per action, one message per person told (`escalation:REF:ID:address`)
    escalations = [k for k in keys if k.startswith("escalation:")]
    assert sorted({k.rsplit(":", 1)[0].split(":")[1] for k in escalations}) == sorted(refs)
    assert len({k.rsplit(":", 1)[0] for k in escalations}) == len(refs)
    # each approval told once to each person concerned (`signoff.decided:REF:plan:1:address`)
    told = [k for k in keys if k.startswith("signoff.decided:")]
    assert sorted({k.split(":")[1] for k in told}) == sorted(refs)
    assert all(k.split(":")[2:4] == ["plan", "1"] for k in told), told
    assert len(told) >= 2 * len(refs)  # at least the reviewer and the lead
    assert len(keys) == len(refs) + len(escalations) + len(told)
    verified = app.cli("audit", "verify", "--json")
    assert verified.exit_code == 0 and verified.json()["ok"] is True, str(verified)


@pytest.mark.timeout(1200)
def test_a_worker_killed_in_a_daily_review_is_made_good_by_the_other(
    production: Production,
) -> None:
    """The next day's review runs on one worker; inside its transaction (reviews written,
    the audit append waiting for the chain lock the test holds) that worker and its
    flow-run process are SIGKILLed, as a lost machine would be. The scheduled housekeeping
    deployment, reconcile-lost-runs, runs on the surviving worker, finds the run with no
    sign of life, and has it run again, on the surviving worker: the day's reviews are
    recorded exactly once."""
    from prefect.deployments import run_deployment

    server, app = production.server, production.app
    refs = sorted(r for (r,) in app.query("SELECT ref FROM recovery_action"))
    assert len(refs) == HIGH + MEDIUM, "runs after test_twenty_actions_on_two_workers"
    day = TODAY + timedelta(days=1)
    keys_before = app.mail_keys()
    escalations_before = app.scalar("SELECT COUNT(*) FROM escalation")

    holder = psycopg.connect(app.database_url.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (CHAIN_LOCK,))
        with server.settings(), prefect_client(server) as client:
            started = datetime.now(UTC) - timedelta(seconds=5)
            daily = run_deployment("daily-review/daily-review",
                                   parameters={"as_of": day.isoformat()}, timeout=0)
            wait_until(lambda: waiting_on_chain_lock(app), timeout=300,
                       message=f"the daily review waiting for the chain lock\n"
                               f"{_diagnostics(production)}")
            assert client.read_flow_run(daily.id).state.is_running()
            [victim] = wait_until(lambda: _submissions(client, started).get(str(daily.id)),
                                  timeout=60, message="the worker of the daily review")
            index = WORKERS.index(victim)
            production.workers[index].kill()
    finally:
        holder.close()
    survivor = WORKERS[1 - index]
    # the lost transaction is rolled back with its connection: nothing of the day
    assert app.scalar("SELECT COUNT(*) FROM review WHERE as_of = :d", d=day) == 0

    with server.settings(), prefect_client(server) as client:
        assert client.read_flow_run(daily.id).state.is_running()  # Prefect cannot tell
        time.sleep(6)
        sweep = run_deployment("reconcile-lost-runs/reconcile-lost-runs",
                               parameters={"older_than_seconds": 5}, timeout=0)
        swept = wait_for_final(client, sweep.id, timeout=300)
        assert swept.state.is_completed(), f"{swept.state}\n{_diagnostics(production)}"

        def completed() -> Any:
            run = client.read_flow_run(daily.id)
            return run if run.state.is_completed() else None

        wait_until(completed, timeout=600,
                   message=f"the daily review run again\n{_diagnostics(production)}")
        states = client.read_flow_run_states(daily.id)
        submissions = _submissions(client, started)

    names = [s.name for s in states]
    assert names.count("Crashed") == 1 and names.count("Rescheduled") == 1, names
    [crashed] = [s for s in states if s.name == "Crashed"]
    assert "found by recovery reconcile" in (crashed.message or "")
    # (events come newest first) the killed worker's run, then the survivor's re-run
    assert sorted(submissions[str(daily.id)]) == sorted([victim, survivor])
    assert submissions[str(sweep.id)] == [survivor]
    # exactly once: one review per action for the day, nothing else repeated
    assert app.per_action("SELECT a.ref, COUNT(*) FROM review r JOIN recovery_action a "
                          "ON a.id = r.action_id WHERE r.as_of = :d GROUP BY a.ref",
                          d=day) == dict.fromkeys(refs, 1)
    assert app.scalar("SELECT COUNT(*) FROM escalation") == escalations_before
    keys = app.mail_keys()
    assert len(keys) == len(set(keys)) and set(keys_before) <= set(keys)
    verified = app.cli("audit", "verify", "--json")
    assert verified.exit_code == 0 and verified.json()["ok"] is True, str(verified)
