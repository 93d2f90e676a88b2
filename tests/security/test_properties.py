"""Properties of the domain and the application layer, on a real SQLite database.

1. No sequence of evidence, reviews, closure requests, gate evaluations and sign-off
   decisions (by anyone, with any code) lets an action reach routine monitoring without a
   passing triangulation gate on the facts at the time of the closure request, asked for
   by the accountable lead and approved by the named senior reviewer, a different person.
2. The audit chain verifies after any such sequence, and fails after any edit of a past
   entry, naming the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from models.signoff import SignoffKind
from recovery.adapters import audit_log, db
from recovery.adapters.tables import AuditRow
from tests.security.driver import (
    GOOD_RATIONALE,
    LEAD,
    RECORDERS,
    SIGNERS,
    Driver,
    check_closure_invariants,
    fresh_world,
)

PILLAR_SOURCES = ("care_records", "audits", "feedback", "staff_practice")
SETTINGS = settings(max_examples=30, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class Op:
    name: str
    args: tuple[Any, ...] = ()

    def apply(self, driver: Driver) -> None:
        if self.name == "signoff":
            kind, signer, right, decision, rationale = self.args
            driver.signoff(kind, signer=signer, right_code=right, decision=decision,
                           rationale=rationale)
        else:
            getattr(driver, self.name)(*self.args)


def ops(name: str, *strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.tuples(*strategies).map(lambda args: Op(name, tuple(args)))


#: The named reviewer is drawn more often than anyone else, so that many sequences do
#: reach closure and the property is not vacuous.
signers = st.sampled_from([*["reviewer"] * 4, *SIGNERS])
rationales = st.sampled_from([GOOD_RATIONALE, GOOD_RATIONALE, "ok", " " * 25])
evidence_values = st.sampled_from([100.0, 100.0, 96.0, 80.0, 55.0, 0.0])
everything = st.one_of(
    ops("submit"),
    ops("revise"),
    ops("evidence", st.sampled_from([PILLAR_SOURCES, PILLAR_SOURCES, ("audits",),
                                     ("feedback", "staff_practice"), ("incident_trends",)]),
        evidence_values, st.sampled_from(RECORDERS), st.integers(0, 3)),
    ops("daily"),
    ops("advance", st.integers(1, 4)),
    ops("request_closure", st.sampled_from([LEAD, LEAD, f"  {LEAD.upper()}",
                                            "rm@rose.example", "stranger@x.example"]),
        st.sampled_from(["All four pillars at 100% and two reviews on target", "done"])),
    ops("gate"),
    ops("signoff", st.sampled_from([SignoffKind.PLAN, SignoffKind.CLOSURE]), signers,
        st.booleans(), st.sampled_from(["approve", "approve", "reject"]), rationales),
)
#: Someone else answers the form with the request's own (right) code, at the very moment
#: it is live: the named reviewer's email is the only thing that should stop it.
impostors = st.tuples(
    st.sampled_from([s for s in SIGNERS if not s.startswith("reviewer")]),
    st.sampled_from(["approve", "reject"]))
#: The lifecycle's usual order, to be shuffled into and interleaved with anything else.
happy = [Op("submit"), Op("signoff", (SignoffKind.PLAN, "reviewer", True, "approve",
                                       GOOD_RATIONALE)),
         Op("evidence", (PILLAR_SOURCES, 100.0, "rm@rose.example", 0)), Op("daily"),
         Op("advance", (1,)), Op("daily"),
         Op("request_closure", (LEAD, "All four pillars at 100% and two reviews on target")),
         Op("gate"), Op("signoff", (SignoffKind.CLOSURE, "reviewer", True, "approve",
                                    GOOD_RATIONALE))]


@st.composite
def sequences(draw: st.DrawFn) -> list[Op]:
    """A third of the time random operations after the plan's submission (and often its
    approval); otherwise the
    happy path's steps (each sometimes left out) with random operations in between."""
    if draw(st.integers(0, 2)) == 0:
        start = happy[:2] if draw(st.booleans()) else happy[:1]
        return [*start, *draw(st.lists(everything, max_size=14))]
    out: list[Op] = []
    for step in happy:
        out += draw(st.lists(everything, max_size=2))
        if step.name == "signoff" and draw(st.booleans()):
            signer, decision = draw(impostors)
            out.append(Op("signoff", (step.args[0], signer, True, decision, GOOD_RATIONALE)))
        if draw(st.integers(0, 11)) > 0:
            out.append(step)
    return out


def run(sequence: list[Op], *, check: bool = True) -> Driver:
    driver = Driver()
    for op in sequence:
        op.apply(driver)
        if check:
            check_closure_invariants(driver)
    return driver


# ---------------------------------------------------------------- properties


def test_the_happy_path_reaches_routine_monitoring(world_template: Path) -> None:
    """The driver can close an action: the property below is not vacuous."""
    with fresh_world(world_template):
        driver = run(happy)
        assert driver.status().value == "routine_monitoring", driver.log


@pytest.mark.parametrize("signer", [s for s in SIGNERS if not s.startswith("reviewer")])
def test_closure_by_anyone_but_the_named_reviewer_is_refused(
    world_template: Path, signer: str
) -> None:
    with fresh_world(world_template):
        driver = run(happy[:-1])
        assert driver.status().value == "awaiting_closure_signoff", driver.log
        outcome = driver.signoff(SignoffKind.CLOSURE, signer=signer, right_code=True,
                                 decision="approve")
        assert not outcome.applied
        # someone in the directory is told who signs; an address in nobody's name is a typo
        rule = "not in the staff directory" if signer == "stranger" else "named senior reviewer"
        assert any(rule in r for r in outcome.reasons), outcome.reasons
        if signer.startswith("lead"):
            assert "the accountable lead may not sign off their own action" in outcome.reasons
        assert driver.status().value == "awaiting_closure_signoff"


@SETTINGS
@given(sequence=sequences())
def test_no_sequence_closes_without_a_passing_gate_and_two_people(
    world_template: Path, sequence: list[Op]
) -> None:
    with fresh_world(world_template):
        driver = run(sequence)  # the invariants are checked after every operation
        event(f"ends {driver.status().value}")


@SETTINGS
@given(sequence=sequences(), where=st.floats(0, 1), edit=st.sampled_from(
    ["actor", "event", "details", "at", "action_ref", "hash", "prev_hash", "delete"]))
def test_the_audit_chain_verifies_and_any_edit_breaks_it(
    world_template: Path, sequence: list[Op], where: float, edit: str
) -> None:
    with fresh_world(world_template):
        run(sequence, check=False)
        with db.unit_of_work() as session:
            verdict = audit_log.verify(session)
            assert verdict.ok, verdict
            rows = list(session.exec(select(AuditRow).order_by(col(AuditRow.seq))))
        assert len(rows) >= 3  # the catalogue, the directory and the opening at least
        last = len(rows) - 1
        # a past entry: any but the head for a deletion (a chain cannot tell a truncated
        # tail from a shorter history without an anchor kept elsewhere)
        index = min(int(where * last), last - 1 if edit == "delete" else last)
        target = rows[index]
        with db.unit_of_work() as session:
            row = session.get(AuditRow, target.seq)
            assert row is not None
            if edit == "delete":
                session.delete(row)
            elif edit == "at":
                row.at = (datetime.fromisoformat(row.at) + timedelta(microseconds=1)).isoformat()
            elif edit == "details":
                row.details = {**row.details, "edited": "after the fact"}
            elif edit == "action_ref":
                row.action_ref = "ELM-STF-001" if row.action_ref != "ELM-STF-001" else None
            elif edit in ("hash", "prev_hash"):
                value = getattr(row, edit)
                setattr(row, edit, ("1" if value[0] != "1" else "2") + value[1:])
            else:
                setattr(row, edit, getattr(row, edit) + "-edited")
            if edit != "delete":
                session.add(row)
        with db.unit_of_work() as session:
            broken = audit_log.verify(session)
        assert not broken.ok, (edit, index)
        assert broken.first_bad_seq == target.seq, (edit, target.seq, broken)


# ---------------------------------------------------------------- date horizons

DATE_FIELDS = ("baseline", "deadline", "extension", "as_of")


def _packs_and_cycles(as_of: Any) -> None:
    """Every pack (HTML, charts for every action) and the daily and weekly cycles'
    work, in-process, as of `as_of`: none may fail on any stored date."""
    from recovery.application import reviews as cycles
    from recovery.reporting import packs as reports
    from recovery.reporting import snapshot as governance
    from recovery.reporting import weekly
    from recovery.settings import get_settings

    with db.unit_of_work() as session:
        cycles.run_daily(session, as_of=as_of)
    with db.unit_of_work() as session:
        snapshot = governance.build_snapshot(session, as_of=as_of)
        weekly.tracker_rows(snapshot)
        weekly.report_markdown(snapshot)
        weekly.queue_weekly_emails(session, snapshot)
        # a pack as of a day before the action was recorded reads the past: no action yet
        shown = bool(snapshot.lines)
        assert shown or as_of < get_settings().today(), as_of
        for pack in (reports.governance_pack, reports.commissioner_pack,
                     reports.inspector_pack):
            page = reports.render_html(pack(session, as_of=as_of, charts_for="all"))
            if shown:
                assert "<svg" in page, as_of


@settings(max_examples=25, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(DATE_FIELDS), day=st.one_of(
    st.dates(), st.sampled_from([date.min, date.max]),
    st.integers(-4000, 4000).map(lambda n: date.today() + timedelta(days=n))))
def test_any_date_is_refused_clearly_or_every_pack_and_cycle_completes(
    world_template: Path, field: str, day: date
) -> None:
    """A date a person gives, in any date field or option, is either refused as bad input
    naming the field (or by a rule) or accepted, and then every pack and cycle runs."""
    from models.dates import check_as_of
    from models.errors import InvalidInput, RuleRefused
    from models.planfile import plan_from_mapping
    from recovery.application import action_changes, action_plans
    from recovery.settings import get_settings
    from tests.integration.helpers import relative_plan
    from tests.security.conftest import REF

    with fresh_world(world_template):
        today = get_settings().today()
        as_of = today
        try:
            if field in ("baseline", "deadline"):
                mapping = relative_plan(today, title="Safeguarding concerns out of hours")
                key, name = (("baseline", "as_of") if field == "baseline"
                             else ("target", "deadline"))
                mapping[key] = {**mapping[key], name: day}
                with db.unit_of_work() as session:
                    action_plans.open_action(session, plan_from_mapping(mapping), actor="test")
            elif field == "extension":
                with db.unit_of_work() as session:
                    action_changes.extend_deadline(
                        session, REF, new_deadline=day, by="ni@harbourcare.example",
                        control_change="A second senior carer on every morning shift",
                        today=today)
            else:
                as_of = check_as_of(day, today=today)
        except InvalidInput as refused:
            event(f"refused: {refused.field}")
            assert refused.field in {"baseline.as_of", "target.deadline", "target", "deadline",
                                     "as_of"}, refused
            return
        except RuleRefused as refused:
            event(f"rule: {refused.rule}")
            return
        event(f"accepted: {field}")
        _packs_and_cycles(as_of)
