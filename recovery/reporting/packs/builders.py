"""The three pack builders (governance, commissioner, inspector) and `build_pack`, which
picks one by name.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlmodel import Session

from models.action import RiskDomain
from models.cadence import HIGH_RISK_DAILY_DAYS
from models.lifecycle import Status
from models.risk import (
    FACTOR_LABELS,
    FACTOR_SCALES,
    HIGH_THRESHOLD,
    MEDIUM_THRESHOLD,
    RiskLevel,
)
from recovery.adapters import audit_log
from recovery.reporting.packs.details import _details
from recovery.reporting.packs.summary import (
    _counts,
    _matrix,
    _meta,
    _snapshot,
    _weakness_key,
    _who_decides,
)
from recovery.reporting.packs.views import (
    EVIDENCE_KINDS,
    PACKS,
    SHORT_FACTOR_LABELS,
    WEAKNESS_GROUPS,
    ChainView,
    CommissionerPack,
    DecisionNeeded,
    DomainSection,
    EvidenceGroup,
    FactorScale,
    GovernancePack,
    ImprovementIssue,
    ImprovementRow,
    InspectorPack,
    Pack,
    WeaknessGroup,
    WeaknessItem,
)
from recovery.reporting.snapshot import (
    GovernanceSnapshot,
)
from recovery.settings import get_settings


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

