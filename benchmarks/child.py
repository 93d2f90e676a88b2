"""One measurement in its own process, so peak RSS (VmHWM) belongs to it alone.

    python -m benchmarks.child TASK URL AS_OF [--commit] [--pack=auto|all|high|attention|none|skip]

Prints one JSON object on the last line of stdout. Times exclude interpreter start and
imports (the RSS after imports is reported separately); the CLI figure is timed from
outside by benchmarks.run, start-up included.

Every timing is given as wall time and as CPU time. CPU time is this process's user +
system time plus, on PostgreSQL, the CPU time of the server backend serving its
connection (read from /proc: the server runs on this machine). On a machine shared with
other work, wall time includes waiting for a core; CPU time is what the work costs.
"""

from __future__ import annotations

import json
import os
import random
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
TICK = os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: on Linux that starts from the
    parent's peak at fork, so a child of a big process would report the parent's size."""
    return _status_mb("VmHWM:")


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def current_rss_mb() -> float:
    return _status_mb("VmRSS:")


def _own_cpu() -> float:
    return time.process_time()  # CLOCK_PROCESS_CPUTIME_ID: fine-grained, unlike getrusage


def _backend_cpu(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def backend_pid(conn: Any) -> int | None:
    """The PostgreSQL backend serving a SQLAlchemy connection (None on SQLite)."""
    if conn.dialect.name != "postgresql":
        return None
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


class Clock:
    """Wall time, this process's CPU and the database backend's CPU, from start(). The
    backend's is counted in clock ticks (10 ms): meaningful for a cycle, not for one gate."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.start()

    def start(self) -> None:
        self.t0, self.c0, self.b0 = time.perf_counter(), _own_cpu(), _backend_cpu(self.pid)

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        own = _own_cpu() - self.c0
        server = _backend_cpu(self.pid) - self.b0
        return {"wall_s": round(wall, 6), "cpu_s": round(own + server, 6),
                "client_cpu_s": round(own, 6), "server_cpu_s": round(server, 6)}


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# ------------------------------------------------------------------ daily


def daily(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    from sqlmodel import Session

    from recovery.adapters import db
    from recovery.application import reviews as cycles

    engine = db.engine_for(url)
    rss0 = current_rss_mb()
    with Session(engine, expire_on_commit=False) as session:
        clock = Clock(backend_pid(session.connection()))
        result = cycles.run_daily(session, as_of=as_of)
        if "commit" in opts:
            session.commit()
        else:
            session.rollback()
        times = clock.read()
    return {**times, "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "committed": "commit" in opts,
            "open_actions": result.open_actions, "reviewed": result.reviewed,
            "already_reviewed": result.already_reviewed, "not_due": result.not_due,
            "ratings": result.ratings, "escalated": len(result.escalated),
            "de_escalated": len(result.de_escalated), "reopened": len(result.reopened),
            "closed_sustained": len(result.closed_sustained)}


def daily_floor(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    """Plain SQL reading what the daily cycle reads, aggregated in the database: the open
    actions (whole rows, plan JSON included), every review of them up to the date, and
    their evidence up to the date (every column the cycle loads)."""
    from recovery.adapters import db

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
        clock = Clock(backend_pid(conn))  # connected and begun outside the timing
        clock.start()
        row = conn.exec_driver_sql(sql).one()
        times = clock.read()
        conn.rollback()
    return {**times, "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "actions": row[0], "reviews": row[2], "evidence": row[4]}


def daily_check(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    """Correctness guard for the cycle's set-based reads and writes, over every open action
    of the generated provider: the review assessed from the evidence the cycle loads
    equals the one assessed from the action's whole evidence history (the repository's
    plain per-action query), and the columns the cycle inserts equal those
    the ORM row of `summaries.review_values` holds."""
    from sqlmodel import Session, col, select

    from models.lifecycle import OPEN as OPEN_STATUSES
    from models.review import assess_progress
    from recovery.adapters import db
    from recovery.adapters import repository as repo
    from recovery.adapters.tables import ActionRow, ReviewRow
    from recovery.application import reviews as cycles
    from recovery.application import summaries

    engine = db.engine_for(url)
    differ, rows_differ = [], []
    with Session(engine) as session:
        actions = list(session.exec(select(ActionRow).where(
            col(ActionRow.status).in_([s.value for s in OPEN_STATUSES]),
            ActionRow.baseline_on <= as_of)))
        ids = [a.id for a in actions if a.id is not None]
        loaded = cycles._review_evidence(session, ids, as_of)
        last = cycles._last_reviews(session, ids, as_of)
        for row in actions:
            assert row.id is not None
            previous = last.get(row.id)
            cadence = summaries.cadence_of(row, as_of,
                                          last_rating=previous.rating if previous else None)
            kwargs: dict[str, Any] = {
                "as_of": as_of, "cadence": cadence,
                "last_review": repo.to_review(previous) if previous else None,
                "previous_below_trajectory": bool(previous)
                and "below_trajectory" in previous.triggers,
                "reviews_start": row.recovery_started_on}
            full = [e for e in repo.evidence_of(session, row.id) if e.observed_on <= as_of]
            plan = repo.plan_of(row)
            assessment = assess_progress(plan, loaded.get(row.id, []), **kwargs)
            if assess_progress(plan, full, **kwargs) != assessment:
                differ.append(row.ref)
            bulk = summaries.review_values(row.id, assessment, cadence, "check")
            orm = ReviewRow(**bulk).model_dump(exclude={"id", "created_at"})
            if orm != bulk:
                rows_differ.append(row.ref)
        session.rollback()
    return {"checked": len(actions), "assessments_differ": differ[:20],
            "review_rows_differ": rows_differ[:20], "ok": not differ and not rows_differ}


# ------------------------------------------------------------------ weekly


def _stage(stages: dict[str, Any], name: str, clock: Clock, fn: Callable[[], Any]) -> Any:
    clock.start()
    out = fn()
    stages[name] = clock.read()
    return out


def weekly(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    """What the weekly-governance flow does besides publishing Prefect artifacts: the
    snapshot, the tracker rows, the markdown report and the weekly emails; then the
    governance pack (HTML) for the whole provider, from the same snapshot (`--pack=high`:
    with the charts the CLI draws, one per high-risk action; `none`: without charts;
    `skip`)."""
    from sqlmodel import Session

    from recovery.adapters import db
    from recovery.reporting import snapshot as governance
    from recovery.reporting import weekly

    engine = db.engine_for(url)
    rss0 = current_rss_mb()
    stages: dict[str, Any] = {}
    out: dict[str, Any] = {}
    with Session(engine, expire_on_commit=False) as session:
        clock = Clock(backend_pid(session.connection()))
        total = Clock(clock.pid)
        snapshot = _stage(stages, "snapshot", clock,
                          lambda: governance.build_snapshot(session, as_of=as_of))
        _stage(stages, "tracker_rows", clock, lambda: weekly.tracker_rows(snapshot))
        md = _stage(stages, "report_markdown", clock, lambda: weekly.report_markdown(snapshot))
        queued = _stage(stages, "weekly_emails", clock,
                        lambda: weekly.queue_weekly_emails(session, snapshot))
        stages["weekly_cycle"] = total.read()
        out.update(actions=len(snapshot.lines), high=len(snapshot.high),
                   weaknesses=len(snapshot.weaknesses), emails=queued,
                   report_markdown_kb=round(len(md) / 1024, 1))
        session.rollback()
    _stage(stages, "snapshot_json", Clock(), snapshot.model_dump_json)
    pack_mode = opts.get("pack", "auto")
    pack_error = None
    if pack_mode != "skip":
        try:
            from recovery.reporting import packs as reports

            with Session(engine, expire_on_commit=False) as session:
                clock = Clock(backend_pid(session.connection()))
                pack_total = Clock(clock.pid)
                # as the weekly flow does: the pack starts from the cycle's snapshot
                pack = _stage(stages, "pack_build", clock, lambda: reports.governance_pack(
                    session, as_of=as_of, charts_for=pack_mode, snapshot=snapshot))
                html = _stage(stages, "pack_render_html", clock,
                              lambda: reports.render_html(pack))
                stages["pack"] = pack_total.read()
                session.rollback()
            _stage(stages, "pack_json", Clock(), pack.model_dump_json)
            out["pack_html_mb"] = round(len(html) / 1024 / 1024, 2)
            out["pack_charts"] = pack_mode
            out["charts_drawn"] = sum(1 for a in pack.actions if a.chart_svg)
            out["charts_note"] = pack.meta.charts_note
        except Exception as exc:  # noqa: BLE001 - reported, the rest still counts
            pack_error = f"{type(exc).__name__}: {exc}"[:300]
    return {"stages": stages, "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "pack_error": pack_error, **out}


def weekly_floor(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    """The same data, read with plain SQL and serialised to JSON: the actions the snapshot
    lists, their reviews of the last 60 days, open escalations, decisions, assurance
    entries, governance minutes, people and locations."""
    from recovery.adapters import db

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
        clock = Clock(backend_pid(conn))
        clock.start()
        data = {}
        for name, sql in queries.items():
            result = conn.exec_driver_sql(sql)
            keys = list(result.keys())
            data[name] = [dict(zip(keys, r, strict=True)) for r in result.all()]
        read = clock.read()
        text = json.dumps(data, default=str)
        times = clock.read()
        conn.rollback()
    return {**times, "read_s": read["wall_s"], "json_mb": round(len(text) / 1024 / 1024, 2),
            "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "rows": {k: len(v) for k, v in data.items()}}


# ------------------------------------------------------------------ monthly


def monthly(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    """What the monthly-assurance flow does around its one wait, in one process: the month's
    request over the open high-risk actions (the code emailed to the nominated individual),
    the form (a model with an outcome and a note per action, and the JSON schema Prefect
    sends to its server), the nominated individual's answer validated against it, then the
    minutes recorded: an assurance entry, a governance-minutes evidence item and an audit
    entry per action. Rolled back unless `--commit`."""
    import re

    from sqlmodel import Session, select

    from flows.forms import assurance_form
    from models.assurance import OUTCOMES
    from recovery.adapters import db, mail
    from recovery.adapters.tables import OutboxRow
    from recovery.application import assurance

    engine = db.engine_for(url)
    rss0 = current_rss_mb()
    stages: dict[str, Any] = {}
    with Session(engine, expire_on_commit=False) as session:
        clock = Clock(backend_pid(session.connection()))
        total = Clock(clock.pid)
        wait = _stage(stages, "request", clock, lambda: assurance.open_request(
            session, as_of=as_of, flow_run_id=None))
        email = session.exec(select(OutboxRow).where(
            OutboxRow.dedupe_key == f"assurance:{wait.month}")).one()
        found = re.search(r"code:\s*(\d{6})", mail.outgoing(email)[1])  # as it is sent
        assert found, "the assurance email carries no code"
        outcomes = OUTCOMES
        answer: dict[str, Any] = {"reviewer_email": wait.reviewer_email, "code": found.group(1)}
        for i, ref in enumerate(wait.refs):
            name = assurance.field_name(ref)
            answer[f"{name}_outcome"] = outcomes[i % len(outcomes)]
            answer[f"{name}_note"] = f"Reviewed the {ref} evidence at the governance meeting."

        def form_and_schema() -> Any:
            form = assurance_form(wait.refs)
            form.model_json_schema()
            return form

        form = _stage(stages, "form", clock, form_and_schema)
        submitted = _stage(stages, "answer", clock,
                           lambda: form.model_validate(answer).model_dump())
        reasons = _stage(stages, "record", clock, lambda: assurance.apply(
            session, month=wait.month, answer=submitted))
        assert reasons == [], reasons[:3]
        if "commit" in opts:
            session.commit()
        else:
            session.rollback()
        times = total.read()
    return {**times, "stages": stages, "peak_rss_mb": peak_rss_mb(),
            "rss_after_import_mb": rss0, "actions": len(wait.refs), "month": wait.month,
            "committed": "commit" in opts}


def monthly_floor(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    """Plain SQL reading what the monthly cycle reads, aggregated in the database: the open
    high-risk actions (whole rows, plan JSON included), the staff directory, and the month's
    assurance request if any."""
    from recovery.adapters import db

    engine = db.engine_for(url)
    high = f"FROM recovery_action WHERE risk_level = 'high' AND status IN ({_in(OPEN)})"
    sql = f"""
        SELECT
          (SELECT count(*) {high}) AS actions,
          (SELECT sum(length(CAST(plan AS TEXT)) + length(ref) + length(title)
                      + length(status) + risk_score + location_id) {high}) AS action_bytes,
          (SELECT sum(length(email) + length(name) + length(role)) FROM person) AS people,
          (SELECT count(*) FROM assurance_request
            WHERE month = '{as_of.strftime("%Y-%m")}') AS requests
    """
    rss0 = current_rss_mb()
    with engine.connect() as conn:
        clock = Clock(backend_pid(conn))
        clock.start()
        row = conn.exec_driver_sql(sql).one()
        times = clock.read()
        conn.rollback()
    return {**times, "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "actions": row[0]}


# ------------------------------------------------------------------ gate


def _sample_refs(url: str, n: int = 200) -> list[str]:
    from recovery.adapters import db

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


def gate(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
    """evidence_gate.gate_verdict for 200 sampled open actions, each in its own session as the
    CLI and a closure request do; floor: the same rows read with plain SQL."""
    from sqlmodel import Session

    from recovery.adapters import db
    from recovery.application import evidence_gate

    engine = db.engine_for(url)
    refs = _sample_refs(url)
    with Session(engine) as session:  # warm: connection pool, compiled-query cache
        evidence_gate.gate_verdict(session, refs[0], as_of=as_of)
        session.rollback()
    walls, cpus, passed = [], [], 0
    for ref in refs:
        with Session(engine) as session:
            clock = Clock(backend_pid(session.connection()))
            clock.start()
            verdict = evidence_gate.gate_verdict(session, ref, as_of=as_of)
            session.rollback()
            times = clock.read()
        walls.append(times["wall_s"])
        cpus.append(times["cpu_s"])
        passed += verdict.passed
    floor_walls, floor_cpus = [], []
    with engine.connect() as conn:
        clock = Clock(backend_pid(conn))
        mark = "?" if engine.dialect.name == "sqlite" else "%s"
        for ref in refs:
            clock.start()
            aid, _plan = conn.exec_driver_sql(
                f"SELECT id, plan FROM recovery_action WHERE ref = {mark}", (ref,)).one()
            for sql in ("SELECT * FROM evidence WHERE action_id = {} ORDER BY observed_on, id",
                        "SELECT * FROM review WHERE action_id = {} ORDER BY as_of",
                        "SELECT * FROM escalation WHERE action_id = {} AND resolved_on IS NULL",
                        "SELECT * FROM raised_trigger WHERE action_id = {} "
                        "AND closed_on IS NULL"):
                conn.exec_driver_sql(sql.format(int(aid))).all()
            times = clock.read()
            floor_walls.append(times["wall_s"])
            floor_cpus.append(times["cpu_s"])
        conn.rollback()
    return {**_percentiles(walls), "cpu": _percentiles(cpus), "passed": passed,
            "note": "cpu per call: client process plus PostgreSQL backend in 10 ms ticks",
            "floor": _percentiles(floor_walls), "floor_cpu": _percentiles(floor_cpus),
            "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------ action list floor


def list_floor(url: str, as_of: date, opts: dict[str, str]) -> dict[str, Any]:
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
    text = json.dumps(out)
    conn.close()
    return {"actions": len(out), "json_bytes": len(text), "peak_rss_mb": peak_rss_mb()}


TASKS: dict[str, Callable[[str, date, dict[str, str]], dict[str, Any]]] = {
    "daily": daily, "daily_floor": daily_floor, "daily_check": daily_check, "weekly": weekly,
    "weekly_floor": weekly_floor, "monthly": monthly, "monthly_floor": monthly_floor,
    "gate": gate, "list_floor": list_floor,
}


def main() -> None:
    task, url, as_of = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3])
    opts = {}
    for arg in sys.argv[4:]:
        key, _, value = arg.lstrip("-").partition("=")
        opts[key] = value
    result = TASKS[task](url, as_of, opts)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
