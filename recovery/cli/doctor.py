"""`recovery doctor`: what is wrong, one line per check: the app database, the Prefect
server, the served deployments, SMTP (and the Secret block holding its password, when one
is named), email stuck or undeliverable in the outbox, and the automations."""

from __future__ import annotations

import socket
from collections.abc import Callable

from pydantic import BaseModel

from recovery.settings import demo_port, get_settings, url_port

EXPECTED_DEPLOYMENTS = (
    "high-risk-action/high-risk-action",
    "daily-review/daily-review",
    "weekly-governance/weekly-governance",
    "monthly-assurance/monthly-assurance",
    "open-action/open-action",
    "record-evidence/record-evidence",
    "import-evidence/import-evidence",
    "people-away/people-away",
    "signoff-reassign/signoff-reassign",
    "recovery-notify/recovery-notify",
    "reconcile-lost-runs/reconcile-lost-runs",
)


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def check_database() -> str:
    from sqlalchemy import inspect, text

    from recovery.adapters import db

    where = get_settings().db_url.split("@")[-1]
    tables = set(inspect(db.get_engine()).get_table_names())
    if "alembic_version" not in tables or "recovery_action" not in tables:
        raise RuntimeError(f"{where} is not initialised: run `recovery init`")
    with db.unit_of_work() as session:
        version = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        count = session.execute(text("SELECT count(*) FROM recovery_action")).scalar()
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    if version != head:
        raise RuntimeError(f"schema at {version}, code expects {head}: run `recovery init`")
    return f"{where} at {version}, {count} actions"


def check_prefect() -> str:
    from recovery.adapters import prefect_api
    from recovery.adapters.orchestration import PrefectUnavailable

    try:
        prefect_api.check_server()
    except PrefectUnavailable as exc:
        raise RuntimeError(f"{exc}; {where_prefect_was_looked_for()}") from None
    return f"{prefect_api.api_url()} healthy"


def where_prefect_was_looked_for() -> str:
    """The port tried, where it came from, and where a running demo would have said."""
    from recovery.adapters import prefect_api

    settings = get_settings()
    port = url_port(prefect_api.api_url())
    demo = demo_port(settings.home)
    found = f"it names port {demo}" if demo is not None else "none there"
    return (f"tried port {port} (from {prefect_api.api_source()}); looked for a running "
            f"demo in {settings.demo_file.resolve()}: {found}")


def check_deployments() -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from recovery.adapters import prefect_api

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
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with socket.create_connection((settings.smtp_host, settings.smtp_port),
                                      timeout=3) as sock:
            banner = sock.recv(200).decode("ascii", "replace").strip()
    except OSError as exc:
        raise ConnectionError(f"{where} does not answer ({exc.strerror or exc}); email stays "
                              "queued until it does") from None
    if not banner.startswith("220"):
        raise RuntimeError(f"{where}: unexpected greeting {banner[:60]!r}")
    password = ""
    if settings.smtp_secret_block:
        from recovery.adapters import prefect_api
        from recovery.adapters.smtp_secret import load_smtp_secret

        prefect_api.api_url()
        load_smtp_secret(settings.smtp_secret_block)
        password = f"; password from Secret block '{settings.smtp_secret_block}'"
    from recovery.adapters import db, mail

    try:
        with db.unit_of_work() as session:
            queued = f"{len(mail.pending(session))} emails queued"
    except Exception:  # noqa: BLE001 - the database line says what is wrong with it
        queued = "outbox not readable"
    return f"{where} answers{password}; {queued}"


def check_outbox() -> str:
    from recovery.adapters import db, mail
    from recovery.adapters.tables import utcnow

    try:
        with db.unit_of_work() as session:
            ok, detail = mail.health(session, get_settings(), utcnow())
    except Exception:  # noqa: BLE001 - the database line says what is wrong with it
        raise RuntimeError("not readable (see the database line)") from None
    if not ok:
        raise RuntimeError(detail)
    return detail


def check_automations() -> str:
    from deployments.sync import check_automations as check

    return check()


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "prefect server": check_prefect,
    "deployments": check_deployments,
    "smtp": check_smtp,
    "outbox": check_outbox,
    "automations": check_automations,
}


def run_checks() -> list[Check]:
    results = []
    for name, check in CHECKS.items():
        try:
            results.append(Check(name=name, ok=True, detail=check()))
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            results.append(Check(name=name, ok=False, detail=detail[:600]))
    return results
