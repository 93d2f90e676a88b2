"""The product on a real Prefect server with API auth on (the production profile), a real
SMTP sink and `recovery serve`:

1. What a person types into the sign-off and closure-request forms: the server refuses a
   malformed answer against the form's schema (exit 2, one line naming the field, the
   database byte-for-byte unchanged: the run never wakes); the domain refuses the rest
   (exit 3 with every reason; only the refusal itself is recorded).
2. No details of people who use services reach Prefect. Evidence references may name a
   person's record, so a sentinel seeded into them must appear nowhere in Prefect: not in
   its database file (and WAL), its logs, flow-run parameters, artifacts or task states.
   What Prefect does carry, by design: action references, staff names and emails, the
   plan's service-level texts (title, baseline issue, controls, steps: they describe the
   service, not a person) in run names, form descriptions and the weekly artifacts, and
   the sign-off rationale and closure summary a person submits in a form, kept as that
   form's answer (run input) and nowhere else. The CLI help and the forms tell people
   never to put a person's details in those.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from recovery.settings import get_settings
from tests.integration.helpers import Outcome, cli, dump_tables, relative_plan, seed_directory
from tests.security.conftest import AUTH, LEAD, REVIEWER
from tests.security.corpus import CLOSURE_FORM, SIGNOFF_DOMAIN, SIGNOFF_FORM, FormCase
from tests.security.driver import other_code
from tests.security.test_bad_input_corpus import MAX_LINE
from tests.support.prefect_server import PrefectServer
from tests.support.recovery_stack import SEED, RecoveryStack

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

ELM = "ELM-STF-001"
ELM_LEAD = "rm@elm.example"
ELM_REVIEWER = "provider.lead@harbourcare.example"
ROSE = "ROSE-SG-001"

REF_SENTINEL = "SENTINEL-MRS-JONES-1942"
PLAN_SENTINEL = "SENTINEL-SERVICE-TEXT-ROSE-LOUNGE"
RATIONALE_SENTINEL = "SENTINEL-RATIONALE-MR-SMITH-1950"
SUMMARY_SENTINEL = "SENTINEL-SUMMARY-MS-BROWN-1961"


class AuthStack(RecoveryStack):
    """The test's own Prefect client sends the auth string too."""

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        from prefect import get_client

        with prefect_settings(self.server), get_client(sync_client=True) as client:
            yield client


@contextlib.contextmanager
def prefect_settings(server: PrefectServer) -> Iterator[None]:
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_UI_URL,
        temporary_settings,
    )

    with temporary_settings(updates={PREFECT_API_URL: server.api_url,
                                     PREFECT_UI_URL: server.ui_url,
                                     PREFECT_API_AUTH_STRING: AUTH}):
        yield


@pytest.fixture(scope="module")
def stack(auth_server: PrefectServer, sqlite_template: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    """Catalogue and staff directory (seeded in-process from the migrated template), the
    sink and `recovery serve`, every process with PREFECT_API_AUTH_STRING. The business
    date is tomorrow: evidence dated today counts, and daily reviews can be held today and
    tomorrow, the two consecutive periods the gate needs."""
    template = tmp_path_factory.mktemp("stack-template") / "recovery.db"
    shutil.copyfile(sqlite_template, template)
    today = get_settings().today()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOVERY_DATABASE_URL", f"sqlite:///{template}")
        get_settings.cache_clear()
        try:
            seed_directory()
        finally:
            get_settings.cache_clear()
    from recovery.adapters import db

    db.engine_for(f"sqlite:///{template}").dispose()
    running = AuthStack(auth_server, tmp_path_factory.mktemp("stack-home"), template=template,
                        extra_env={"PREFECT_API_AUTH_STRING": AUTH,
                                   "RECOVERY_BUSINESS_DATE": (today + timedelta(days=1))
                                   .isoformat()})
    running.start()
    running.today = today  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def local(stack: AuthStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthStack]:
    """The CLI in this process (fast) with exactly the stack's environment."""
    for key, value in stack.env.items():
        if key.startswith(("RECOVERY_", "PREFECT_API", "PREFECT_UI")):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with prefect_settings(stack.server):
        yield stack
    get_settings.cache_clear()


def iterdump(stack: RecoveryStack) -> str:
    conn = sqlite3.connect(stack.db_path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def form_args(command: str, ref: str, answer: dict[str, str], code: str) -> list[str]:
    """The command line for one form answer of ELM-STF-001 (placeholders filled in)."""
    fill = {"<code>": code, "<wrong>": other_code(code), "<reviewer>": ELM_REVIEWER,
            "<lead>": ELM_LEAD, "<LEAD>": f"  {ELM_LEAD.upper()} "}
    values = {}
    for key, value in answer.items():
        for placeholder, real in fill.items():
            value = value.replace(placeholder, real)
        values[key] = value
    if command == "signoff":
        return ["signoff", ref, "--by", values["by"], "--code", values["code"],
                "--decision", values["decision"], "--rationale", values["rationale"]]
    return ["closure", "request", ref, "--by", values["by"], "--summary", values["summary"]]


def check_schema_refusal(case: FormCase, human: Outcome, machine: Outcome) -> None:
    assert human.exit_code == 2, (case.name, human.stderr[:2000])
    [line] = human.stderr_lines()
    assert line.startswith(f"error {case.field}: "), (case.name, line[:300])
    assert len(line) < MAX_LINE
    assert machine.exit_code == 2 and len(machine.stderr_lines()) == 1
    assert machine.error_json()["field"] == case.field, machine.stderr[:300]


def test_form_answers_are_refused_by_the_server_then_the_domain(local: AuthStack) -> None:
    stack = local
    opened = cli("action", "open", str(SEED[ELM]), "--by", "rm@elm.example", "--json")
    assert opened.exit_code == 0 and opened.json()["flow_run_id"], opened.stderr
    stack.wait_for_wait(ELM, "plan-signoff-1-")
    code = stack.signoff_code(ELM, "plan")

    # the server refuses a malformed answer; the run sleeps on, nothing is written
    before = iterdump(stack)
    for case in SIGNOFF_FORM:
        args = form_args("signoff", ELM, case.answer, code)
        check_schema_refusal(case, cli(*args), cli(*args, "--json"))
    assert iterdump(stack) == before, "a refused form changed the database"
    assert stack.wait_for_wait(ELM, "plan-signoff-1-") == "plan-signoff-1-1"

    # the domain refuses what passes the schema: every reason, asked again, nothing decided
    attempt, number = 1, 1
    for case in SIGNOFF_DOMAIN:
        stack.wait_for_wait(ELM, f"plan-signoff-{attempt}-{number}")
        tables = dump_tables(stack.database_url)
        keys = {k for (k,) in stack.query("SELECT dedupe_key FROM outbox")}
        result = cli(*form_args("signoff", ELM, case.answer, code))
        assert result.exit_code == 3, (case.name, result.stdout, result.stderr)
        lines = result.stderr_lines()
        assert lines[0].startswith("sign-off refused"), lines
        for reason in case.reasons:
            assert any(reason in line for line in lines[1:]), (reason, lines)
        after = dump_tables(stack.database_url)
        changed = {t for t in tables if tables[t] != after[t]}
        # the refusal is recorded (audit, the wait, the request's refusal count) and the
        # named reviewer is told (outbox), and nothing else: no decision, no status
        # change, no new code ...
        withdrawn = any("the sign-off code was withdrawn" in line for line in lines)
        if not withdrawn:
            assert changed <= {"audit_log", "lifecycle_wait", "signoff_request", "outbox"}, \
                changed
            told = {k for (k,) in stack.query("SELECT dedupe_key FROM outbox")} - keys
            assert [k.split(":")[0] for k in told] == ["signoff.refused"], told
            number += 1
            continue
        # ... unless the right code came from someone else: then it is withdrawn, the
        # registered manager and nominated individual are told (outbox), and the flow
        # asks again under a new request with a new code for the reviewer
        assert changed <= {"audit_log", "lifecycle_wait", "signoff_request", "outbox"}, changed
        attempt, number = attempt + 1, 1
        stack.wait_for_wait(ELM, f"plan-signoff-{attempt}-")
        code = stack.signoff_code(ELM, "plan", number=attempt)
    assert stack.status(ELM) == "awaiting_plan_signoff"
    assert stack.count("decision", ELM) == 0
    assert len(stack.signoff_mails(ELM, "plan")) == attempt

    # the right answer still works, once
    stack.wait_for_wait(ELM, f"plan-signoff-{attempt}-{number}")
    approved = cli("signoff", ELM, "--by", f" {ELM_REVIEWER.upper()}", "--code", code,
                   "--decision", "approve", "--rationale",
                   "A second senior carer on every shift covers the gaps", "--json")
    assert approved.exit_code == 0 and approved.json()["applied"], approved.stderr

    # the lead's closure request form: the same server-side refusals
    stack.wait_for_wait(ELM, "closure-request-1-")
    before = iterdump(stack)
    for case in CLOSURE_FORM:
        args = form_args("closure", ELM, case.answer, code)
        check_schema_refusal(case, cli(*args), cli(*args, "--json"))
    assert iterdump(stack) == before
    assert stack.status(ELM) == "in_recovery"


# ---------------------------------------------------------------- what reaches Prefect


def prefect_files(stack: RecoveryStack) -> list[Path]:
    """Everything Prefect keeps on disk: its home (database, WAL, logs, any local result
    storage) and the serve process's log."""
    files = [p for p in stack.server.home.rglob("*") if p.is_file()]
    return [*files, stack.serve.log_path]


def prefect_tables_with(stack: RecoveryStack, needle: str) -> set[str]:
    """The tables of Prefect's SQLite database whose rows contain `needle`."""
    conn = sqlite3.connect(f"file:{stack.server.home / 'prefect.db'}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = set()
        for name in names:
            for row in conn.execute(f'SELECT * FROM "{name}"'):
                if any(needle in (v.decode("utf-8", "replace") if isinstance(v, bytes)
                                  else str(v)) for v in row if v is not None):
                    found.add(name)
                    break
        return found
    finally:
        conn.close()


def everything_prefect_says(stack: AuthStack) -> dict[str, str]:
    """Through the API: every flow run's name and parameters, every task run's name and
    state message, every log line, every artifact."""
    from prefect.client.schemas.filters import LogFilter

    out: dict[str, list[str]] = {"parameters": [], "names": [], "states": [], "logs": [],
                                 "artifacts": []}
    with stack.client() as client:
        for run in client.read_flow_runs(limit=200):
            out["parameters"].append(repr(run.parameters))
            out["names"].append(run.name)
            out["states"].append(f"{run.state and run.state.message}")
        for task in client.read_task_runs(limit=200):
            out["names"].append(task.name)
            out["states"].append(f"{task.state and task.state.message}")
        offset = 0
        while True:
            logs = client.read_logs(log_filter=LogFilter(), limit=200, offset=offset)
            out["logs"] += [log.message for log in logs]
            if len(logs) < 200:
                break
            offset += 200
        for artifact in client.read_artifacts(limit=200):
            out["artifacts"].append(f"{artifact.key} {artifact.description} {artifact.data}")
    return {key: "\n".join(values) for key, values in out.items()}


def test_no_details_of_people_who_use_services_reach_prefect(
    local: AuthStack, tmp_path: Path
) -> None:
    stack = local
    today = stack.today  # type: ignore[attr-defined]
    plan = relative_plan(today, baseline={
        "issue": f"{PLAN_SENTINEL}: escalation decisions recorded late", "value": 60,
        "as_of": today - timedelta(days=10)})
    path = tmp_path / "rose.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    opened = cli("action", "open", str(path), "--by", "rm@rose.example", "--json")
    assert opened.exit_code == 0 and opened.json()["ref"] == ROSE, opened.stderr

    stack.wait_for_wait(ROSE, "plan-signoff-1-")
    signed = cli("signoff", ROSE, "--by", REVIEWER, "--code", stack.signoff_code(ROSE, "plan"),
                 "--decision", "approve", "--rationale",
                 f"{RATIONALE_SENTINEL}: the interim controls are proportionate", "--json")
    assert signed.exit_code == 0 and signed.json()["applied"], signed.stderr
    stack.wait_for_wait(ROSE, "closure-request-1-")

    for number, source in enumerate(("care_records", "audits", "feedback", "staff_practice")):
        added = cli("evidence", "add", ROSE, "--source", source, "--value", "100", "--sample",
                    "12", "--observed-on", today.isoformat(), "--by", "rm@rose.example",
                    "--reference", f"Care record of {REF_SENTINEL}, page {number + 1}")
        assert added.exit_code == 0, added.stderr
    for day in (today, today + timedelta(days=1)):  # flow runs of daily-review
        reviewed = cli("review", "run", "daily", "--as-of", day.isoformat(), "--json")
        assert reviewed.exit_code == 0 and reviewed.json()["reviewed"] >= 1, reviewed.stderr

    asked = cli("closure", "request", ROSE, "--by", LEAD, "--summary",
                f"{SUMMARY_SENTINEL}: all four pillars at 100% over two reviews", "--json")
    assert asked.exit_code == 0 and asked.json()["applied"], asked.stderr
    stack.wait_for_wait(ROSE, "closure-signoff-1-")
    closed = cli("signoff", ROSE, "--by", REVIEWER, "--code",
                 stack.signoff_code(ROSE, "closure"), "--decision", "approve", "--rationale",
                 f"{RATIONALE_SENTINEL}: sustained on every pillar", "--json")
    assert closed.exit_code == 0 and closed.json()["applied"], closed.stderr
    stack.wait_for_run(ROSE, lambda r: r.state is not None and r.state.is_completed(),
                       what="the lifecycle run to complete")
    weekly = cli("review", "run", "weekly", "--as-of", (today + timedelta(days=1)).isoformat())
    assert weekly.exit_code == 0, weekly.stderr
    assert stack.artifacts("governance-report"), "the weekly cycle published its artifacts"

    # the sentinels were really stored by the product
    app = repr(dump_tables(stack.database_url))
    for sentinel in (REF_SENTINEL, PLAN_SENTINEL, RATIONALE_SENTINEL, SUMMARY_SENTINEL):
        assert sentinel in app, sentinel
    assert stack.count("decision", ROSE) == 2

    # evidence references: nowhere in Prefect, not in a byte of its files
    for file in prefect_files(stack):
        assert REF_SENTINEL.encode() not in file.read_bytes(), file
    said = everything_prefect_says(stack)
    for where, text in said.items():
        assert REF_SENTINEL not in text, where
    assert prefect_tables_with(stack, REF_SENTINEL) == set()

    # what people type into a form reaches Prefect as that form's answer and nowhere else
    for sentinel in (RATIONALE_SENTINEL, SUMMARY_SENTINEL):
        assert prefect_tables_with(stack, sentinel) == {"flow_run_input"}, sentinel
        for where, text in said.items():
            assert sentinel not in text, (sentinel, where)

    # parameters carry action references and dates only
    for sentinel in (PLAN_SENTINEL, RATIONALE_SENTINEL, SUMMARY_SENTINEL, REF_SENTINEL):
        assert sentinel not in said["parameters"]
    # the plan's service-level text is shown to the reviewer above the form (by design)
    assert "flow_run_input" in prefect_tables_with(stack, PLAN_SENTINEL)


IMPORT_SENTINEL = "SENTINEL-IMPORT-MR-PATEL-1938"
QUAY = "QUAY-MED-001"


def _import_run(stack: AuthStack, file: str, by: str) -> Any:
    """A run of the import-evidence deployment, started as the UI's Run button does and
    picked up by `recovery serve`, to its final state."""
    from prefect.deployments import run_deployment

    with prefect_settings(stack.server):
        return run_deployment("import-evidence/import-evidence", timeout=180,
                              parameters={"file": file, "imported_by": by})


def test_an_evidence_import_run_adds_the_file_and_tells_prefect_no_reference(
    local: AuthStack
) -> None:
    stack = local
    today = stack.today  # type: ignore[attr-defined]
    opened = cli("action", "open", str(SEED[QUAY]), "--no-flow", "--json")
    assert opened.exit_code == 0, opened.stderr
    inbox = stack.home / "inbox"
    inbox.mkdir(exist_ok=True)
    header = "Action,Source,Value,Sample size,Observed on,Reference,Recorded by\r\n"
    rows = [f"{QUAY},{source},{80 + n},20,{today:%d/%m/%Y},{IMPORT_SENTINEL} entry {n},"
            f"senior.carer@quay.example\r\n"
            for n, source in enumerate(("medicines_records", "audits", "feedback"))]
    (inbox / "week-48.csv").write_text(header + "".join(rows), encoding="utf-8")
    bad = rows[:1] + [f"{QUAY},audits,80,20,{today:%d/%m/%Y},Care plan. {IMPORT_SENTINEL} "
                      f"declined her tablets,rm@quay.example\r\n"]
    (inbox / "bad.csv").write_text(header + "".join(bad), encoding="utf-8")

    done = _import_run(stack, "week-48.csv", "rm@quay.example")
    assert done.state.is_completed(), done.state
    assert stack.count("evidence", QUAY) == 3
    [artifact] = [a for a in stack.artifacts("evidence-import")
                  if a.flow_run_id == done.id]
    table = json.loads(artifact.data)  # a table artifact's rows, as JSON
    assert [(r["action"], r["source"], r["new"]) for r in table] == [
        (QUAY, "audits", 1), (QUAY, "feedback", 1), (QUAY, "medicines records", 1)], \
        artifact.data
    again = _import_run(stack, "week-48.csv", "rm@quay.example")
    assert again.state.is_completed() and stack.count("evidence", QUAY) == 3

    before = iterdump(stack)
    refused = _import_run(stack, "bad.csv", "rm@quay.example")
    assert refused.state.is_failed(), refused.state
    outside = _import_run(stack, "../recovery.db", "rm@quay.example")
    assert outside.state.is_failed() and "evidence inbox" in str(outside.state.message)
    assert iterdump(stack) == before, "a refused import wrote something"
    said = everything_prefect_says(stack)
    assert "row 3, column 'Reference': reads as sentences" in said["logs"], said["logs"][-2000:]

    # the references were stored by the product, and reached Prefect nowhere
    assert IMPORT_SENTINEL in repr(dump_tables(stack.database_url))
    for file in prefect_files(stack):
        assert IMPORT_SENTINEL.encode() not in file.read_bytes(), file
    for where, text in said.items():
        assert IMPORT_SENTINEL not in text, where
    assert prefect_tables_with(stack, IMPORT_SENTINEL) == set()
