"""The deployments, described for the people who use the Prefect UI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.schedules import Cron, Interval

from flows.cycles import daily_review, monthly_assurance, weekly_governance
from flows.lifecycle import high_risk_action
from flows.maintenance import reconcile_lost_runs
from flows.notify import recovery_notify
from flows.operations import (
    import_evidence,
    open_action,
    people_away,
    record_evidence,
    signoff_reassign,
)

LIFECYCLE = "high-risk-action"
NOTIFY = "recovery-notify"
TZ = "Europe/London"


def notify_deployment() -> Any:
    """Run by the automations of deployments/automations.py (`recovery automations
    apply`); never scheduled."""
    return recovery_notify.to_deployment(
        name=NOTIFY,
        description=(
            "Tells the right person when something waits too long or goes wrong: a sign-off "
            "waiting past its time (the nominated individual), an escalation (the location's "
            "registered manager), a failed review cycle (the provider lead). Started by the "
            "recovery automations; the email goes through the outbox, so it is sent once "
            "and kept until SMTP accepts it."
        ),
        tags=["recovery", "notify"],
    )


def all_deployments() -> list[Any]:
    """The deployments `recovery serve` serves: the lifecycle, the three cycles, the
    operations forms (open an action, record or import evidence, people away, sign-off
    reassignment) and the reconciliation of lost runs.

    Long because it is a declaration: each deployment's name, description, schedule and
    parameters written out where an operator reads them, one list."""
    return [
        high_risk_action.to_deployment(
            name=LIFECYCLE,
            description=(
                "One run per high-risk recovery action: risk rating, accountability, baseline "
                "and interim controls, review cadence, plan sign-off by the senior reviewer, "
                "recovery, the triangulation gate and closure sign-off. Runs wait (suspended) "
                "for people: press Resume on a waiting run to sign off."
            ),
            tags=["recovery", "lifecycle"],
        ),
        daily_review.to_deployment(
            name="daily-review",
            description=(
                "Every day at 07:00: review every open action that is due under its cadence "
                "(progress against target and trajectory, evidence freshness, triggers), rate "
                "it on track / at risk / off track / overdue, and escalate weak progress."
            ),
            schedules=[Cron("0 7 * * *", timezone=TZ)],
            tags=["recovery", "cycle"],
        ),
        weekly_governance.to_deployment(
            name="weekly-governance",
            description=(
                "Mondays at 08:00: the registered managers' weekly audit per location and the "
                "provider governance summary: the high-risk tracker, governance weaknesses, "
                "progress per action, emailed to managers and the nominated individual."
            ),
            schedules=[Cron("0 8 * * 1", timezone=TZ)],
            tags=["recovery", "cycle"],
        ),
        monthly_assurance.to_deployment(
            name="monthly-assurance",
            description=(
                "1st of the month at 09:00: the nominated individual records assurance, "
                "challenge or further action for every high-risk action (press Resume)."
            ),
            schedules=[Cron("0 9 1 * *", timezone=TZ)],
            tags=["recovery", "cycle"],
        ),
        open_action.to_deployment(
            name="open-action",
            description=(
                "Open a recovery action: fill in the plan (or start from a template), rate the "
                "five risk factors, name the accountable lead and a different senior reviewer. "
                "The action is validated exactly as on the command line, recorded, and its "
                "lifecycle run starts waiting for plan sign-off."
            ),
            tags=["recovery", "operations"],
        ),
        record_evidence.to_deployment(
            name="record-evidence",
            description=(
                "Record one evidence item against an action: its source (care records, audits, "
                "feedback, staff practice...), the measured percentage and sample size, the date "
                "observed, and where it lives as a kind of record and an entry or page number "
                "(no free text, so no person's details reach Prefect)."
            ),
            tags=["recovery", "operations"],
        ),
        import_evidence.to_deployment(
            name="import-evidence",
            description=(
                "Import a file of evidence items (an audit tool's export, an eMAR exception "
                "report, a rota sample, a survey summary: .xlsx or .csv, one row per item, "
                "docs/evidence-format.md) from the evidence inbox folder on the server's "
                "machine. Every row is checked as one item typed in; a file with any bad row "
                "adds nothing and the run fails listing each bad row and column. Items already "
                "held are not added again. The run's evidence-import table says what was "
                "added per action and source, without references."
            ),
            tags=["recovery", "operations"],
        ),
        people_away.to_deployment(
            name="people-away",
            description=(
                "Record an absence (first and last day away): nobody away is chosen as a "
                "reviewer, and a sign-off waiting on them may be reassigned to a stand-in. "
                "Recorded by the person themselves or a registered manager, nominated "
                "individual or provider lead."
            ),
            tags=["recovery", "operations"],
        ),
        signoff_reassign.to_deployment(
            name="signoff-reassign",
            description=(
                "Hand a waiting plan or closure sign-off to a stand-in (the reviewer is away, "
                "or it has waited longer than allowed): by the nominated individual or the "
                "provider lead, to a senior who meets the same rules and is not away. The "
                "old code stops working, the stand-in is emailed a new one, the run waits "
                "again, and the original reviewer and the accountable lead are told."
            ),
            tags=["recovery", "operations"],
        ),
        notify_deployment(),
        reconcile_lost_runs.to_deployment(
            name="reconcile-lost-runs",
            description=(
                "Every 5 minutes: finds lifecycle and review-cycle runs whose process was "
                "lost (a machine, `recovery serve` or a worker killed: Running with no "
                "heartbeat for 10 minutes), marks them Crashed and runs them again. Nothing "
                "is repeated: every stage checks the database for work already done."
            ),
            schedules=[Interval(timedelta(minutes=5))],
            tags=["recovery", "maintenance"],
        ),
    ]
