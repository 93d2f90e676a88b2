"""A recovery action as an aggregate: the seed's decisions about one action, pure.

Each method takes what a person asked for and answers with the action's new status or a
typed refusal (`models.refusal`): no sessions, no clock, no mail. The application loads the
rows, asks one method, writes what it answers and audits it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from models.action import MIN_CONTROL_CHANGE, ExtensionRequest, check_extension
from models.errors import InvalidInput
from models.lifecycle import Event, Facts, Status, sustained_long_enough, transition
from models.people import SENIOR_ROLES, Person, normalise_email
from models.refusal import Refusal, RefusalCode, Refused
from models.review import WEAK_RATINGS, Assessment, Rating
from models.signoff import MIN_RATIONALE, Decision, SignoffKind

#: A reopening says why, in words a commissioner could read (as a control change does).
MIN_REOPEN_REASON = 20
#: The senior roles in words, as refusals name them.
SENIOR_WORDS = "registered manager, nominated individual or provider lead"


#: What a reviewer's decision on each kind of sign-off fires in the lifecycle table.
_DECISION_EVENTS: dict[tuple[SignoffKind, Decision], Event] = {
    (SignoffKind.PLAN, Decision.APPROVE): Event.APPROVE_PLAN,
    (SignoffKind.PLAN, Decision.REJECT): Event.REJECT_PLAN,
    (SignoffKind.CLOSURE, Decision.APPROVE): Event.APPROVE_CLOSURE,
    (SignoffKind.CLOSURE, Decision.REJECT): Event.REJECT_CLOSURE,
}


def is_senior(person: Person) -> bool:
    """A registered manager, nominated individual or provider lead (`SENIOR_ROLES`)."""
    return person.role in SENIOR_ROLES


def _not_senior(message: str) -> Refusal:
    return Refusal(code=RefusalCode.NOT_SENIOR, message=message)


@dataclass(frozen=True)
class RecoveryAction:
    """What the rules need to know of one action."""

    ref: str
    status: Status
    accountable_lead: str
    is_high_risk: bool
    deadline: date

    def _fire(self, event: Event) -> Status:
        return transition(self.status, event)

    # -- plan ----------------------------------------------------------------------------

    def submit_plan(self, *, has_interim_controls: bool) -> Status:
        """Draft to plan sign-off (the table's guard: a high-risk plan needs an interim
        control first)."""
        return transition(self.status, Event.SUBMIT_PLAN, Facts(
            is_high_risk=self.is_high_risk, has_interim_controls=has_interim_controls))

    def may_revise(self, by: Person) -> None:
        """The accountable lead revises a rejected plan (or a senior role on their behalf)."""
        if normalise_email(by.email) != normalise_email(self.accountable_lead) \
                and not is_senior(by):
            raise Refused("plan revision", [Refusal(
                code=RefusalCode.NOT_THE_LEAD, message=f"{by.email} is not the accountable lead")])

    # -- closure -------------------------------------------------------------------------

    def closure_request_refusals(self, *, requested_by: str, summary: str) -> list[Refusal]:
        """Every reason the lead's closure request may not be recorded (empty when it may)."""
        out: list[Refusal] = []
        if normalise_email(requested_by) != normalise_email(self.accountable_lead):
            out.append(Refusal(code=RefusalCode.NOT_THE_LEAD, message=(
                f"only the accountable lead ({self.accountable_lead}) may request closure")))
        if len(summary.strip()) < MIN_RATIONALE:
            out.append(Refusal(code=RefusalCode.TOO_SHORT, message=(
                f"the summary must be at least {MIN_RATIONALE} characters")))
        if self.status not in {Status.IN_RECOVERY, Status.REOPENED}:
            out.append(Refusal(code=RefusalCode.WRONG_STATUS, message=(
                f"{self.ref} is {self.status.value}, not in recovery")))
        return out

    def request_closure(self, *, requested_by: str, summary: str) -> Status:
        refusals = self.closure_request_refusals(requested_by=requested_by, summary=summary)
        if refusals:
            raise Refused("closure request", refusals)
        return self._fire(Event.REQUEST_CLOSURE)

    @staticmethod
    def gate_decides(passed: bool) -> Event:
        """The triangulation gate's verdict on a closure request, as the event it fires:
        on to closure sign-off, or back to recovery."""
        return Event.GATE_PASSED if passed else Event.GATE_REFUSED

    # -- sign-off decisions ----------------------------------------------------------------

    @staticmethod
    def decide_signoff(kind: SignoffKind, decision: Decision) -> Event:
        """The event a senior reviewer's accepted decision fires (who may decide, and with
        which code, is `models.signoff.signoff_refusals`)."""
        return _DECISION_EVENTS[(kind, decision)]

    # -- deadlines and controls ------------------------------------------------------------

    @staticmethod
    def may_extend(by: Person) -> None:
        """Only a senior role extends a deadline."""
        if not is_senior(by):
            raise Refused("deadline extension", [_not_senior(
                f"only a {SENIOR_WORDS} may extend a deadline; {by.email} is a "
                f"{by.role.label}")])

    def extend(self, by: Person, *, new_deadline: date, control_change: str,
               today: date) -> None:
        """A senior role extends the deadline; a high-risk action only with a recorded
        change of operational control (weak progress changes the control, not the time)."""
        self.may_extend(by)
        check_extension(
            current_deadline=self.deadline,
            request=ExtensionRequest(new_deadline=new_deadline, control_change=control_change,
                                     decided_by=by.email),
            is_high=self.is_high_risk, today=today)

    def change_control(self, by: Person, *, what: str) -> None:
        """Escalation asks for a change of operational control, decided by a senior role."""
        if not is_senior(by):
            raise Refused("control change", [_not_senior(
                f"a change of operational control is decided by a {SENIOR_WORDS}; "
                f"{by.email} is a {by.role.label}")])
        if len(what.strip()) < MIN_CONTROL_CHANGE:
            raise InvalidInput("what", "say what changes in the operational control "
                                       f"(at least {MIN_CONTROL_CHANGE} characters)")

    # -- sign-off codes ------------------------------------------------------------------

    @staticmethod
    def may_reissue(by: Person) -> None:
        """Only a senior role has a new sign-off code sent."""
        if not is_senior(by):
            raise Refused("sign-off reissue", [_not_senior(f"{by.email} is not a senior role")])

    # -- reopening -----------------------------------------------------------------------

    @staticmethod
    def may_reopen(by: Person, *, reason: str) -> None:
        """A senior role reopens a closed action and says why (`MIN_REOPEN_REASON`)."""
        if not is_senior(by):
            raise Refused("reopen", [_not_senior(
                f"a closed action is reopened by a {SENIOR_WORDS}; {by.email} is a "
                f"{by.role.label}")])
        if len(reason.strip()) < MIN_REOPEN_REASON:
            raise InvalidInput("reason", f"say why it is reopened (at least "
                                         f"{MIN_REOPEN_REASON} characters)")

    def reopen(self) -> Status:
        """Closed back to reopened, through the lifecycle table."""
        if self.status != Status.CLOSED:
            raise Refused("reopen", [Refusal(code=RefusalCode.WRONG_STATUS, message=(
                f"{self.ref} is {self.status.label}, not closed: only a closed action is "
                "reopened"))])
        return self._fire(Event.REOPEN)


# -- what follows a review -------------------------------------------------------------------


class FollowUp(StrEnum):
    """What a review leads to for the action (`follow_up`)."""

    RELAPSE = "relapse"
    SUSTAINED = "sustained"
    ESCALATE = "escalate"
    DE_ESCALATE = "de_escalate"
    NOTHING = "nothing"


def weak(a: Assessment[Any]) -> bool:
    """Weak progress in itself: off track or overdue."""
    return a.rating in WEAK_RATINGS


def relapsed(a: Assessment[Any]) -> bool:
    """In routine monitoring, evidence back below target or progress weak."""
    below_target = a.measured_value is not None and not a.target_met
    return below_target or weak(a)


def may_close_sustained(a: Assessment[Any], monitoring_since: date | None, as_of: date) -> bool:
    """Worth asking whether the improvement is sustained: not relapsed, and in routine
    monitoring for `SUSTAINED_WEEKS` (`sustained_by` then reads the reviews since)."""
    return not relapsed(a) and sustained_long_enough(monitoring_since, as_of)


def sustained_by(reviews_since: Iterable[tuple[bool, Sequence[str]]]) -> bool:
    """Every review since routine monitoring began met the target with no trigger."""
    reviews = list(reviews_since)
    return bool(reviews) and all(met and not triggers for met, triggers in reviews)


def may_de_escalate(a: Assessment[Any], *, escalated: bool) -> bool:
    """An escalated action back on track is worth checking for de-escalation."""
    return escalated and not weak(a) and a.rating == Rating.ON_TRACK


def follow_up(
    a: Assessment[Any], *, in_monitoring: bool, escalated: bool, escalation: Sequence[str],
    sustained: bool, control_changed: bool | None,
) -> FollowUp:
    """What follows one review: in routine monitoring, relapse when evidence is back below
    target or progress weak, else closure once sustained; otherwise escalation when the
    review gives a reason to escalate (`models.review.escalation_reasons`), de-escalation
    when back on track after a change of operational control (`control_changed`: whether
    the open escalation has one; None when none is open)."""
    if in_monitoring:
        if relapsed(a):
            return FollowUp.RELAPSE
        return FollowUp.SUSTAINED if sustained else FollowUp.NOTHING
    if escalation and not escalated:
        return FollowUp.ESCALATE
    if escalated and a.rating == Rating.ON_TRACK and control_changed is not False:
        return FollowUp.DE_ESCALATE
    return FollowUp.NOTHING
