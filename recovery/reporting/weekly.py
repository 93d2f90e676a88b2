"""Weekly governance: the registered manager's audit per location and the provider
governance summary for the nominated individual."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlmodel import Session, col, select

from models.people import Role
from recovery.adapters import escaping, mail
from recovery.adapters.tables import CycleRunRow, LocationRow, PersonRow
from recovery.reporting.snapshot import GovernanceSnapshot
from recovery.settings import get_settings


def already_run(session: Session, cycle: str, as_of: date) -> CycleRunRow | None:
    return session.exec(select(CycleRunRow).where(CycleRunRow.cycle == cycle,
                                                  CycleRunRow.as_of == as_of)).first()


def mark_run(session: Session, cycle: str, as_of: date, summary: dict[str, object]) -> None:
    if already_run(session, cycle, as_of) is None:
        session.add(CycleRunRow(cycle=cycle, as_of=as_of, summary=summary))


def tracker_rows(snapshot: GovernanceSnapshot) -> list[dict[str, object]]:
    """The tracker table artifact. Prefect renders each text cell as Markdown, so the
    cells holding what people typed are made inert like every other Markdown surface."""
    rows = [
        {"ref": a.ref, "title": a.title, "location": a.location, "domain": a.risk_domain,
         "risk": a.risk_level, "score": a.risk_score, "status": a.status, "rating": a.rating,
         "measured": a.measured, "target": a.target_wording, "trend": a.trend,
         "deadline": a.deadline.isoformat(), "escalated": a.escalated,
         "lead": a.accountable_lead, "reviewer": a.senior_reviewer,
         "review_due": a.next_review_due.isoformat(),
         "weaknesses": "; ".join(a.weaknesses)}
        for a in snapshot.lines
    ]
    return [{k: escaping.markdown_text(v) if k in _TYPED_CELLS else v for k, v in row.items()}
            for row in rows]


#: The tracker's cells that carry what people typed (the rest are the product's words).
_TYPED_CELLS = frozenset({"title", "location", "lead", "reviewer", "target", "weaknesses"})


def report_markdown(snapshot: GovernanceSnapshot) -> str:
    return mail.environment().get_template("reports/weekly.md").render(s=snapshot)


def queue_weekly_emails(session: Session, snapshot: GovernanceSnapshot) -> int:
    """One email per location's registered manager, one to each nominated individual.
    The staff directory is read once and indexed by location (2,000 locations × 20,000
    people were compared one by one before), and the emails are queued in one batch."""
    settings = get_settings()
    managers: dict[int | None, list[str]] = defaultdict(list)
    nominated: list[str] = []
    for email, role, location_id in session.execute(
            select(PersonRow.email, PersonRow.role, PersonRow.location_id)
            .order_by(col(PersonRow.id))):
        if role == Role.REGISTERED_MANAGER.value:
            managers[location_id].append(email)
        elif role == Role.NOMINATED_INDIVIDUAL.value:
            nominated.append(email)
    base = {"as_of": snapshot.as_of, "provider": snapshot.provider,
            "ui_url": settings.prefect_ui_url}
    emails: list[mail.Email] = []
    for name, location_id, code in sorted(session.execute(
            select(LocationRow.name, LocationRow.id, LocationRow.code)).all()):
        lines = snapshot.for_location(name)
        if not lines or not managers.get(location_id):
            continue
        emails.append(mail.Email(
            dedupe_key=f"weekly:{snapshot.as_of.isoformat()}:{code}",
            to=managers[location_id], template="weekly_summary",
            context={**base, "location": name, "lines": lines,
                     "weaknesses": [(a.ref, w) for a in lines for w in a.weaknesses]},
        ))
    if nominated:
        from recovery.adapters import anchors

        # the audit chain's head as of this email: a copy of the anchor in the nominated
        # individual's mailbox, out of reach of anyone who can edit the database
        head = anchors.head(session)
        emails.append(mail.Email(
            dedupe_key=f"weekly:{snapshot.as_of.isoformat()}:provider",
            to=nominated, template="weekly_summary",
            context={**base, "location": None, "lines": snapshot.high,
                     "weaknesses": snapshot.weaknesses,
                     "anchor": f"{head.seq}:{head.hash}" if head else None},
        ))
    mail.enqueue_many(session, emails)
    return len(emails)
