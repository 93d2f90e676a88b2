"""Built-in action templates (the seed's operational examples) and how a plan uses one."""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

from models.action import AuditCadence, RiskDomain, Step, Trigger, TriggerKind
from models.dates import shift
from models.errors import InvalidInput


class TemplateTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    measure: str
    direction: Literal["at_least", "at_most"]
    value: float
    weeks: int


class ActionTemplate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    risk_domain: RiskDomain
    quality_statements: tuple[str, ...]
    baseline_issue: str
    target: TemplateTarget
    evidence_sources: tuple[str, ...]
    steps: tuple[Step, ...]
    what_can_go_wrong: tuple[str, ...]
    warning_signs: tuple[str, ...]
    escalation_actions: tuple[str, ...]
    triggers: tuple[Trigger, ...]
    audit_cadence: tuple[AuditCadence, ...]


@cache
def builtin_templates() -> dict[str, ActionTemplate]:
    text = resources.files("models.data").joinpath("templates.yaml").read_text("utf-8")
    return {t["id"]: ActionTemplate.model_validate(t) for t in yaml.safe_load(text)}


@cache
def domain_trigger_kinds(domain: RiskDomain) -> frozenset[TriggerKind]:
    """The trigger kinds the seed names for a risk domain (its built-in templates'
    triggers the review cycle can detect); none for a domain without a template."""
    return frozenset(t.kind for tpl in builtin_templates().values() if tpl.risk_domain == domain
                     for t in tpl.triggers if t.kind != TriggerKind.MANUAL)


def get_template(template_id: str) -> ActionTemplate:
    try:
        return builtin_templates()[template_id]
    except KeyError:
        known = ", ".join(builtin_templates())
        raise InvalidInput("template", f"unknown template '{template_id}' ({known})") from None


def apply_template(plan: dict[str, Any], template: ActionTemplate) -> dict[str, Any]:
    """The plan with every key the template carries and the plan leaves out filled in.
    Keys the plan gives always win (a plan can override any part)."""
    merged = dict(plan)
    defaults: dict[str, Any] = {
        "title": template.title,
        "risk_domain": template.risk_domain.value,
        "quality_statements": list(template.quality_statements),
        "steps": [s.model_dump(mode="json") for s in template.steps],
        "what_can_go_wrong": list(template.what_can_go_wrong),
        "warning_signs": list(template.warning_signs),
        "escalation_actions": list(template.escalation_actions),
        "triggers": [t.model_dump(mode="json") for t in template.triggers],
        "evidence_sources": list(template.evidence_sources),
        "audit_cadence": [a.model_dump(mode="json") for a in template.audit_cadence],
    }
    for key, value in defaults.items():
        merged.setdefault(key, value)
    baseline = merged.get("baseline")
    if isinstance(baseline, dict):
        baseline = dict(baseline)
        baseline.setdefault("issue", template.baseline_issue)
        merged["baseline"] = baseline
    target = merged.get("target")
    if isinstance(target, dict):
        target = dict(target)
        target.setdefault("measure", template.target.measure)
        target.setdefault("direction", template.target.direction)
        target.setdefault("value", template.target.value)
        as_of = baseline.get("as_of") if isinstance(baseline, dict) else None
        if "deadline" not in target and isinstance(as_of, date):
            target["deadline"] = shift(as_of, 7 * template.target.weeks)
        merged["target"] = target
    return merged
