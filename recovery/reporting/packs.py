"""The three report packs (provider governance, commissioner, inspector) built from the
stored records into typed contexts, rendered with the one Jinja environment to HTML
(self-contained, print-ready A4), Markdown or PDF (WeasyPrint).

The packs start from `recovery.reporting.snapshot.build_snapshot` (the same view the weekly cycle
uses) and add, set-based for every action at once, what each audience asks for: evidence
per pillar with freshness, escalations and control changes, sign-off decisions, the
provider assurance minutes, the improvement plan and, for inspectors, the decision log
from the hash-chained audit trail with the chain verified.
"""

from __future__ import annotations

import base64
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.action import RiskDomain
from models.audit import AuditEntry
from models.cadence import HIGH_RISK_DAILY_DAYS
from models.dates import shift
from models.evidence import TRIANGULATION_PILLARS, Evidence, Pillar
from models.lifecycle import Status
from models.people import PROVIDER_LEVEL_ROLES, Role
from models.review import Rating, rating_label
from models.risk import (
    FACTOR_LABELS,
    FACTOR_SCALES,
    HIGH_THRESHOLD,
    MEDIUM_THRESHOLD,
    RiskLevel,
)
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    ActionStatementRow,
    AssuranceEntryRow,
    AuditRow,
    ControlChangeRow,
    DecisionRow,
    EscalationRow,
    EvidenceRow,
    LocationRow,
    PersonRow,
    ReviewRow,
    StatementRow,
    as_utc,
    table_of,
)
from recovery.reporting import charts
from recovery.reporting.snapshot import (
    ID_CHUNK,
    LOCAL_ONLY,
    NOT_STARTED,
    ActionLine,
    GovernanceSnapshot,
    build_snapshot,
)
from recovery.settings import get_settings

PackKind = Literal["governance", "commissioner", "inspector"]
PackFormat = Literal["html", "pdf", "md"]
PACKS: tuple[PackKind, ...] = ("governance", "commissioner", "inspector")
FORMATS: tuple[PackFormat, ...] = ("html", "pdf", "md")
TITLES = {
    "governance": "Provider governance pack",
    "commissioner": "Commissioner pack",
    "inspector": "Inspector pack",
}
#: Up to this many actions every action gets a chart; beyond it only high-risk ones do.
CHART_ALL_LIMIT = 12
#: Beyond this many high-risk actions a pack charts those that need the meeting's
#: attention (not on track, escalated, review overdue, a decision waiting): a provider
#: group's pack with thousands of charts is read by nobody, and costs minutes to draw.
ATTENTION_OVER = 100
#: Which actions get a measure chart: "auto" (the rules above), "all", "high",
#: "attention" (high-risk ones needing attention) or "none".
CHART_CHOICES = ("auto", "all", "high", "attention", "none")

#: What commissioners ask for, by the source of the evidence, and the risk domains in
#: which the heading is shown even when nothing has been recorded ("*": every domain).
EVIDENCE_KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Audit summaries", ("audits",), ("*",)),
    ("Staffing evidence", ("rota_evidence",), ("staffing",)),
    ("Safeguarding updates", ("safeguarding_logs",), ("safeguarding",)),
    ("Medicines reports", ("medicines_records",), ("medicines",)),
    ("Governance minutes", ("governance_minutes",), ("*",)),
    ("Care records, feedback, staff practice and incident trends",
     ("care_records", "feedback", "staff_practice", "incident_trends"), ()),
)
SHORT_FACTOR_LABELS = {
    "potential_harm": "Harm", "people_affected": "People",
    "likelihood_of_recurrence": "Likelihood", "regulatory_impact": "Regulatory",
    "control_strength": "Controls",
}
WEAKNESS_GROUPS = (
    ("not_started", "Identified but not started: no lifecycle run"),
    ("local", "Serious risks managed only at local team level"),
    ("overdue", "Overdue reviews and decisions"),
    ("stale", "Actions with stale evidence"),
    ("other", "Other weaknesses"),
)


# ---------------------------------------------------------------- typed contexts


class PersonView(BaseModel):
    name: str
    email: str
    role: str

    @property
    def described(self) -> str:
        return f"{self.name} ({self.role})"


class FactorView(BaseModel):
    key: str
    label: str
    score: int
    meaning: str


class StatementView(BaseModel):
    id: str
    title: str
    key_question: str


class EvidenceView(BaseModel):
    id: int
    source: str
    source_label: str
    pillar: str
    value: float | None
    sample_size: int | None
    observed_on: date
    recorded_by: str
    reference: str
    fresh: bool
    age_days: int


class PillarView(BaseModel):
    pillar: str
    label: str
    latest_value: float | None
    last_observed_on: date | None
    fresh: bool
    items: int


class EscalationView(BaseModel):
    opened_on: date
    reasons: list[str]
    resolved_on: date | None
    control_change: str | None


class ControlChangeView(BaseModel):
    decided_on: date
    what: str
    decided_by: str
    reason: str
    old_deadline: date | None
    new_deadline: date | None


class DecisionView(BaseModel):
    kind: str
    decision: str
    reviewer: str
    rationale: str
    decided_at: datetime
    snapshot_ref: str | None = None
    """A closure decision: the gate snapshot it was made on."""


class AssuranceView(BaseModel):
    recorded_on: date
    outcome: str
    note: str
    recorded_by: str


class AuditView(BaseModel):
    seq: int
    at: datetime
    actor: str
    event: str
    details: list[tuple[str, str]]
    hash: str
    verified: bool


class ClaimView(BaseModel):
    """One thing the tracker says about an action, and the records behind it."""

    claim: str
    stated: str
    evidence: list[EvidenceView]
    log_seqs: list[int]


class ActionDetail(BaseModel):
    line: ActionLine
    rag: str
    lead: PersonView
    reviewer: PersonView
    baseline_issue: str
    baseline_on: date
    target_measure: str
    trajectory: float | None
    last_review_on: date | None
    interim_controls: list[str]
    statements: list[StatementView]
    factors: list[FactorView]
    pillars: list[PillarView]
    evidence: list[EvidenceView]
    escalations: list[EscalationView]
    control_changes: list[ControlChangeView]
    decisions: list[DecisionView]
    assurance: list[AssuranceView]
    chart_svg: str | None = None
    claims: list[ClaimView] = Field(default_factory=list)
    log: list[AuditView] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        return self.line.ref

    @property
    def is_high(self) -> bool:
        return self.line.risk_level == RiskLevel.HIGH.value

    def evidence_of(self, sources: Iterable[str]) -> list[EvidenceView]:
        wanted = set(sources)
        return [e for e in self.evidence if e.source in wanted]


class PackMeta(BaseModel):
    kind: PackKind
    title: str
    provider: str
    as_of: date
    generated_at: datetime
    location: str | None
    freshness_days: int
    timezone: str
    charts_note: str | None = None


class Counts(BaseModel):
    actions: int
    high: int
    escalated: int
    overdue_reviews: int
    red: int
    amber: int
    green: int
    not_reviewed: int
    decisions_needed: int


class WeaknessItem(BaseModel):
    ref: str
    title: str
    location: str
    text: str


class WeaknessGroup(BaseModel):
    key: str
    title: str
    items: list[WeaknessItem]


class DecisionNeeded(BaseModel):
    ref: str
    title: str
    location: str
    what: str
    who: str


class GovernancePack(BaseModel):
    meta: PackMeta
    counts: Counts
    matrix_svg: str | None
    actions: list[ActionDetail]
    weaknesses: list[WeaknessGroup]
    decisions_needed: list[DecisionNeeded]

    @property
    def high(self) -> list[ActionDetail]:
        return [a for a in self.actions if a.is_high]

    @property
    def others(self) -> list[ActionDetail]:
        return [a for a in self.actions if not a.is_high]


class EvidenceGroup(BaseModel):
    title: str
    items: list[tuple[str, EvidenceView]]  # (action ref, evidence)
    always: bool  # shown (as "none recorded") even when empty


class DomainSection(BaseModel):
    domain: str
    label: str
    actions: list[ActionDetail]
    evidence_groups: list[EvidenceGroup]


class ImprovementRow(BaseModel):
    ref: str
    title: str
    responsible: PersonView
    reviewer: PersonView
    start: date
    deadline: date
    measure: str
    target_wording: str
    baseline: float
    measured: float | None
    status: str
    rating: str
    rag: str
    review_frequency: str


class ImprovementIssue(BaseModel):
    issue: str
    location: str
    domain: str
    statements: list[StatementView]
    rows: list[ImprovementRow]


class CommissionerPack(BaseModel):
    meta: PackMeta
    counts: Counts
    matrix_svg: str | None
    actions: list[ActionDetail]
    domains: list[DomainSection]
    improvement_plan: list[ImprovementIssue]

    @property
    def improvement_rows(self) -> int:
        return sum(len(issue.rows) for issue in self.improvement_plan)


class ChainView(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None
    verified_at: datetime

    @property
    def statement(self) -> str:
        when = mail.uk_datetime(self.verified_at, "long")
        if self.ok:
            return (f"Audit trail verified on {when}: the hash chain of all {self.entries:,} "
                    f"entries is intact (every entry's SHA-256 hash was recomputed and "
                    f"checked against the entry before it).")
        return (f"Audit trail verification FAILED on {when}: {self.reason}. Entries from "
                f"{self.first_bad_seq} onwards cannot be relied on until this is explained.")


class FactorScale(BaseModel):
    key: str
    label: str
    short: str
    scale: list[tuple[int, str]]


class InspectorPack(BaseModel):
    meta: PackMeta
    counts: Counts
    chain: ChainView
    factor_scales: list[FactorScale]
    high_threshold: int
    medium_threshold: int
    high_daily_days: int
    actions: list[ActionDetail]


Pack = GovernancePack | CommissionerPack | InspectorPack


# ---------------------------------------------------------------- loading, set-based


def _person(row: PersonRow) -> PersonView:
    return PersonView(name=row.name, email=row.email, role=Role(row.role).label)


def _plain(value: Any) -> str:
    """An audit detail as people read it: UK dates and times, 70 not 70.0."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "; ".join(_plain(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {_plain(v)}" for k, v in value.items())
    text = str(value)
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            return date.fromisoformat(text).strftime("%d/%m/%Y")
        except ValueError:
            return text
    if 19 <= len(text) <= 32 and text[4] == "-" and text[10] == "T":
        try:
            return mail.uk_datetime(datetime.fromisoformat(text))
        except ValueError:
            return text
    return text


def _details_text(details: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key.replace("_", " "), _plain(value)) for key, value in details.items()]


def _audit_view(entry: AuditEntry, first_bad: int | None) -> AuditView:
    return AuditView(seq=entry.seq, at=entry.at, actor=entry.actor, event=entry.event,
                     details=_details_text(entry.details), hash=entry.hash,
                     verified=first_bad is None or entry.seq < first_bad)


def _local_date(value: datetime) -> date:
    return as_utc(value).astimezone(get_settings().tz).date()


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


def _pillar_views(
    session: Session, ids: list[int], as_of: date, freshness_days: int,
) -> dict[int, list[PillarView]]:
    """Per action, evidence per pillar with freshness, as `pillar_positions` defines it,
    worked out in the database: per action and pillar one row with the number of items
    and the last day one was observed (GROUP BY over the (action_id, observed_on) index),
    and the latest measured item, or the latest item when none is measured (two
    `ORDER BY observed_on DESC, id DESC LIMIT 1` look-ups walking that index back), instead
    of every evidence row as an object. (A window function ranking every row of each
    partition did the same work 3.6 times slower on SQLite.)"""
    e = table_of(EvidenceRow)
    x = e.alias("x")
    cutoff = shift(as_of, -freshness_days)
    found: dict[int, dict[str, tuple[date, float | None, int, date]]] = defaultdict(dict)
    for chunk in _chunks(ids):
        grouped = (
            sa_select(e.c.action_id, e.c.pillar, func.count().label("n_items"),
                      func.max(e.c.observed_on).label("last_seen"))
            .where(e.c.action_id.in_(chunk), e.c.observed_on <= as_of)
            .group_by(e.c.action_id, e.c.pillar)
            .subquery("g")
        )

        def latest(measured: bool, g: Any = grouped) -> Any:
            query = sa_select(x.c.id).where(x.c.action_id == g.c.action_id,
                                            x.c.pillar == g.c.pillar, x.c.observed_on <= as_of)
            if measured:
                query = query.where(x.c.value.is_not(None))
            return (query.order_by(x.c.observed_on.desc(), x.c.id.desc()).limit(1)
                    .scalar_subquery())

        rows = session.connection().execute(
            sa_select(grouped.c.action_id, grouped.c.pillar, e.c.observed_on, e.c.value,
                      grouped.c.n_items, grouped.c.last_seen)
            .select_from(grouped)
            .join(e, e.c.id == func.coalesce(latest(True), latest(False)))
        ).all()
        for action_id, pillar, observed_on, value, items, last_seen in rows:
            found[action_id][pillar] = (observed_on, value, items, last_seen)
    out: dict[int, list[PillarView]] = {}
    for action_id in ids:
        mine = found.get(action_id, {})
        views = []
        for pillar in TRIANGULATION_PILLARS:
            observed_on, value, items, last_seen = mine.get(pillar.value,
                                                            (None, None, 0, None))
            views.append(PillarView(
                pillar=pillar.value, label=pillar.label,
                latest_value=value if observed_on is not None and observed_on >= cutoff
                else None,
                last_observed_on=last_seen,
                fresh=last_seen is not None and last_seen >= cutoff, items=items))
        _, value, items, last_seen = mine.get(Pillar.SUPPORTING.value, (None, None, 0, None))
        views.append(PillarView(
            pillar="supporting", label="supporting (not triangulated)", latest_value=value,
            last_observed_on=last_seen,
            fresh=last_seen is not None and last_seen >= cutoff, items=items))
        out[action_id] = views
    return out


def _chart_evidence(session: Session, ids: list[int],
                    as_of: date) -> dict[int, list[tuple[date, float, str]]]:
    """The measured evidence the charts plot: (observed on, value, pillar) per action, four
    columns read as plain tuples (points are made per chart, then dropped)."""
    e = table_of(EvidenceRow).c
    out: dict[int, list[tuple[date, float, str]]] = defaultdict(list)
    for chunk in _chunks(ids):
        for action_id, observed_on, value, pillar in session.connection().execute(
                sa_select(e.action_id, e.observed_on, e.value, e.pillar)
                .where(e.action_id.in_(chunk), e.observed_on <= as_of,
                       e.value.is_not(None))
                .order_by(e.observed_on, e.id)):
            out[action_id].append((observed_on, value, pillar))
    return out


def _evidence_items(session: Session, ids: list[int], as_of: date) -> dict[int, list[Evidence]]:
    """Every evidence item of each action (the commissioner and inspector packs list them)."""
    out: dict[int, list[Evidence]] = defaultdict(list)
    for chunk in _chunks(ids):
        for e in session.exec(select(EvidenceRow).where(
                col(EvidenceRow.action_id).in_(chunk), EvidenceRow.observed_on <= as_of)
                .order_by(col(EvidenceRow.observed_on), col(EvidenceRow.id))):
            out[e.action_id].append(repo.to_evidence(e))
    return out


def _in_plan_order(views: list[StatementView], plan: dict[str, Any]) -> list[StatementView]:
    """The quality statements in the order the plan lists them."""
    listed = {key: i for i, key in enumerate(plan.get("quality_statements", []))}
    return sorted(views, key=lambda v: (listed.get(v.id, len(listed)), v.id))


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


def _details(
    session: Session, snapshot: GovernanceSnapshot, *, freshness_days: int,
    chart: str = "high", audit: ChainView | None = None, items: bool = True,
) -> list[ActionDetail]:
    """Every snapshot line with what the packs show about it, read in a few queries.
    `items`: list every evidence item (`ActionDetail.evidence`; the commissioner and
    inspector packs show them); without it only the per-pillar summary is read, which is
    all the governance pack shows."""
    as_of = snapshot.as_of
    lines = snapshot.lines
    refs = [line.ref for line in lines]
    if not refs:
        return []
    rows: dict[str, ActionRow] = {}
    for ref_chunk in [refs[i:i + ID_CHUNK] for i in range(0, len(refs), ID_CHUNK)]:
        rows.update((r.ref, r) for r in session.exec(
            select(ActionRow).where(col(ActionRow.ref).in_(ref_chunk))))
    ids = [r.id for r in rows.values() if r.id is not None]
    people = {p.id: p for p in session.exec(select(PersonRow))}
    charted_refs, _ = chart_plan(lines, chart)
    charted = {rows[ref].id for ref in charted_refs}

    pillar_views = _pillar_views(session, ids, as_of, freshness_days)
    evidence = _evidence_items(session, ids, as_of) if items else {}
    chart_points = _chart_evidence(session, [i for i in ids if i in charted], as_of)
    # reviews: per action the last one (trajectory and date), and for a charted action
    # every one up to the date (what its chart plots), as plain tuples
    reviews: dict[int, list[tuple[date, float | None, float, str]]] = defaultdict(list)
    last_review: dict[int, tuple[date, float]] = {}
    r = table_of(ReviewRow).c
    for chunk in _chunks(ids):
        for action_id, day, measured, trajectory, rating in session.connection().execute(
                sa_select(r.action_id, r.as_of, r.measured_value, r.trajectory_value,
                          r.rating)
                .where(r.action_id.in_(chunk), r.as_of <= as_of).order_by(r.as_of)):
            last_review[action_id] = (day, trajectory)
            if action_id in charted:
                reviews[action_id].append((day, measured, trajectory, rating))
    # the rest as plain rows (Core, not ORM instances: a large provider has tens of
    # thousands of them and the pack only reads their columns)
    conn = session.connection()
    cc, es, dc = (table_of(ControlChangeRow).c, table_of(EscalationRow).c,
                  table_of(DecisionRow).c)
    ae, links = table_of(AssuranceEntryRow).c, table_of(ActionStatementRow).c
    st = table_of(StatementRow).c
    changes: dict[int, list[Any]] = defaultdict(list)
    change_text: dict[int, str] = {}
    escalations: dict[int, list[Any]] = defaultdict(list)
    decisions: dict[int, list[Any]] = defaultdict(list)
    assurance: dict[int, list[Any]] = defaultdict(list)
    statements: dict[int, list[StatementView]] = defaultdict(list)
    for chunk in _chunks(ids):
        for c in conn.execute(sa_select(table_of(ControlChangeRow))
                              .where(cc.action_id.in_(chunk))
                              .order_by(cc.decided_on, cc.id)).all():
            change_text[c.id] = c.what
            if c.decided_on <= as_of:
                changes[c.action_id].append(c)
        for esc in conn.execute(sa_select(table_of(EscalationRow))
                                .where(es.action_id.in_(chunk), es.opened_on <= as_of)
                                .order_by(es.opened_on, es.id)).all():
            escalations[esc.action_id].append(esc)
        for d in conn.execute(sa_select(table_of(DecisionRow))
                              .where(dc.action_id.in_(chunk))
                              .order_by(dc.decided_at)).all():
            if _local_date(d.decided_at) <= as_of:
                decisions[d.action_id].append(d)
        for a in conn.execute(sa_select(table_of(AssuranceEntryRow))
                              .where(ae.action_id.in_(chunk), ae.recorded_on <= as_of)
                              .order_by(ae.recorded_on)).all():
            assurance[a.action_id].append(a)
        for action_id, statement_id, title, key_question in conn.execute(
                sa_select(links.action_id, st.statement_id, st.title, st.key_question)
                .join(table_of(StatementRow), and_(
                    st.framework_id == links.framework_id,
                    st.statement_id == links.statement_id))
                .where(links.action_id.in_(chunk))).all():
            statements[action_id].append(StatementView.model_construct(
                id=statement_id, title=title, key_question=key_question))
    log: dict[str, list[AuditEntry]] = defaultdict(list)
    if audit is not None:
        for ref_chunk in [refs[i:i + ID_CHUNK] for i in range(0, len(refs), ID_CHUNK)]:
            for entry in session.exec(select(AuditRow).where(
                    col(AuditRow.action_ref).in_(ref_chunk)).order_by(col(AuditRow.seq))):
                log[entry.action_ref or ""].append(audit_log.to_entry(entry))

    out = []
    for line in lines:
        row = rows[line.ref]
        assert row.id is not None
        plan = row.plan
        mine = evidence.get(row.id, [])
        last = last_review.get(row.id)
        detail = ActionDetail(
            line=line, rag=charts.rag_of(line.rating),
            lead=_person(people[row.accountable_lead_id]),
            reviewer=_person(people[row.senior_reviewer_id]),
            baseline_issue=plan["baseline"]["issue"], baseline_on=row.baseline_on,
            target_measure=plan["target"]["measure"],
            trajectory=last[1] if last else None,
            last_review_on=last[0] if last else None,
            interim_controls=list(plan.get("interim_controls", [])),
            statements=_in_plan_order(statements[row.id], plan),
            factors=[FactorView(key=k, label=FACTOR_LABELS[k], score=int(v),
                                meaning=FACTOR_SCALES[k][int(v)])
                     for k, v in plan["risk"].items()],
            pillars=pillar_views[row.id],
            evidence=[_evidence_view(e, as_of, freshness_days) for e in reversed(mine)],
            escalations=[EscalationView(
                opened_on=e.opened_on, reasons=list(e.reasons),
                resolved_on=e.resolved_on if e.resolved_on and e.resolved_on <= as_of
                else None,
                control_change=change_text.get(e.control_change_id or 0))
                for e in escalations[row.id]],
            control_changes=[ControlChangeView(
                decided_on=c.decided_on, what=c.what, decided_by=c.decided_by,
                reason=c.reason, old_deadline=c.old_deadline, new_deadline=c.new_deadline)
                for c in changes[row.id]],
            decisions=[DecisionView(kind=d.kind, decision=d.decision,
                                    reviewer=d.reviewer_email, rationale=d.rationale,
                                    decided_at=as_utc(d.decided_at),
                                    snapshot_ref=d.snapshot_ref)
                       for d in decisions[row.id]],
            assurance=[AssuranceView(recorded_on=a.recorded_on, outcome=a.outcome,
                                     note=a.note, recorded_by=a.recorded_by)
                       for a in assurance[row.id]],
        )
        if row.id in charted:
            detail.chart_svg = charts.measure_chart(_series(
                detail, row, reviews.get(row.id, []), chart_points.get(row.id, []), as_of))
        if audit is not None:
            entries = log.get(line.ref, [])
            detail.log = [_audit_view(e, audit.first_bad_seq) for e in entries]
            detail.claims = _claims(detail, entries, mine, as_of, freshness_days)
        out.append(detail)
    return out


def _evidence_view(e: Evidence, as_of: date, freshness_days: int) -> EvidenceView:
    age = (as_of - e.observed_on).days
    return EvidenceView(
        id=e.id or 0, source=e.source.value, source_label=e.source.label,
        pillar=e.pillar.label, value=e.value, sample_size=e.sample_size,
        observed_on=e.observed_on, recorded_by=e.recorded_by, reference=e.reference,
        fresh=age <= freshness_days, age_days=age)


def _series(detail: ActionDetail, row: ActionRow,
            reviews: list[tuple[date, float | None, float, str]],
            points: list[tuple[date, float, str]], as_of: date) -> charts.MeasureSeries:
    review_point = charts.ReviewPoint.model_construct
    evidence_point = charts.EvidencePoint.model_construct
    return charts.MeasureSeries.model_construct(
        ref=row.ref, measure=detail.target_measure, baseline_on=row.baseline_on,
        baseline=row.baseline_value, target=row.target_value, direction=row.target_direction,
        deadline=row.deadline, as_of=as_of,
        reviews=[review_point(as_of=day, measured=measured, trajectory=trajectory,
                              rating=rating) for day, measured, trajectory, rating in reviews],
        evidence=[evidence_point(observed_on=day, value=value, pillar=pillar)
                  for day, value, pillar in points])


def _claims(detail: ActionDetail, entries: list[AuditEntry], items: list[Evidence],
            as_of: date, freshness_days: int) -> list[ClaimView]:
    """What the tracker says about one action, each with the records behind it."""
    line = detail.line

    def seqs(*prefixes: str, minutes: bool = False) -> list[int]:
        return [e.seq for e in entries if e.event.startswith(prefixes) or (
            minutes and e.event == "evidence.added"
            and e.details.get("source") == "governance_minutes")]

    measured = [e for e in items if e.value is not None
                and (as_of - e.observed_on).days <= freshness_days
                and e.pillar != Pillar.SUPPORTING]
    latest: dict[Pillar, Evidence] = {}
    for e in measured:
        latest[e.pillar] = e
    progress_refs = [_evidence_view(latest[p], as_of, freshness_days)
                     for p in TRIANGULATION_PILLARS if p in latest]
    oversight = [e for e in items if e.source.value == "governance_minutes"]
    trajectory = None if detail.trajectory is None else round(detail.trajectory, 1)
    open_escalations = [e for e in detail.escalations if e.resolved_on is None]
    return [
        ClaimView(claim="Risk rating",
                  stated=f"{line.risk_level} risk, score {line.risk_score} of 30",
                  evidence=[], log_seqs=seqs("action.opened", "stage.risk_rated",
                                             "status.revise_plan")),
        ClaimView(claim="Named accountability",
                  stated=f"lead {detail.lead.described}; senior reviewer "
                         f"{detail.reviewer.described}",
                  evidence=[], log_seqs=seqs("action.opened", "stage.accountability",
                                             "status.approve_plan", "status.reject_plan",
                                             "signoff.")),
        ClaimView(claim="Status", stated=line.status.replace("_", " "), evidence=[],
                  log_seqs=seqs("status.")),
        ClaimView(claim="Interim controls",
                  stated=f"{len(detail.interim_controls)} recorded", evidence=[],
                  log_seqs=seqs("action.opened", "stage.baseline_recorded")),
        ClaimView(claim="Progress against trajectory",
                  stated=(f"{rating_label(line.rating)}: measured "
                          f"{mail.pct(line.measured)}, trajectory {mail.pct(trajectory)}, "
                          f"target {line.target_wording}"),
                  evidence=progress_refs, log_seqs=seqs("evidence.added", "review.recorded")),
        ClaimView(claim="Escalation",
                  stated=("escalated since " + open_escalations[-1].opened_on.strftime(
                      "%d/%m/%Y") if open_escalations else "none open"),
                  evidence=[],
                  log_seqs=seqs("action.escalated", "action.de_escalated",
                                "action.control_changed", "action.deadline_extended")),
        ClaimView(claim="Provider-level oversight",
                  stated=("last provider-level review " + line.last_provider_review.strftime(
                      "%d/%m/%Y") if line.last_provider_review else "none recorded"),
                  evidence=[_evidence_view(e, as_of, freshness_days) for e in oversight[-3:]],
                  log_seqs=seqs("assurance.", "status.approve_", "status.reject_",
                                minutes=True)),
    ]


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


# ---------------------------------------------------------------- the packs


def _who_decides(a: ActionDetail, what: str) -> str:
    if "senior reviewer" in what:
        return a.reviewer.described
    if "accountable lead" in what:
        return a.lead.described
    return ("a registered manager, nominated individual or provider lead "
            f"(senior reviewer: {a.reviewer.name})")


def governance_pack(session: Session, *, as_of: date, location: str | None = None,
                    charts_for: str = "auto",
                    snapshot: GovernanceSnapshot | None = None) -> GovernancePack:
    """With `snapshot`, the whole provider's snapshot as of the same date that the caller
    has already built (the weekly cycle), instead of building it again."""
    if snapshot is None:
        snapshot, name = _snapshot(session, as_of, location)
    else:
        if location is not None or snapshot.as_of != as_of:
            raise ValueError("a governance pack reuses only the whole provider's snapshot "
                             "of its own date")
        name = None
    settings = get_settings()
    actions = _details(session, snapshot, freshness_days=settings.evidence_freshness_days,
                       chart=charts_for, items=False)
    grouped: dict[str, list[WeaknessItem]] = defaultdict(list)
    for line in snapshot.lines:
        for text in line.weaknesses:
            grouped[_weakness_key(text)].append(WeaknessItem(
                ref=line.ref, title=line.title, location=line.location, text=text))
    weaknesses = [WeaknessGroup(key=key, title=title, items=grouped[key])
                  for key, title in WEAKNESS_GROUPS if key != "other" or grouped[key]]
    # actions identified but never started head the list: nothing else happens until then
    needed = [DecisionNeeded(ref=a.ref, title=a.line.title, location=a.line.location, what=w,
                             who=_who_decides(a, w))
              for a in sorted(actions, key=lambda a: a.line.status != Status.DRAFT.value)
              for w in a.line.decisions_needed]
    return GovernancePack(
        meta=_meta("governance", snapshot, name, charts_for), counts=_counts(snapshot.lines),
        matrix_svg=_matrix(session, snapshot.lines, name) if charts_for != "none" else None,
        actions=actions, weaknesses=weaknesses, decisions_needed=needed)


def commissioner_pack(session: Session, *, as_of: date, location: str | None = None,
                      charts_for: str = "auto") -> CommissionerPack:
    snapshot, name = _snapshot(session, as_of, location)
    settings = get_settings()
    actions = _details(session, snapshot, freshness_days=settings.evidence_freshness_days,
                       chart=charts_for)
    domains = []
    for domain in RiskDomain:
        in_domain = [a for a in actions if a.line.risk_domain == domain.value]
        if not in_domain:
            continue
        in_domain.sort(key=lambda a: (RiskLevel(a.line.risk_level).rank, -a.line.risk_score,
                                      a.ref))
        groups = [EvidenceGroup(title=title, items=sorted(
            ((a.ref, e) for a in in_domain for e in a.evidence_of(sources)),
            key=lambda pair: (pair[1].observed_on, pair[0]), reverse=True),
            always="*" in shown or domain.value in shown)
            for title, sources, shown in EVIDENCE_KINDS]
        domains.append(DomainSection(
            domain=domain.value, label=domain.label.capitalize(), actions=in_domain,
            evidence_groups=groups))
    issues: dict[tuple[str, str], ImprovementIssue] = {}
    for a in sorted(actions, key=lambda a: (a.line.location, a.line.risk_domain, a.ref)):
        key = (a.line.location, a.baseline_issue)
        if key not in issues:
            issues[key] = ImprovementIssue(issue=a.baseline_issue, location=a.line.location,
                                           domain=a.line.risk_domain.replace("_", " "),
                                           statements=a.statements, rows=[])
        issues[key].rows.append(ImprovementRow(
            ref=a.ref, title=a.line.title, responsible=a.lead, reviewer=a.reviewer,
            start=a.baseline_on, deadline=a.line.deadline, measure=a.target_measure,
            target_wording=a.line.target_wording, baseline=a.line.baseline,
            measured=a.line.measured, status=a.line.status.replace("_", " "),
            rating=a.line.rating, rag=a.rag,
            review_frequency=a.line.cadence))
    return CommissionerPack(
        meta=_meta("commissioner", snapshot, name, charts_for),
        counts=_counts(snapshot.lines),
        matrix_svg=_matrix(session, snapshot.lines, name) if charts_for != "none" else None,
        actions=actions, domains=domains, improvement_plan=list(issues.values()))


def verify_chain(session: Session) -> ChainView:
    result = audit_log.verify(session)
    return ChainView(ok=result.ok, entries=result.entries, first_bad_seq=result.first_bad_seq,
                     reason=result.reason, verified_at=get_settings().now())


def inspector_pack(session: Session, *, as_of: date, location: str | None = None,
                   charts_for: str = "auto") -> InspectorPack:
    snapshot, name = _snapshot(session, as_of, location)
    settings = get_settings()
    chain = verify_chain(session)
    actions = _details(session, snapshot, freshness_days=settings.evidence_freshness_days,
                       chart=charts_for, audit=chain)
    return InspectorPack(
        meta=_meta("inspector", snapshot, name, charts_for), counts=_counts(snapshot.lines),
        chain=chain,
        factor_scales=[FactorScale(key=k, label=FACTOR_LABELS[k], short=SHORT_FACTOR_LABELS[k],
                                   scale=sorted(v.items()))
                       for k, v in FACTOR_SCALES.items()],
        high_threshold=HIGH_THRESHOLD, medium_threshold=MEDIUM_THRESHOLD,
        high_daily_days=HIGH_RISK_DAILY_DAYS, actions=actions)


BUILDERS = {"governance": governance_pack, "commissioner": commissioner_pack,
            "inspector": inspector_pack}


def build_pack(session: Session, kind: str, *, as_of: date, location: str | None = None,
               charts_for: str = "auto", snapshot: GovernanceSnapshot | None = None) -> Pack:
    from models.errors import InvalidInput

    if kind not in BUILDERS:
        raise InvalidInput("pack", f"'{kind}' is not a pack ({', '.join(PACKS)})")
    if snapshot is not None:
        if kind != "governance":
            raise ValueError("only the governance pack reuses a snapshot")
        return governance_pack(session, as_of=as_of, location=location,
                               charts_for=charts_for, snapshot=snapshot)
    builder: Any = BUILDERS[kind]
    pack: Pack = builder(session, as_of=as_of, location=location, charts_for=charts_for)
    return pack


# ---------------------------------------------------------------- rendering


def render_html(pack: Pack) -> str:
    return mail.environment().get_template(f"reports/{pack.meta.kind}.html").render(
        p=pack, provider_roles=[r.label for r in PROVIDER_LEVEL_ROLES])


def render_markdown(pack: Pack) -> str:
    return mail.environment().get_template(f"reports/{pack.meta.kind}.md").render(
        p=pack, provider_roles=[r.label for r in PROVIDER_LEVEL_ROLES])


_INLINE_SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def _svg_as_image(match: re.Match[str]) -> str:
    svg = match.group(0)
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="chart" alt="chart" src="data:image/svg+xml;base64,{data}">'


def print_document(html: str) -> Any:
    """The print-ready HTML laid out by WeasyPrint (pages, with the ids on each). Its own
    SVG renderer draws each chart (as an image in a data: URI, which is quicker than laying
    inline SVG out as HTML); the HTML is self-contained, so nothing is fetched."""
    from weasyprint import HTML

    printable = _INLINE_SVG.sub(_svg_as_image, html)
    return HTML(string=printable, base_url=str(mail.TEMPLATES)).render()


def render_pdf(html: str) -> bytes:
    return bytes(print_document(html).write_pdf())


def render(pack: Pack, fmt: str) -> bytes:
    from models.errors import InvalidInput

    if fmt == "html":
        return render_html(pack).encode("utf-8")
    if fmt == "md":
        return render_markdown(pack).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(render_html(pack))
    raise InvalidInput("format", f"'{fmt}' is not a report format ({', '.join(FORMATS)})")


class ReportResult(BaseModel):
    pack: str
    format: str
    out: str
    as_of: date
    location: str | None
    actions: int
    high: int
    bytes: int


def write_report(kind: str, fmt: str, out: Path, *, as_of: date,
                 location: str | None = None, charts: str = "auto",
                 snapshot: GovernanceSnapshot | None = None) -> ReportResult:
    """Build, render and write one pack (the CLI's `recovery report ...`; the weekly cycle
    passes the governance snapshot it has built)."""
    from models.errors import InvalidInput
    from recovery.adapters import db

    if kind not in BUILDERS:
        raise InvalidInput("pack", f"'{kind}' is not a pack ({', '.join(PACKS)})")
    if fmt not in FORMATS:
        raise InvalidInput("format", f"'{fmt}' is not a report format ({', '.join(FORMATS)})")
    if charts not in CHART_CHOICES:
        raise InvalidInput("charts", f"'{charts}' is not one of {', '.join(CHART_CHOICES)}")
    if out.exists() and out.is_dir():
        raise InvalidInput("out", f"{out} is a directory; give a file name")
    if not out.parent.exists():
        raise InvalidInput("out", f"the folder {out.parent} does not exist")
    with db.reading() as session:  # a pack only reads: other writers need not wait for it
        pack = build_pack(session, kind, as_of=as_of, location=location,
                          charts_for="none" if fmt == "md" else charts, snapshot=snapshot)
    try:
        if fmt == "html":  # streamed to the file: a provider's pack is tens of MB
            size = _write_html(pack, out)
        else:
            data = render(pack, fmt)
            out.write_bytes(data)
            size = len(data)
    except OSError as exc:
        raise InvalidInput("out", f"cannot write {out}: {exc.strerror}") from None
    return ReportResult(pack=kind, format=fmt, out=str(out), as_of=as_of,
                        location=pack.meta.location, actions=pack.counts.actions,
                        high=pack.counts.high, bytes=size)


def _write_html(pack: Pack, out: Path) -> int:
    """The HTML written as the template produces it, without holding the whole page (and
    its UTF-8 copy) in memory; the same bytes as `render_html(pack).encode()`."""
    stream = mail.environment().get_template(f"reports/{pack.meta.kind}.html").generate(
        p=pack, provider_roles=[r.label for r in PROVIDER_LEVEL_ROLES])
    size = 0
    with out.open("wb") as fh:
        for piece in stream:
            data = piece.encode("utf-8")
            fh.write(data)
            size += len(data)
    return size
