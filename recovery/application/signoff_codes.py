"""Sign-off requests and their one-time codes: opening a request, issuing, sending and
reissuing a code, and the alerts of a lockout or a disclosed code. Every function is idempotent
against the database, because a Prefect run restarts from the top after each resume.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from models.errors import RuleRefused
from models.lifecycle import Status
from models.people import Role, normalise_email
from models.recovery_action import RecoveryAction
from models.refusal import RefusalCode
from models.signoff import (
    CODE_TTL,
    SignoffKind,
    SignoffRequestState,
    hash_code,
    new_code,
    new_salt,
)
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.repository import latest_closure_request
from recovery.adapters.tables import (
    ActionRow,
    DecisionRow,
    PersonRow,
    SignoffRequestRow,
    WaitRow,
    as_utc,
    utcnow,
)
from recovery.application.signoff_waits import WaitInfo, last_refusal, wait_key
from recovery.settings import get_settings

#: Refusals after which an expired request is replaced by a new one.
_REISSUE_AFTER = frozenset({RefusalCode.CODE_EXPIRED.value, RefusalCode.CODE_WITHDRAWN.value})


def signoff_base(kind: SignoffKind, attempt: int) -> str:
    return f"{kind.value}-signoff-{attempt}"


def request_state(row: SignoffRequestRow) -> SignoffRequestState:
    return SignoffRequestState(
        kind=SignoffKind(row.kind), reviewer_email=row.reviewer_email, code_salt=row.code_salt,
        code_hash=row.code_hash, issued_at=as_utc(row.issued_at),
        expires_at=as_utc(row.expires_at),
        used_at=as_utc(row.used_at) if row.used_at else None,
        wrong_attempts=row.wrong_attempts, locked=row.locked,
    )


def current_request(
    session: Session, action_id: int, kind: SignoffKind
) -> SignoffRequestRow | None:
    return session.exec(
        select(SignoffRequestRow)
        .where(SignoffRequestRow.action_id == action_id, SignoffRequestRow.kind == kind.value)
        .order_by(col(SignoffRequestRow.attempt).desc())
    ).first()


def open_signoff(
    session: Session, ref: str, kind: SignoffKind, *, flow_run_id: str | None,
    now: datetime | None = None, context: dict[str, Any] | None = None,
) -> WaitInfo:
    """The live sign-off request for this stage, issuing a new one (new code, one email to
    the named senior reviewer) only when none is live: first time, after a decision, or
    after the code expired."""
    now = now or utcnow()
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    reviewer = repo.person_by_id(session, row.senior_reviewer_id)
    request = current_request(session, row.id, kind)
    decided = request is not None and session.exec(
        select(DecisionRow).where(DecisionRow.action_id == row.id, DecisionRow.kind == kind.value,
                                  DecisionRow.attempt == request.attempt)
    ).first() is not None
    # An expired code is replaced only once an answer has been refused for it: reissuing
    # sooner moves the run to a new key and silently drops the answer that woke it.
    expired = request is not None and as_utc(request.expires_at) <= now and any(
        code in _REISSUE_AFTER
        for wait in session.exec(select(WaitRow).where(
            WaitRow.action_id == row.id, WaitRow.outcome == "refused",
            WaitRow.base == signoff_base(kind, request.attempt)))
        for code in wait.codes
    )
    # a request whose code was used without a decision (an approval refused because the
    # evidence changed) is finished too: the next one carries a new code
    finished = request is not None and request.used_at is not None
    if request is None or decided or finished or (expired and not request.locked):
        attempt = 1 if request is None else request.attempt + 1
        if request is not None and not decided and not finished:
            # the same decision asked again (code expired or withdrawn): it stays with
            # whoever holds it, a stand-in included, never back to a reviewer who is away
            reviewer = repo.find_person(session, request.reviewer_email) or reviewer
        request = _issue(session, row, reviewer, kind, attempt, flow_run_id, now, context or {})
    base = signoff_base(kind, request.attempt)
    return WaitInfo(
        ref=row.ref, kind=kind.value, attempt=request.attempt, base=base,
        pause_key=wait_key(session, row.id, base), reviewer_email=request.reviewer_email,
        refused_before=last_refusal(session, row.id, base), locked=request.locked,
        expires_at=as_utc(request.expires_at),
    )


def _issue(
    session: Session, row: ActionRow, reviewer: PersonRow, kind: SignoffKind, attempt: int,
    flow_run_id: str | None, now: datetime, context: dict[str, Any],
) -> SignoffRequestRow:
    assert row.id is not None
    request = SignoffRequestRow(
        action_id=row.id, kind=kind.value, attempt=attempt,
        pause_key=signoff_base(kind, attempt), reviewer_email=reviewer.email, code_salt="",
        code_hash="", issued_at=now, expires_at=now + CODE_TTL, flow_run_id=flow_run_id,
    )
    closure = latest_closure_request(session, row.id) if kind == SignoffKind.CLOSURE else None
    snapshot = closure.snapshot_ref if closure is not None else None
    from recovery.application import absences

    away = absences.away(session, reviewer.email, get_settings().today())
    if away is not None:
        # nobody away is chosen by an automatic path: the request waits with no live code
        # until it is reassigned to a stand-in (or a new code is sent once they are back)
        session.add(request)
        session.flush()
        absences.tell_held(session, row, request, reviewer, away.ends_on)
    else:
        _send_code(session, row, reviewer, request, now, {"snapshot_ref": snapshot, **context},
                   dedupe_key=f"signoff:{row.ref}:{kind.value}:{attempt}")
    audit_log.append(
        session, actor="system", event="signoff.requested", action_ref=row.ref,
        details={"kind": kind.value, "attempt": attempt, "reviewer": reviewer.email,
                 "expires_at": (now + CODE_TTL).isoformat(), "flow_run_id": flow_run_id},
        dedupe_key=f"signoff.requested:{row.ref}:{kind.value}:{attempt}",
    )
    return request


def _send_code(
    session: Session, row: ActionRow, reviewer: PersonRow, request: SignoffRequestRow,
    now: datetime, context: dict[str, Any], *, dedupe_key: str | None,
) -> None:
    """Put a new code on the request (the one it held stops working) and queue the email
    that carries it to the named reviewer (keyed by the new code's tag unless given)."""
    code, salt = new_code(), new_salt()
    request.code_salt, request.code_hash = salt, hash_code(code, salt)
    request.issued_at, request.expires_at = now, now + CODE_TTL
    session.add(request)
    session.flush()
    settings = get_settings()
    kind = request.kind
    if dedupe_key is None:
        dedupe_key = f"signoff:{row.ref}:{kind}:{request.attempt}:{code_tag(request)}"
    mail.enqueue(
        session, dedupe_key=dedupe_key, to=[reviewer.email],
        template="signoff_request", action_ref=row.ref, one_time_code=code,
        context={
            "ref": row.ref, "title": row.title, "kind": kind,
            "reviewer_name": reviewer.name, "code": code,
            "expires_at": (now + CODE_TTL).astimezone(settings.tz),
            "run_url": settings.run_url(request.flow_run_id), "risk_level": row.risk_level,
            "cli": f"recovery signoff {row.ref} --by {reviewer.email} --code {code} "
                   f"--decision approve --rationale \"...\"",
            "snapshot_ref": None,
            **context,
        },
    )


def send_code(session: Session, row: ActionRow, reviewer: PersonRow,
              request: SignoffRequestRow, now: datetime) -> None:
    """A new code on the request for `reviewer` (reissue, reassignment): the old one stops
    working; the email is keyed by the new code's tag."""
    _send_code(session, row, reviewer, request, now, {}, dedupe_key=None)


def code_tag(request: SignoffRequestRow) -> str:
    """Names the code a request holds now (a reissue gives it another), so each lockout
    of each code is its own alert and audit entry; derived from the salt, which says
    nothing about the code."""
    return hashlib.blake2s(request.code_salt.encode("utf-8"), digest_size=4).hexdigest()


def manager_and_ni(session: Session, row: ActionRow) -> list[PersonRow]:
    """Who hears of a sign-off in trouble: the location's registered manager(s) and the
    provider's nominated individual(s)."""
    return list(session.exec(
        select(PersonRow).where(
            (PersonRow.role == Role.NOMINATED_INDIVIDUAL.value)
            | ((PersonRow.role == Role.REGISTERED_MANAGER.value)
               & (PersonRow.location_id == row.location_id))
        )
    ).all())


def alert_lockout(session: Session, row: ActionRow, request: SignoffRequestRow) -> None:
    location_people = manager_and_ni(session, row)
    key = f"signoff.locked:{row.ref}:{request.kind}:{request.attempt}:{code_tag(request)}"
    mail.enqueue(
        session, dedupe_key=key,
        to=[p.email for p in location_people], template="signoff_locked", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "kind": request.kind,
                 "attempts": request.wrong_attempts, "reviewer_email": request.reviewer_email,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )
    audit_log.append(
        session, actor="system", event="signoff.locked", action_ref=row.ref,
        details={"kind": request.kind, "attempt": request.attempt,
                 "wrong_attempts": request.wrong_attempts},
        dedupe_key=key,
    )


def alert_disclosed(session: Session, row: ActionRow, request: SignoffRequestRow,
                     presented_by: str) -> None:
    """The registered manager and nominated individual learn that a live code reached
    someone it was not sent to (once per request)."""
    location_people = manager_and_ni(session, row)
    who = normalise_email(presented_by) or "someone unnamed"
    key = f"signoff.withdrawn:{row.ref}:{request.kind}:{request.attempt}"
    mail.enqueue(
        session, dedupe_key=key, to=[p.email for p in location_people],
        template="signoff_withdrawn", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "kind": request.kind,
                 "presented_by": who, "reviewer_email": request.reviewer_email,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )
    audit_log.append(
        session, actor="system", event="signoff.code_withdrawn", action_ref=row.ref,
        details={"kind": request.kind, "attempt": request.attempt, "presented_by": who,
                 "reviewer": request.reviewer_email},
        dedupe_key=key,
    )


def reissue(session: Session, ref: str, *, by: str, now: datetime | None = None) -> str:
    """A registered manager, nominated individual or provider lead has a new code sent to
    the reviewer of the request that waits (locked after wrong codes, or its email lost):
    the old code stops working, the count of wrong codes starts again, and the run's wait
    takes the new code as it is. Refused when no sign-off waits. Returns the kind."""
    now = now or utcnow()
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    person = repo.get_person(session, by, field="by")
    RecoveryAction.may_reissue(repo.to_person(person))
    waiting = {Status.AWAITING_PLAN_SIGNOFF.value: SignoffKind.PLAN,
               Status.AWAITING_CLOSURE_SIGNOFF.value: SignoffKind.CLOSURE}
    kind = waiting.get(row.status)
    request = current_request(session, row.id, kind) if kind else None
    if kind is None or request is None or request.used_at is not None:
        raise RuleRefused("sign-off reissue",
                          [f"{row.ref} has no sign-off waiting (status {row.status})"])
    from recovery.application import absences

    away = absences.away(session, request.reviewer_email, get_settings().today())
    if away is not None:
        raise RuleRefused("sign-off reissue", [
            f"{request.reviewer_email} is away until {away.ends_on.strftime('%d/%m/%Y')}: "
            f"hand the sign-off to a stand-in with `recovery signoff reassign {row.ref} "
            "--to EMAIL --by EMAIL --reason TEXT`"])
    was_locked = request.locked
    request.locked = False
    request.wrong_attempts = 0
    reviewer = repo.get_person(session, request.reviewer_email, field="reviewer")
    _send_code(session, row, reviewer, request, now, {}, dedupe_key=None)
    key = f"{row.ref}:{kind.value}:{request.attempt}:{code_tag(request)}"
    audit_log.append(session, actor=person.email, event="signoff.reissued",
                     action_ref=row.ref, details={"kind": kind.value,
                                                  "attempt": request.attempt,
                                                  "was_locked": was_locked},
                     dedupe_key=f"signoff.reissued:{key}")
    return kind.value
