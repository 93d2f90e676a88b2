"""The words above each Prefect form: everything a reviewer needs to decide."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from models.evidence import TRIANGULATION_PILLARS
from models.review import pillar_positions
from models.signoff import closure_requester
from recovery.adapters import mail
from recovery.adapters import repository as repo
from recovery.application import evidence_gate, summaries
from recovery.settings import get_settings


def action_brief(session: Session, ref: str, *, wait: Any) -> str:
    settings = get_settings()
    row = repo.get_action(session, ref)
    assert row.id is not None
    summary = summaries.summary(session, row, as_of=settings.today())
    evidence = repo.evidence_of(session, row.id)
    positions = {p.pillar: p for p in pillar_positions(evidence, settings.today(),
                                                         settings.evidence_freshness_days)}
    pillars = []
    for pillar in TRIANGULATION_PILLARS:
        items = [e for e in evidence if e.pillar == pillar]
        latest = items[-1] if items else None
        pillars.append({
            "pillar": pillar.label,
            "value": f"{latest.value:g}%" if latest and latest.value is not None else "—",
            "observed": latest.observed_on.strftime("%d/%m/%Y") if latest else "none",
            "by": latest.recorded_by if latest else "—",
            "fresh": positions[pillar].fresh,
        })
    gate = requester = snapshot = None
    if wait.kind == "closure":
        gate = evidence_gate.gate_verdict(session, ref, as_of=settings.today(),
                                     freshness_days=settings.evidence_freshness_days)
        request = repo.latest_closure_request(session, row.id)
        requester = closure_requester(request.requested_by) if request else None
        snapshot = request.snapshot_ref if request else None
    env = mail.environment()
    return env.get_template("forms/action_brief.md").render(
        a=summary.model_dump(mode="json"), wait=wait, steps=row.plan["steps"],
        evidence=evidence, pillars=pillars, gate=gate, requester=requester,
        snapshot=snapshot,
    )
