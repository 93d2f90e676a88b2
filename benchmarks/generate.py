"""Build a realistic provider group into a FRESH database, fast.

N locations, each with its staff; M recovery actions spread across the six risk domains,
three risk levels and every status (mostly in recovery), each with a plan that the domain
validates; K evidence items per action over several months (values that follow the
trajectory, some lagging, some off track, a few with a stale pillar); the reviews a
provider would have held under each action's cadence; open and resolved escalations,
control changes, plan and closure decisions, closure requests, last month's provider
assurance and a few manual triggers. The audit chain gets a few real rows only.

Bulk inserts: SQLAlchemy core `insert()` with lists of dicts on SQLite, `COPY ... FROM
STDIN` on PostgreSQL; explicit ids, so no RETURNING round trips; sequences are moved past
the generated ids afterwards so the application's own inserts carry on from there.

The generated actions are due on AS_OF for the most part: reviews were held on each
action's cadence with the last one a whole period before AS_OF (about 10% were reviewed
more recently and are not due), escalated actions are reviewed daily.

    python -m benchmarks.generate small|large|huge [--db sqlite|postgres] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Table
from sqlmodel import Session

from models.action import ActionPlan, RiskDomain
from models.cadence import Cadence, add_months, review_cadence
from models.risk import RiskFactors, RiskLevel, rate_risk
from models.templates import builtin_templates
from recovery.adapters.tables import (
    ActionRow,
    ActionStatementRow,
    AssuranceEntryRow,
    AssuranceRequestRow,
    ClosureRequestRow,
    ControlChangeRow,
    DecisionRow,
    EscalationRow,
    EvidenceRow,
    LocationRow,
    PersonRow,
    ProviderRow,
    ReviewRow,
    RevisionRow,
    TriggerRow,
)

#: A Monday: the daily review and the weekly governance cycle both fall on it.
AS_OF = date(2027, 2, 1)
PG_ADMIN_URL = os.environ.get(
    "RECOVERY_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SQLITE_DIR = Path(os.environ.get("RECOVERY_BENCH_DIR", "/tmp/recovery-bench"))
PROVIDER = "Northgate Care Group"


@dataclass(frozen=True)
class Size:
    name: str
    locations: int
    actions: int
    evidence_per_action: int

    @property
    def evidence(self) -> int:
        return self.actions * self.evidence_per_action


SIZES: dict[str, Size] = {
    "small": Size("small", 20, 500, 50),
    "large": Size("large", 200, 5_000, 50),
    "huge": Size("huge", 2_000, 50_000, 50),
}

# ------------------------------------------------------------------ databases


def fresh_database(kind: str, size: str) -> str:
    """A new, empty database for one run: a SQLite file under /tmp or a new PostgreSQL
    database on 127.0.0.1:5432. Returns its URL."""
    tag = f"{size}_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        path = SQLITE_DIR / f"bench-{tag}.db"
        return f"sqlite:///{path}"
    import psycopg

    name = f"rg_bench_{tag}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str) -> None:
    from recovery.adapters import db

    db.engine_for(url).dispose()
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------ writers


class Writer:
    """Bulk rows into one table: core insert of dicts (SQLite) or COPY (PostgreSQL)."""

    def __init__(self, url: str) -> None:
        from recovery.adapters import db

        self.url = url
        self.engine = db.engine_for(url)
        self.pg = self.engine.dialect.name == "postgresql"
        self.counts: dict[str, int] = {}
        self._pg_conn: Any = None
        if self.pg:
            import psycopg

            self._pg_conn = psycopg.connect(url)

    def write(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self.counts[table.name] = self.counts.get(table.name, 0) + len(rows)
        if self.pg:
            self._copy(table, columns, rows)
            return
        with self.engine.begin() as conn:
            for start in range(0, len(rows), 20_000):
                conn.execute(table.insert(),
                             [dict(zip(columns, r, strict=True))
                              for r in rows[start:start + 20_000]])

    def _copy(self, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
        cols = ", ".join(f'"{c}"' for c in columns)
        with self._pg_conn.cursor() as cur, cur.copy(
                f'COPY "{table.name}" ({cols}) FROM STDIN') as copy:
            for row in rows:
                if json_at:
                    row = list(row)  # type: ignore[assignment]
                    for i in json_at:
                        row[i] = json.dumps(row[i])  # type: ignore[index]
                copy.write_row(row)
        self._pg_conn.commit()

    def finish(self) -> None:
        """Move every id sequence past the generated ids, then refresh planner statistics."""
        if self.pg:
            with self._pg_conn.cursor() as cur:
                cur.execute("""
                    SELECT c.relname, a.attname FROM pg_class c
                    JOIN pg_attribute a ON a.attrelid = c.oid
                    WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
                      AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL
                """)
                for table, column in cur.fetchall():
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                        f"COALESCE((SELECT max(\"{column}\") FROM \"{table}\"), 0) + 1, false)")
            self._pg_conn.commit()
            self._pg_conn.autocommit = True
            self._pg_conn.execute("VACUUM ANALYZE")
            self._pg_conn.close()
        else:
            raw = self.engine.raw_connection()  # autocommit: the app's BEGIN hook is bypassed
            try:
                cur = raw.cursor()
                cur.execute("ANALYZE")
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cur.close()
            finally:
                raw.close()
        self.engine.dispose()


def _cols(model: Any) -> tuple[Table, list[str]]:
    table: Table = model.__table__
    return table, [c.name for c in table.columns]


# ------------------------------------------------------------------ the domain's shapes

STEMS = ["Rose", "Quay", "Elm", "Oak", "Willow", "Ash", "Beech", "Cedar", "Hazel", "Maple",
         "Birch", "Holly", "Ivy", "Laurel", "Rowan", "Alder", "Aspen", "Juniper", "Linden",
         "Poplar", "Yew", "Heather", "Bramble", "Clover", "Fern", "Meadow", "Brook", "Harbour",
         "Orchard", "Chestnut"]
KINDS = ["House", "Court", "Lodge", "Grange", "Manor", "Gardens", "View", "Hall", "Place",
         "Mews"]
FIRST = ["Priya", "Tom", "Grace", "Sam", "Lee", "Aisha", "Owen", "Nadia", "Ben", "Ruth", "Dan",
         "Mia", "Joe", "Fatima", "Callum", "Chloe", "Hassan", "Ewa", "Kwame", "Sian"]
LAST = ["Shah", "Clarke", "Okafor", "Patel", "Morgan", "Begum", "Hughes", "Kowalski", "Carter",
        "Evans", "Wright", "Turner", "Bennett", "Ahmed", "Reid", "Walsh", "Nowak", "Mensah"]
LOCATION_ROLES = ["registered_manager", "deputy_manager", "safeguarding_lead", "medicines_lead",
                  "duty_manager", "team_leader", "senior_carer", "rota_coordinator",
                  "care_worker", "care_worker"]

EXTRA_TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "bench-falls-post-fall-review", "title":
        "Post-fall observations and management review completed after every fall",
        "risk_domain": "safety",
        "quality_statements": ["safe.safe-environments", "safe.involving-people-to-manage-risks"],
        "baseline_issue": "Falls records show missed post-fall observations and no review of "
                          "the person's risk assessment",
        "target": {"measure": "Falls without completed post-fall observations and review "
                              "within 24 hours", "direction": "at_most", "value": 5, "weeks": 8},
        "evidence_sources": ["care_records", "audits", "feedback", "staff_practice",
                             "incident_trends"],
        "steps": [
            {"role": "deputy_manager", "action": "Review every fall in the last three months and "
             "record missed observations", "record": "Falls tracker"},
            {"role": "senior_carer", "action": "Complete post-fall observations on the chart "
             "and hand over at shift change", "record": "Post-fall observation chart"},
            {"role": "registered_manager", "action": "Review each fall within 24 hours and update "
             "the risk assessment", "record": "Care record"},
            {"role": "nominated_individual", "action": "Review the falls trend monthly",
             "record": "Governance minutes"}],
        "what_can_go_wrong": ["Observations recorded but not acted on"],
        "warning_signs": ["Repeat falls for the same person", "Missing night observations"],
        "escalation_actions": ["Daily falls huddle", "Physiotherapy referral for repeat fallers"],
        "triggers": [{"description": "Repeat falls", "kind": "repeated_gaps"},
                     {"description": "Poor feedback from families", "kind": "poor_feedback"}],
        "audit_cadence": [{"role": "registered_manager", "frequency": "weekly",
                           "what": "Falls charts and risk assessment updates"}],
    },
    {
        "id": "bench-care-plan-currency", "title":
        "Care plans and risk assessments reviewed after every change in need",
        "risk_domain": "care_planning",
        "quality_statements": ["effective.assessing-needs", "responsive.person-centred-care"],
        "baseline_issue": "Care plans sampled were not updated after hospital discharge or a "
                          "change in need",
        "target": {"measure": "Sampled care plans reviewed within 72 hours of a change in need",
                   "direction": "at_least", "value": 95, "weeks": 10},
        "evidence_sources": ["care_records", "audits", "feedback", "staff_practice"],
        "steps": [
            {"role": "team_leader", "action": "Flag every change in need at handover and open a "
             "care plan review", "record": "Handover sheet"},
            {"role": "deputy_manager", "action": "Audit ten care plans a week against recent "
             "changes in need", "record": "Care plan audit"},
            {"role": "registered_manager", "action": "Review the audit and coach staff on "
             "gaps", "record": "Supervision records"}],
        "what_can_go_wrong": ["Reviews dated but not updated"],
        "warning_signs": ["Discharge letters filed without review"],
        "escalation_actions": ["Protected time for care plan reviews"],
        "triggers": [{"description": "Missing outcome evidence",
                      "kind": "missing_outcome_evidence"}],
        "audit_cadence": [{"role": "registered_manager", "frequency": "weekly",
                           "what": "Care plan audit results"}],
    },
    {
        "id": "bench-governance-actions", "title":
        "Audit actions closed on time with evidence of learning",
        "risk_domain": "leadership_control",
        "quality_statements": ["well-led.governance-management-sustainability",
                               "well-led.learning-improvement-innovation"],
        "baseline_issue": "Audit actions stay open for months and learning is not shared",
        "target": {"measure": "Audit actions closed by their due date with learning recorded",
                   "direction": "at_least", "value": 90, "weeks": 12},
        "evidence_sources": ["audits", "governance_minutes", "care_records", "feedback",
                             "staff_practice"],
        "steps": [
            {"role": "registered_manager", "action": "Hold a weekly action log review",
             "record": "Action log"},
            {"role": "provider_lead", "action": "Check closed actions against evidence monthly",
             "record": "Provider governance report"}],
        "what_can_go_wrong": ["Actions closed without evidence"],
        "warning_signs": ["Same finding in consecutive audits"],
        "escalation_actions": ["Provider lead attends the weekly review"],
        "triggers": [{"description": "Delayed review", "kind": "delayed_review"}],
        "audit_cadence": [{"role": "provider_lead", "frequency": "monthly",
                           "what": "Action log and minutes"}],
    },
]

DOMAIN_WEIGHTS = [("safeguarding", 0.22), ("medicines", 0.22), ("staffing", 0.18),
                  ("safety", 0.14), ("care_planning", 0.14), ("leadership_control", 0.10)]
LEAD_ROLE = {"safeguarding": "safeguarding_lead", "medicines": "medicines_lead",
             "staffing": "registered_manager", "safety": "deputy_manager",
             "care_planning": "team_leader", "leadership_control": "registered_manager"}
CARE_SOURCE = {"safeguarding": "safeguarding_logs", "medicines": "medicines_records"}
RISK_PROFILES: dict[str, list[tuple[int, int, int, int, int]]] = {
    "high": [(5, 3, 4, 4, 4), (4, 4, 4, 4, 4), (4, 4, 4, 3, 3), (5, 2, 3, 3, 4)],
    "medium": [(3, 3, 3, 3, 3), (4, 2, 3, 2, 3), (3, 2, 2, 3, 3)],
    "low": [(2, 1, 2, 2, 2), (1, 2, 2, 2, 2), (2, 2, 2, 2, 2)],
}
LEVEL_WEIGHTS = [("high", 0.45), ("medium", 0.35), ("low", 0.20)]
STATUS_WEIGHTS = [("in_recovery", 0.78), ("reopened", 0.02), ("closure_requested", 0.015),
                  ("awaiting_closure_signoff", 0.015), ("routine_monitoring", 0.06),
                  ("awaiting_plan_signoff", 0.04), ("plan_rejected", 0.005), ("draft", 0.005),
                  ("closed", 0.06)]
ACTIVE = {"in_recovery", "reopened", "closure_requested", "awaiting_closure_signoff"}
STARTED = ACTIVE | {"routine_monitoring", "closed"}
#: care records 30%, audits 20%, feedback 20%, staff practice 20%, supporting 10%
PILLAR_PATTERN = ["C", "C", "C", "A", "A", "F", "F", "S", "S", "X"]
PILLAR_OF = {"C": "care_records", "A": "audits", "F": "feedback", "S": "staff_practice",
             "X": "supporting"}
SUPPORTING = ["incident_trends", "rota_evidence", "governance_minutes"]
SOURCE_NOUN = {"care_records": "Care record review", "safeguarding_logs": "Safeguarding log",
               "medicines_records": "MAR chart review", "audits": "Audit",
               "feedback": "Feedback survey", "staff_practice": "Practice observation",
               "incident_trends": "Incident trend report", "rota_evidence": "Rota check",
               "governance_minutes": "Governance minutes"}


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    r = rng.random()
    acc = 0.0
    for value, weight in weighted:
        acc += weight
        if r < acc:
            return value
    return weighted[-1][0]


def _templates() -> dict[str, dict[str, Any]]:
    """One template per risk domain, as plain dicts (validated once)."""
    from models.templates import ActionTemplate

    out: dict[str, dict[str, Any]] = {}
    for t in builtin_templates().values():
        out[t.risk_domain.value] = t.model_dump(mode="json")
    for raw in EXTRA_TEMPLATES:
        out[raw["risk_domain"]] = ActionTemplate.model_validate(raw).model_dump(mode="json")
    assert set(out) == {d.value for d in RiskDomain}
    return out


def _ratings() -> dict[tuple[int, ...], tuple[str, int, list[str]]]:
    out = {}
    for level, profiles in RISK_PROFILES.items():
        for p in profiles:
            rating = rate_risk(RiskFactors(
                potential_harm=p[0], people_affected=p[1], likelihood_of_recurrence=p[2],
                regulatory_impact=p[3], control_strength=p[4]))
            assert rating.level == RiskLevel(level), (p, rating.level)
            out[p] = (rating.level.value, rating.score, list(rating.reasons))
    return out


def _ts(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, dtime(hour, 0), tzinfo=UTC)


# ------------------------------------------------------------------ the generator


class Generator:
    def __init__(self, size: Size, writer: Writer, seed: int = 6) -> None:
        self.size = size
        self.w = writer
        self.rng = random.Random(seed)
        self.templates = _templates()
        self.ratings = _ratings()
        self.ids: dict[str, int] = {}
        self.people: dict[int, list[tuple[int, str, str]]] = {}  # location id -> (id, email, role)
        self.region_lead: dict[int, tuple[int, str]] = {}
        self.ni: tuple[int, str] = (0, "")
        self.high_refs: list[str] = []
        self.assurance: list[tuple[int, str]] = []  # (action id, note)
        self.sampled_plans: list[dict[str, Any]] = []

    def next_id(self, table: str) -> int:
        self.ids[table] = self.ids.get(table, 0) + 1
        return self.ids[table]

    # ---- organisation

    def organisation(self) -> list[tuple[int, str, str]]:
        rng = self.rng
        self.w.write(*_cols(ProviderRow), [(1, PROVIDER)])
        table, cols = _cols(LocationRow)
        locations = []
        used: set[str] = set()
        for i in range(1, self.size.locations + 1):
            stem = STEMS[(i - 1) % len(STEMS)]
            kind = KINDS[((i - 1) // len(STEMS)) % len(KINDS)]
            name = f"{stem} {kind}"
            if name in used:
                name = f"{name} {i}"
            used.add(name)
            locations.append((i, 1, name, f"{stem[:4].upper()}{i:04d}"))
        self.w.write(table, cols, locations)

        table, cols = _cols(PersonRow)
        people = []
        pid = 0

        def person(email: str, role: str, location_id: int | None) -> tuple[int, str]:
            nonlocal pid
            pid += 1
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            people.append((pid, email, name, role, location_id))
            return pid, email

        self.ni = person("ni@northgate.example", "nominated_individual", None)
        leads = [person(f"provider.lead{k}@northgate.example", "provider_lead", None)
                 for k in range(1, max(1, self.size.locations // 50) + 1)]
        for loc_id, _, _, code in locations:
            self.region_lead[loc_id] = leads[(loc_id - 1) % len(leads)]
            staff = []
            for n, role in enumerate(LOCATION_ROLES):
                suffix = f"{n}" if role == "care_worker" else ""
                email = f"{role.replace('_', '.')}{suffix}@{code.lower()}.example"
                staff.append((*person(email, role, loc_id), role))
            self.people[loc_id] = staff
        self.w.write(table, cols, people)
        self.ids["person"] = pid
        return [(loc_id, name, code) for loc_id, _, name, code in locations]

    # ---- actions, in chunks of locations so memory stays flat at any size

    def actions(self, locations: list[tuple[int, str, str]]) -> None:
        per_location = self.size.actions // self.size.locations
        chunk = 50
        for start in range(0, len(locations), chunk):
            rows: dict[str, list[tuple[Any, ...]]] = {}
            for loc in locations[start:start + chunk]:
                seqs: dict[str, int] = {}
                for _ in range(per_location):
                    self._action(loc, seqs, rows)
            for model in (ActionRow, ActionStatementRow, RevisionRow, ControlChangeRow,
                          EscalationRow, DecisionRow, ClosureRequestRow, TriggerRow,
                          ReviewRow, EvidenceRow):
                table, cols = _cols(model)
                self.w.write(table, cols, rows.pop(table.name, []))

    def _action(self, loc: tuple[int, str, str], seqs: dict[str, int],
                rows: dict[str, list[tuple[Any, ...]]]) -> None:
        rng = self.rng
        loc_id, loc_name, code = loc
        domain = _pick(rng, DOMAIN_WEIGHTS)
        tpl = self.templates[domain]
        level = _pick(rng, LEVEL_WEIGHTS)
        factors = rng.choice(RISK_PROFILES[level])
        level, score, reasons = self.ratings[factors]
        status = _pick(rng, STATUS_WEIGHTS)
        seqs[domain] = seqs.get(domain, 0) + 1
        seq = seqs[domain]
        ref = f"{code}-{RiskDomain(domain).code}-{seq:03d}"
        aid = self.next_id("recovery_action")

        staff = {role: (pid, email) for pid, email, role in self.people[loc_id]}
        lead_id, lead_email = staff[LEAD_ROLE[domain]]
        if LEAD_ROLE[domain] == "registered_manager":
            rev_id, rev_email = self.region_lead[loc_id] if rng.random() < 0.7 else self.ni
        elif rng.random() < 0.85:
            rev_id, rev_email = staff["registered_manager"]
        else:
            rev_id, rev_email = self.region_lead[loc_id]

        baseline_on = AS_OF - timedelta(days=rng.randint(21, 200))
        if status in ("routine_monitoring", "closed"):
            baseline_on = AS_OF - timedelta(days=rng.randint(90, 200))
        direction = tpl["target"]["direction"]
        if direction == "at_least":
            baseline = float(rng.randint(40, 80))
            target = float(tpl["target"]["value"])
        else:
            baseline = float(rng.randint(20, 45))
            target = float(tpl["target"]["value"])
        overdue = status in ACTIVE and rng.random() < 0.03
        if overdue:
            deadline = AS_OF - timedelta(days=rng.randint(1, 20))
            baseline_on = min(baseline_on, deadline - timedelta(days=30))
        else:
            deadline = max(baseline_on + timedelta(days=rng.randint(60, 240)),
                           AS_OF + timedelta(days=rng.randint(7, 120)))
        started = baseline_on + timedelta(days=rng.randint(2, 10)) if status in STARTED \
            else None
        monitoring = None
        closed_on = None
        if status == "routine_monitoring":
            days = 56 if rng.random() < 0.1 else rng.randint(7, 55)
            monitoring = max(AS_OF - timedelta(days=days), (started or AS_OF) + timedelta(1))
        elif status == "closed":
            closed_on = AS_OF - timedelta(days=rng.randint(5, 60))
            closed_on = max(closed_on, (started or AS_OF) + timedelta(14))

        # how this action is going: evidence sits this far from the trajectory
        category = _pick(rng, [("on_track", 0.75), ("at_risk", 0.15), ("off_track", 0.06),
                               ("lagging", 0.04)])
        if status in ("routine_monitoring", "closed"):
            category = "met"
        if overdue:
            category = "off_track"
        offset = {"on_track": rng.uniform(6, 10), "at_risk": -rng.uniform(1, 5),
                  "off_track": -rng.uniform(13, 25), "lagging": -rng.uniform(5, 8),
                  "met": 0.0}[category]
        escalated = status in ACTIVE and (
            (category == "off_track" and rng.random() < 0.95)
            or (category == "lagging" and rng.random() < 0.6)
            or (category == "at_risk" and rng.random() < 0.1)
            or (category == "on_track" and rng.random() < 0.04))
        stale = status in ACTIVE and rng.random() < 0.04

        plan = dict(tpl)
        template_id = plan.pop("id")
        plan.pop("baseline_issue")
        plan.pop("target")
        plan = {
            "location": loc_name, "title": tpl["title"],
            "template": None if template_id.startswith("bench-") else template_id,
            "risk_domain": domain, "quality_statements": tpl["quality_statements"],
            "risk": dict(zip(("potential_harm", "people_affected", "likelihood_of_recurrence",
                              "regulatory_impact", "control_strength"), factors, strict=True)),
            "framework_id": "cqc-saf-2024",
            "accountable_lead": lead_email, "senior_reviewer": rev_email,
            "baseline": {"issue": tpl["baseline_issue"], "value": baseline,
                         "as_of": baseline_on.isoformat()},
            "target": {"measure": tpl["target"]["measure"], "unit": "percent",
                       "direction": direction, "value": target,
                       "deadline": deadline.isoformat()},
            "interim_controls": [f"{rev_email.split('@')[0].replace('.', ' ').title()} checks "
                                 f"the {domain.replace('_', ' ')} log every morning"],
            "steps": tpl["steps"], "what_can_go_wrong": tpl["what_can_go_wrong"],
            "warning_signs": tpl["warning_signs"],
            "escalation_actions": tpl["escalation_actions"], "triggers": tpl["triggers"],
            "evidence_sources": tpl["evidence_sources"], "audit_cadence": tpl["audit_cadence"],
        }
        if len(self.sampled_plans) < 300 and rng.random() < 0.2:
            self.sampled_plans.append(plan)
        created = _ts(baseline_on, 8)
        rows.setdefault("recovery_action", []).append((
            aid, ref, seq, tpl["title"], loc_id, domain, status, level, score, reasons, plan, 1,
            lead_id, rev_id, baseline, baseline_on, direction, target, deadline, started,
            monitoring, escalated,
            str(uuid.UUID(int=rng.getrandbits(128))) if status != "draft" else None,
            created, _ts(AS_OF - timedelta(days=1), 18)))
        for sid in tpl["quality_statements"]:
            rows.setdefault("action_statement", []).append((aid, "cqc-saf-2024", sid))
        rows.setdefault("plan_revision", []).append(
            (self.next_id("plan_revision"), aid, 1, plan, lead_email, created))
        if level == "high" and status in ACTIVE:
            self.high_refs.append(ref)
            if rng.random() < 0.6:
                self.assurance.append((aid, "Assured by the evidence seen this month"))

        # decisions and closure requests
        if started is not None:
            rows.setdefault("decision", []).append((
                self.next_id("decision"), aid, "plan", 1, "approve", rev_email,
                "Plan is specific, controls are proportionate", "awaiting_plan_signoff",
                _ts(started, 10), None))
        elif status == "plan_rejected":
            rows.setdefault("decision", []).append((
                self.next_id("decision"), aid, "plan", 1, "reject", rev_email,
                "Interim controls do not cover nights", "awaiting_plan_signoff",
                _ts(baseline_on + timedelta(days=3), 10), None))
        if status in ("closure_requested", "awaiting_closure_signoff", "routine_monitoring",
                      "closed"):
            asked = (monitoring or closed_on or AS_OF) - timedelta(days=3)
            passed = status != "closure_requested"
            rows.setdefault("closure_request", []).append((
                self.next_id("closure_request"), aid, 1, lead_email,
                "Target met across all four pillars for two review periods", _ts(asked, 11),
                passed if status != "closure_requested" else None, [],
                _ts(asked, 11) if passed else None, None))
            if status in ("routine_monitoring", "closed"):
                rows.setdefault("decision", []).append((
                    self.next_id("decision"), aid, "closure", 1, "approve", rev_email,
                    "Triangulated evidence sustained", "awaiting_closure_signoff",
                    _ts(asked + timedelta(days=2), 10), None))

        # escalations and control changes
        escalation_opened = None
        if escalated:
            escalation_opened = AS_OF - timedelta(days=rng.randint(1, 20))
            change_id = None
            if category == "on_track" or rng.random() < 0.4:
                change_id = self.next_id("control_change")
                rows.setdefault("control_change", []).append((
                    change_id, aid, "Registered manager moved the daily check to the morning "
                    "handover and added a second signatory", staff["registered_manager"][1],
                    escalation_opened + timedelta(days=1), "escalation", None, None))
            rows.setdefault("escalation", []).append((
                self.next_id("escalation"), aid, escalation_opened,
                [f"evidence shows {baseline + offset:.0f}%, below the trajectory"], change_id,
                None, _ts(escalation_opened, 7)))
        if started is not None and rng.random() < 0.10:
            opened = started + timedelta(days=rng.randint(3, 20))
            if opened < AS_OF - timedelta(days=25):
                change_id = self.next_id("control_change")
                rows.setdefault("control_change", []).append((
                    change_id, aid, "Deployment changed at peak times after escalation review",
                    staff["registered_manager"][1], opened + timedelta(days=2), "escalation",
                    None, None))
                rows.setdefault("escalation", []).append((
                    self.next_id("escalation"), aid, opened, ["off track at review"],
                    change_id, opened + timedelta(days=rng.randint(5, 20)), _ts(opened, 7)))
        if status in ACTIVE and rng.random() < 0.02:
            rows.setdefault("raised_trigger", []).append((
                self.next_id("raised_trigger"), aid, "Staff uncertain about the escalation "
                "threshold", staff["team_leader"][1], AS_OF - timedelta(days=rng.randint(1, 9)),
                None))

        # the line the evidence follows
        span = max(1, (deadline - baseline_on).days)
        sign = 1.0 if direction == "at_least" else -1.0

        def expected(day: date) -> float:
            share = min(1.0, max(0.0, (day - baseline_on).days / span))
            return baseline + (target - baseline) * share

        def value_on(day: date, noise: float) -> float:
            if category == "met":
                v = target + sign * abs(noise)
            else:
                v = expected(day) + sign * (offset + noise)
            return round(min(100.0, max(0.0, v)), 1)

        self._reviews(aid, level, started, monitoring, closed_on, escalated, escalation_opened,
                      category, value_on, expected, target, direction, deadline, rows)
        self._evidence(aid, ref, domain, baseline_on, closed_on, stale, value_on,
                       lead_email, staff, loc_id, rows)

    def _reviews(self, aid: int, level: str, started: date | None, monitoring: date | None,
                 closed_on: date | None, escalated: bool, escalation_opened: date | None,
                 category: str, value_on: Any, expected: Any, target: float, direction: str,
                 deadline: date, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        if started is None:
            return
        rng = self.rng
        risk = RiskLevel(level)
        cadence = review_cadence(risk, recovery_started_on=started, as_of=AS_OF,
                                 escalated=escalated)

        def back(day: date, c: Cadence) -> date:
            if c == Cadence.DAILY:
                return day - timedelta(days=1)
            if c == Cadence.WEEKLY:
                return day - timedelta(days=7)
            return add_months(day, -1)

        if closed_on is not None:
            last = closed_on
        elif cadence == Cadence.DAILY or rng.random() < 0.9:  # due today
            last = back(AS_OF, cadence)
            if rng.random() < 0.02:
                last -= timedelta(days=3)  # a delayed review
        else:  # reviewed recently, not due today
            last = AS_OF - timedelta(days=rng.randint(1, 6 if cadence == Cadence.WEEKLY else 27))
        day = last
        met = target if direction == "at_least" else -target
        while day >= started:
            measured = value_on(day, rng.gauss(0, 2))
            on = category in ("on_track", "met") or (
                monitoring is not None and day >= monitoring)
            target_met = (measured if direction == "at_least" else -measured) >= met
            if monitoring is not None and day >= monitoring:
                target_met = True
            rating = "on_track" if on else ("off_track" if category == "off_track"
                                            else "at_risk")
            triggers = [] if on else ["below_trajectory"]
            rows.setdefault("review", []).append((
                self.next_id("review"), aid, day, cadence.value if day == last else "weekly",
                measured, round(expected(day), 2), target_met, rating, (deadline - day).days,
                triggers, [] if on else [f"evidence shows {measured:g}%, trajectory expects "
                                         f"{expected(day):.0f}% by {day.isoformat()}"],
                [{"pillar": p, "last_observed_on": (day - timedelta(days=2)).isoformat(),
                  "latest_value": measured, "fresh": True}
                 for p in ("care_records", "audits", "feedback", "staff_practice")],
                "daily-review", _ts(day, 7)))
            daily = (escalation_opened is not None and day > escalation_opened) or (
                risk == RiskLevel.HIGH and (day - started).days < 14)
            step_cadence = Cadence.DAILY if daily else review_cadence(
                risk, recovery_started_on=started, as_of=day)
            day = back(day, step_cadence)

    def _evidence(self, aid: int, ref: str, domain: str, baseline_on: date,
                  closed_on: date | None, stale: bool, value_on: Any, lead_email: str,
                  staff: dict[str, tuple[int, str]], loc_id: int,
                  rows: dict[str, list[tuple[Any, ...]]]) -> None:
        rng = self.rng
        k = self.size.evidence_per_action
        end = closed_on or AS_OF
        span = (end - baseline_on).days + 1
        pattern = PILLAR_PATTERN[:]
        rng.shuffle(pattern)
        care_source = CARE_SOURCE.get(domain, "care_records")
        others = [staff["registered_manager"][1], staff["team_leader"][1],
                  staff["senior_carer"][1], staff["duty_manager"][1], lead_email, lead_email]
        provider_level = [self.ni[1], self.region_lead[loc_id][1]]
        out = rows.setdefault("evidence", [])
        stale_from = AS_OF - timedelta(days=35)
        for i in range(k):
            day = baseline_on + timedelta(days=min(span - 1, int((i + rng.random()) * span / k)))
            slot = pattern[i % 10]
            if stale and slot == "F" and day >= stale_from:
                slot = "C"
            pillar = PILLAR_OF[slot]
            if slot == "C":
                source = care_source if rng.random() < 0.7 else "care_records"
            elif slot == "X":
                source = SUPPORTING[i % 3]
            else:
                source = pillar
            if source == "governance_minutes":
                value = sample = None
                by = rng.choice(provider_level) if rng.random() < 0.6 else others[0]
            else:
                value = value_on(day, rng.gauss(0, 2))
                sample = rng.randint(8, 40)
                by = rng.choice(others)
            out.append((
                self.next_id("evidence"), aid, source, pillar, value, sample, day, by,
                f"{SOURCE_NOUN[source]} {ref} {day.isoformat()} p.{i + 1}", _ts(day, 17)))

    # ---- provider assurance, once

    def assurance_minutes(self) -> None:
        rid = 1
        month_start = date(AS_OF.year, AS_OF.month, 1) - timedelta(days=28)
        as_of = date(month_start.year, month_start.month, 4)
        self.w.write(*_cols(AssuranceRequestRow), [(
            rid, as_of.strftime("%Y-%m"), as_of, self.ni[1], self.high_refs, "0" * 32, "0" * 64,
            _ts(as_of, 9), _ts(as_of + timedelta(days=7), 9), _ts(as_of + timedelta(days=2), 14),
            0, False, 0)])
        table, cols = _cols(AssuranceEntryRow)
        self.w.write(table, cols, [
            (n, rid, aid, "assurance", note, self.ni[1], as_of + timedelta(days=2))
            for n, (aid, note) in enumerate(self.assurance, start=1)])


def generate(url: str, size: Size, *, seed: int = 6) -> dict[str, Any]:
    """Migrate a fresh database and fill it. Returns row counts and timings."""
    from recovery.adapters import audit_log, db
    from recovery.application import registry

    t0 = time.perf_counter()
    db.upgrade(url)
    engine = db.engine_for(url)
    with Session(engine) as session:
        registry.initialise(session)
        session.commit()
    migrated = time.perf_counter() - t0

    writer = Writer(url)
    gen = Generator(size, writer, seed=seed)
    locations = gen.organisation()
    gen.actions(locations)
    gen.assurance_minutes()
    loaded = time.perf_counter() - t0 - migrated
    writer.finish()
    analysed = time.perf_counter() - t0 - migrated - loaded

    with Session(engine) as session:
        audit_log.append(session, actor="benchmarks", event="benchmark.generated",
                         action_ref=None,
                         details={"size": size.name, "locations": size.locations,
                                  "actions": size.actions, "evidence": size.evidence,
                                  "as_of": AS_OF.isoformat()})
        session.commit()
    for plan in gen.sampled_plans:  # the domain accepts what was generated
        ActionPlan.model_validate(plan)
    engine.dispose()
    return {"size": size.name, "as_of": AS_OF.isoformat(), "rows": writer.counts,
            "seconds": {"migrate": round(migrated, 2), "load": round(loaded, 2),
                        "analyse": round(analysed, 2),
                        "total": round(time.perf_counter() - t0, 2)},
            "plans_validated": len(gen.sampled_plans)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate")
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the database and print its URL")
    args = parser.parse_args(argv)
    url = fresh_database(args.db, args.size)
    try:
        stats = generate(url, SIZES[args.size])
        print(json.dumps({"url": url, **stats}, indent=2))
    finally:
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
