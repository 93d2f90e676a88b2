"""How long `recovery import tracker` holds other writers up (issue 15, part 2).

    .venv/bin/python -m benchmarks.tracker_import [ROWS]      (default 4000, SQLite)

In a fresh SQLite database (the 20-location provider's staff directory of
tests/reports/scenario.py), the real `recovery` executable imports a CSV tracker of ROWS
valid rows (--no-flow) while a thread of this process adds a person through the services
every 50 ms (busy timeout raised here so that a long lock shows as a long wait, not a
refusal). Prints the import's total time and the longest any write waited; then how long
`recovery import tracker --dry-run` takes to refuse a 5 KB workbook with one blank cell at
XFD1048576.

Measured on the 2-core development VM shared with other work, 4,000 rows:
before (parse and checks inside BEGIN IMMEDIATE, one savepoint and ORM row per action):
total 70.3 s, longest write wait 65.3 s; the crafted workbook ran past any timeout
(more than 300 s in the issue). After: total 14.5 s, longest write wait 1.9 s (24 s and
3.5 s at a load average of 7); the crafted workbook refused in 0.1 s in-process (3-5 s for
the whole CLI process, most of it the interpreter starting on the loaded machine).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = ["Title", "Location", "Risk Domain", "Quality Statements", "Potential Harm",
          "People Affected", "Likelihood of Recurrence", "Regulatory Impact",
          "Control Strength", "Accountable Lead", "Senior Reviewer", "Baseline Issue",
          "Baseline Value", "Baseline Date", "Target Measure", "Direction", "Target Value",
          "Deadline", "Interim Controls", "Steps"]


def tracker_csv(rows: int) -> bytes:
    from recovery.settings import get_settings
    from tests.reports import scenario

    today = get_settings().today()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for n in range(rows):
        plan = scenario.provider_plan(n % 20, n // 20)
        risk = plan["risk"]
        writer.writerow([
            plan["title"], plan["location"], plan["risk_domain"], plan["quality_statements"][0],
            risk["potential_harm"], risk["people_affected"], risk["likelihood_of_recurrence"],
            risk["regulatory_impact"], risk["control_strength"], plan["accountable_lead"],
            plan["senior_reviewer"], plan["baseline"]["issue"], plan["baseline"]["value"],
            (today - timedelta(days=10)).strftime("%d/%m/%Y"), plan["target"]["measure"],
            "at least", 95, (today + timedelta(days=60)).strftime("%d/%m/%Y"),
            plan["interim_controls"][0],
            "deputy manager: Audit and correct the records -> Recovery tracker"])
    return buffer.getvalue().encode()


def crafted_xlsx() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(HEADER)
    book.active.append(["Night checks", "Ashby Lodge"])
    book.active["XFD1048576"] = ""
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    work = Path(tempfile.mkdtemp(prefix="tracker-import-"))
    url = f"sqlite:///{work}/recovery.db"
    os.environ.update(RECOVERY_DATABASE_URL=url, RECOVERY_HOME=str(work / "home"),
                      RECOVERY_DB_BUSY_TIMEOUT="600")
    from models.planfile import PeopleFile
    from recovery.adapters import db
    from recovery.application import registry
    from tests.reports import scenario

    db.upgrade(url)
    scenario.directory(scenario.provider_people())
    path = work / "tracker.csv"
    path.write_bytes(tracker_csv(rows))
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.perf_counter()
            with db.unit_of_work() as session:
                registry.import_people(session, PeopleFile.model_validate({
                    "provider": "Northfield Care Partnership", "people": [{
                        "name": f"Writer {n}", "email": f"writer{n}@l01.example",
                        "role": "care_worker", "location": "Ashby Lodge"}]}))
            waits.append(time.perf_counter() - started)
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    recovery = str(ROOT / ".venv" / "bin" / "recovery")
    env = dict(os.environ, RECOVERY_DB_BUSY_TIMEOUT="10")
    started = time.perf_counter()
    result = subprocess.run([recovery, "import", "tracker", str(path), "--no-flow", "--json"],
                            capture_output=True, text=True, env=env, check=False)
    total = time.perf_counter() - started
    stop.set()
    thread.join()
    print(f"import of {rows} rows: exit {result.returncode}, total {total:.2f} s, "
          f"longest write wait {max(waits):.2f} s over {len(waits)} writes")

    crafted = work / "crafted.xlsx"
    crafted.write_bytes(crafted_xlsx())
    started = time.perf_counter()
    result = subprocess.run([recovery, "import", "tracker", str(crafted), "--dry-run"],
                            capture_output=True, text=True, env=env, check=False, timeout=600)
    print(f"crafted workbook ({crafted.stat().st_size} bytes): exit {result.returncode} in "
          f"{time.perf_counter() - started:.2f} s (CLI process): {result.stderr.strip()}")


if __name__ == "__main__":
    main()
