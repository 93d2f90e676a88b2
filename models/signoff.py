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

from models.people import normalise_email

CODE_TTL = timedelta(hours=72)
MAX_WRONG_CODES = 5
MIN_RATIONALE = 20
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


def code_disclosed(request: SignoffRequestState, submission: Submission) -> bool:
    """The right code, still live, presented by someone other than the named reviewer it
    was sent to. Whoever holds it now is not who it was sent to, so it must not stay valid:
    the request withdraws it and the reviewer gets a new one."""
    code = submission.code.strip()
    return (
        request.used_at is None
        and not request.locked
        and normalise_email(submission.reviewer_email) != normalise_email(request.reviewer_email)
        and len(code) == 6 and code.isdigit()
        and hmac.compare_digest(hash_code(code, request.code_salt), request.code_hash)
    )


def refusal_reasons(
    request: SignoffRequestState,
    submission: Submission,
    *,
    accountable_lead: str,
    now: datetime,
) -> list[str]:
    """Every reason this sign-off may not be applied; empty when it may."""
    reasons: list[str] = []
    email = normalise_email(submission.reviewer_email)
    if request.locked:
        reasons.append("this sign-off request is locked after too many wrong codes")
    if request.used_at is not None:
        reasons.append("the sign-off code has already been used")
    if email == normalise_email(accountable_lead):
        reasons.append("the accountable lead may not sign off their own action")
    if email != normalise_email(request.reviewer_email):
        reasons.append(
            f"only the named senior reviewer ({request.reviewer_email}) may sign off; "
            f"'{email}' is not them"
        )
    code = submission.code.strip()
    if not (len(code) == 6 and code.isdigit()) or not hmac.compare_digest(
        hash_code(code, request.code_salt), request.code_hash
    ):
        reasons.append("the sign-off code is wrong")
    elif now >= request.expires_at:
        reasons.append(
            f"the sign-off code expired at {request.expires_at.strftime('%Y-%m-%d %H:%M %Z')}"
        )
    if submission.decision not in {d.value for d in Decision}:
        reasons.append("decision must be 'approve' or 'reject'")
    if len(submission.rationale.strip()) < MIN_RATIONALE:
        reasons.append(f"the rationale must be at least {MIN_RATIONALE} characters")
    return reasons
