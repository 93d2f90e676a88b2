"""Proof of who signed: one-time codes bound to one reviewer and one request.

Prefect OSS records nobody as the responder to a resume, so each sign-off request issues
a six-digit code to the named senior reviewer only. Codes are stored as salted PBKDF2
hashes, expire after 72 hours, are single use, and lock after five wrong attempts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from models.lifecycle import SUSTAINED_WEEKS
from models.people import normalise_email
from models.refusal import LOCKOUT_CODES, Refusal, RefusalCode, messages

CODE_TTL = timedelta(hours=72)
MAX_WRONG_CODES = 5
MIN_RATIONALE = 20
MAX_FORM_TEXT = 4000
_ITERATIONS = 60_000


class SignoffKind(StrEnum):
    PLAN = "plan"
    CLOSURE = "closure"
    ASSURANCE = "assurance"


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


def closure_requester(email: str) -> str:
    """How a closure request's requester is recorded and shown. The request carries only
    the lead's email, no code, so nothing proves who sent it: the audit log, the inspector
    pack and the closure sign-off form say so rather than attribute it to the lead."""
    return f"requested as {email}, identity not checked"


#: The rule of each field of the sign-off and closure forms, in words. The Prefect server
#: checks the form against its schema and answers in JSON-schema terms ("does not match
#: '^\\d{6}$'"); the CLI says these instead.
FORM_RULES = {
    "code": "the code is six digits, as in your sign-off email",
    "rationale": f"the rationale must be at least {MIN_RATIONALE} characters (and at most "
                 f"{MAX_FORM_TEXT})",
    "summary": f"the summary must be at least {MIN_RATIONALE} characters (and at most "
               f"{MAX_FORM_TEXT})",
    "decision": "the decision is approve or reject",
    "reviewer_email": "an email address of at most 254 characters",
    "requested_by": "an email address of at most 254 characters",
}


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def hash_code(code: str, salt: str) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", code.encode(), bytes.fromhex(salt), _ITERATIONS)
    return digest.hex()


def new_salt() -> str:
    return secrets.token_hex(16)


class SignoffRequestState(BaseModel):
    """What is stored about one request (never the code itself)."""

    model_config = ConfigDict(frozen=True)

    kind: SignoffKind
    reviewer_email: str
    code_salt: str
    code_hash: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None
    wrong_attempts: int
    locked: bool


class Submission(BaseModel):
    model_config = ConfigDict(frozen=True)

    reviewer_email: str
    code: str
    decision: str
    rationale: str


#: How a refusal words a code withdrawn because someone else presented it.
CODE_WITHDRAWN = "the sign-off code was withdrawn"


#: What happens after each decision, as the confirmation email says it ({ref}, {weeks}).
NEXT_STEP: dict[tuple[str, str], str] = {
    ("plan", "approve"): (
        "The action is in recovery: reviews run at the plan's cadence, and the accountable "
        "lead requests closure when care records, audits, feedback and staff practice show "
        "the improvement; the triangulation gate checks it before any closure sign-off."),
    ("plan", "reject"): (
        "The accountable lead records a revised plan (`recovery action revise {ref} "
        "PLAN.yaml`), which comes back to the senior reviewer for sign-off; the interim "
        "controls stay in place meanwhile."),
    ("closure", "approve"): (
        "The action enters routine monitoring; it closes after {weeks} weeks with no "
        "relapse, and a relapse reopens it."),
    ("closure", "reject"): (
        "The action is back in recovery; the accountable lead requests closure again when "
        "the evidence answers the rationale above."),
}

def next_step(kind: str, decision: str, *, ref: str) -> str:
    """What happens after a decision, in the words of the confirmation email."""
    return NEXT_STEP[(kind, decision)].format(ref=ref, weeks=SUSTAINED_WEEKS)


#: How a refusal words a code that is not the one sent.
WRONG_CODE = "the sign-off code is wrong"

#: How a refusal words a presenter nobody in the staff directory answers to.
NOT_IN_DIRECTORY = "is not in the staff directory"


def not_in_directory(email: str) -> str:
    """The refusal for an address in nobody's name: a typo, not a disclosure."""
    return (f"'{normalise_email(email)}' {NOT_IN_DIRECTORY}: no one there has that email "
            "(check the address you typed)")


def code_disclosed(request: SignoffRequestState, submission: Submission, *,
                   presenter_known: bool = True) -> bool:
    """The right code, still live, presented by a known other person (someone in the staff
    directory) than the named reviewer it was sent to. Whoever holds it now is not who it
    was sent to, so it must not stay valid: the request withdraws it and the reviewer gets
    a new one. An address in nobody's name is most likely the reviewer's own typo: refused,
    but the code stays theirs and nobody is alerted."""
    code = submission.code.strip()
    return (
        presenter_known
        and request.used_at is None
        and not request.locked
        and normalise_email(submission.reviewer_email) != normalise_email(request.reviewer_email)
        and len(code) == 6 and code.isdigit()
        and hmac.compare_digest(hash_code(code, request.code_salt), request.code_hash)
    )


def counts_toward_lockout(refusals: list[Refusal]) -> bool:
    """A wrong code and a presenter in nobody's name both count toward the five tries that
    lock a request: either could be someone guessing."""
    return any(r.code in LOCKOUT_CODES for r in refusals)


def code_withdrawn(reviewer_email: str) -> Refusal:
    """The refusal of a right code presented by someone other than the reviewer it was sent
    to: the code is withdrawn and the reviewer is sent a new one."""
    return Refusal(code=RefusalCode.CODE_WITHDRAWN,
                   message=f"{CODE_WITHDRAWN}: it was presented by someone other than "
                           f"{reviewer_email}, who is sent a new one")


def signoff_refusals(
    request: SignoffRequestState,
    submission: Submission,
    *,
    accountable_lead: str,
    now: datetime,
    presenter_known: bool = True,
) -> list[Refusal]:
    """Every reason this sign-off may not be applied; empty when it may. A presenter other
    than the named reviewer is refused as not them when the staff directory knows them
    (`presenter_known`), and as not in the directory when it does not."""
    out: list[Refusal] = []

    def refuse(code: RefusalCode, message: str) -> None:
        out.append(Refusal(code=code, message=message))

    email = normalise_email(submission.reviewer_email)
    if request.locked:
        refuse(RefusalCode.REQUEST_LOCKED,
               "this sign-off request is locked after too many wrong codes")
    if request.used_at is not None:
        refuse(RefusalCode.CODE_USED, "the sign-off code has already been used")
    if email == normalise_email(accountable_lead):
        refuse(RefusalCode.OWN_ACTION, "the accountable lead may not sign off their own action")
    if not presenter_known and email != normalise_email(request.reviewer_email):
        refuse(RefusalCode.NOT_IN_DIRECTORY, not_in_directory(email))
    elif email != normalise_email(request.reviewer_email):
        refuse(RefusalCode.NOT_THE_REVIEWER,
               f"only the named senior reviewer ({request.reviewer_email}) may sign off; "
               f"'{email}' is not them")
    code = submission.code.strip()
    if not (len(code) == 6 and code.isdigit()) or not hmac.compare_digest(
        hash_code(code, request.code_salt), request.code_hash
    ):
        refuse(RefusalCode.WRONG_CODE, WRONG_CODE)
    elif now >= request.expires_at:
        refuse(RefusalCode.CODE_EXPIRED, "the sign-off code expired at "
               f"{request.expires_at.strftime('%Y-%m-%d %H:%M %Z')}")
    if submission.decision not in {d.value for d in Decision}:
        refuse(RefusalCode.BAD_DECISION, "decision must be 'approve' or 'reject'")
    if len(submission.rationale.strip()) < MIN_RATIONALE:
        refuse(RefusalCode.TOO_SHORT, f"the rationale must be at least {MIN_RATIONALE} characters")
    return out


def refusal_reasons(
    request: SignoffRequestState,
    submission: Submission,
    *,
    accountable_lead: str,
    now: datetime,
    presenter_known: bool = True,
) -> list[str]:
    """The words of `signoff_refusals`, as people read them."""
    return messages(signoff_refusals(request, submission, accountable_lead=accountable_lead,
                                     now=now, presenter_known=presenter_known))
