"""Jobs operations staff do from the Prefect UI: open an action, record evidence, import
a file of evidence.

The parameter forms use readable labels, drop-downs and (except for the risk factors, which
must be chosen) defaults (risk domain, evidence
source, quality statements); the flows validate with exactly the code the CLI uses and
fail with the same one-line messages.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from models.action import RiskDomain
from models.catalogue import builtin_framework
from models.evidence import EvidenceSource
from models.templates import builtin_templates
from recovery.settings import get_settings
from tasks.operations import (
    import_evidence_task,
    open_action_task,
    reassign_signoff_task,
    record_absence_task,
    record_evidence_task,
)

if TYPE_CHECKING:
    # Drop-downs whose members are data (the built-in catalogue and templates), made when
    # the module loads; a type checker only knows them as string enums.
    Statement = StrEnum
    Template = StrEnum
else:
    Statement = StrEnum(
        "Statement", {s.id: s.id for s in builtin_framework().quality_statements}
    )
    Template = StrEnum("Template", {t: t for t in builtin_templates()})


class RiskFactorsForm(BaseModel):
    """Choose each factor from 1 to 5 (the scale is in its label). Nothing is preset: a form
    left untouched is refused rather than quietly rated medium."""

    potential_harm: int = Field(ge=1, le=5, title="Potential harm (1 negligible - 5 "
                                                      "catastrophic)")
    people_affected: int = Field(ge=1, le=5, title="People affected (1 one - 5 everyone)")
    likelihood_of_recurrence: int = Field(ge=1, le=5, title="Likelihood of recurrence "
                                                               "(1 rare - 5 recurring now)")
    regulatory_impact: int = Field(ge=1, le=5, title="Regulatory impact (1 none - 5 "
                                                        "enforcement likely)")
    control_strength: int = Field(ge=1, le=5, title="Strength of current controls "
                                                       "(1 strong - 5 absent)")


class OpenActionForm(BaseModel):
    location: str = Field(title="Location (service)", description="e.g. Rose House")
    title: str = Field(title="What the action is", max_length=200)
    template: Template | None = Field(None, title="Start from a template (optional)")
    risk_domain: RiskDomain = Field(title="Risk domain")
    quality_statements: list[Statement] = Field(title="CQC quality statements", min_length=1)
    risk: RiskFactorsForm = Field(title="Risk factors (choose each, 1-5)")
    accountable_lead: str = Field(title="Accountable lead (email in the staff directory)")
    senior_reviewer: str = Field(title="Senior reviewer (email; RM, NI or provider lead)")
    baseline_issue: str = Field(title="Baseline issue", description="What is wrong now, in "
                                "service terms; never a person's details")
    baseline_value: float = Field(title="Baseline measure (%)", ge=0, le=100)
    baseline_date: date = Field(title="Baseline measured on")
    target_measure: str = Field(title="What is measured")
    target_direction: Literal["at_least", "at_most"] = Field("at_least", title="Direction")
    target_value: float = Field(100, title="Target (%)", ge=0, le=100)
    deadline: date = Field(title="Deadline")
    interim_controls: list[str] = Field(title="Interim controls (at least one for high risk)",
                                        min_length=1)

    def plan(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "location": self.location, "title": self.title,
            "risk_domain": self.risk_domain.value,
            "quality_statements": [s.value for s in self.quality_statements],
            "risk": self.risk.model_dump(), "accountable_lead": self.accountable_lead,
            "senior_reviewer": self.senior_reviewer,
            "baseline": {"issue": self.baseline_issue, "value": self.baseline_value,
                         "as_of": self.baseline_date},
            "target": {"measure": self.target_measure, "direction": self.target_direction,
                       "value": self.target_value, "deadline": self.deadline},
            "interim_controls": self.interim_controls,
        }
        if self.template is not None:
            data["template"] = self.template.value
        return data


@flow(name="open-action", persist_result=False)
def open_action(plan: OpenActionForm, opened_by: str = "prefect-ui") -> dict[str, Any]:
    """Open a recovery action from the form: validate, rate, record, start its lifecycle."""
    result = open_action_task(plan.plan(), opened_by)
    get_run_logger().info("%s opened: %s risk (score %s)", result["ref"],
                          result["risk"]["level"], result["risk"]["score"])
    return result


class RecordBook(StrEnum):
    """Where evidence lives, by kind of record: the Prefect form never takes free text
    that could name a person who uses the service."""

    CARE_RECORD = "Care record"
    SAFEGUARDING_LOG = "Safeguarding log"
    MEDICATION_RECORD = "Medication administration record"
    DISCREPANCY_LOG = "Discrepancy log"
    AUDIT_TEMPLATE = "Audit template"
    COMPETENCY_OBSERVATION = "Competency observation file"
    HANDOVER_NOTE = "Handover governance note"
    DAILY_MANAGEMENT_LOG = "Daily management log"
    ROTA = "Rota planning notes"
    FEEDBACK_SUMMARY = "Quality feedback summary"
    INCIDENT_LOG = "Incident log"
    GOVERNANCE_MINUTES = "Governance minutes"


@flow(name="record-evidence", persist_result=False)
def record_evidence(
    action_ref: str,
    source: EvidenceSource,
    observed_on: date,
    record_book: RecordBook,
    entry: str,
    recorded_by: str,
    value: float | None = None,
    sample_size: int | None = None,
) -> dict[str, Any]:
    """Record one evidence item against an action. Where it lives is a kind of record and
    an entry or page number (digits, dots, slashes, dashes), never a person's details."""
    import re

    from models.errors import InvalidInput

    if not re.fullmatch(r"[0-9][0-9./ -]{0,19}", entry.strip()):
        raise InvalidInput("entry", "an entry or page number: digits, dots, slashes and "
                                    "dashes only (never a name)")
    return record_evidence_task(
        action_ref=action_ref, source=source.value, observed_on=observed_on,
        reference=f"{record_book.value}, entry {entry.strip()}", recorded_by=recorded_by,
        value=value, sample_size=sample_size, today=get_settings().today(),
    )


def evidence_table(result: dict[str, Any]) -> list[dict[str, object]]:
    """The import's table artifact: per action and source, how many items were new and
    how many already held, and the days they were observed. No references (they can
    point at a person's record) and nothing else a row says."""
    return [{"action": t["action"], "source": t["source"].replace("_", " "),
             "pillar": t["pillar"].replace("_", " "), "new": t["new"],
             "already held": t["already_held"],
             "observed": f"{date.fromisoformat(t['first_observed']):%d/%m/%Y} to "
                         f"{date.fromisoformat(t['last_observed']):%d/%m/%Y}"}
            for t in result["tallies"]]


@flow(name="import-evidence", persist_result=False)
def import_evidence(
    file: str = Field(description="The file in the evidence inbox: its name, or a path "
                                  "inside the inbox folder (RECOVERY_EVIDENCE_INBOX, default "
                                  "<home>/inbox); .xlsx or .csv, one row per item "
                                  "(docs/evidence-format.md)"),
    imported_by: str = Field(description="Your email in the staff directory: audited as the "
                                         "importer, and the recorder of rows without one"),
    dry_run: bool = Field(False, description="Check every row and add nothing"),
) -> dict[str, Any]:
    """Import a file of evidence items from the inbox, as `recovery import evidence` does:
    every row checked first, a file with any bad row adds nothing (the run fails listing
    each bad row and column); items already held are not added again. The run's
    `evidence-import` table says what was added per action and source, without
    references."""
    from prefect.artifacts import create_table_artifact

    from recovery.adapters import escaping
    from recovery.adapters.tablefile import iter_errors
    from recovery.application.evidence_import import RowsRejected

    logger = get_run_logger()
    try:
        result = import_evidence_task(file, imported_by, dry_run)
    except RowsRejected as exc:
        # row numbers, column names and rules only: no message repeats a cell
        for line in iter_errors(exc.errors):
            logger.error("%s", line)
        raise
    verb = "would add" if dry_run else "added"
    summary = (f"{result['rows']} rows: {verb} {result['new']} new items, "
               f"{result['already_held']} already held, {result['refused']} refused")
    logger.info("%s", summary)
    create_table_artifact(key="evidence-import", table=evidence_table(result),
                          description=f"Evidence import of "
                                      f"{escaping.markdown_text(result['file'])}: {summary}")
    return {k: v for k, v in result.items() if k != "tallies"}


@flow(name="people-away", persist_result=False)
def people_away(
    email: str = Field(description="Who is away (email in the staff directory)"),
    first_day: date = Field(description="First day away"),
    last_day: date = Field(description="Last day away (included)"),
    recorded_by: str = Field(description="Your email: the person themselves, or a "
                                         "registered manager, nominated individual or "
                                         "provider lead"),
) -> dict[str, Any]:
    """Record an absence, as `recovery people away` does: nobody away is chosen as a
    reviewer, and a sign-off waiting on them may be reassigned to a stand-in."""
    result = record_absence_task(email, first_day, last_day, recorded_by)
    get_run_logger().info("%s is away from %s to %s", result["email"], result["from"],
                          result["to"])
    return result


@flow(name="signoff-reassign", persist_result=False)
def signoff_reassign(
    action_ref: str = Field(description="The action whose sign-off waits, e.g. ROSE-SG-001"),
    standin: str = Field(description="The stand-in's email: a registered manager of the "
                                     "action's location, the nominated individual or the "
                                     "provider lead; not the accountable lead, not away"),
    reassigned_by: str = Field(description="Your email: the nominated individual or the "
                                           "provider lead"),
    reason: str = Field(description="Why, at least 20 characters, in service terms "
                                    "(never a person's details)"),
) -> dict[str, Any]:
    """Hand a waiting sign-off (its reviewer away, or waiting longer than allowed) to a
    stand-in, as `recovery signoff reassign` does: the old code stops working, the
    stand-in is sent a new one, and the original reviewer and the accountable lead are
    told."""
    result = reassign_signoff_task(action_ref, standin, reassigned_by, reason)
    get_run_logger().info("%s: %s sign-off reassigned from %s to %s", result["ref"],
                          result["kind"], result["reviewer_before"], result["standin"])
    return result
