"""The recovery action aggregate: each decision answers a status or a typed refusal."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from models.errors import IllegalTransition, InvalidInput
from models.lifecycle import (
    GUARDS,
    Event,
    Facts,
    Status,
    sustained_long_enough,
    transition,
)
from models.people import Role
from models.recovery_action import (
    MIN_REOPEN_REASON,
    FollowUp,
    RecoveryAction,
    follow_up,
    may_close_sustained,
    may_de_escalate,
    sustained_by,
)
from models.refusal import Refusal, RefusalCode, Refused
from models.review import Assessment, Rating, progress_share
from models.signoff import Decision, SignoffKind, counts_toward_lockout, signoff_refusals

from .factories import GOOD_CODE, LEAD, NOW, TODAY, make_person, signoff_request, submission


def action(status: Status = Status.IN_RECOVERY, *, high: bool = True) -> RecoveryAction:
    return RecoveryAction(ref="ROSE-SG-001", status=status, accountable_lead=LEAD,
                          is_high_risk=high, deadline=TODAY + timedelta(days=30))


def codes(refused: pytest.ExceptionInfo[Refused]) -> list[RefusalCode]:
    return [r.code for r in refused.value.refusals]


def test_a_high_risk_plan_without_an_interim_control_is_refused_by_the_table_guard() -> None:
    with pytest.raises(Refused) as refused:
        action(Status.DRAFT).submit_plan(has_interim_controls=False)
    assert codes(refused) == [RefusalCode.NO_INTERIM_CONTROL]
    assert refused.value.rule == "interim controls"


def test_a_plan_with_an_interim_control_goes_to_sign_off() -> None:
    assert action(Status.DRAFT).submit_plan(has_interim_controls=True) == \
        Status.AWAITING_PLAN_SIGNOFF
    assert action(Status.DRAFT, high=False).submit_plan(has_interim_controls=False) == \
        Status.AWAITING_PLAN_SIGNOFF


def test_guards_sit_beside_the_transitions_they_guard() -> None:
    assert set(GUARDS) == {(Status.DRAFT, Event.SUBMIT_PLAN),
                           (Status.PLAN_REJECTED, Event.REVISE_PLAN)}
    with pytest.raises(Refused):
        transition(Status.PLAN_REJECTED, Event.REVISE_PLAN, Facts(is_high_risk=True))
    # without facts the table answers the status alone
    assert transition(Status.PLAN_REJECTED, Event.REVISE_PLAN) == Status.AWAITING_PLAN_SIGNOFF


@pytest.mark.parametrize("role", [Role.REGISTERED_MANAGER, Role.NOMINATED_INDIVIDUAL,
                                  Role.PROVIDER_LEAD])
def test_a_senior_role_reopens_a_closed_action_saying_why(role: Role) -> None:
    closed = action(Status.CLOSED)
    closed.may_reopen(make_person(role), reason="x" * MIN_REOPEN_REASON)
    assert closed.reopen() == Status.REOPENED


def test_a_junior_role_may_not_reopen_change_control_extend_or_reissue() -> None:
    carer = make_person(Role.CARE_WORKER)
    for attempt in (lambda: action(Status.CLOSED).may_reopen(carer, reason="x" * 40),
                    lambda: action().change_control(carer, what="x" * 40),
                    lambda: action().may_extend(carer),
                    lambda: RecoveryAction.may_reissue(carer)):
        with pytest.raises(Refused) as refused:
            attempt()
        assert codes(refused) == [RefusalCode.NOT_SENIOR]


def test_a_short_reason_or_control_change_is_refused_naming_the_field() -> None:
    manager = make_person(Role.REGISTERED_MANAGER)
    with pytest.raises(InvalidInput) as short:
        action(Status.CLOSED).may_reopen(manager, reason="because")
    assert short.value.field == "reason"
    with pytest.raises(InvalidInput) as vague:
        action().change_control(manager, what="more staff")
    assert vague.value.field == "what"


def test_only_a_closed_action_is_reopened() -> None:
    with pytest.raises(Refused) as refused:
        action(Status.IN_RECOVERY).reopen()
    assert codes(refused) == [RefusalCode.WRONG_STATUS]
    assert refused.value.reasons == [
        "ROSE-SG-001 is in recovery, not closed: only a closed action is reopened"]


def test_a_closure_request_is_refused_with_a_code_per_broken_rule() -> None:
    refusals = action(Status.PLAN_REJECTED).closure_request_refusals(
        requested_by="someone@rose.example", summary="short")
    assert [r.code for r in refusals] == [RefusalCode.NOT_THE_LEAD, RefusalCode.TOO_SHORT,
                                          RefusalCode.WRONG_STATUS]
    assert action().request_closure(requested_by=LEAD.upper(),
                                    summary="All four pillars agree now") == \
        Status.CLOSURE_REQUESTED


def test_someone_else_may_not_revise_the_plan_but_a_senior_role_may() -> None:
    with pytest.raises(Refused) as refused:
        action(Status.PLAN_REJECTED).may_revise(make_person(Role.CARE_WORKER))
    assert codes(refused) == [RefusalCode.NOT_THE_LEAD]
    action(Status.PLAN_REJECTED).may_revise(make_person(Role.PROVIDER_LEAD))


def test_an_illegal_event_is_still_an_illegal_transition() -> None:
    with pytest.raises(IllegalTransition):
        transition(Status.DRAFT, Event.REOPEN)


def test_lockout_counts_codes_not_words() -> None:
    reworded = [Refusal(code=RefusalCode.WRONG_CODE, message="any words at all")]
    assert counts_toward_lockout(reworded)
    assert not counts_toward_lockout([Refusal(code=RefusalCode.NOT_THE_REVIEWER,
                                              message="the sign-off code is wrong")])


def test_an_expired_code_is_refused_as_expired() -> None:
    refusals = signoff_refusals(signoff_request(), submission(code=GOOD_CODE),
                                accountable_lead=LEAD, now=NOW + timedelta(days=4))
    assert [r.code for r in refusals] == [RefusalCode.CODE_EXPIRED]


def test_sustained_closure_waits_eight_weeks_of_monitoring() -> None:
    start = date(2026, 1, 1)
    assert not sustained_long_enough(None, start)
    assert not sustained_long_enough(start, start + timedelta(days=55))
    assert sustained_long_enough(start, start + timedelta(days=56))


@pytest.mark.parametrize(("baseline", "target", "measured", "share"), [
    (40, 90, None, None), (50, 50, 60, None), (40, 90, 65, 50.0), (40, 90, 20, 0.0),
    (40, 90, 95, 100.0), (30, 10, 20, 50.0)])
def test_progress_share_from_baseline_toward_target(
        baseline: float, target: float, measured: float | None, share: float | None) -> None:
    assert progress_share(baseline, target, measured) == share


def review(rating: Rating, *, measured: float | None = 90, met: bool = True
           ) -> Assessment[Any]:
    return Assessment(as_of=TODAY, measured_value=measured, trajectory_value=80,
                      target_met=met, days_to_deadline=30, pillars=(), triggers_fired=(),
                      rating=rating, reasons=())


def test_in_routine_monitoring_weak_progress_or_a_missed_target_is_a_relapse() -> None:
    for relapse in (review(Rating.OFF_TRACK), review(Rating.ON_TRACK, met=False)):
        assert follow_up(relapse, in_monitoring=True, escalated=False, escalation=[],
                         sustained=True, control_changed=None) == FollowUp.RELAPSE
    assert follow_up(review(Rating.ON_TRACK), in_monitoring=True, escalated=False,
                     escalation=[], sustained=True, control_changed=None) == FollowUp.SUSTAINED
    assert follow_up(review(Rating.ON_TRACK), in_monitoring=True, escalated=False,
                     escalation=[], sustained=False, control_changed=None) == FollowUp.NOTHING


def test_a_reason_to_escalate_escalates_once() -> None:
    assert follow_up(review(Rating.OFF_TRACK), in_monitoring=False, escalated=False,
                     escalation=["off track"], sustained=False,
                     control_changed=None) == FollowUp.ESCALATE
    assert follow_up(review(Rating.OFF_TRACK), in_monitoring=False, escalated=True,
                     escalation=["off track"], sustained=False,
                     control_changed=False) == FollowUp.NOTHING


def test_back_on_track_de_escalates_only_after_a_control_change() -> None:
    on_track = review(Rating.ON_TRACK)
    assert may_de_escalate(on_track, escalated=True)
    assert not may_de_escalate(review(Rating.AT_RISK), escalated=True)
    assert follow_up(on_track, in_monitoring=False, escalated=True, escalation=[],
                     sustained=False, control_changed=False) == FollowUp.NOTHING
    assert follow_up(on_track, in_monitoring=False, escalated=True, escalation=[],
                     sustained=False, control_changed=True) == FollowUp.DE_ESCALATE


def test_sustained_closure_needs_eight_weeks_and_every_review_since_clean() -> None:
    since = TODAY - timedelta(weeks=8)
    assert may_close_sustained(review(Rating.ON_TRACK), since, TODAY)
    assert not may_close_sustained(review(Rating.ON_TRACK), since + timedelta(days=1), TODAY)
    assert not may_close_sustained(review(Rating.OFF_TRACK), since, TODAY)
    assert sustained_by([(True, []), (True, [])])
    assert not sustained_by([(True, []), (True, ["poor_feedback"])])
    assert not sustained_by([])


@pytest.mark.parametrize(("kind", "decision", "after"), [
    (SignoffKind.PLAN, Decision.APPROVE, Status.IN_RECOVERY),
    (SignoffKind.PLAN, Decision.REJECT, Status.PLAN_REJECTED),
    (SignoffKind.CLOSURE, Decision.APPROVE, Status.ROUTINE_MONITORING),
    (SignoffKind.CLOSURE, Decision.REJECT, Status.IN_RECOVERY)])
def test_each_sign_off_decision_fires_its_event_in_the_table(
        kind: SignoffKind, decision: Decision, after: Status) -> None:
    waiting = (Status.AWAITING_PLAN_SIGNOFF if kind == SignoffKind.PLAN
               else Status.AWAITING_CLOSURE_SIGNOFF)
    assert transition(waiting, RecoveryAction.decide_signoff(kind, decision)) == after


def test_the_gate_sends_a_closure_request_on_or_back() -> None:
    assert transition(Status.CLOSURE_REQUESTED, RecoveryAction.gate_decides(True)) == \
        Status.AWAITING_CLOSURE_SIGNOFF
    assert transition(Status.CLOSURE_REQUESTED, RecoveryAction.gate_decides(False)) == \
        Status.IN_RECOVERY
