"""The lifecycle of a recovery action, declared once as states and guarded transitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from models.dates import shift
from models.errors import IllegalTransition
from models.refusal import Refusal, RefusalCode, Refused


class Status(StrEnum):
    DRAFT = "draft"
    AWAITING_PLAN_SIGNOFF = "awaiting_plan_signoff"
    PLAN_REJECTED = "plan_rejected"
    IN_RECOVERY = "in_recovery"
    CLOSURE_REQUESTED = "closure_requested"
    AWAITING_CLOSURE_SIGNOFF = "awaiting_closure_signoff"
    ROUTINE_MONITORING = "routine_monitoring"
    CLOSED = "closed"
    REOPENED = "reopened"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class Event(StrEnum):
    SUBMIT_PLAN = "submit_plan"
    APPROVE_PLAN = "approve_plan"
    REJECT_PLAN = "reject_plan"
    REVISE_PLAN = "revise_plan"
    REQUEST_CLOSURE = "request_closure"
    GATE_REFUSED = "gate_refused"
    GATE_PASSED = "gate_passed"
    APPROVE_CLOSURE = "approve_closure"
    REJECT_CLOSURE = "reject_closure"
    EVIDENCE_CHANGED = "evidence_changed"
    RELAPSE = "relapse"
    CLOSE_SUSTAINED = "close_sustained"
    REOPEN = "reopen"


#: Weeks in routine monitoring, target met and no trigger, before an action closes.
SUSTAINED_WEEKS = 8



def sustained_long_enough(monitoring_since: date | None, as_of: date) -> bool:
    """In routine monitoring for `SUSTAINED_WEEKS` by `as_of` (the rest of the sustained
    closure rule, target met and no relapse, is the review's)."""
    return monitoring_since is not None and (as_of - monitoring_since).days >= \
        SUSTAINED_WEEKS * 7


@dataclass(frozen=True)
class Facts:
    """What the guards of the lifecycle table read of an action (nothing else)."""

    is_high_risk: bool = False
    has_interim_controls: bool = False


def interim_control_first(facts: Facts) -> list[Refusal]:
    """A high-risk plan goes to sign-off only with an interim control in place."""
    if facts.is_high_risk and not facts.has_interim_controls:
        return [Refusal(code=RefusalCode.NO_INTERIM_CONTROL, message=(
            "a high-risk action needs at least one interim control before plan sign-off"))]
    return []


#: A guard: every reason a transition may not happen for these facts (empty when it may),
#: and the rule a refusal is reported under.
Guard = tuple[str, Callable[[Facts], list[Refusal]]]

#: The lifecycle table: (from, event, to, guard). The only way an action's status changes.
TABLE: tuple[tuple[Status, Event, Status, Guard | None], ...] = (
    (Status.DRAFT, Event.SUBMIT_PLAN, Status.AWAITING_PLAN_SIGNOFF,
     ("interim controls", interim_control_first)),
    (Status.AWAITING_PLAN_SIGNOFF, Event.APPROVE_PLAN, Status.IN_RECOVERY, None),
    (Status.AWAITING_PLAN_SIGNOFF, Event.REJECT_PLAN, Status.PLAN_REJECTED, None),
    (Status.PLAN_REJECTED, Event.REVISE_PLAN, Status.AWAITING_PLAN_SIGNOFF,
     ("interim controls", interim_control_first)),
    (Status.IN_RECOVERY, Event.REQUEST_CLOSURE, Status.CLOSURE_REQUESTED, None),
    (Status.REOPENED, Event.REQUEST_CLOSURE, Status.CLOSURE_REQUESTED, None),
    (Status.CLOSURE_REQUESTED, Event.GATE_REFUSED, Status.IN_RECOVERY, None),
    (Status.CLOSURE_REQUESTED, Event.GATE_PASSED, Status.AWAITING_CLOSURE_SIGNOFF, None),
    (Status.AWAITING_CLOSURE_SIGNOFF, Event.APPROVE_CLOSURE, Status.ROUTINE_MONITORING, None),
    (Status.AWAITING_CLOSURE_SIGNOFF, Event.REJECT_CLOSURE, Status.IN_RECOVERY, None),
    # an approval refused because the gate now says otherwise than when it was asked
    (Status.AWAITING_CLOSURE_SIGNOFF, Event.EVIDENCE_CHANGED, Status.IN_RECOVERY, None),
    (Status.ROUTINE_MONITORING, Event.RELAPSE, Status.REOPENED, None),
    (Status.ROUTINE_MONITORING, Event.CLOSE_SUSTAINED, Status.CLOSED, None),
    # a person reopens a closed action (`RecoveryAction.may_reopen` says who and why)
    (Status.CLOSED, Event.REOPEN, Status.REOPENED, None),
)

#: (from, event) -> to, as the table declares it.
TRANSITIONS: dict[tuple[Status, Event], Status] = {(src, event): dst
                                                   for src, event, dst, _ in TABLE}
#: (from, event) -> its guard, for the transitions that have one.
GUARDS: dict[tuple[Status, Event], Guard] = {(src, event): guard
                                             for src, event, _, guard in TABLE if guard}

#: Statuses in which the action is being actively recovered (reviews run, evidence counts).
ACTIVE: frozenset[Status] = frozenset(
    {
        Status.IN_RECOVERY,
        Status.REOPENED,
        Status.CLOSURE_REQUESTED,
        Status.AWAITING_CLOSURE_SIGNOFF,
    }
)
#: Statuses the review cycles look at (open actions).
OPEN: frozenset[Status] = ACTIVE | {Status.ROUTINE_MONITORING}


def allowed_events(status: Status) -> list[Event]:
    return [event for (src, event) in TRANSITIONS if src == status]


def transition(status: Status, event: Event, facts: Facts | None = None) -> Status:
    """The status after `event`, or IllegalTransition saying why not; with `facts`, the
    transition's guard is asked too (Refused with its reasons)."""
    try:
        after = TRANSITIONS[(status, event)]
    except KeyError:
        allowed = ", ".join(e.value for e in allowed_events(status)) or "nothing (final)"
        raise IllegalTransition(
            "lifecycle",
            [f"cannot {event.value.replace('_', ' ')} while the action is {status.label}; "
             f"allowed: {allowed}"],
        ) from None
    guard = GUARDS.get((status, event))
    if guard is not None and facts is not None:
        rule, check = guard
        refusals = check(facts)
        if refusals:
            raise Refused(rule, refusals)
    return after


def _check_declaration() -> None:
    """Every status is reachable from draft, and only `closed` may lack a way on."""
    reachable = {Status.DRAFT}
    frontier = [Status.DRAFT]
    while frontier:
        current = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src == current and dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    unreachable = set(Status) - reachable
    if unreachable:
        raise AssertionError(f"unreachable statuses: {sorted(unreachable)}")
    dead = [s for s in Status if not allowed_events(s) and s != Status.CLOSED]
    if dead:
        raise AssertionError(f"dead-end statuses: {dead}")


_check_declaration()


# --- what is due, by status ---------------------------------------------------------------

#: Decisions an action waits on, by status: what is awaited, from whom, and the days
#: allowed from when it was asked (a sign-off's waiting-time alert fires at 48 hours; a
#: rejected plan is revised within a week; a draft's lifecycle run starts the day it is
#: opened). A review falls due by the cadence (`models.cadence`) in every open status.
DECISIONS_AWAITED: dict[Status, tuple[str, str, int]] = {
    Status.DRAFT: ("lifecycle start", "the accountable lead or an operator", 1),
    Status.AWAITING_PLAN_SIGNOFF: ("plan sign-off", "the senior reviewer", 2),
    Status.PLAN_REJECTED: ("revised plan", "the accountable lead", 7),
    Status.AWAITING_CLOSURE_SIGNOFF: ("closure sign-off", "the senior reviewer", 2),
}


def decision_due(status: Status, asked_on: date) -> date | None:
    """When the decision an action waits on in `status` is due (None: it waits on none)."""
    awaited = DECISIONS_AWAITED.get(status)
    return None if awaited is None else shift(asked_on, awaited[2])


# --- what a suspended lifecycle run waits for ------------------------------------------------

#: A lifecycle run suspended in each status waits for: its run tag (the Runs page filters on
#: it), the answer in words, and whose it is ("reviewer": the named senior reviewer, "lead":
#: the accountable lead). Every other status is one the run passes through or ends in.
WAITS: dict[Status, tuple[str, str, str]] = {
    Status.AWAITING_PLAN_SIGNOFF: ("awaiting:plan-signoff", "plan sign-off", "reviewer"),
    Status.PLAN_REJECTED: ("awaiting:revision", "a revised plan", "lead"),
    Status.IN_RECOVERY: ("awaiting:closure-request", "the closure request", "lead"),
    Status.REOPENED: ("awaiting:closure-request", "the closure request", "lead"),
    Status.AWAITING_CLOSURE_SIGNOFF: ("awaiting:closure-signoff", "closure sign-off",
                                      "reviewer"),
}
