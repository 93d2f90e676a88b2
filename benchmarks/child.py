"""One measurement in its own process, so peak RSS (ru_maxrss) belongs to it alone.

    python -m benchmarks.child TASK URL AS_OF [--commit]

Prints one JSON object on the last line of stdout. Times exclude interpreter start and
imports (reported separately as `rss_after_import_mb`); the CLI figure is timed from
outside by benchmarks.run, start-up included.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

OPEN = ("in_recovery", "reopened", "closure_requested", "awaiting_closure_signoff",
        "routine_monitoring")
DECISIONS = ("awaiting_plan_signoff", "awaiting_closure_signoff", "plan_rejected")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_s() -> float:
    """CPU time of this process so far (user + system): steadier than wall time on a
    machine shared with other work; a SQLite query's CPU is in it, a PostgreSQL one's not."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# ------------------------------------------------------------------ daily


def daily(url: str, as_of: date, commit: bool) -> dict[str, Any]:
    from sqlmodel import Session

    from recovery import cycles, db

    engine = db.engine_for(url)
    rss0 = current_rss_mb()
    c0, t0 = cpu_s(), time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        result = cycles.run_daily(session, as_of=as_of)
        if commit:
            session.commit()
        else:
            session.rollback()
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": peak_rss_mb(),
            "rss_after_import_mb": rss0, "committed": commit,
            "open_actions": result.open_actions, "reviewed": result.reviewed,
            "already_reviewed": result.already_reviewed, "not_due": result.not_due,
            "ratings": result.ratings, "escalated": len(result.escalated),
            "de_escalated": len(result.de_escalated), "reopened": len(result.reopened),
            "closed_sustained": len(result.closed_sustained)}


def daily_floor(url: str, as_of: date, commit: bool) -> dict[str, Any]:
    """Plain SQL reading what the daily cycle reads, aggregated in the database: the open
    actions (whole rows, plan JSON included), every review of them before the date, and
    the evidence of them up to the date (every column the cycle loads)."""
    from recovery import db

    engine = db.engine_for(url)
    d = f"'{as_of.isoformat()}'"
    open_ids = (f"SELECT id FROM recovery_action WHERE status IN ({_in(OPEN)}) "
                f"AND baseline_on <= {d}")
    sql = f"""
        SELECT
          (SELECT count(*) FROM recovery_action
            WHERE status IN ({_in(OPEN)}) AND baseline_on <= {d}) AS actions,
          (SELECT sum(length(CAST(plan AS TEXT)) + length(CAST(risk_reasons AS TEXT))
                      + length(title) + length(ref) + risk_score)
             FROM recovery_action WHERE status IN ({_in(OPEN)}) AND baseline_on <= {d})
             AS action_bytes,
          (SELECT count(*) FROM review WHERE action_id IN ({open_ids}) AND as_of <= {d})
             AS reviews,
          (SELECT sum(coalesce(measured_value, 0) + length(CAST(triggers AS TEXT)))
             FROM review WHERE action_id IN ({open_ids}) AND as_of <= {d}) AS review_sum,
          (SELECT count(*) FROM evidence WHERE action_id IN ({open_ids})
              AND observed_on <= {d}) AS evidence,
          (SELECT sum(coalesce(value, 0) + coalesce(sample_size, 0) + length(source)
                      + length(pillar) + length(recorded_by) + length(reference))
             FROM evidence WHERE action_id IN ({open_ids}) AND observed_on <= {d})
             AS evidence_sum
    """
    rss0 = current_rss_mb()
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()  # connect and begin outside the timing
        c0 = cpu_s()
        row, wall = _timed(lambda: conn.exec_driver_sql(sql).one())
        cpu = cpu_s() - c0
        conn.rollback()
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": peak_rss_mb(),
            "rss_after_import_mb": rss0, "actions": row[0], "reviews": row[2],
            "evidence": row[4]}


def daily_check(url: str, as_of: date, commit: bool) -> dict[str, Any]:
    """Correctness guard for the cycle's evidence query: for every open action, the review
    assessed from the evidence the cycle loads equals the one assessed from the action's
    whole evidence history (read with the repository's plain per-action query)."""
    from sqlmodel import Session, col, select

    from models.lifecycle import OPEN as OPEN_STATUSES
    from models.review import assess_progress
    from models.tables import ActionRow
    from recovery import cycles, db, services
    from recovery import repository as repo

    engine = db.engine_for(url)
    with Session(engine) as session:
        actions = list(session.exec(select(ActionRow).where(
            col(ActionRow.status).in_([s.value for s in OPEN_STATUSES]),
            ActionRow.baseline_on <= as_of)))
        ids = [a.id for a in actions if a.id is not None]
        loaded = cycles._review_evidence(session, ids, as_of)
        last = cycles._last_reviews(session, ids, as_of)
        differ = []
        for row in actions:
            assert row.id is not None
            previous = last.get(row.id)
            cadence = services.cadence_of(row, as_of)
            kwargs: dict[str, Any] = {
                "as_of": as_of, "cadence": cadence,
                "last_review": repo.to_review(previous) if previous else None,
                "previous_below_trajectory": bool(previous)
                and "below_trajectory" in previous.triggers}
            full = [e for e in repo.evidence_of(session, row.id) if e.observed_on <= as_of]
            plan = repo.plan_of(row)
            if assess_progress(plan, full, **kwargs) != assess_progress(
                    plan, loaded.get(row.id, []), **kwargs):
                differ.append(row.ref)
        session.rollback()
    return {"checked": len(actions), "differ": differ[:20], "differ_count": len(differ)}


# ------------------------------------------------------------------ weekly


def weekly(url: str, as_of: date, commit: bool) -> dict[str, Any]:
    """What the weekly-governance flow does besides Prefect artifacts: the snapshot, the
    tracker rows, the markdown report, the weekly emails; then the governance pack (HTML)
    for the whole provider when recovery.reports is there."""
    from sqlmodel import Session

    from recovery import db, governance, weekly

    engine = db.engine_for(url)
    rss0 = current_rss_mb()
    stages: dict[str, float] = {}
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        snapshot, stages["snapshot_s"] = _timed(
            lambda: governance.build_snapshot(session, as_of=as_of))
        _, stages["tracker_rows_s"] = _timed(lambda: weekly.tracker_rows(snapshot))
        md, stages["report_markdown_s"] = _timed(lambda: weekly.report_markdown(snapshot))
        queued, stages["weekly_emails_s"] = _timed(
            lambda: weekly.queue_weekly_emails(session, snapshot))
        out.update(actions=len(snapshot.lines), high=len(snapshot.high),
                   weaknesses=len(snapshot.weaknesses), emails=queued,
                   report_markdown_kb=round(len(md) / 1024, 1))
        session.rollback()
    stages["weekly_cycle_s"] = round(time.perf_counter() - t0, 3)
    _, stages["snapshot_json_s"] = _timed(snapshot.model_dump_json)
    pack_error = None
    try:
        from recovery import reports
    except ImportError as exc:
        reports = None  # type: ignore[assignment]
        pack_error = f"recovery.reports not importable: {exc}"
    if reports is not None:
        try:
            with Session(engine, expire_on_commit=False) as session:
                t1 = time.perf_counter()
                pack, stages["pack_build_s"] = _timed(
                    lambda: reports.governance_pack(session, as_of=as_of))
                html, stages["pack_render_html_s"] = _timed(lambda: reports.render_html(pack))
                stages["pack_s"] = round(time.perf_counter() - t1, 3)
                _, stages["pack_json_s"] = _timed(pack.model_dump_json)
                out["pack_html_mb"] = round(len(html) / 1024 / 1024, 2)
                session.rollback()
        except Exception as exc:  # noqa: BLE001 - reported, the rest still counts
            pack_error = f"{type(exc).__name__}: {exc}"[:300]
    stages["total_s"] = round(time.perf_counter() - t0, 3)
    return {"stages": {k: round(v, 3) for k, v in stages.items()},
            "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "pack_error": pack_error, **out}


def weekly_floor(url: str, as_of: date, commit: bool) -> dict[str, Any]:
    """The same data, read with plain SQL and serialised to JSON: the actions the snapshot
    lists, their reviews of the last 60 days, open escalations, decisions, governance
    minutes, people and locations."""
    from recovery import db

    engine = db.engine_for(url)
    d = f"'{as_of.isoformat()}'"
    wanted = f"SELECT id FROM recovery_action WHERE status IN ({_in(OPEN + DECISIONS)})"
    queries = {
        "actions": f"SELECT * FROM recovery_action WHERE status IN ({_in(OPEN + DECISIONS)})",
        "reviews": f"SELECT * FROM review WHERE action_id IN ({wanted}) AND as_of <= {d} "
                   f"AND as_of > '{date.fromordinal(as_of.toordinal() - 60).isoformat()}'",
        "escalations": f"SELECT * FROM escalation WHERE action_id IN ({wanted}) "
                       "AND resolved_on IS NULL",
        "decisions": f"SELECT action_id, reviewer_email, decided_at FROM decision "
                     f"WHERE action_id IN ({wanted})",
        "assurance": f"SELECT action_id, recorded_on FROM assurance_entry "
                     f"WHERE action_id IN ({wanted})",
        "minutes": f"SELECT action_id, recorded_by, observed_on FROM evidence "
                   f"WHERE action_id IN ({wanted}) AND source = 'governance_minutes'",
        "people": "SELECT * FROM person",
        "locations": "SELECT * FROM location",
    }
    rss0 = current_rss_mb()
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()
        t0 = time.perf_counter()
        data = {}
        for name, sql in queries.items():
            result = conn.exec_driver_sql(sql)
            keys = list(result.keys())
            data[name] = [dict(zip(keys, r, strict=True)) for r in result.all()]
        read = time.perf_counter() - t0
        text = json.dumps(data, default=str)
        wall = time.perf_counter() - t0
        conn.rollback()
    return {"wall_s": round(wall, 3), "read_s": round(read, 3),
            "json_s": round(wall - read, 3), "json_mb": round(len(text) / 1024 / 1024, 2),
            "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "rows": {k: len(v) for k, v in data.items()}}


# ------------------------------------------------------------------ gate


def _sample_refs(url: str, n: int = 200) -> list[str]:
    from recovery import db

    with db.engine_for(url).connect() as conn:
        refs = [r[0] for r in conn.exec_driver_sql(
            f"SELECT ref FROM recovery_action WHERE status IN ({_in(OPEN)}) ORDER BY ref")]
        conn.rollback()
    return random.Random(6).sample(refs, min(n, len(refs)))


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(at(0.99) * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


def gate(url: str, as_of: date, commit: bool) -> dict[str, Any]:
    """services.gate_verdict for 200 sampled open actions, each in its own session as the
    CLI and the closure request do; floor: the same rows read with plain SQL."""
    from sqlmodel import Session

    from recovery import db, services

    engine = db.engine_for(url)
    refs = _sample_refs(url)
    with Session(engine) as session:  # warm: connection pool, templates, first query
        services.gate_verdict(session, refs[0], as_of=as_of)
        session.rollback()
    times, passed = [], 0
    for ref in refs:
        t0 = time.perf_counter()
        with Session(engine) as session:
            verdict = services.gate_verdict(session, ref, as_of=as_of)
            session.rollback()
        times.append(time.perf_counter() - t0)
        passed += verdict.passed
    floor = []
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()
        for ref in refs:
            t0 = time.perf_counter()
            aid, _plan = conn.exec_driver_sql(
                "SELECT id, plan FROM recovery_action WHERE ref = ?"
                if engine.dialect.name == "sqlite" else
                "SELECT id, plan FROM recovery_action WHERE ref = %s", (ref,)).one()
            for sql in ("SELECT * FROM evidence WHERE action_id = {} ORDER BY observed_on, id",
                        "SELECT * FROM review WHERE action_id = {} ORDER BY as_of",
                        "SELECT * FROM escalation WHERE action_id = {} AND resolved_on IS NULL",
                        "SELECT * FROM raised_trigger WHERE action_id = {} "
                        "AND closed_on IS NULL"):
                conn.exec_driver_sql(sql.format(int(aid))).all()
            floor.append(time.perf_counter() - t0)
        conn.rollback()
    return {**_percentiles(times), "passed": passed, "floor": _percentiles(floor),
            "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------ action list floor


def list_floor(url: str, as_of: date, commit: bool) -> dict[str, Any]:
    """What `recovery action list --json` prints, read with one plain SQL join and dumped
    as JSON; run as its own process like the CLI (start-up included by the caller)."""
    if url.startswith("sqlite"):
        import sqlite3

        conn: Any = sqlite3.connect(url.split("///", 1)[1])
    else:
        import psycopg

        conn = psycopg.connect(url)
    rows = conn.execute("""
        SELECT a.ref, a.title, l.name, a.risk_domain, a.status, a.risk_level, a.risk_score,
               a.risk_reasons, a.plan, lead.email, rev.email, a.escalated, a.flow_run_id
        FROM recovery_action a JOIN location l ON l.id = a.location_id
        JOIN person lead ON lead.id = a.accountable_lead_id
        JOIN person rev ON rev.id = a.senior_reviewer_id ORDER BY a.ref""").fetchall()
    out = []
    for r in rows:
        plan = json.loads(r[8]) if isinstance(r[8], str) else r[8]
        out.append({"ref": r[0], "title": r[1], "location": r[2], "risk_domain": r[3],
                    "status": r[4], "risk": {"level": r[5], "score": r[6],
                                             "reasons": json.loads(r[7])
                                             if isinstance(r[7], str) else r[7],
                                             "factors": plan["risk"]},
                    "accountable_lead": r[9], "senior_reviewer": r[10],
                    "baseline": plan["baseline"], "target": plan["target"],
                    "quality_statements": plan["quality_statements"],
                    "interim_controls": plan["interim_controls"], "escalated": bool(r[11]),
                    "flow_run_id": r[12]})
    text = json.dumps(out, indent=2)
    conn.close()
    return {"actions": len(out), "json_bytes": len(text), "peak_rss_mb": peak_rss_mb()}


TASKS: dict[str, Callable[[str, date, bool], dict[str, Any]]] = {
    "daily": daily, "daily_floor": daily_floor, "daily_check": daily_check, "weekly": weekly,
    "weekly_floor": weekly_floor, "gate": gate, "list_floor": list_floor,
}


def main() -> None:
    task, url, as_of = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3])
    result = TASKS[task](url, as_of, "--commit" in sys.argv[4:])
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
