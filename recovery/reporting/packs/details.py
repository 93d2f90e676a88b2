"""Per action, what the packs show about it, loaded set-based for every action at once:
evidence per pillar with freshness, the measure series behind each chart, escalations,
control changes, decisions, assurance minutes, quality statements and, for the inspector,
the audit log and the claims it backs, turned into the `ActionDetail` view models of
`views`. Which actions get a chart is `summary.chart_plan`'s call.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.audit import AuditEntry
from models.dates import shift
from models.evidence import TRIANGULATION_PILLARS, Evidence, Pillar
from models.people import Role
from models.review import rating_label
from models.risk import FACTOR_LABELS, FACTOR_SCALES
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
    PersonRow,
    ReviewRow,
    StatementRow,
    as_utc,
    table_of,
)
from recovery.reporting import charts
from recovery.reporting.packs.summary import chart_plan
from recovery.reporting.packs.views import (
    ActionDetail,
    AssuranceView,
    AuditView,
    ChainView,
    ClaimView,
    ControlChangeView,
    DecisionView,
    EscalationView,
    EvidenceView,
    FactorView,
    PersonView,
    PillarView,
    StatementView,
)
from recovery.reporting.snapshot import ID_CHUNK, GovernanceSnapshot
from recovery.settings import get_settings


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


def _details(
    session: Session, snapshot: GovernanceSnapshot, *, freshness_days: int,
    chart: str = "high", audit: ChainView | None = None, items: bool = True,
) -> list[ActionDetail]:
    """Every snapshot line with what the packs show about it, read in a few queries.
    `items`: list every evidence item (`ActionDetail.evidence`; the commissioner and
    inspector packs show them); without it only the per-pillar summary is read, which is
    all the governance pack shows.

    Long on purpose: one pass that issues each set-based query once for all actions and
    then assembles each `ActionDetail` from the results; split up, the query results would
    have to be threaded through several helpers as a dozen parameters."""
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
