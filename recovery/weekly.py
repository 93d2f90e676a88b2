"""Weekly governance: the registered manager's audit per location and the provider
governance summary for the nominated individual."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from models.people import Role
from models.tables import CycleRunRow, LocationRow, PersonRow
from recovery import mail
from recovery.governance import GovernanceSnapshot
from recovery.settings import get_settings


def already_run(session: Session, cycle: str, as_of: date) -> CycleRunRow | None:
    return session.exec(select(CycleRunRow).where(CycleRunRow.cycle == cycle,
                                                  CycleRunRow.as_of == as_of)).first()


def mark_run(session: Session, cycle: str, as_of: date, summary: dict[str, object]) -> None:
    if already_run(session, cycle, as_of) is None:
        session.add(CycleRunRow(cycle=cycle, as_of=as_of, summary=summary))


def tracker_rows(snapshot: GovernanceSnapshot) -> list[dict[str, object]]:
    return [
        {"ref": a.ref, "title": a.title, "location": a.location, "domain": a.risk_domain,
         "risk": a.risk_level, "score": a.risk_score, "status": a.status, "rating": a.rating,
         "measured": a.measured, "target": a.target_wording, "trend": a.trend,
         "deadline": a.deadline.isoformat(), "escalated": a.escalated,
         "lead": a.accountable_lead, "reviewer": a.senior_reviewer,
         "review_due": a.next_review_due.isoformat(),
         "weaknesses": "; ".join(a.weaknesses)}
        for a in snapshot.lines
    ]


def report_markdown(snapshot: GovernanceSnapshot) -> str:
    return mail.environment().get_template("reports/weekly.md").render(s=snapshot)


def queue_weekly_emails(session: Session, snapshot: GovernanceSnapshot) -> int:
    """One email per location's registered manager, one to each nominated individual."""
    settings = get_settings()
    queued = 0
    locations = {loc.name: loc for loc in session.exec(select(LocationRow))}
    people = list(session.exec(select(PersonRow)))
    base = {"as_of": snapshot.as_of, "provider": snapshot.provider,
            "ui_url": settings.prefect_ui_url}
    for name, loc in sorted(locations.items()):
        lines = snapshot.for_location(name)
        if not lines:
            continue
        managers = [p.email for p in people if p.role == Role.REGISTERED_MANAGER.value
                    and p.location_id == loc.id]
        if not managers:
            continue
        mail.enqueue(
            session, dedupe_key=f"weekly:{snapshot.as_of.isoformat()}:{loc.code}",
            to=managers, template="weekly_summary",
            context={**base, "location": name, "lines": lines,
                     "weaknesses": [(a.ref, w) for a in lines for w in a.weaknesses]},
        )
        queued += 1
    nominated = [p.email for p in people if p.role == Role.NOMINATED_INDIVIDUAL.value]
    if nominated:
        mail.enqueue(
            session, dedupe_key=f"weekly:{snapshot.as_of.isoformat()}:provider",
            to=nominated, template="weekly_summary",
            context={**base, "location": None, "lines": snapshot.high,
                     "weaknesses": snapshot.weaknesses},
        )
        queued += 1
    return queued
