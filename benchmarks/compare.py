"""Before/after for a hot-path change: recovery/application/reviews.py and
recovery/reporting/snapshot.py as they
are at a git revision vs the working copy, on one generated provider.

    python -m benchmarks.compare REV [--size small|large] [--db sqlite|postgres] [--repeat N]

1. Equivalence. Two copies of a fresh database; the daily cycle of REV runs on one, the
   working copy's on the other, for several consecutive dates (each committed); then the
   reviews, escalations, action states, outbox and audit entries (timestamps and hashes
   aside) must be identical, and the governance snapshots of both modules equal (whole
   provider and one location) on the final data.
2. Cost. Alternating processes on a third copy (the daily cycle rolled back): CPU, wall
   and peak RSS of REV vs the working copy, for the daily cycle and for the weekly cycle's
   snapshot + markdown report + weekly emails.

Only those two files are taken from REV; everything else is the working copy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks.child import peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
DATES = ("2027-02-01", "2027-02-02", "2027-02-08", "2027-03-01")
DUMP = {
    "review": "SELECT action_id, as_of, cadence, measured_value, trajectory_value, target_met, "
              "rating, days_to_deadline, triggers, reasons, pillars, reviewed_by FROM review "
              "ORDER BY action_id, as_of",
    "escalation": "SELECT id, action_id, opened_on, reasons, control_change_id, resolved_on "
                  "FROM escalation ORDER BY id",
    "action": "SELECT id, ref, status, escalated, monitoring_since, flow_run_id "
              "FROM recovery_action ORDER BY id",
    "outbox": "SELECT dedupe_key, action_ref, recipients, subject, text_body, html_body "
              "FROM outbox ORDER BY id",
    "audit": "SELECT seq, actor, action_ref, event, details, dedupe_key FROM audit_log "
             "ORDER BY seq",
}


def _module(which: str, name: str, rev_dir: str) -> ModuleType:
    if which == "new":
        return importlib.import_module(f"recovery.{name}")
    spec = importlib.util.spec_from_file_location(f"recovery.{name}_rev",
                                                  Path(rev_dir) / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------ in a child process


def _child(argv: list[str]) -> None:
    task, which, url, rev_dir, *days = argv
    from sqlmodel import Session

    from recovery.adapters import db
    from recovery.reporting import weekly

    engine = db.engine_for(url)
    out: dict[str, Any] = {}
    if task == "cycles":  # the equivalence run: commit every date
        cycles = _module(which, "cycles", rev_dir)
        for day in days:
            with Session(engine, expire_on_commit=False) as session:
                cycles.run_daily(session, as_of=date.fromisoformat(day))
                session.commit()
    elif task == "dump":
        with engine.connect() as conn:
            out = {k: [[str(v) for v in row] for row in conn.exec_driver_sql(sql)]
                   for k, sql in DUMP.items()}
            conn.rollback()
        new, old = _module("new", "governance", rev_dir), _module("old", "governance", rev_dir)
        with Session(engine) as session:
            day = date.fromisoformat(days[-1])
            a = new.build_snapshot(session, as_of=day)
            b = old.build_snapshot(session, as_of=day)
            where = a.lines[0].location if a.lines else None
            out["snapshot"] = [a.model_dump(mode="json") == b.model_dump(mode="json")]
            out["snapshot_location"] = [
                new.build_snapshot(session, as_of=day, location=where).model_dump(mode="json")
                == old.build_snapshot(session, as_of=day, location=where).model_dump(mode="json")]
            names = {x.location for x in a.lines}
            out["for_location"] = [all(
                [x.model_dump() for x in a.for_location(n)]
                == [x.model_dump() for x in b.for_location(n)] for n in names)]
            session.rollback()
    else:  # "daily" or "weekly": one timed run, rolled back
        day = date.fromisoformat(days[0])
        with Session(engine, expire_on_commit=False) as session:
            session.connection()
            t0, c0 = time.perf_counter(), time.process_time()
            if task == "daily":
                out["n"] = _module(which, "cycles", rev_dir).run_daily(
                    session, as_of=day).reviewed
            else:
                snapshot = _module(which, "governance", rev_dir).build_snapshot(
                    session, as_of=day)
                weekly.report_markdown(snapshot)
                weekly.queue_weekly_emails(session, snapshot)
                out["n"] = len(snapshot.lines)
            out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)
            session.rollback()
        out["rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def _run(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--child", *args],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------ orchestration


def _copies(url: str, n: int) -> list[str]:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        out = []
        for i in range(n):
            copy = path.with_name(f"{path.stem}-copy{i}.db")
            shutil.copy(path, copy)
            out.append(f"sqlite:///{copy}")
        return out
    import psycopg

    from benchmarks.generate import PG_ADMIN_URL

    name = url.rsplit("/", 1)[1]
    out = []
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for i in range(n):
            conn.execute(f'CREATE DATABASE "{name}_c{i}" TEMPLATE "{name}"')
            out.append(f"{url}_c{i}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("rev", help="git revision to compare the working copy against")
    parser.add_argument("--size", choices=["small", "large"], default="small")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from benchmarks.generate import SIZES, drop_database, fresh_database, generate
    from recovery.adapters import db

    rev_dir = tempfile.mkdtemp(prefix="bench-rev-")
    for name in ("cycles", "governance"):
        text = subprocess.run(["git", "show", f"{args.rev}:recovery/{name}.py"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
        (Path(rev_dir) / f"{name}.py").write_text(text)
    url = fresh_database(args.db, args.size)
    copies: list[str] = []
    try:
        generate(url, SIZES[args.size])
        db.engine_for(url).dispose()
        copies = _copies(url, 3)
        rev_url, new_url, timing_url = copies
        _run("cycles", "old", rev_url, rev_dir, *DATES)
        _run("cycles", "new", new_url, rev_dir, *DATES)
        a, b = _run("dump", "old", rev_url, rev_dir, *DATES), _run(
            "dump", "new", new_url, rev_dir, *DATES)
        same = True
        for key in b:
            equal = a[key] == b[key] if key in DUMP else all(b[key])
            same &= equal
            print(f"{'same' if equal else 'DIFFERENT':9} {key} ({len(b[key])} rows)")
        print(f"equivalence over {', '.join(DATES)}: {'IDENTICAL' if same else 'DIFFERENT'}")
        for task in ("daily", "weekly"):
            runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
            for _ in range(args.repeat):
                for which in ("old", "new"):
                    runs[which].append(_run(task, which, timing_url, rev_dir, DATES[0]))
            for which, label in (("old", args.rev), ("new", "working copy")):
                r = runs[which]
                print(f"{task:6} {label:14} cpu {statistics.median(x['cpu_s'] for x in r):6.2f} s"
                      f"  wall {statistics.median(x['wall_s'] for x in r):6.2f} s  peak RSS "
                      f"{max(x['rss_mb'] for x in r):6.1f} MB  ({r[0]['n']} actions)")
        return 0 if same else 1
    finally:
        for u in [*copies, url]:
            drop_database(u)
        shutil.rmtree(rev_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
