"""The three report packs (provider governance, commissioner, inspector) built from the
stored records into typed contexts, rendered with the one Jinja environment to HTML
(self-contained, print-ready A4), Markdown or PDF (WeasyPrint).

The packs start from `recovery.reporting.snapshot.build_snapshot` (the same view the weekly cycle
uses) and add, set-based for every action at once, what each audience asks for: evidence
per pillar with freshness, escalations and control changes, sign-off decisions, the
provider assurance minutes, the improvement plan and, for inspectors, the decision log
from the hash-chained audit trail with the chain verified.

Modules: `views` (typed contexts and constants), `details` (set-based loading of what
the packs show per action), `summary` (across the actions: attention, charts, counts, the
matrix, pack metadata), `builders` (the three packs and `build_pack`), `rendering` (HTML,
Markdown, PDF and `write_report`). Everything callers use is re-exported here.
"""

from recovery.reporting.packs.builders import (
    BUILDERS,
    build_pack,
    commissioner_pack,
    governance_pack,
    inspector_pack,
    verify_chain,
)
from recovery.reporting.packs.rendering import (
    ReportResult,
    print_document,
    render,
    render_html,
    render_markdown,
    render_pdf,
    write_report,
)
from recovery.reporting.packs.summary import (
    chart_plan,
    needs_attention,
)
from recovery.reporting.packs.views import (
    ATTENTION_OVER,
    CHART_ALL_LIMIT,
    CHART_CHOICES,
    EVIDENCE_KINDS,
    FORMATS,
    PACKS,
    SHORT_FACTOR_LABELS,
    TITLES,
    WEAKNESS_GROUPS,
    ActionDetail,
    AssuranceView,
    AuditView,
    ChainView,
    ClaimView,
    CommissionerPack,
    ControlChangeView,
    Counts,
    DecisionNeeded,
    DecisionView,
    DomainSection,
    EscalationView,
    EvidenceGroup,
    EvidenceView,
    FactorScale,
    FactorView,
    GovernancePack,
    ImprovementIssue,
    ImprovementRow,
    InspectorPack,
    Pack,
    PackFormat,
    PackKind,
    PackMeta,
    PersonView,
    PillarView,
    StatementView,
    WeaknessGroup,
    WeaknessItem,
)

__all__ = [
    "PackKind",
    "PackFormat",
    "PACKS",
    "FORMATS",
    "TITLES",
    "CHART_ALL_LIMIT",
    "ATTENTION_OVER",
    "CHART_CHOICES",
    "EVIDENCE_KINDS",
    "SHORT_FACTOR_LABELS",
    "WEAKNESS_GROUPS",
    "PersonView",
    "FactorView",
    "StatementView",
    "EvidenceView",
    "PillarView",
    "EscalationView",
    "ControlChangeView",
    "DecisionView",
    "AssuranceView",
    "AuditView",
    "ClaimView",
    "ActionDetail",
    "PackMeta",
    "Counts",
    "WeaknessItem",
    "WeaknessGroup",
    "DecisionNeeded",
    "GovernancePack",
    "EvidenceGroup",
    "DomainSection",
    "ImprovementRow",
    "ImprovementIssue",
    "CommissionerPack",
    "ChainView",
    "FactorScale",
    "InspectorPack",
    "Pack",
    "needs_attention",
    "chart_plan",
    "governance_pack",
    "commissioner_pack",
    "verify_chain",
    "inspector_pack",
    "BUILDERS",
    "build_pack",
    "render_html",
    "render_markdown",
    "print_document",
    "render_pdf",
    "render",
    "ReportResult",
    "write_report",
]
