"""The tracker layout (its columns, the plan fields and rules they carry), the import
result and the bounds a tracker file is read within; shared by import and export.
"""

from __future__ import annotations

from pydantic import BaseModel

from models.risk import FACTOR_LABELS
from recovery.adapters.tablefile import (
    Column,
    Limits,
    RowsRejected,
    Table,
    read_table,
)

FACTORS = tuple(FACTOR_LABELS)  # potential_harm, people_affected, ...

# ---------------------------------------------------------------- the layout


COLUMNS: tuple[Column, ...] = (
    Column("ref", "Ref", 15, imported=False, meaning="Action reference (given on import)"),
    Column("title", "Title", 44, ("action", "action title"),
           meaning="What the action is (optional with a template)"),
    Column("location", "Location", 16, ("home", "service"), required=True,
           meaning="Location name or code, as in the staff directory"),
    Column("domain", "Domain", 16, ("risk domain",),
           meaning="safety, safeguarding, medicines, staffing, care planning or leadership "
                   "control (optional with a template)"),
    Column("statements", "Statements", 28, ("quality statements", "quality statement"),
           meaning="Quality statement ids separated by ; or , (optional with a template)"),
    Column("risk_level", "Risk level", 10, imported=False, meaning="high, medium or low"),
    Column("risk_score", "Risk score", 10, imported=False, meaning="6 to 30"),
    Column("potential_harm", "Potential harm", 10, ("harm",), required=True,
           meaning="1-5"),
    Column("people_affected", "People affected", 10, ("people",), required=True,
           meaning="1-5"),
    Column("likelihood_of_recurrence", "Likelihood of recurrence", 11,
           ("likelihood", "recurrence"), required=True, meaning="1-5"),
    Column("regulatory_impact", "Regulatory impact", 11, ("regulatory",), required=True,
           meaning="1-5"),
    Column("control_strength", "Control strength", 10,
           ("strength of current controls", "controls strength"), required=True,
           meaning="1 strong to 5 absent"),
    Column("status", "Status", 16, imported=False, meaning="Where the action stands"),
    Column("rating", "RAG", 11, ("rating",), imported=False,
           meaning="Progress against the trajectory at the last review"),
    Column("measured", "Measured", 10, imported=False,
           meaning="Measured at the last review (%)"),
    Column("trend", "Trend", 11, imported=False, meaning="Since a week earlier"),
    Column("lead", "Lead", 28, ("accountable lead", "lead email"), required=True,
           meaning="Accountable lead's email"),
    Column("lead_name", "Lead name", 18, imported=False),
    Column("reviewer", "Reviewer", 28, ("senior reviewer", "reviewer email"), required=True,
           meaning="Senior reviewer's email"),
    Column("reviewer_name", "Reviewer name", 18, imported=False),
    Column("cadence", "Review frequency", 11, imported=False, meaning="daily, weekly, monthly"),
    Column("next_review", "Next review due", 12, imported=False),
    Column("escalated", "Escalated", 10, imported=False),
    Column("baseline_issue", "Baseline issue", 44, ("issue",),
           meaning="What is wrong now (optional with a template)"),
    Column("baseline_value", "Baseline value", 10, ("baseline",), required=True,
           meaning="% now"),
    Column("baseline_date", "Baseline date", 12, ("baseline as of", "baseline on"),
           required=True, meaning="DD/MM/YYYY"),
    Column("target_measure", "Target measure", 40, ("measure",),
           meaning="What is measured (optional with a template)"),
    Column("direction", "Direction", 10, ("target direction",),
           meaning="at least or at most (optional with a template)"),
    Column("target_value", "Target value", 10, ("target",),
           meaning="% to reach (optional with a template)"),
    Column("deadline", "Deadline", 12, ("target deadline", "due", "due date"),
           meaning="DD/MM/YYYY (optional with a template)"),
    Column("interim_controls", "Interim controls", 48, ("controls",),
           meaning="Separated by ; or one per line; at least one for a high-risk action"),
    Column("template", "Template", 30, meaning="Optional: a built-in template id"),
    Column("steps", "Steps", 48,
           meaning="Optional with a template: 'role: action -> record', separated by ; or "
                   "one per line"),
    Column("framework", "Framework", 14, ("framework id",),
           meaning="Optional: quality statement framework (default cqc-saf-2024)"),
)
BY_KEY = {c.key: c for c in COLUMNS}

#: A plan field (as InvalidInput names it) -> the tracker column it came from.
FIELD_COLUMNS = {
    "location": "location", "title": "title", "risk_domain": "domain",
    "quality_statements": "statements", "framework_id": "framework",
    "accountable_lead": "lead", "senior_reviewer": "reviewer", "template": "template",
    "baseline.issue": "baseline_issue", "baseline.value": "baseline_value",
    "baseline.as_of": "baseline_date", "baseline": "baseline_value",
    "target.measure": "target_measure", "target.direction": "direction",
    "target.value": "target_value", "target.deadline": "deadline",
    "interim_controls": "interim_controls", "steps": "steps",
    **{f"risk.{k}": k for k in FACTORS},
}
RULE_COLUMNS = {"separation of duties": "reviewer", "interim controls": "interim_controls"}


# ---------------------------------------------------------------- results


#: The tracker's name for a file refused row by row (recovery/adapters/tablefile.py).
TrackerRejected = RowsRejected


class ImportResult(BaseModel):
    file: str
    rows: int
    refs: list[str]
    dry_run: bool
    ignored_columns: list[str]
    sha256: str


# ---------------------------------------------------------------- reading files

#: A tracker is read within these bounds (rows below the header, blank ones included).
LIMITS = Limits()
MAX_ROWS = LIMITS.rows


def read_tracker(data: bytes, name: str) -> Table:
    """The tracker's table: the sheet named Tracker (any case) or the first, or the CSV."""
    return read_table(data, name, LIMITS, sheet="tracker")


