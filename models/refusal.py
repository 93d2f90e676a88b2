"""Refusals as values: a code callers branch on and a message people read.

A message can be reworded without changing what any caller does, because no caller reads
it: control flow asks `refusal.code`, never the words."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from models.errors import RuleRefused


class RefusalCode(StrEnum):
    """Why something was refused, as a caller branches on it."""

    # sign-off codes and who presents them
    REQUEST_LOCKED = "request_locked"
    CODE_USED = "code_used"
    WRONG_CODE = "wrong_code"
    CODE_EXPIRED = "code_expired"
    CODE_WITHDRAWN = "code_withdrawn"
    OWN_ACTION = "own_action"
    NOT_THE_REVIEWER = "not_the_reviewer"
    NOT_IN_DIRECTORY = "not_in_directory"
    SEPARATION_OF_DUTIES = "separation_of_duties"
    BAD_DECISION = "bad_decision"
    # what people must write
    TOO_SHORT = "too_short"
    BAD_CHOICE = "bad_choice"
    # who may do what, and when
    NOT_SENIOR = "not_senior"
    NOT_THE_LEAD = "not_the_lead"
    WRONG_STATUS = "wrong_status"
    NO_SIGNOFF_WAITING = "no_signoff_waiting"
    REVIEWER_AWAY = "reviewer_away"
    NO_INTERIM_CONTROL = "no_interim_control"
    # the closure gate
    EVIDENCE_CHANGED = "evidence_changed"
    GATE_REFUSED = "gate_refused"


class Refusal(BaseModel):
    """One reason something may not be done: `code` for callers, `message` for people."""

    model_config = ConfigDict(frozen=True)

    code: RefusalCode
    message: str

    def __str__(self) -> str:
        return self.message


#: A wrong code and a presenter in nobody's name both count toward the five tries that lock
#: a sign-off request: either could be someone guessing.
LOCKOUT_CODES: frozenset[RefusalCode] = frozenset(
    {RefusalCode.WRONG_CODE, RefusalCode.NOT_IN_DIRECTORY})


def messages(refusals: Iterable[Refusal]) -> list[str]:
    """The words of each refusal, in order (what is stored, mailed and shown)."""
    return [r.message for r in refusals]


def codes(refusals: Iterable[Refusal]) -> list[RefusalCode]:
    return [r.code for r in refusals]


class Refused(RuleRefused):
    """A rule refused a request, with its typed refusals (`reasons` keeps their words)."""

    def __init__(self, rule: str, refusals: list[Refusal]) -> None:
        super().__init__(rule, messages(refusals))
        self.refusals = list(refusals)
