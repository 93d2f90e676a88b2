"""Review-cycle integration fixtures: the worker's shared Prefect server (tests/conftest.py;
its event persister flushes every 0.5 s, so events are readable quickly), and per test
module one loopback SMTP sink, one `recovery serve` and one app database, with the
module's ``ACTIONS`` put into recovery through the real lifecycle (`recovery action open`,
the code from the sink, `recovery signoff`).

Commands that talk to Prefect (open, signoff, `review run`) run as the real `recovery`
executable in a subprocess; commands that only touch the app database (evidence, extend,
control change, show, `mail flush`) run the same CLI in-process, which is much faster on a
small machine. Both see the same environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.adapters.tables import ActionRow, AuditRow, DecisionRow, OutboxRow
from recovery.cli import app
from recovery.settings import get_settings
from tests.support.prefect_server import PrefectServer, wait_until
from tests.support.recovery_stack import EXAMPLES, SEED, RecoveryStack, Result

ESCALATED_EVENT = "recovery.action.escalated"
_runner = CliRunner()


def reviewer_of(ref: str) -> str:
    return str(yaml.safe_load(SEED[ref].read_text())["senior_reviewer"])


class CycleStack(RecoveryStack):
    """The module's product stack plus the cycle-specific views the tests need."""

    # ------------------------------------------------------------------ the CLI

    def local(self, *args: Any) -> Result:
        """The CLI in-process (same environment as the subprocesses)."""
        argv = [str(a) for a in args]
        started = time.monotonic()
        result = _runner.invoke(app, argv, catch_exceptions=False)
        return Result(argv, result.exit_code, result.stdout, result.stderr,
                      time.monotonic() - started)

    def local_ok(self, *args: Any) -> Result:
        result = self.local(*args)
        assert result.exit_code == 0, str(result)
        return result

    def local_json(self, *args: Any) -> Any:
        return self.local_ok(*args, "--json").json()

    def cycle(self, cycle: str, as_of: date) -> dict[str, Any]:
        """`recovery review run CYCLE --as-of DATE` against the real Prefect server."""
        data: dict[str, Any] = self.cli_json("review", "run", cycle, "--as-of", as_of)
        return data

    def evidence(self, ref: str, observed_on: date, values: dict[str, float],
                 by: str) -> None:
        for source, value in values.items():
            self.local_ok("evidence", "add", ref, "--source", source, "--value", value,
                          "--sample", 20, "--observed-on", observed_on,
                          "--reference", f"{source} sample {observed_on}", "--by", by)

    # ------------------------------------------------------------------ the database

    def select(self, statement: Any) -> list[Any]:
        """Read the app database through the ORM (assertions only)."""
        with Session(db.engine_for(self.database_url), expire_on_commit=False) as session:
            return list(session.exec(statement).all())

    def action_row(self, ref: str) -> ActionRow:
        [row] = self.select(select(ActionRow).where(ActionRow.ref == ref))
        return row  # type: ignore[no-any-return]

    def of_action(self, model: Any, ref: str, *where: Any) -> list[Any]:
        """Rows of a table with an ``action_id``, for one action, in id order."""
        return self.select(select(model).join(ActionRow, ActionRow.id == model.action_id)
                           .where(ActionRow.ref == ref, *where).order_by(model.id))

    def audit_events(self, ref: str) -> list[str]:
        return [r.event for r in self.select(
            select(AuditRow).where(AuditRow.action_ref == ref).order_by(col(AuditRow.seq)))]

    def outbox(self, key_prefix: str) -> list[OutboxRow]:
        return self.select(select(OutboxRow).where(
            col(OutboxRow.dedupe_key).startswith(key_prefix)).order_by(col(OutboxRow.id)))

    # ------------------------------------------------------------------ mail

    def mail_with_key(self, prefix: str) -> list[EmailMessage]:
        """Delivered messages whose outbox dedupe key (X-Recovery-Key) starts so."""
        return [m for m in self.sink.messages()
                if str(m.get("X-Recovery-Key", "")).startswith(prefix)]

    # ------------------------------------------------------------------ Prefect

    #: When this module's stack started: the Prefect server is shared by the whole run, so
    #: events of the same refs from earlier modules are left out.
    since: datetime = datetime.now(UTC)

    def escalation_events(self, ref: str) -> list[Any]:
        from prefect.events.filters import (
            EventFilter,
            EventNameFilter,
            EventOccurredFilter,
            EventResourceFilter,
        )

        with self.client() as client:
            page = client.read_events(
                filter=EventFilter(occurred=EventOccurredFilter(since=self.since),
                                   event=EventNameFilter(name=[ESCALATED_EVENT]),
                                   resource=EventResourceFilter(
                                       id=[f"recovery.action.{ref}"])),
                limit=50)
        return list(page.events)

    def wait_for_events(self, ref: str, count: int, timeout: float = 30) -> list[Any]:
        return wait_until(lambda: (found := self.escalation_events(ref))
                          and len(found) >= count and found,
                          timeout=timeout, interval=0.3,
                          message=f"{count} {ESCALATED_EVENT} event(s) for {ref}")


@pytest.fixture(scope="session")
def cycles_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated app database with the catalogue and the example staff directory
    (`recovery init`, `recovery people import`, in-process); each module copies it."""
    directory = tmp_path_factory.mktemp("cycles-template")
    path = directory / "recovery.db"
    url = f"sqlite:///{path}"
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("RECOVERY_"):
                patch.delenv(key)
        patch.setenv("RECOVERY_HOME", str(directory))
        patch.setenv("RECOVERY_DATABASE_URL", url)
        get_settings.cache_clear()
        try:
            for args in (["init"], ["people", "import", str(EXAMPLES / "people.yaml")]):
                result = _runner.invoke(app, args, catch_exceptions=False)
                assert result.exit_code == 0, result.output
        finally:
            db.engine_for(url).dispose()  # the last connection folds the WAL into the file
            get_settings.cache_clear()
    return path


@pytest.fixture
def app_database(
    cycles_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh copy of the template database the product is pointed at (no Prefect)."""
    path = tmp_path / "recovery.db"
    shutil.copyfile(cycles_template, path)
    url = f"sqlite:///{path}"
    for key in list(os.environ):
        if key.startswith("RECOVERY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RECOVERY_HOME", str(tmp_path))
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        yield url
    finally:
        get_settings.cache_clear()
        db.engine_for(url).dispose()


#: The day the modules' actions were signed off into recovery. The tests' dates (the first
#: Monday, the end of the 14 days of daily reviews, the first of the month) count from it,
#: so it is fixed: the plan sign-off starts recovery, and is decided, on the real date, on
#: which those dates held only on the day they were written. Both are moved to this day.
RECOVERY_DAY = date(2026, 11, 26)


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    prefect_server: PrefectServer,
    cycles_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CycleStack]:
    """The module's stack with every ref in the module's ``ACTIONS`` signed off into
    recovery (today, by its named senior reviewer)."""
    refs: list[str] = list(getattr(request.module, "ACTIONS", []))
    recovery = CycleStack(prefect_server, tmp_path_factory.mktemp("cycles-home"),
                          template=cycles_template)
    recovery.since = datetime.now(UTC)
    patch = pytest.MonkeyPatch()
    try:
        recovery.start()
        # the in-process CLI sees what the subprocesses see
        for key, value in recovery.env.items():
            if key.startswith("RECOVERY_"):
                patch.setenv(key, value)
        for key in os.environ:
            if key.startswith("RECOVERY_") and key not in recovery.env:
                patch.delenv(key)
        get_settings.cache_clear()
        for result in recovery.cli_parallel(*[["action", "open", SEED[r], "--json"]
                                              for r in refs]):
            assert result.exit_code == 0, f"{result}\n{recovery.diagnostics()}"
        signoffs = [["signoff", r, "--by", reviewer_of(r), "--code",
                     recovery.signoff_code(r, "plan"), "--decision", "approve",
                     "--rationale", "The plan and its interim controls are sound"]
                    for r in refs]
        for result in recovery.cli_parallel(*signoffs):
            assert result.exit_code == 0, f"{result}\n{recovery.diagnostics()}"
        for ref in refs:
            assert recovery.status(ref) == "in_recovery", recovery.diagnostics()
        with db.unit_of_work() as session:
            for ref in refs:
                row = repo.get_action(session, ref)
                row.recovery_started_on = RECOVERY_DAY
                session.add(row)
                # the sign-off (a provider-level review when the nominated individual
                # gives it) was decided on that day too
                for decision in session.exec(select(DecisionRow).where(
                        DecisionRow.action_id == row.id)):
                    decision.decided_at = datetime.combine(RECOVERY_DAY,
                                                           decision.decided_at.timetz())
                    session.add(decision)
        yield recovery
    finally:
        with contextlib.suppress(Exception):
            recovery.stop()
        patch.undo()
        get_settings.cache_clear()
        with contextlib.suppress(Exception):
            db.engine_for(recovery.database_url).dispose()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call" and report.failed:
        recovery = getattr(item, "funcargs", {}).get("stack")
        if isinstance(recovery, RecoveryStack):
            report.sections.append(("recovery stack", recovery.diagnostics()))
    return report
