"""The lifecycle is declared once; only declared transitions happen, others say why not."""

from __future__ import annotations

import pytest

from models.errors import IllegalTransition, RuleRefused
from models.lifecycle import (
    ACTIVE,
    OPEN,
    TRANSITIONS,
    Event,
    Status,
    allowed_events,
    transition,
)

S, E = Status, Event

#: The lifecycle as a registered manager would describe it.
EXPECTED = {
    (S.DRAFT, E.SUBMIT_PLAN): S.AWAITING_PLAN_SIGNOFF,
    (S.AWAITING_PLAN_SIGNOFF, E.APPROVE_PLAN): S.IN_RECOVERY,
    (S.AWAITING_PLAN_SIGNOFF, E.REJECT_PLAN): S.PLAN_REJECTED,
    (S.PLAN_REJECTED, E.REVISE_PLAN): S.AWAITING_PLAN_SIGNOFF,
    (S.IN_RECOVERY, E.REQUEST_CLOSURE): S.CLOSURE_REQUESTED,
    (S.REOPENED, E.REQUEST_CLOSURE): S.CLOSURE_REQUESTED,
    (S.CLOSURE_REQUESTED, E.GATE_REFUSED): S.IN_RECOVERY,
    (S.CLOSURE_REQUESTED, E.GATE_PASSED): S.AWAITING_CLOSURE_SIGNOFF,
    (S.AWAITING_CLOSURE_SIGNOFF, E.APPROVE_CLOSURE): S.ROUTINE_MONITORING,
    (S.AWAITING_CLOSURE_SIGNOFF, E.REJECT_CLOSURE): S.IN_RECOVERY,
    (S.AWAITING_CLOSURE_SIGNOFF, E.EVIDENCE_CHANGED): S.IN_RECOVERY,
    (S.ROUTINE_MONITORING, E.RELAPSE): S.REOPENED,
    (S.ROUTINE_MONITORING, E.CLOSE_SUSTAINED): S.CLOSED,
    (S.CLOSED, E.REOPEN): S.REOPENED,
}
ILLEGAL = [(s, e) for s in Status for e in Event if (s, e) not in EXPECTED]


def test_the_declared_transitions_are_exactly_the_expected_lifecycle() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("source", "event"), list(EXPECTED))
def test_every_legal_transition_moves_to_its_declared_status(source: Status, event: Event) -> None:
    assert transition(source, event) == EXPECTED[(source, event)]


@pytest.mark.parametrize(("source", "event"), ILLEGAL)
def test_every_illegal_transition_raises_and_says_what_is_allowed(
    source: Status, event: Event
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(source, event)
    [reason] = caught.value.reasons
    allowed = ", ".join(e.value for e in allowed_events(source))
    assert reason == (
        f"cannot {event.value.replace('_', ' ')} while the action is {source.label}; "
        f"allowed: {allowed}"
    )


def test_closing_a_draft_is_refused_with_a_readable_reason() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(Status.DRAFT, Event.APPROVE_CLOSURE)
    assert caught.value.rule == "lifecycle"
    assert caught.value.reasons == [
        "cannot approve closure while the action is draft; allowed: submit_plan"
    ]


def test_an_illegal_transition_is_a_rule_refusal() -> None:
    with pytest.raises(RuleRefused):
        transition(Status.CLOSED, Event.APPROVE_PLAN)


def test_gate_must_pass_before_closure_sign_off() -> None:
    with pytest.raises(IllegalTransition):
        transition(Status.IN_RECOVERY, Event.APPROVE_CLOSURE)
    with pytest.raises(IllegalTransition):
        transition(Status.CLOSURE_REQUESTED, Event.APPROVE_CLOSURE)


def test_a_happy_path_from_draft_to_closed() -> None:
    status = Status.DRAFT
    for event in [E.SUBMIT_PLAN, E.REJECT_PLAN, E.REVISE_PLAN, E.APPROVE_PLAN,
                  E.REQUEST_CLOSURE, E.GATE_REFUSED, E.REQUEST_CLOSURE, E.GATE_PASSED,
                  E.APPROVE_CLOSURE, E.CLOSE_SUSTAINED]:
        status = transition(status, event)
    assert status == Status.CLOSED


def test_a_closed_action_can_be_reopened_and_must_pass_the_gate_again() -> None:
    status = transition(Status.CLOSED, Event.REOPEN)
    assert status == Status.REOPENED
    assert allowed_events(status) == [Event.REQUEST_CLOSURE]


def test_relapse_in_routine_monitoring_reopens_the_action() -> None:
    assert transition(Status.ROUTINE_MONITORING, Event.RELAPSE) == Status.REOPENED


def test_every_status_has_a_way_on() -> None:
    assert all(allowed_events(status) for status in Status)


def test_every_status_is_reachable_from_draft() -> None:
    reachable, frontier = {Status.DRAFT}, [Status.DRAFT]
    while frontier:
        current = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src == current and dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    assert reachable == set(Status)


def test_active_statuses_are_those_under_recovery_and_open_adds_monitoring() -> None:
    assert {S.IN_RECOVERY, S.REOPENED, S.CLOSURE_REQUESTED, S.AWAITING_CLOSURE_SIGNOFF} == ACTIVE
    assert ACTIVE | {S.ROUTINE_MONITORING} == OPEN
    assert S.CLOSED not in OPEN and S.DRAFT not in OPEN
