"""The daily cycle's batched writes: `audit_log.append_many` writes the chain that `append`
writes one entry at a time, `mail.enqueue_many` the rows `enqueue` writes one email at a
time, and the cycle in chunks writes what it writes in one chunk, each review equal to the
one assessed from the action's whole history (SQLite, then PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from benchmarks.generate import AS_OF, Size, generate
from models.lifecycle import OPEN
from models.review import assess_progress
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import ActionRow, AuditRow, OutboxRow, ReviewRow
from recovery.application import reviews as cycles
from recovery.application import summaries
from tests.integration.helpers import session_for

TINY = Size("tiny", 10, 500, 20)
DUMPS = {
    "review": "SELECT id, action_id, as_of, cadence, measured_value, trajectory_value, "
              "target_met, rating, days_to_deadline, triggers, reasons, pillars, reviewed_by "
              "FROM review ORDER BY id",
    "escalation": "SELECT id, action_id, opened_on, reasons, control_change_id, resolved_on "
                  "FROM escalation ORDER BY id",
    "action": "SELECT id, status, escalated, monitoring_since FROM recovery_action ORDER BY id",
    "outbox": "SELECT id, dedupe_key, action_ref, recipients, subject, text_body, html_body, "
              "attempts, sent_at FROM outbox ORDER BY id",
    "audit": "SELECT seq, actor, action_ref, event, details, dedupe_key, prev_hash, hash "
             "FROM audit_log ORDER BY seq",
}


class _Clock:
    """datetime for audit_log with a `now` that steps one second per call from a fixed
    instant: the same entries appended twice get the same timestamps, so the same hashes."""

    def __init__(self) -> None:
        self.t = datetime(2027, 2, 1, 7, 0, tzinfo=UTC)

    def now(self, tz: Any = None) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t

    @staticmethod
    def fromisoformat(value: str) -> datetime:
        return datetime.fromisoformat(value)


def _entries() -> list[audit_log.Entry]:
    return [
        audit_log.Entry("daily-review", "action.escalated", "A-1", {"as_of": date(2027, 2, 1),
                                                                    "reasons": ["x"]}, "k1"),
        audit_log.Entry("daily-review", "status.relapse", "A-2", {"n": 1}, None),
        audit_log.Entry("daily-review", "action.escalated", "A-1", {"again": True}, "k1"),
        audit_log.Entry("someone@x.example", "action.de_escalated", None, {}, "k2"),
    ]


def _chain(url: str) -> list[tuple[Any, ...]]:
    with session_for(url) as session:
        return [tuple(r) for r in session.execute(text(DUMPS["audit"]))]


def test_append_many_writes_the_chain_that_append_writes_one_by_one(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_for(database_url) as session:
        audit_log.append(session, actor="system", event="seed", action_ref=None, details={},
                         dedupe_key="k2")
        session.commit()
    monkeypatch.setattr(audit_log, "datetime", _Clock())
    with session_for(database_url) as session:
        seqs = [audit_log.append(session, actor=e.actor, event=e.event,
                                 action_ref=e.action_ref, details=e.details,
                                 dedupe_key=e.dedupe_key).seq for e in _entries()]
        one_by_one = [tuple(r) for r in session.execute(text(DUMPS["audit"]))]
        session.rollback()
    monkeypatch.setattr(audit_log, "datetime", _Clock())
    with session_for(database_url) as session:
        assert audit_log.append_many(session, _entries()) == seqs == [2, 3, 2, 1]
        batched = [tuple(r) for r in session.execute(text(DUMPS["audit"]))]
        session.commit()
    assert batched == one_by_one
    assert len(batched) == 3  # the repeated key and the key already in the chain: skipped
    with session_for(database_url) as session:
        audit_log.append(session, actor="system", event="after", action_ref=None, details={})
        assert audit_log.append_many(session, []) == []
        session.commit()
        verification = audit_log.verify(session)
    assert verification.ok and verification.entries == 4


def test_enqueue_many_stores_what_enqueue_stores(database_url: str) -> None:
    def emails() -> list[mail.Email]:
        return [mail.Email(f"weekly:test:{n}", [f"RM{n}@x.example ", "ni@x.example"],
                           "escalation", {"ref": f"A-{n}", "title": "T", "location": "L",
                                          "reasons": ["r"], "as_of": AS_OF,
                                          "escalation_actions": ["call"], "run_url": "u"},
                           f"A-{n}") for n in (1, 2, 1)]

    columns = ("dedupe_key", "action_ref", "recipients", "subject", "text_body",
               "html_body", "attempts", "sent_at", "last_error")
    with session_for(database_url) as session:
        for e in emails():
            mail.enqueue(session, dedupe_key=e.dedupe_key, to=e.to, template=e.template,
                         context=e.context, action_ref=e.action_ref)
        one_by_one = [tuple(getattr(r, c) for c in columns) for r in session.exec(
            select(OutboxRow).order_by(col(OutboxRow.id)))]
        session.rollback()
    with session_for(database_url) as session:
        assert mail.enqueue_many(session, emails()) == 4  # one row per recipient
        assert mail.enqueue_many(session, emails()) == 0
        batched = [tuple(getattr(r, c) for c in columns) for r in session.exec(
            select(OutboxRow).order_by(col(OutboxRow.id)))]
        due = mail.due(session, datetime.now(UTC) + timedelta(seconds=1))
    assert batched == one_by_one and len(batched) == 4
    assert [(r.dedupe_key, r.recipients) for r in due] == [
        ("weekly:test:1:ni@x.example", ["ni@x.example"]),
        ("weekly:test:1:rm1@x.example", ["rm1@x.example"]),
        ("weekly:test:2:ni@x.example", ["ni@x.example"]),
        ("weekly:test:2:rm2@x.example", ["rm2@x.example"])]


def _reset_sequences(url: str) -> None:
    """PostgreSQL sequences do not roll back: put them where a first run would find them."""
    if not url.startswith("postgresql"):
        return
    with session_for(url) as session:
        for table in ("review", "escalation", "outbox"):
            session.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"))
        session.commit()


def _cycle(url: str, days: list[date]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results = []
    with session_for(url) as session:
        for day in days:
            results.append(cycles.run_daily(session, as_of=day).model_dump())
        dump = {k: [tuple(r) for r in session.execute(text(sql))] for k, sql in DUMPS.items()}
        session.rollback()
    _reset_sequences(url)
    return results, dump


def test_the_daily_cycle_in_small_chunks_writes_what_one_chunk_writes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(database_url, TINY)
    days = [AS_OF, AS_OF + timedelta(days=1), AS_OF + timedelta(days=7)]
    # the day's audit entry names when its reviews were written: the same in both runs
    monkeypatch.setattr(cycles, "utcnow", lambda: datetime(2027, 2, 1, 7, 0, tzinfo=UTC))
    monkeypatch.setattr(audit_log, "datetime", _Clock())
    whole = _cycle(database_url, days)
    monkeypatch.setattr(cycles, "ID_CHUNK", 7)
    monkeypatch.setattr(audit_log, "datetime", _Clock())
    chunked = _cycle(database_url, days)
    assert chunked == whole
    results, dump = whole
    first = results[0]
    assert first["reviewed"] > 300
    assert first["escalated"] and first["de_escalated"] and first["reopened"]
    assert results[1]["already_reviewed"] == 0 and results[1]["reviewed"] > 0
    assert len(dump["outbox"]) >= len(first["escalated"])


def test_each_review_is_the_one_assessed_from_the_whole_history(database_url: str) -> None:
    generate(database_url, TINY)
    with session_for(database_url) as session:
        before = {r.id: r for r in session.exec(select(ActionRow).where(
            col(ActionRow.status).in_([s.value for s in OPEN]),
            ActionRow.baseline_on <= AS_OF))}
        last = cycles._last_reviews(session, list(before), AS_OF)
        expected = {}
        for action_id, row in before.items():
            previous = last.get(action_id)
            cadence = summaries.cadence_of(row, AS_OF,
                                          last_rating=previous.rating if previous else None)
            assessment = assess_progress(
                repo.plan_of(row), repo.evidence_of(session, action_id), as_of=AS_OF,
                cadence=cadence, last_review=repo.to_review(previous) if previous else None,
                previous_below_trajectory=previous is not None
                and "below_trajectory" in previous.triggers,
                reviews_start=row.recovery_started_on)
            expected[action_id] = summaries.review_values(action_id, assessment, cadence,
                                                         "daily-review")
        result = cycles.run_daily(session, as_of=AS_OF)
        stored = {r.action_id: r.model_dump(exclude={"id", "created_at"}) for r in session.exec(
            select(ReviewRow).where(ReviewRow.as_of == AS_OF))}
        chain = session.exec(select(AuditRow).where(AuditRow.event == "action.escalated")).all()
        session.commit()
    assert result.reviewed == len(stored) > 100
    assert stored == {k: v for k, v in expected.items() if k in stored}
    assert sorted(e.action_ref for e in chain) == sorted(result.escalated)


def test_monthly_minutes_are_recorded_in_bulk_once_for_every_high_risk_action(
    database_url: str,
) -> None:
    """The nominated individual's answer records, for each high-risk action of the month's
    request, one assurance entry, one governance-minutes evidence item and one audit entry
    on an intact chain; the same answer again records nothing more."""
    import re

    from models.assurance import OUTCOMES
    from recovery.adapters.tables import AssuranceEntryRow, EvidenceRow
    from recovery.application import assurance

    generate(database_url, TINY)
    now = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
    with session_for(database_url) as session:
        wait = assurance.open_request(session, as_of=AS_OF, flow_run_id=None, now=now)
        [email] = session.exec(select(OutboxRow).where(
            OutboxRow.dedupe_key == f"assurance:{wait.month}")).all()
        session.commit()
    found = re.search(r"code:\s*(\d{6})", mail.outgoing(email)[1])
    assert found and len(wait.refs) > 20
    answer: dict[str, Any] = {"reviewer_email": wait.reviewer_email, "code": found.group(1)}
    for i, ref in enumerate(wait.refs):
        answer[f"{assurance.field_name(ref)}_outcome"] = OUTCOMES[i % 3]
        answer[f"{assurance.field_name(ref)}_note"] = f"{ref} read at the governance meeting"
    for _ in range(2):  # the task re-run after a crash: nothing twice
        with session_for(database_url) as session:
            assert assurance.apply(session, month=wait.month, answer=answer,
                                   now=now + timedelta(minutes=5)) == []
            session.commit()
    with session_for(database_url) as session:
        ids = dict(session.exec(select(ActionRow.id, ActionRow.ref).where(
            col(ActionRow.ref).in_(wait.refs))).all())
        entries = session.exec(select(AssuranceEntryRow).where(
            AssuranceEntryRow.recorded_on == date(2027, 2, 1))).all()
        minutes = session.exec(select(EvidenceRow).where(
            EvidenceRow.source == "governance_minutes",
            col(EvidenceRow.reference).startswith(f"Provider assurance minutes {wait.month}"),
        )).all()
        recorded = session.exec(select(AuditRow).where(
            AuditRow.event == "assurance.recorded",
            col(AuditRow.dedupe_key).startswith(f"assurance.recorded:{wait.month}:"))).all()
        chain = audit_log.verify(session)
    expected = {ref: OUTCOMES[i % 3] for i, ref in enumerate(wait.refs)}
    assert {ids[e.action_id]: e.outcome for e in entries} == expected
    assert len(entries) == len(wait.refs)
    assert sorted(ids[m.action_id] for m in minutes) == sorted(wait.refs)
    assert all(m.recorded_by == wait.reviewer_email and m.pillar == "supporting"
               and m.observed_on >= date(2027, 2, 1) for m in minutes)
    assert sorted(r.action_ref for r in recorded) == sorted(wait.refs)
    assert {r.details["outcome"] for r in recorded} == set(OUTCOMES)
    assert chain.ok


def test_an_edited_review_breaks_the_audit_chain_and_an_untouched_one_verifies(
    database_url: str,
) -> None:
    """The day's `cycle.daily_review` entry holds the digest of every review the run
    wrote: one value edited, or one review deleted, and `audit verify` exits 3 naming the
    day. Reviews written before digests were recorded (here, the generator's) are not
    covered, and do not fail verification."""
    from tests.integration.helpers import cli

    generate(database_url, TINY)
    days = [AS_OF, AS_OF + timedelta(days=1)]
    with session_for(database_url) as session:
        written = [cycles.run_daily(session, as_of=day).reviewed for day in days]
        session.commit()
    assert all(written)

    def verify() -> Any:
        result = cli("audit", "verify", "--no-prefect", "--json")
        return result.exit_code, result.json()

    def execute(sql: str, **params: Any) -> None:
        with session_for(database_url) as session:
            session.execute(text(sql), params)
            session.commit()

    assert verify()[0] == 0
    with session_for(database_url) as session:
        target, value = session.execute(text(
            "SELECT id, trajectory_value FROM review WHERE as_of = :d ORDER BY id LIMIT 1"),
            {"d": days[0]}).one()
        older = session.execute(text("SELECT min(id) FROM review WHERE as_of < :d"),
                                {"d": days[0]}).scalar_one()
    execute("UPDATE review SET trajectory_value = :v WHERE id = :id", v=value + 0.5, id=target)
    code, data = verify()
    assert code == 3 and data["ok"] is False
    assert f"the daily review of {days[0].isoformat()}" in data["reason"]
    assert "was altered after it was written" in data["reason"]
    execute("UPDATE review SET trajectory_value = :v WHERE id = :id", v=value, id=target)
    assert verify()[0] == 0  # the digest is of the values: put back, they verify again

    execute("DELETE FROM review WHERE id = (SELECT max(id) FROM review WHERE as_of = :d)",
            d=days[1])
    code, data = verify()
    assert code == 3
    assert f"the daily review of {days[1].isoformat()}" in data["reason"]
    assert f"({written[1]} written, {written[1] - 1} there now)" in data["reason"]

    # what no entry covers (reviews from before the digests) verifies as it did
    with session_for(database_url) as session:
        assert session.execute(text("SELECT COUNT(*) FROM audit_log WHERE CAST(details AS "
                                    "TEXT) LIKE '%sha256%'")).scalar_one() == len(days)
    execute("UPDATE review SET rating = 'green' WHERE id = :id", id=older)
    assert verify()[1]["reason"] == data["reason"]  # still only the deletion reported
