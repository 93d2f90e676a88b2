"""Across the actions of a pack: which need a governance meeting's attention, which get a
measure chart, the counts and the location-by-domain matrix, the pack's metadata and the
snapshot it starts from, how weaknesses group and who decides what. The per-action
loading is `details`.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from models.action import RiskDomain
from models.review import Rating
from models.risk import RiskLevel
from recovery.adapters import repository as repo
from recovery.adapters.tables import LocationRow
from recovery.reporting import charts
from recovery.reporting.packs.views import (
    ATTENTION_OVER,
    CHART_ALL_LIMIT,
    CHART_CHOICES,
    TITLES,
    ActionDetail,
    Counts,
    PackKind,
    PackMeta,
)
from recovery.reporting.snapshot import (
    LOCAL_ONLY,
    NOT_STARTED,
    ActionLine,
    GovernanceSnapshot,
    build_snapshot,
)
from recovery.settings import get_settings


def needs_attention(line: ActionLine) -> bool:
    """What a governance meeting must look at: anything but a reviewed action on track."""
    return (line.rating != Rating.ON_TRACK.value or line.escalated or line.review_overdue
            or bool(line.decisions_needed))


def chart_plan(lines: list[ActionLine], chart: str) -> tuple[set[str], str | None]:
    """The refs that get a measure chart, and a sentence for the pack when some high-risk
    actions are shown without one."""
    from models.errors import InvalidInput

    if chart not in CHART_CHOICES:
        raise InvalidInput("charts", f"'{chart}' is not one of {', '.join(CHART_CHOICES)}")
    high = [line for line in lines if line.risk_level == RiskLevel.HIGH.value]
    if chart == "auto":
        chart = ("all" if len(lines) <= CHART_ALL_LIMIT
                 else "high" if len(high) <= ATTENTION_OVER else "attention")
    if chart == "none":
        return set(), None
    if chart == "all":
        return {line.ref for line in lines}, None
    if chart == "high":
        return {line.ref for line in high}, None
    charted = {line.ref for line in high if needs_attention(line)}
    left = len(high) - len(charted)
    note = (f"{left} of the {len(high)} high-risk actions are on track, reviewed on time, "
            "not escalated and wait on no decision: they are shown without a measure chart. "
            "`recovery report governance --charts high` draws every high-risk action's "
            "chart.") if left else None
    return charted, note


def _counts(lines: list[ActionLine]) -> Counts:
    rags = [charts.rag_of(line.rating) for line in lines]
    return Counts(
        actions=len(lines), high=sum(1 for x in lines if x.risk_level == "high"),
        escalated=sum(1 for x in lines if x.escalated),
        overdue_reviews=sum(1 for x in lines if x.review_overdue),
        red=rags.count("red"), amber=rags.count("amber"), green=rags.count("green"),
        not_reviewed=rags.count("grey"),
        decisions_needed=sum(len(x.decisions_needed) for x in lines))


def _matrix(session: Session, lines: list[ActionLine], location: str | None) -> str | None:
    if location:
        names = sorted({line.location for line in lines}) or [location]
    else:
        names = sorted(loc.name for loc in session.exec(select(LocationRow)))
    if not names:
        return None
    rank = {name: i for i, name in enumerate(charts.RAG_ORDER)}
    cells: dict[tuple[str, str], tuple[str, int]] = {}
    for line in lines:
        key = (line.location, line.risk_domain)
        rag = charts.rag_of(line.rating)
        worst, count = cells.get(key, ("none", 0))
        cells[key] = (rag if rank[rag] > rank[worst] else worst, count + 1)
    domains = [(d.value, d.label) for d in RiskDomain]
    return charts.matrix_chart(names, domains, cells)


def _meta(kind: PackKind, snapshot: GovernanceSnapshot, location: str | None,
          charts: str = "none") -> PackMeta:
    settings = get_settings()
    return PackMeta(kind=kind, title=TITLES[kind], provider=snapshot.provider,
                    as_of=snapshot.as_of, generated_at=settings.now(), location=location,
                    freshness_days=settings.evidence_freshness_days,
                    timezone=settings.timezone,
                    charts_note=chart_plan(snapshot.lines, charts)[1])


def _snapshot(session: Session, as_of: date, location: str | None) -> tuple[
        GovernanceSnapshot, str | None]:
    name = repo.get_location(session, location).name if location else None
    return build_snapshot(session, as_of=as_of, location=name), name


def _weakness_key(text: str) -> str:
    if text.startswith(LOCAL_ONLY):
        return "local"
    if text.startswith(NOT_STARTED):
        return "not_started"
    if " overdue since " in text:
        return "overdue"
    if text.startswith("stale evidence"):
        return "stale"
    return "other"


def _who_decides(a: ActionDetail, what: str) -> str:
    if "senior reviewer" in what:
        return a.reviewer.described
    if "accountable lead" in what:
        return a.lead.described
    return ("a registered manager, nominated individual or provider lead "
            f"(senior reviewer: {a.reviewer.name})")
