"""Driving one action through the real application layer, as the lifecycle's tasks do:
recovery.application's signoff_codes.open_signoff, signoffs.apply_signoff,
closure_requests (record_closure_request, evaluate_closure_gate), transitions.submit_plan,
action_plans.revise_plan, evidence_gate.add_evidence and reviews.run_daily.
Status is never written directly.

Simulated days: `day` starts at the world's today (the action's baseline is ten days
earlier) and only moves forward; sign-off times are 10:00 London on that day.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from models.errors import DomainError
from models.gate import triangulation_gate
from models.lifecycle import Status
from models.people import normalise_email
from models.signoff import SignoffKind, Submission
from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.adapters.mail import outgoing
from recovery.adapters.tables import AuditRow, ClosureRequestRow, DecisionRow, OutboxRow
from recovery.application import (
    action_plans,
    closure_requests,
    evidence_gate,
    signoff_codes,
    signoff_waits,
    signoffs,
    transitions,
)
from recovery.application import reviews as cycles
from recovery.settings import get_settings
from tests.security.conftest import LEAD, MANAGER, REF, REVIEWER

LONDON = ZoneInfo("Europe/London")
CODE_RE = re.compile(r"code: (\d{6})")
GOOD_RATIONALE = "All four pillars show the improvement, sustained over two reviews"

#: Who types their email into a form, and how.
SIGNERS = {
    "reviewer": REVIEWER,
    "reviewer, capitals and spaces": f"  {REVIEWER.upper()} ",
    "lead": LEAD,
    "lead, capitals and spaces": f" {LEAD.title()}\t",
    "another senior (registered manager)": MANAGER,
    "stranger": "stranger@elsewhere.example",
}
#: Who records evidence.
RECORDERS = (LEAD, MANAGER, "duty.manager@rose.example")


@contextlib.contextmanager
def fresh_world(template: Path) -> Iterator[str]:
    """A private copy of the world for one example (hypothesis cannot use function-scoped
    fixtures per example); the product is pointed at it through the environment."""
    directory = Path(tempfile.mkdtemp(prefix="security-example-"))
    path = directory / "recovery.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    saved = {k: os.environ.get(k) for k in ("RECOVERY_DATABASE_URL", "RECOVERY_HOME")}
    os.environ["RECOVERY_DATABASE_URL"] = url
    os.environ["RECOVERY_HOME"] = str(directory / "home")
    get_settings.cache_clear()
    try:
        yield url
    finally:
        db.engine_for(url).dispose()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        shutil.rmtree(directory, ignore_errors=True)


def outbox_code(session: Session, ref: str, kind: SignoffKind, attempt: int) -> str:
    """The code in the queued sign-off email, as the reviewer would read it."""
    row = session.exec(select(OutboxRow).where(
        OutboxRow.dedupe_key == f"signoff:{ref}:{kind.value}:{attempt}")).one()
    text = outgoing(row)[1]  # the code is put in as the email is sent
    found = CODE_RE.search(text)
    assert found, text
    return found.group(1)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@dataclass
class Driver:
    ref: str = REF
    day: date = field(default_factory=lambda: get_settings().today())
    #: closure request attempt -> the gate verdict computed independently when evaluated
    gate_seen: dict[int, bool] = field(default_factory=dict)
    #: (kind, attempt, decision) of every answer that may be applied: the named reviewer
    #: (however typed), the request's own code, a rationale of 20 characters or more
    legit: set[tuple[str, int, str]] = field(default_factory=set)
    log: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ time

    def now(self) -> datetime:
        return datetime.combine(self.day, time(10), tzinfo=LONDON).astimezone(UTC)

    def advance(self, days: int) -> None:
        self.day += timedelta(days=days)
        self.log.append(f"advance {days} -> {self.day}")

    # ------------------------------------------------------------ operations

    def attempt(self, what: str, work: object) -> object:
        """Run one command in its own unit of work; a domain refusal rolls it back."""
        assert callable(work)
        try:
            with db.unit_of_work() as session:
                result = work(session)
        except DomainError as exc:
            self.log.append(f"{what}: refused ({exc})")
            return None
        self.log.append(f"{what}: {result!r}"[:300])
        return result

    def submit(self) -> None:
        self.attempt("submit", lambda s: transitions.submit_plan(s, self.ref, actor="lifecycle")
                     .status)

    def revise(self) -> None:
        def work(session: Session) -> str:
            plan = repo.plan_of(repo.get_action(session, self.ref))
            return action_plans.revise_plan(session, self.ref, plan, actor=LEAD).status

        self.attempt("revise", work)

    def evidence(self, sources: tuple[str, ...], value: float, by: str, age: int) -> None:
        for source in sources:
            self.attempt(f"evidence {source}={value} by {by}", lambda s, src=source: (
                evidence_gate.add_evidence(
                    s, self.ref, source=src, value=value, sample_size=20,
                    observed_on=self.day - timedelta(days=age),
                    reference="Audit file, this week", by=by, today=self.day).id))

    def daily(self) -> None:
        self.attempt(f"daily {self.day}", lambda s: cycles.run_daily(s, as_of=self.day).reviewed)

    def open(self, kind: SignoffKind) -> tuple[str, str, int]:
        """The live request's pause key and code (issuing one if none is live)."""
        with db.unit_of_work() as session:
            wait = signoff_codes.open_signoff(session, self.ref, kind, flow_run_id=None,
                                         now=self.now())
            code = outbox_code(session, self.ref, kind, wait.attempt)
        return wait.pause_key, code, wait.attempt

    def signoff(self, kind: SignoffKind, *, signer: str, right_code: bool, decision: str,
                rationale: str = GOOD_RATIONALE) -> signoff_waits.SignoffOutcome:
        pause_key, code, attempt = self.open(kind)
        submission = Submission(reviewer_email=SIGNERS[signer],
                                code=code if right_code else other_code(code),
                                decision=decision, rationale=rationale)
        if signer.startswith("reviewer") and right_code and len(rationale.strip()) >= 20:
            self.legit.add((kind.value, attempt, decision))
        with db.unit_of_work() as session:
            outcome = signoffs.apply_signoff(session, self.ref, kind, pause_key=pause_key,
                                             submission=submission, now=self.now())
        self.log.append(f"{kind.value} sign-off by {signer} ({'right' if right_code else 'wrong'}"
                        f" code, {decision}): {outcome.applied} {outcome.reasons}")
        return outcome

    def request_closure(self, by: str, summary: str) -> None:
        def work(session: Session) -> object:
            wait = closure_requests.closure_wait(session, self.ref)
            return closure_requests.record_closure_request(
                session, self.ref, pause_key=wait.pause_key, requested_by=by,
                summary=summary).applied

        self.attempt(f"closure request by {by!r}", work)

    def gate(self) -> None:
        def work(session: Session) -> object:
            row = repo.get_action(session, self.ref)
            assert row.id is not None
            request = repo.latest_closure_request(session, row.id)
            expected = None
            if request is not None and request.gate_passed is None:
                expected = independent_gate(session, self.ref, self.day)
            outcome = closure_requests.evaluate_closure_gate(session, self.ref, as_of=self.day)
            if expected is not None:
                assert request is not None
                assert outcome.applied == expected, (outcome, expected)
                self.gate_seen[request.attempt] = expected
            return outcome.applied

        self.attempt(f"gate {self.day}", work)

    # ------------------------------------------------------------ reading

    def status(self) -> Status:
        with db.unit_of_work() as session:
            return Status(repo.get_action(session, self.ref).status)


def independent_gate(session: Session, ref: str, as_of: date) -> bool:
    """The gate recomputed from the stored facts with the pure domain function."""
    row = repo.get_action(session, ref)
    assert row.id is not None
    verdict = triangulation_gate(
        repo.plan_of(row), repo.evidence_of(session, row.id),
        [repo.to_review(r) for r in repo.reviews_of(session, row.id)], as_of=as_of,
        open_escalations=[str(e.id) for e in repo.open_escalations(session, row.id)],
        open_triggers=[str(t.id) for t in repo.open_triggers(session, row.id)],
        freshness_days=get_settings().evidence_freshness_days)
    return verdict.passed


def check_closure_invariants(driver: Driver) -> None:
    """Closure only with a passing gate at the time of the request and two distinct people:
    the accountable lead asked, the named senior reviewer approved."""
    with db.unit_of_work() as session:
        row = repo.get_action(session, driver.ref)
        assert row.id is not None
        lead = repo.person_by_id(session, row.accountable_lead_id).email
        reviewer = repo.person_by_id(session, row.senior_reviewer_id).email
        assert lead != reviewer
        decisions = list(session.exec(select(DecisionRow).where(
            DecisionRow.action_id == row.id).order_by(col(DecisionRow.id))))
        for decision in decisions:
            assert normalise_email(decision.reviewer_email) == reviewer, decision
            assert normalise_email(decision.reviewer_email) != lead, decision
            # only an answer from the named reviewer with that request's code decides
            assert (decision.kind, decision.attempt, decision.decision) in driver.legit, (
                decision, driver.log)
        status = Status(row.status)
        if status in (Status.AWAITING_CLOSURE_SIGNOFF, Status.ROUTINE_MONITORING):
            request = repo.latest_closure_request(session, row.id)
            assert request is not None, "closure sign-off without a closure request"
            assert normalise_email(request.requested_by) == lead
            assert request.gate_passed is True, request
            assert driver.gate_seen.get(request.attempt) is True, (
                "the gate did not pass on the stored facts when the request was evaluated")
        if status == Status.ROUTINE_MONITORING:
            approvals = [d for d in decisions
                         if d.kind == SignoffKind.CLOSURE.value and d.decision == "approve"]
            assert approvals, "routine monitoring without a closure approval"
            last = approvals[-1]
            assert (last.kind, last.attempt, "approve") in driver.legit, driver.log
            events = [(a.seq, a.event) for a in session.exec(
                select(AuditRow).where(AuditRow.action_ref == driver.ref)
                .order_by(col(AuditRow.seq)))]
            gate_passed = [seq for seq, event in events if event == "status.gate_passed"]
            approved = [seq for seq, event in events if event == "status.approve_closure"]
            assert gate_passed and approved and gate_passed[-1] < approved[-1], events
            requests = list(session.exec(select(ClosureRequestRow).where(
                ClosureRequestRow.action_id == row.id)))
            assert any(r.gate_passed for r in requests)
