"""`recovery audit verify|anchor|show`: the hash-chained audit trail and its anchors."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from recovery.adapters import audit_log, db
from recovery.adapters import repository as repo
from recovery.cli.common import (
    JsonOpt,
    emit,
    out,
    run,
)

audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[list[str] | None, typer.Option(
        "--anchor", help="An anchor SEQ:HASH kept elsewhere (e.g. from a weekly email); "
                         "repeatable.")] = None,
    prefect: Annotated[bool, typer.Option(
        help="Also read the audit-anchor artifacts from the Prefect server.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain and hold it against every anchor kept outside the database
    (the anchor file, Prefect's audit-anchor artifacts, --anchor); exit 3 if any entry was
    altered, or entries were deleted."""
    from recovery.adapters import anchors as anchoring
    from recovery.adapters import prefect_api

    sources: list[str] = []

    def work() -> Any:
        known = [anchoring.parse(a) for a in anchor or []]
        if known:
            sources.append(f"{len(known)} given")
        from_file = anchoring.read_file()
        known += from_file
        sources.append(f"{len(from_file)} in {anchoring.anchor_file()}")
        if prefect:
            try:
                prefect_api.check_server()
                from_prefect = anchoring.read_artifacts()
                known += from_prefect
                sources.append(f"{len(from_prefect)} Prefect artifacts")
            except ConnectionError as exc:
                sources.append(f"{exc}: its anchors not read")
        with db.unit_of_work() as session:
            return audit_log.verify(session, known)

    result = run(work, as_json)
    emit({**result.model_dump(), "anchor_sources": sources}, as_json, lambda: out.print(
        (f"audit chain verified: {result.entries} entries, {result.anchors_checked} "
         f"anchors held ({'; '.join(sources)})") if result.ok
        else f"[red]audit chain broken[/red]: {result.reason}"))
    if not result.ok:
        raise typer.Exit(3)


@audit_app.command("anchor")
def audit_anchor(as_json: JsonOpt = False) -> None:
    """Copy the chain's head (entry number and hash) to the anchor file and, when the
    Prefect server answers, to an audit-anchor artifact. Review cycles do this on every
    run; this is for an anchor now (before a migration, at a governance meeting)."""
    from recovery.adapters import anchors as anchoring
    from recovery.adapters import prefect_api

    where: list[str] = []

    def work() -> Any:
        with db.unit_of_work() as session:
            head = anchoring.head(session)
        if head is None:
            return None
        anchoring.record(head)
        where.append(str(anchoring.anchor_file()))
        try:
            prefect_api.check_server()
            anchoring.publish_artifact(head)
            where.append("Prefect artifact audit-anchor")
        except ConnectionError as exc:
            where.append(f"not in Prefect ({exc})")
        return head

    head = run(work, as_json)
    data = None if head is None else {"seq": head.seq, "hash": head.hash, "where": where}
    emit(data, as_json, lambda: out.print(
        "the audit chain is empty: nothing to anchor" if head is None
        else f"audit anchor {head.seq}:{head.hash} ({'; '.join(where)})"))


@audit_app.command("show")
def audit_show(
    ref: Annotated[str | None, typer.Argument(help="Only this action.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The decision log."""

    def work() -> Any:
        with db.unit_of_work() as session:
            return audit_log.entries(session, repo.normalise_ref(ref) if ref else None)

    entries = run(work, as_json)

    def human() -> None:
        table = Table("seq", "at", "actor", "action", "event", "details")
        for e in entries:
            table.add_row(str(e.seq), e.at.strftime("%d/%m/%Y %H:%M"), escape(e.actor),
                          e.action_ref or "", e.event, escape(json.dumps(e.details)[:80]))
        out.print(table)

    emit([e.model_dump(mode="json") for e in entries], as_json, human)
