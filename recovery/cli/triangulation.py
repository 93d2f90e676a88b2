"""`recovery evidence add` and `recovery gate`: evidence, and the triangulation gate that
weighs it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from models.dates import DATE_HELP, parse_day
from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.application import evidence_gate
from recovery.cli.common import (
    JsonOpt,
    as_of_day,
    emit,
    out,
    run,
)
from recovery.settings import get_settings

evidence_app = typer.Typer(no_args_is_help=True, help="Record evidence against an action.")


@evidence_app.command("add")
def evidence_add(
    ref: str,
    source: Annotated[str, typer.Option(help="care_records, audits, feedback, staff_practice, "
                                             "incident_trends, safeguarding_logs, "
                                             "medicines_records, rota_evidence, "
                                             "governance_minutes")],
    observed_on: Annotated[str, typer.Option(help=f"Date observed: {DATE_HELP}.")],
    reference: Annotated[str, typer.Option(help="Where the record lives (no personal details).")],
    by: Annotated[str, typer.Option(help="Who recorded it (email).")],
    value: Annotated[float | None, typer.Option(help="Measured percentage 0-100.")] = None,
    sample: Annotated[int | None, typer.Option(help="Sample size behind the value.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one evidence item."""
    settings = get_settings()

    def work() -> dict[str, Any]:
        observed = parse_day(observed_on, "observed_on")
        with db.unit_of_work() as session:
            row = evidence_gate.add_evidence(
                session, ref, source=source, value=value, sample_size=sample,
                observed_on=observed, reference=reference, by=by, today=settings.today(),
            )
            return {"id": row.id, "ref": repo.normalise_ref(ref), "source": row.source,
                    "pillar": row.pillar, "value": row.value, "observed_on": row.observed_on}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(
        f"evidence {result['id']} recorded ({result['pillar']})"))


def gate(
    ref: str,
    as_of: Annotated[str | None, typer.Option("--as-of", help=f"Evaluate as of: {DATE_HELP}.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the triangulation gate now (exit 3 when closure would be refused)."""
    settings = get_settings()

    def work() -> Any:
        day = as_of_day(as_of)
        with db.unit_of_work() as session:
            return evidence_gate.gate_verdict(session, ref, as_of=day,
                                         freshness_days=settings.evidence_freshness_days)

    verdict = run(work, as_json)
    data = {"ref": repo.normalise_ref(ref), "passed": verdict.passed,
            "reasons": list(verdict.reasons), "as_of": verdict.as_of.isoformat()}

    def human() -> None:
        if verdict.passed:
            out.print(f"[green]gate passed[/green] for {data['ref']}")
        else:
            out.print(f"[red]closure refused[/red] for {data['ref']}:")
            for reason in verdict.reasons:
                out.print(f"  - {reason}", highlight=False, markup=False)

    emit(data, as_json, human)
    if not verdict.passed:
        raise typer.Exit(3)
