"""The typed contexts the pack templates render: one view model per record shown, one
model per pack, and the constants (titles, chart limits, evidence headings) they share.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.risk import (
    RiskLevel,
)
from recovery.adapters import mail
from recovery.reporting.snapshot import (
    ActionLine,
)

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

