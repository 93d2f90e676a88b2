"""The lifecycle of a recovery action, declared once as states and guarded transitions."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from models.dates import shift
from models.errors import IllegalTransition


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

#: (from, event) -> to. The only way an action's status changes.
TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (Status.DRAFT, Event.SUBMIT_PLAN): Status.AWAITING_PLAN_SIGNOFF,
    (Status.AWAITING_PLAN_SIGNOFF, Event.APPROVE_PLAN): Status.IN_RECOVERY,
    (Status.AWAITING_PLAN_SIGNOFF, Event.REJECT_PLAN): Status.PLAN_REJECTED,
    (Status.PLAN_REJECTED, Event.REVISE_PLAN): Status.AWAITING_PLAN_SIGNOFF,
    (Status.IN_RECOVERY, Event.REQUEST_CLOSURE): Status.CLOSURE_REQUESTED,
    (Status.REOPENED, Event.REQUEST_CLOSURE): Status.CLOSURE_REQUESTED,
    (Status.CLOSURE_REQUESTED, Event.GATE_REFUSED): Status.IN_RECOVERY,
    (Status.CLOSURE_REQUESTED, Event.GATE_PASSED): Status.AWAITING_CLOSURE_SIGNOFF,
    (Status.AWAITING_CLOSURE_SIGNOFF, Event.APPROVE_CLOSURE): Status.ROUTINE_MONITORING,
    (Status.AWAITING_CLOSURE_SIGNOFF, Event.REJECT_CLOSURE): Status.IN_RECOVERY,
    # an approval refused because the gate now says otherwise than when it was asked
    (Status.AWAITING_CLOSURE_SIGNOFF, Event.EVIDENCE_CHANGED): Status.IN_RECOVERY,
    (Status.ROUTINE_MONITORING, Event.RELAPSE): Status.REOPENED,
    (Status.ROUTINE_MONITORING, Event.CLOSE_SUSTAINED): Status.CLOSED,
    (Status.CLOSED, Event.REOPEN): Status.REOPENED,
}

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


def transition(status: Status, event: Event) -> Status:
    """The status after `event`, or IllegalTransition saying why not."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        allowed = ", ".join(e.value for e in allowed_events(status)) or "nothing (final)"
        raise IllegalTransition(
            "lifecycle",
            [f"cannot {event.value.replace('_', ' ')} while the action is {status.label}; "
             f"allowed: {allowed}"],
        ) from None


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
