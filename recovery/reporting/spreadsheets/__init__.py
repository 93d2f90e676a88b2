"""Action trackers in and out of spreadsheets (xlsx through openpyxl, or CSV).

Import: one row per action. The file is read within bounds (recovery/adapters/tablefile.py); every
row goes through the same validation as a plan file (`models.planfile.plan_from_mapping`,
then `action_plans.PlanChecks`, open_action's checks, and the sign-off readiness check) with
reads only; a file with any bad row imports nothing and reports every bad row (row number,
column, what is wrong). Only then does one short write transaction open every action in
bulk (`action_plans.open_actions`), so other writers wait seconds, not minutes.

Export: the risk-rated tracker as a manager expects it in Excel (header row frozen, RAG
fill colours, dates as dates, sensible column widths, filters), or as CSV. The export
carries every column the import reads, so exporting and importing into an empty database
reproduces the same actions.

Modules: `layout` (columns, results, read bounds), `tracker_import`, `tracker_export`.
Everything callers use is re-exported here.
"""

from recovery.adapters.tablefile import RowError, iter_errors, read_table
from recovery.reporting.spreadsheets.layout import (
    BY_KEY,
    COLUMNS,
    FACTORS,
    FIELD_COLUMNS,
    LIMITS,
    MAX_ROWS,
    RULE_COLUMNS,
    ImportResult,
    TrackerRejected,
    read_tracker,
)
from recovery.reporting.spreadsheets.tracker_export import (
    ExportResult,
    export_csv,
    export_tracker,
    export_xlsx,
    tracker_records,
)
from recovery.reporting.spreadsheets.tracker_import import (
    import_tracker,
)

__all__ = [
    "BY_KEY",
    "COLUMNS",
    "ExportResult",
    "FACTORS",
    "FIELD_COLUMNS",
    "ImportResult",
    "LIMITS",
    "MAX_ROWS",
    "RULE_COLUMNS",
    "RowError",
    "TrackerRejected",
    "export_csv",
    "export_tracker",
    "export_xlsx",
    "import_tracker",
    "iter_errors",
    "read_table",
    "read_tracker",
    "tracker_records",
]
