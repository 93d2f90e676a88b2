"""`recovery import evidence` at large (issue 19): 50,000 rows.

    .venv/bin/python -m benchmarks.evidence_import [ROWS] [--db sqlite|postgres]

In a fresh database (the example staff directory, 20 actions at Rose House), imports a
CSV of ROWS valid items (six sources, nine days, 20 actions, three recorders) in this
process, and prints:

- the import's wall time, split into reading and checking (reads only) and the one write
  transaction (the items and their audit entries);
- its peak memory: the Python heap's peak under tracemalloc (a second, identical import
  into another fresh database, since tracemalloc slows allocation down) and the process's
  peak RSS;
- a re-import of the same file (every item already held: reads only, nothing written);
- the floor: a plain bulk INSERT of the same rows (values already built, no checks, no
  audit entries) into a third fresh database, in one transaction, and the import's ratio
  to it.

Measured on the 2-core development VM shared with other work: see the last lines of
benchmarks/RESULTS.md ("Evidence import").
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HEADER = ["Action", "Source", "Value", "Sample size", "Observed on", "Reference", "Recorded by"]
SOURCES = ("care_records", "audits", "feedback", "staff_practice", "medicines_records",
           "rota_evidence")
RECORDERS = ("rm@rose.example", "duty.manager@rose.example", "team.leader@rose.example")
ACTIONS = 20


def evidence_csv(refs: list[str], rows: int, today: date) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for n in range(rows):
        writer.writerow([refs[n % len(refs)], SOURCES[n % len(SOURCES)], 60 + n % 40,
                         10 + n % 11, (today - timedelta(days=n % 9)).strftime("%d/%m/%Y"),
                         f"Audit tool export 2026 entry {n}", RECORDERS[n % len(RECORDERS)]])
    return buffer.getvalue().encode()


@contextmanager
def fresh_database(kind: str, work: Path) -> Iterator[str]:
    """A migrated, empty database pointed at by RECOVERY_DATABASE_URL; dropped after."""
    from recovery.adapters import db
    from recovery.settings import get_settings

    if kind == "sqlite":
        url = f"sqlite:///{work / uuid.uuid4().hex}.db"
    else:
        import psycopg

        name = f"rg_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    os.environ["RECOVERY_DATABASE_URL"] = url
    get_settings.cache_clear()
    db.upgrade(url)
    try:
        yield url
    finally:
        db.engine_for(url).dispose()
        if kind != "sqlite":
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" '
                              f"WITH (FORCE)")


def seed(today: date) -> list[str]:
    from models.planfile import plan_from_mapping
    from recovery.adapters import db
    from recovery.application import action_plans
    from tests.integration.helpers import relative_plan, seed_directory

    seed_directory()
    with db.unit_of_work() as session:
        return [action_plans.open_action(session, plan_from_mapping(relative_plan(
            today, title=f"Same-day review of safeguarding concerns ({n + 1})")),
            actor="bench").ref for n in range(ACTIONS)]


def timed_import(data: bytes, **options: Any) -> tuple[Any, float, float]:
    """The import, its wall time and the wall time of its write transaction."""
    from recovery.application import evidence_import

    spent: list[float] = []
    original: Callable[..., Any] = evidence_import._write

    def write(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    evidence_import._write = write  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        result = evidence_import.import_evidence(data, name="evidence.csv",
                                                 by=RECORDERS[0], **options)
        return result, time.perf_counter() - started, sum(spent)
    finally:
        evidence_import._write = original  # type: ignore[assignment]


def plain_insert(data: bytes) -> float:
    """The floor: the same rows as plain values (parsed here, outside the timing), one
    multi-row INSERT in one transaction, no checks and no audit entries."""
    from sqlalchemy import insert
    from sqlmodel import select

    from models.evidence import SOURCE_PILLAR, EvidenceSource
    from recovery.adapters import db
    from recovery.adapters.tables import ActionRow, EvidenceRow, utcnow

    with db.reading() as session:
        ids = dict(session.exec(select(ActionRow.ref, ActionRow.id)).all())
    now = utcnow()
    values = []
    for ref, source, value, sample, observed, reference, by in list(
            csv.reader(io.StringIO(data.decode())))[1:]:
        day, month, year = (int(p) for p in observed.split("/"))
        values.append({"action_id": ids[ref], "source": source,
                       "pillar": SOURCE_PILLAR[EvidenceSource(source)].value,
                       "value": float(value), "sample_size": int(sample),
                       "observed_on": date(year, month, day), "recorded_by": by,
                       "reference": reference, "recorded_at": now})
    started = time.perf_counter()
    with db.unit_of_work() as session:
        session.connection().execute(insert(EvidenceRow.__table__), values)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="?", type=int, default=50_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evidence-import-"))
    os.environ.update(RECOVERY_HOME=str(work / "home"),
                      RECOVERY_PREFECT_API_URL="http://127.0.0.1:9/api")
    from recovery.settings import get_settings

    today = get_settings().today()
    with fresh_database(args.db, work):
        refs = seed(today)
        data = evidence_csv(refs, args.rows, today)
        result, total, write = timed_import(data)
        assert result.new == args.rows, result
        again, again_s, _ = timed_import(data)
        assert (again.new, again.already_held) == (0, args.rows)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with fresh_database(args.db, work):
        seed(today)
        tracemalloc.start()
        _, traced_s, _ = timed_import(data)
        peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
        tracemalloc.stop()
    with fresh_database(args.db, work):
        seed(today)
        floor = plain_insert(data)
    print(f"evidence import of {args.rows:,} rows ({len(data) / 1024 / 1024:.1f} MB CSV, "
          f"{ACTIONS} actions) on {args.db}:")
    print(f"  import {total:.2f} s: reading and checking {total - write:.2f} s, the write "
          f"transaction {write:.2f} s ({args.rows:,} items and {args.rows + 1:,} audit "
          f"entries)")
    print(f"  peak memory: Python heap {peak:.0f} MB (tracemalloc; that run took "
          f"{traced_s:.2f} s), process peak RSS {rss_mb:.0f} MB")
    print(f"  re-import of the same file (all already held, nothing written): {again_s:.2f} s")
    print(f"  plain bulk INSERT of the same rows (no checks, no audit): {floor:.2f} s; "
          f"import / plain = {total / floor:.1f}x, write transaction / plain = "
          f"{write / floor:.1f}x")


if __name__ == "__main__":
    main()
