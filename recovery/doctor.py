"""`recovery doctor`: what is wrong, one line per check."""

from __future__ import annotations

import socket
from collections.abc import Callable

from pydantic import BaseModel

from recovery.settings import get_settings

EXPECTED_DEPLOYMENTS = (
    "high-risk-action/high-risk-action",
    "daily-review/daily-review",
    "weekly-governance/weekly-governance",
    "monthly-assurance/monthly-assurance",
    "open-action/open-action",
    "record-evidence/record-evidence",
)


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def check_database() -> str:
    from sqlalchemy import text

    from recovery import db

    with db.unit_of_work() as session:
        version = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        count = session.execute(text("SELECT count(*) FROM recovery_action")).scalar()
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    if version != head:
        raise RuntimeError(f"schema at {version}, code expects {head}: run `recovery init`")
    return f"{get_settings().db_url.split('@')[-1]} at {version}, {count} actions"


def check_prefect() -> str:
    from recovery import prefect_api

    prefect_api.check_server()
    return f"{prefect_api.api_url()} healthy"


def check_deployments() -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from recovery import prefect_api

    prefect_api.check_server()
    names = [n.split("/")[1] for n in EXPECTED_DEPLOYMENTS]
    with get_client(sync_client=True) as client:
        found = client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)))
        by_name = {d.name: d for d in found}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise RuntimeError("not served: " + ", ".join(missing) + " (run `recovery serve`)")
        stale = [d.name for d in found if getattr(d, "status", None) is not None
                 and str(getattr(d.status, "value", d.status)).upper() != "READY"]
        if stale:
            raise RuntimeError("not ready (is `recovery serve` running?): " + ", ".join(stale))
    return f"{len(names)} deployments served and ready"


def check_smtp() -> str:
    settings = get_settings()
    with socket.create_connection((settings.smtp_host, settings.smtp_port), timeout=3) as sock:
        banner = sock.recv(200).decode("ascii", "replace").strip()
    if not banner.startswith("220"):
        raise RuntimeError(f"unexpected greeting {banner[:60]!r}")
    from recovery import db, mail

    with db.unit_of_work() as session:
        queued = len(mail.pending(session))
    return f"{settings.smtp_host}:{settings.smtp_port} answers; {queued} emails queued"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "prefect server": check_prefect,
    "deployments": check_deployments,
    "smtp": check_smtp,
}


def run_checks() -> list[Check]:
    results = []
    for name, check in CHECKS.items():
        try:
            results.append(Check(name=name, ok=True, detail=check()))
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            results.append(Check(name=name, ok=False, detail=detail[:300]))
    return results
