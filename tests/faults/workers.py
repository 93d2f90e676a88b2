"""Functions run in separate processes by tests/faults/test_concurrency.py (forked). Each
points the product code at the test's database with its own connections, waits at a
barrier so that all start together, and returns what it saw through a queue."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any


def _run(env: Mapping[str, str], barrier: Any, results: Any, name: str,
         work: Callable[[], Any]) -> None:
    try:
        for key in [k for k in os.environ if k.startswith("RECOVERY_")]:
            del os.environ[key]
        os.environ.update(env)
        from recovery.adapters import db
        from recovery.settings import get_settings

        get_settings.cache_clear()
        # forked: drop the parent's pooled connections without closing them (they are the
        # parent's sockets), then connect afresh
        db.engine_for(get_settings().db_url).dispose(close=False)
        with db.unit_of_work() as session:  # connect before the barrier
            session.connection()
        barrier.wait(timeout=120)
        results.put((name, "ok", work()))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        results.put((name, "error", f"{exc!r}\n{traceback.format_exc()}"))


def add_evidence(env: Mapping[str, str], barrier: Any, results: Any, name: str, ref: str,
                 items: list[dict[str, Any]], today: date, done: str) -> None:
    """Record the items one after another, each in its own unit of work, at the pace of
    people entering them (a few hundredths of a second apart: on SQLite a writer that
    takes the lock back at once would keep every reader waiting until it is done); then
    create the file `done`."""

    def work() -> list[int]:
        import time
        from pathlib import Path

        from recovery.adapters import db
        from recovery.application import evidence_gate

        ids = []
        for item in items:
            with db.unit_of_work() as session:
                row = evidence_gate.add_evidence(session, ref, today=today, **item)
                ids.append(int(row.id or 0))
            time.sleep(0.03)
        Path(done).touch()
        return ids

    _run(env, barrier, results, name, work)


def evaluate_gate(env: Mapping[str, str], barrier: Any, results: Any, name: str, ref: str,
                  as_of: date, done: str) -> None:
    """Evaluate the triangulation gate again and again until the file `done` exists (the
    writer has finished), then once more; every verdict seen."""

    def work() -> list[tuple[bool, tuple[str, ...]]]:
        import time
        from pathlib import Path

        from recovery.adapters import db
        from recovery.application import evidence_gate

        seen = []
        finished = False
        # bounded by time, not by a count: on a loaded machine the writer can take far
        # longer than the gate, and the last verdict must come after its last commit
        deadline = time.monotonic() + 300
        while not finished and time.monotonic() < deadline:
            finished = Path(done).exists()
            with db.unit_of_work() as session:
                verdict = evidence_gate.gate_verdict(session, ref, as_of=as_of)
            seen.append((verdict.passed, tuple(verdict.reasons)))
            time.sleep(0.005)
        return seen

    _run(env, barrier, results, name, work)


def closure_gate(env: Mapping[str, str], barrier: Any, results: Any, name: str, ref: str,
                 delay: float) -> None:
    """The lifecycle's gate task on the pending closure request, once, after `delay`."""

    def work() -> tuple[bool, tuple[str, ...]]:
        import time

        from recovery.adapters import db
        from recovery.application import closure_requests

        time.sleep(delay)
        with db.unit_of_work() as session:
            outcome = closure_requests.evaluate_closure_gate(session, ref)
        return outcome.applied, tuple(outcome.reasons)

    _run(env, barrier, results, name, work)


def apply_signoff(env: Mapping[str, str], barrier: Any, results: Any, name: str, ref: str,
                  pause_key: str, submission: dict[str, str]) -> None:
    """The lifecycle's apply-sign-off task for one answer."""

    def work() -> dict[str, Any]:
        from models.signoff import SignoffKind, Submission
        from recovery.adapters import db
        from recovery.application import signoffs

        with db.unit_of_work() as session:
            outcome = signoffs.apply_signoff(session, ref, SignoffKind.PLAN,
                                             pause_key=pause_key,
                                             submission=Submission(**submission))
        return outcome.model_dump()

    _run(env, barrier, results, name, work)


def flush_mail(env: Mapping[str, str], barrier: Any, results: Any, name: str) -> None:
    """`recovery mail flush`, as the cycles and every lifecycle stage call it."""

    def work() -> dict[str, int]:
        from recovery.adapters import mail

        return mail.flush()

    _run(env, barrier, results, name, work)
