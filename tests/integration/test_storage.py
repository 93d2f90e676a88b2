"""Storage on SQLite and PostgreSQL: services inside units of work against a real database."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from models.action import ActionPlan
from models.errors import InvalidInput, NotFound, RuleRefused
from models.lifecycle import Status
from models.planfile import PeopleFile
from recovery.adapters import audit_log, db
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    ActionStatementRow,
    AuditRow,
    ControlChangeRow,
    EvidenceRow,
    ReviewRow,
    RevisionRow,
    TriggerRow,
    WaitRow,
)
from recovery.application import action_changes, action_plans, evidence_gate, registry, reviews
from recovery.application.reviews import DailyResult
from tests.integration.helpers import (
    dump_tables,
    make_plan,
    open_plan,
    row_counts,
    seed_directory,
    session_for,
)

TODAY = date(2026, 2, 10)


@pytest.fixture
def seeded(database_url: str) -> str:
    seed_directory()
    return database_url


def _add(ref: str, source: str, value: float | None, observed: date, by: str,
         sample: int | None = 20) -> None:
    with db.unit_of_work() as session:
        evidence_gate.add_evidence(
            session, ref, source=source, value=value,
            sample_size=sample if value is not None else None, observed_on=observed,
            reference=f"{source} file, entry of {observed.isoformat()}", by=by, today=TODAY,
        )


def _in_recovery(ref: str, *, since: date) -> None:
    """Given an action whose plan was signed off on `since` (the sign-off itself is the
    lifecycle tests' subject): the daily review looks at it from then on."""
    with db.unit_of_work() as session:
        row = repo.get_action(session, ref)
        row.status, row.recovery_started_on = Status.IN_RECOVERY.value, since
        session.add(row)


def _daily_review(day: date) -> DailyResult:
    with db.unit_of_work() as session:
        return reviews.run_daily(session, as_of=day)


def _gate(ref: str, as_of: date) -> tuple[bool, list[str]]:
    with db.unit_of_work() as session:
        verdict = evidence_gate.gate_verdict(session, ref, as_of=as_of)
    return verdict.passed, list(verdict.reasons)


# ---------------------------------------------------------------- opening actions


def test_open_action_persists_ref_statements_revision_and_audit(seeded: str) -> None:
    plan = make_plan(quality_statements=["safe.safeguarding",
                                         "well-led.governance-management-sustainability"])
    assert open_plan(plan) == "ROSE-SG-001"
    assert open_plan(make_plan()) == "ROSE-SG-002"  # sequence per location + domain
    assert open_plan(make_plan(risk_domain="safety",
                               quality_statements=["safe.safe-environments"])) == "ROSE-SF-001"
    assert open_plan(make_plan(location="quay house", accountable_lead="meds.lead@quay.example",
                               senior_reviewer="RM@Quay.example")) == "QUAY-SG-001"

    with session_for(seeded) as session:
        row = repo.get_action(session, "rose-sg-001")
        assert row.id is not None
        assert (row.status, row.risk_level, row.risk_score) == ("draft", "high", 25)
        assert row.risk_reasons and row.risk_reasons[0].startswith("score 25")
        assert row.baseline_on == date(2026, 1, 5) and row.deadline == date(2026, 3, 1)
        assert repo.person_by_id(session, row.accountable_lead_id).email == "sg.lead@rose.example"
        assert repo.person_by_id(session, row.senior_reviewer_id).email == \
            "ni@harbourcare.example"
        links = session.exec(
            select(ActionStatementRow).where(ActionStatementRow.action_id == row.id)
        ).all()
        assert sorted((s.framework_id, s.statement_id) for s in links) == [
            ("cqc-saf-2024", "safe.safeguarding"),
            ("cqc-saf-2024", "well-led.governance-management-sustainability"),
        ]
        revisions = session.exec(
            select(RevisionRow).where(RevisionRow.action_id == row.id)).all()
        assert [r.version for r in revisions] == [1]
        assert repo.plan_of(row) == plan  # the stored plan reads back as the plan given
        opened = [e for e in audit_log.entries(session) if e.event == "action.opened"]
        assert [e.action_ref for e in opened] == [
            "ROSE-SG-001", "ROSE-SG-002", "ROSE-SF-001", "QUAY-SG-001"]
        assert opened[0].details["risk_level"] == "high"
        assert opened[3].details["senior_reviewer"] == "rm@quay.example"
        verification = audit_log.verify(session)
    assert verification.ok and verification.entries == 2 + 4  # catalogue, people, 4 opens


def test_editing_an_audit_row_breaks_verification(seeded: str) -> None:
    open_plan(make_plan())
    _add("ROSE-SG-001", "audits", 70, date(2026, 1, 20), "rm@rose.example")
    with session_for(seeded) as session:
        before = audit_log.verify(session)
        assert before.ok and before.entries == 4
    with db.engine_for(seeded).begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone.else@rose.example' "
                          "WHERE seq = 3"))
    with session_for(seeded) as session:
        after = audit_log.verify(session)
    assert not after.ok
    assert after.first_bad_seq == 3
    assert after.reason and "altered" in after.reason


def test_deleting_an_audit_row_breaks_verification(seeded: str) -> None:
    open_plan(make_plan())
    with db.engine_for(seeded).begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    with session_for(seeded) as session:
        result = audit_log.verify(session)
    assert not result.ok
    # the break is where entry 2 should be (or the entry that now stands there)
    assert result.first_bad_seq in (2, 3)


# ---------------------------------------------------------------- evidence and the gate


def test_evidence_is_stored_with_its_pillar_and_audited(seeded: str) -> None:
    open_plan(make_plan())
    _add("rose-sg-001", "safeguarding_logs", 80, date(2026, 2, 1), "  RM@Rose.Example ")
    _add("ROSE-SG-001", "incident_trends", None, date(2026, 2, 2), "rm@rose.example")
    with session_for(seeded) as session:
        rows = session.exec(select(EvidenceRow).order_by(col(EvidenceRow.id))).all()
        assert [(r.source, r.pillar, r.value, r.sample_size, r.recorded_by) for r in rows] == [
            ("safeguarding_logs", "care_records", 80.0, 20, "rm@rose.example"),
            ("incident_trends", "supporting", None, None, "rm@rose.example"),
        ]
        assert rows[0].observed_on == date(2026, 2, 1)
        added = [e for e in audit_log.entries(session, "ROSE-SG-001")
                 if e.event == "evidence.added"]
        assert [e.details["pillar"] for e in added] == ["care_records", "supporting"]
        assert audit_log.verify(session).ok


def test_gate_reasons_come_from_stored_data_until_it_passes(seeded: str) -> None:
    ref = open_plan(make_plan())
    as_of = date(2026, 2, 8)  # freshness window from 2026-01-11

    passed, reasons = _gate(ref, as_of)
    assert not passed
    for pillar in ("care records", "audits", "feedback", "staff practice"):
        assert f"no {pillar} evidence since 2026-01-11" in reasons
    assert "target met in 0 of the last 2 review periods (0 held); 2 consecutive are needed" \
        in reasons

    lead = "sg.lead@rose.example"
    _add(ref, "care_records", 96, date(2026, 2, 1), lead)
    _add(ref, "audits", 85, date(2026, 2, 2), lead)
    _add(ref, "feedback", 50, date(2026, 2, 3), lead)
    _add(ref, "staff_practice", 97, date(2026, 2, 4), lead)
    _add(ref, "audits", 99, date(2026, 1, 6), "rm@rose.example")  # stale: outside the window
    with db.unit_of_work() as session:
        action = repo.get_action(session, ref)
        assert action.id is not None
        session.add(TriggerRow(action_id=action.id, description="staff unsure who to call",
                               raised_by="rm@rose.example", raised_on=date(2026, 2, 4)))
    passed, reasons = _gate(ref, as_of)
    assert not passed
    assert not any(r.startswith("no ") for r in reasons)
    assert "audit of 2026-02-02 shows 85%, target at least 95%" in reasons
    assert "feedback of 2026-02-03 shows 50%, a decline from the baseline 60%" in reasons
    assert any(r.startswith(f"all recent evidence was recorded by the accountable lead ({lead})")
               for r in reasons)
    assert ("trigger still open: staff unsure who to call (raised 2026-02-04 by "
            "rm@rose.example)") in reasons

    _add(ref, "audits", 100, date(2026, 2, 5), "rm@rose.example")
    _add(ref, "feedback", 96, date(2026, 2, 5), "rm@rose.example")
    _in_recovery(ref, since=date(2026, 2, 6))
    for day in (date(2026, 2, 6), date(2026, 2, 7)):
        assert _daily_review(day).reviewed == 1
    with session_for(seeded) as session:
        assert [r.target_met for r in session.exec(select(ReviewRow))] == [True, True]
    passed, reasons = _gate(ref, as_of)
    assert reasons == ["trigger still open: staff unsure who to call (raised 2026-02-04 by "
                       "rm@rose.example)"]
    with db.unit_of_work() as session:
        for trigger in session.exec(select(TriggerRow)):
            trigger.closed_on = as_of
            session.add(trigger)
    assert _gate(ref, as_of) == (True, [])
    # only reviews held by the gate date count
    passed, reasons = _gate(ref, date(2026, 2, 6))
    assert not passed and reasons == [
        "target met in 1 of the last 2 review periods (1 held); 2 consecutive are needed"]


# ---------------------------------------------------------------- weak progress


def test_extension_refused_without_control_change_and_accepted_with_one(seeded: str) -> None:
    ref = open_plan(make_plan())
    before = dump_tables(seeded)
    with pytest.raises(RuleRefused) as refused, db.unit_of_work() as session:
        action_changes.extend_deadline(session, ref, new_deadline=date(2026, 3, 15),
                                 control_change="more staff", by="rm@rose.example",
                                 today=TODAY)
    assert refused.value.rule == "deadline extension"
    assert any(r.startswith("control-change:") for r in refused.value.reasons)
    with pytest.raises(RuleRefused) as junior, db.unit_of_work() as session:
        action_changes.extend_deadline(
            session, ref, new_deadline=date(2026, 3, 15), by="team.leader@rose.example",
            control_change="Duty manager reviews every concern at 14:00 and 20:00", today=TODAY)
    assert "team leader" in junior.value.reasons[0]
    assert dump_tables(seeded) == before

    change = "Duty manager reviews every concern at 14:00 and 20:00"
    with db.unit_of_work() as session:
        action_changes.extend_deadline(session, ref, new_deadline=date(2026, 3, 15),
                                 control_change=f"  {change} ", by="RM@rose.example ",
                                 today=TODAY)
    with session_for(seeded) as session:
        row = repo.get_action(session, ref)
        assert row.deadline == date(2026, 3, 15)
        assert repo.plan_of(row).target.deadline == date(2026, 3, 15)
        changes = session.exec(select(ControlChangeRow)).all()
        assert [(c.what, c.decided_by, c.decided_on, c.reason, c.old_deadline, c.new_deadline)
                for c in changes] == [
            (change, "rm@rose.example", TODAY, "extension", date(2026, 3, 1), date(2026, 3, 15))]
        last = audit_log.entries(session, ref)[-1]
        assert last.event == "action.deadline_extended"
        assert last.details == {"from": "2026-03-01", "to": "2026-03-15",
                                "on": TODAY.isoformat(), "control_change": change,
                                "control_change_id": changes[0].id,
                                "escalation_id": None}  # no escalation open: none resolved
        assert audit_log.verify(session).ok


# ---------------------------------------------------------------- reviews


def test_the_daily_review_records_an_action_once_per_date(seeded: str) -> None:
    ref = open_plan(make_plan())
    _in_recovery(ref, since=date(2026, 2, 2))
    _add(ref, "audits", 80, date(2026, 2, 1), "rm@rose.example")
    day = date(2026, 2, 3)
    assert _daily_review(day).reviewed == 1
    counts = row_counts(seeded)
    again = _daily_review(day)
    assert (again.reviewed, again.already_reviewed) == (0, 1)
    assert row_counts(seeded) == counts
    _daily_review(date(2026, 2, 4))
    with session_for(seeded) as session:
        assert [r.as_of for r in session.exec(select(ReviewRow).order_by(col(ReviewRow.as_of)))
                ] == [day, date(2026, 2, 4)]
        assert [a.details["as_of"] for a in session.exec(
            select(AuditRow).where(AuditRow.event == "cycle.daily_review")
            .order_by(col(AuditRow.seq)))] == ["2026-02-03", "2026-02-04"]
        assert audit_log.verify(session).ok
        # each entry covers its reviews' stored values: one edited is reported by its day
        session.execute(text("UPDATE review SET reasons = '[\"edited\"]' WHERE as_of = :d"),
                        {"d": day})
        session.commit()
        broken = audit_log.verify(session)
    assert not broken.ok
    assert broken.reason is not None and "the daily review of 2026-02-03" in broken.reason


# ---------------------------------------------------------------- transactions


def test_refused_commands_leave_no_rows(seeded: str) -> None:
    open_plan(make_plan())
    counts = row_counts(seeded)
    snapshot = dump_tables(seeded)

    # writes a location, then refuses a person: all of it rolls back
    people = PeopleFile.model_validate({
        "provider": "Harbour Care Group", "locations": [{"name": "Birch Lodge"}],
        "people": [
            {"name": "A Manager", "email": "am@other.example", "role": "registered_manager",
             "location": "Birch Lodge"},
            {"name": "No Home", "email": "nh@other.example", "role": "team_leader"},
        ]})
    with pytest.raises(InvalidInput, match="location"), db.unit_of_work() as session:
        registry.import_people(session, people)

    # an action opened (and flushed) in the same unit as a refused extension is gone too
    with pytest.raises(RuleRefused), db.unit_of_work() as session:
        action_plans.open_action(session, make_plan(), actor="test")
        action_changes.extend_deadline(session, "ROSE-SG-002", new_deadline=date(2026, 3, 9),
                                 control_change="", by="rm@rose.example", today=TODAY)

    with pytest.raises(RuleRefused, match="separation of duties"), \
            db.unit_of_work() as session:
        action_plans.open_action(session, make_plan(senior_reviewer="team.leader@rose.example"),
                             actor="test")
    with pytest.raises(InvalidInput, match="observed_on"), db.unit_of_work() as session:
        evidence_gate.add_evidence(session, "ROSE-SG-001", source="audits", value=90,
                              sample_size=10, observed_on=date(2026, 2, 11),
                              reference="audit file", by="rm@rose.example", today=TODAY)
    with pytest.raises(NotFound), db.unit_of_work() as session:
        evidence_gate.add_evidence(session, "ROSE-SG-009", source="audits", value=90,
                              sample_size=10, observed_on=TODAY, reference="audit file",
                              by="rm@rose.example", today=TODAY)

    assert row_counts(seeded) == counts
    assert dump_tables(seeded) == snapshot
    with session_for(seeded) as session:
        assert audit_log.verify(session).ok
        assert len(session.exec(select(ActionRow)).all()) == 1
        assert session.exec(select(AuditRow).order_by(col(AuditRow.seq).desc())).first() \
            is not None
    # the sequence did not skip a number for the rolled-back action
    assert open_plan(make_plan()) == "ROSE-SG-002"


# ---------------------------------------------------------------- concurrency


def test_concurrent_opens_get_distinct_refs_and_a_sound_chain(seeded: str) -> None:
    """Several writers at once: every open succeeds with its own reference (PostgreSQL used
    to fail all but one on uq_action_seq) and the audit chain stays whole."""
    plans = [make_plan() for _ in range(4)] + [
        make_plan(risk_domain="safety", quality_statements=["safe.safe-environments"])
        for _ in range(2)
    ]
    barrier = threading.Barrier(len(plans))
    refs: list[str] = []
    errors: list[BaseException] = []

    def work(plan: ActionPlan) -> None:
        barrier.wait()
        try:
            refs.append(open_plan(plan))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(refs) == ["ROSE-SF-001", "ROSE-SF-002", "ROSE-SG-001", "ROSE-SG-002",
                            "ROSE-SG-003", "ROSE-SG-004"]
    with session_for(seeded) as session:
        verification = audit_log.verify(session)
    assert verification.ok and verification.entries == 2 + len(plans)


def _evidence_indexes(url: str) -> set[str]:
    from sqlalchemy import inspect

    with db.engine_for(url).connect() as conn:
        return {ix["name"] for ix in inspect(conn).get_indexes("evidence")}


def test_migration_0002_indexes_evidence_by_pillar_and_keeps_it(seeded: str) -> None:
    """A database at 0001 with evidence in it takes 0002 (the per-pillar index the reviews,
    gates and packs use) without losing a row; 0002 goes back down cleanly."""
    from alembic import command

    open_plan(make_plan())
    _add("ROSE-SG-001", "safeguarding_logs", 80, date(2026, 2, 1), "rm@rose.example")
    _add("ROSE-SG-001", "audits", 85, date(2026, 2, 2), "rm@rose.example")
    before = row_counts(seeded)
    assert "ix_evidence_action_pillar_observed" in _evidence_indexes(seeded)
    cfg = db.alembic_config(seeded)
    try:
        command.downgrade(cfg, "0001")
        assert "ix_evidence_action_pillar_observed" not in _evidence_indexes(seeded)
        assert "ix_evidence_action_observed" in _evidence_indexes(seeded)
    finally:
        command.upgrade(cfg, "head")  # the PostgreSQL database is shared by the session
    assert "ix_evidence_action_pillar_observed" in _evidence_indexes(seeded)
    assert row_counts(seeded) == before
    assert _gate("ROSE-SG-001", TODAY)[1], "the gate reads the evidence as before"



def test_migration_0005_gives_refusals_written_before_it_their_codes(seeded: str) -> None:
    """Waits refused before 0005 kept only words; 0005 gives the two that decide a new
    sign-off code (expired, withdrawn) their codes, so a request waiting across the upgrade
    is reissued as before."""
    import sqlalchemy as sa
    from alembic import command

    open_plan(make_plan())
    with session_for(seeded) as session:
        action_id = repo.get_action(session, "ROSE-SG-001").id
    wait = sa.table("lifecycle_wait", sa.column("action_id", sa.Integer()),
                    sa.column("base", sa.String()), sa.column("pause_key", sa.String()),
                    sa.column("outcome", sa.String()), sa.column("detail", sa.JSON()),
                    sa.column("processed_at", sa.DateTime(timezone=True)))
    details = {
        "plan-signoff-1-1": ["the sign-off code expired at 2026-02-01 09:00 UTC"],
        "plan-signoff-1-2": ["the sign-off code was withdrawn: it was presented by someone "
                             "other than ni@provider.example, who is sent a new one"],
        "plan-signoff-1-3": ["the sign-off code is wrong"],
    }
    cfg = db.alembic_config(seeded)
    try:
        command.downgrade(cfg, "0004")
        with db.engine_for(seeded).begin() as conn:
            for key, detail in details.items():
                conn.execute(wait.insert().values(
                    action_id=action_id, base="plan-signoff-1", pause_key=key,
                    outcome="refused", detail=detail, processed_at=datetime.now(UTC)))
    finally:
        command.upgrade(cfg, "head")  # the PostgreSQL database is shared by the session
    with session_for(seeded) as session:
        codes = {w.pause_key: w.codes for w in session.exec(select(WaitRow))}
    assert codes == {"plan-signoff-1-1": ["code_expired"], "plan-signoff-1-2": ["code_withdrawn"],
                     "plan-signoff-1-3": []}
