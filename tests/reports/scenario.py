"""Test data for the report packs, built only through the product's services: plans opened
with `action_plans.open_action`, plans signed off with the one-time code from the outbox,
evidence with `evidence_gate.add_evidence`, reviews and escalations by `cycles.run_daily`,
control changes with `follow_ups.record_control_change`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from models.planfile import parse_people, parse_plan, plan_from_mapping
from models.signoff import SignoffKind, Submission
from recovery.adapters import db
from recovery.adapters.mail import outgoing
from recovery.adapters.tables import OutboxRow
from recovery.application import (
    action_plans,
    evidence_gate,
    follow_ups,
    registry,
    signoff_codes,
    signoffs,
    transitions,
)
from recovery.application import reviews as cycles

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
SEED_PLANS = {
    "ROSE-SG-001": EXAMPLES / "safeguarding-rose-house.yaml",
    "QUAY-MED-001": EXAMPLES / "medicines-quay-house.yaml",
    "ELM-STF-001": EXAMPLES / "staffing-elm-court.yaml",
}
#: The day the seed plans are signed off (recovery starts) and the day the packs show.
SIGNED_OFF_ON = date(2026, 11, 21)
SEED_AS_OF = date(2026, 12, 10)
PROVIDER_AS_OF = date(2026, 12, 10)

SCRIPT_RATIONALE = ("Approved: interim controls are proportionate "
                    "<script>alert('rationale')</script> & reviewed daily")
SCRIPT_CONTROL = ("Second senior carer check at 14:00 <b>every day</b> & a discrepancy "
                  "huddle <script>alert('control')</script>")
SCRIPT_REFERENCE = "Provider governance minutes 04/12 <img src=x onerror=alert(1)>"


def at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=UTC)


def sign_off_plan(ref: str, *, on: date, rationale: str, decision: str = "approve") -> None:
    """Submit the plan, issue the one-time code, read it from the reviewer's email in the
    outbox and sign off as the named senior reviewer would."""
    now = at(on)
    with db.unit_of_work() as session:
        transitions.submit_plan(session, ref, actor="lifecycle")
        wait = signoff_codes.open_signoff(session, ref, SignoffKind.PLAN, flow_run_id=None, now=now)
        mail = session.exec(select(OutboxRow).where(
            OutboxRow.dedupe_key == f"signoff:{ref}:plan:1")).one()
        text = outgoing(mail)[1]  # the code is put in as the email is sent
        match = re.search(r"sign-off code: (\d{6})", text)
        assert match, text
        outcome = signoffs.apply_signoff(
            session, ref, SignoffKind.PLAN, pause_key=wait.pause_key,
            submission=Submission(reviewer_email=wait.reviewer_email, code=match.group(1),
                                  decision=decision, rationale=rationale),
            now=now + timedelta(hours=1))
        assert outcome.applied, outcome.reasons


def submit_only(ref: str, *, on: date) -> None:
    with db.unit_of_work() as session:
        transitions.submit_plan(session, ref, actor="lifecycle")
        signoff_codes.open_signoff(session, ref, SignoffKind.PLAN, flow_run_id=None, now=at(on))


def evidence(ref: str, source: str, value: float | None, on: date, by: str,
             reference: str | None = None, sample: int | None = 20) -> None:
    with db.unit_of_work() as session:
        evidence_gate.add_evidence(
            session, ref, source=source, value=value,
            sample_size=sample if value is not None else None, observed_on=on,
            reference=reference or f"{source.replace('_', ' ')} sample {on.isoformat()}",
            by=by, today=on)


def daily(day: date) -> None:
    with db.unit_of_work() as session:
        cycles.run_daily(session, as_of=day)


def directory(people_yaml: bytes) -> None:
    with db.unit_of_work() as session:
        registry.initialise(session)
        registry.import_people(session, parse_people(people_yaml))


# ---------------------------------------------------------------- the three seed examples


def build_seed() -> dict[str, Any]:
    """The seed's three examples, three weeks into recovery:
    ROSE-SG-001 improving on trajectory, signed off by the nominated individual with a
    rationale that contains HTML; QUAY-MED-001 falling behind, escalated, with a control
    change (reviewed only locally); ELM-STF-001 at risk, no fresh feedback."""
    directory((EXAMPLES / "people.yaml").read_bytes())
    refs = []
    for path in SEED_PLANS.values():
        with db.unit_of_work() as session:
            refs.append(action_plans.open_action(session, parse_plan(path.read_bytes()),
                                             actor="cli").ref)
    assert refs == list(SEED_PLANS), refs
    sign_off_plan("ROSE-SG-001", on=SIGNED_OFF_ON, rationale=SCRIPT_RATIONALE)
    sign_off_plan("QUAY-MED-001", on=SIGNED_OFF_ON,
                  rationale="Approved with daily medicines checks until the gaps close.")
    sign_off_plan("ELM-STF-001", on=SIGNED_OFF_ON,
                  rationale="Approved: peak-time deployment plan matches dependency scores.")

    plan: dict[date, list[tuple[str, str, float | None, str]]] = {}

    def add(day: date, ref: str, source: str, value: float | None, by: str) -> None:
        plan.setdefault(day, []).append((ref, source, value, by))

    start = SIGNED_OFF_ON
    for week in range(3):
        d = start + timedelta(days=7 * week + 1)
        rose = 70 + 8 * week
        add(d, "ROSE-SG-001", "safeguarding_logs", rose, "sg.lead@rose.example")
        add(d + timedelta(days=1), "ROSE-SG-001", "audits", rose + 1, "rm@rose.example")
        add(d + timedelta(days=2), "ROSE-SG-001", "feedback", rose + 2, "team.leader@rose.example")
        add(d + timedelta(days=3), "ROSE-SG-001", "staff_practice", rose,
            "duty.manager@rose.example")
        quay = 72 - week
        add(d, "QUAY-MED-001", "medicines_records", quay, "meds.lead@quay.example")
        add(d + timedelta(days=1), "QUAY-MED-001", "audits", quay + 2, "rm@quay.example")
        add(d + timedelta(days=2), "QUAY-MED-001", "staff_practice", quay,
            "senior.carer@quay.example")
        add(d + timedelta(days=2), "QUAY-MED-001", "feedback", 74, "rm@quay.example")
        elm = 66 + 5 * week
        add(d, "ELM-STF-001", "rota_evidence", elm, "rota@elm.example")
        add(d + timedelta(days=1), "ELM-STF-001", "care_records", elm, "deputy@elm.example")
        add(d + timedelta(days=1), "ELM-STF-001", "audits", elm + 1, "rm@elm.example")
        add(d + timedelta(days=3), "ELM-STF-001", "staff_practice", elm - 2,
            "shift.leader@elm.example")

    day, changed = start, False
    while day <= SEED_AS_OF:
        for ref, source, value, by in plan.get(day, []):
            evidence(ref, source, value, day, by)
        if day == date(2026, 12, 4):
            evidence("ROSE-SG-001", "governance_minutes", None, day, "ni@harbourcare.example",
                     reference=SCRIPT_REFERENCE)
        daily(day)
        if not changed:
            with db.unit_of_work() as session:
                if session.exec(select(OutboxRow.id).where(col(OutboxRow.dedupe_key).startswith(
                        "escalation:QUAY-MED-001"))).first() is not None:
                    follow_ups.record_control_change(session, "QUAY-MED-001", what=SCRIPT_CONTROL,
                                                 by="rm@quay.example", today=day)
                    changed = True
        day += timedelta(days=1)
    return {"as_of": SEED_AS_OF, "refs": refs}


# ---------------------------------------------------------------- a provider of 20 locations

PLACES = ["Ashby Lodge", "Beacon View", "Cedar Grange", "Dovecote House", "Elmfield",
          "Fernhill", "Greystones", "Hawthorn Court", "Ivy Bank", "Juniper House",
          "Kingsmead", "Larch Lea", "Meadowside", "Northgate", "Oakwood", "Primrose Hill",
          "Quarry Bank", "Riverside", "Sycamore Lodge", "Thornbury"]
DOMAIN_SETUP = {
    "safety": ("safe.safe-environments", "care_records"),
    "safeguarding": ("safe.safeguarding", "safeguarding_logs"),
    "medicines": ("safe.medicines-optimisation", "medicines_records"),
    "staffing": ("safe.safe-effective-staffing", "rota_evidence"),
    "care_planning": ("effective.assessing-needs", "care_records"),
    "leadership_control": ("well-led.governance-management-sustainability", "audits"),
}
RISKS = [  # high, medium, low and an override to high
    {"potential_harm": 4, "people_affected": 4, "likelihood_of_recurrence": 4,
     "regulatory_impact": 4, "control_strength": 4},
    {"potential_harm": 3, "people_affected": 3, "likelihood_of_recurrence": 3,
     "regulatory_impact": 3, "control_strength": 3},
    {"potential_harm": 2, "people_affected": 2, "likelihood_of_recurrence": 2,
     "regulatory_impact": 2, "control_strength": 2},
]


def _code(i: int) -> str:
    return f"L{i + 1:02d}"


def provider_people() -> bytes:
    import yaml

    people: list[dict[str, Any]] = [
        {"name": "Helen Ward", "email": "ni@northfield.example", "role": "nominated_individual"},
        {"name": "Marcus Lee", "email": "lead@northfield.example", "role": "provider_lead"},
    ]
    for i, place in enumerate(PLACES):
        c = _code(i).lower()
        people += [
            {"name": f"Manager {place}", "email": f"rm@{c}.example",
             "role": "registered_manager", "location": place},
            {"name": f"Deputy {place}", "email": f"deputy@{c}.example",
             "role": "deputy_manager", "location": place},
            {"name": f"Safeguarding {place}", "email": f"sg@{c}.example",
             "role": "safeguarding_lead", "location": place},
        ]
    return yaml.safe_dump({
        "provider": "Northfield Care Partnership",
        "locations": [{"name": p, "code": _code(i)} for i, p in enumerate(PLACES)],
        "people": people}).encode()


def provider_plan(i: int, k: int) -> dict[str, Any]:
    place, c = PLACES[i], _code(i).lower()
    domain = list(DOMAIN_SETUP)[(i + k) % len(DOMAIN_SETUP)]
    statement, _ = DOMAIN_SETUP[domain]
    risk = RISKS[(i + 2 * k) % 3]
    high = (i + 2 * k) % 3 == 0
    reviewer = ("ni@northfield.example" if high and i % 2 == 0 else f"rm@{c}.example")
    return {
        "location": place,
        "title": f"{domain.replace('_', ' ').capitalize()} recovery at {place} ({k + 1})",
        "risk_domain": domain, "quality_statements": [statement], "risk": risk,
        "accountable_lead": f"deputy@{c}.example", "senior_reviewer": reviewer,
        "baseline": {"issue": f"{domain.replace('_', ' ').capitalize()} audit at {place} "
                              f"found gaps in recorded follow-up",
                     "value": 50 + (i % 5) * 4, "as_of": date(2026, 11, 16)},
        "target": {"measure": f"Sampled {domain.replace('_', ' ')} records complete",
                   "direction": "at_least", "value": 95, "deadline": date(2027, 1, 15)},
        "interim_controls": [f"Registered manager checks {domain.replace('_', ' ')} "
                             f"records daily"],
        "steps": [{"role": "deputy_manager", "action": "Audit and correct the records",
                   "record": "Recovery tracker"}],
    }


def build_provider(locations: int = 20, per_location: int = 3) -> dict[str, Any]:
    directory(provider_people())
    refs: list[str] = []
    for i in range(locations):
        for k in range(per_location):
            with db.unit_of_work() as session:
                refs.append(action_plans.open_action(
                    session, plan_from_mapping(provider_plan(i, k)), actor="cli").ref)
    waiting = set(refs[-2:])
    for ref in refs:
        if ref in waiting:
            submit_only(ref, on=SIGNED_OFF_ON)
        else:
            sign_off_plan(ref, on=SIGNED_OFF_ON,
                          rationale="Approved: controls and deadline are proportionate.")
    with db.unit_of_work() as session:
        from recovery.adapters.tables import ActionRow

        actions = {a.ref: a for a in session.exec(select(ActionRow))}
    day = SIGNED_OFF_ON
    last_daily = PROVIDER_AS_OF - timedelta(days=3)  # the last days' reviews are overdue
    n = 0
    while day <= last_daily:
        for index, ref in enumerate(refs):
            if ref in waiting or (index + day.toordinal()) % 4:
                continue
            row = actions[ref]
            _, source = DOMAIN_SETUP[row.risk_domain]
            weeks = (day - SIGNED_OFF_ON).days / 7
            drift = [9, 3, -1][index % 3]  # on track, at risk, falling behind
            value = max(0.0, min(100.0, round(row.baseline_value + drift * weeks, 1)))
            pillar_source = [source, "audits", "feedback", "staff_practice"][n % 4]
            by = f"deputy@{_code(index // per_location).lower()}.example"
            evidence(ref, pillar_source, value, day, by)
            n += 1
        daily(day)
        day += timedelta(days=1)
    return {"as_of": PROVIDER_AS_OF, "refs": refs, "waiting": sorted(waiting)}
