"""Run the benchmark suite at one size against a fresh database, then drop it.

    python -m benchmarks.run small|large|huge [--db sqlite|postgres] [--repeat N] [--keep]
    make bench SIZE=large

Every figure is printed with the machine's description and, for costs of our own, as a
ratio to a floor measured in the same run on the same database. Results are also written
to benchmarks/results/<size>-<db>.json (the per-action scaling table reads them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine
from benchmarks.generate import AS_OF, PG_ADMIN_URL, SIZES, drop_database, fresh_database, generate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {  # issue 6: large on SQLite (2 cores); huge on PostgreSQL
    "daily_s": 5.0, "daily_ratio": 3.0, "daily_rss_mb": 400.0, "weekly_s": 10.0,
    "gate_p99_ms": 20.0, "signoff_p50_s": 2.0, "huge_daily_s": 60.0,
}


def _env(url: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "RECOVERY_DATABASE_URL": url, "RECOVERY_HOME": str(home),
        "RECOVERY_BUSINESS_DATE": AS_OF.isoformat(), "PYTHONPATH": str(ROOT),
        # nothing here talks to Prefect; never reach a developer's running server
        "RECOVERY_PREFECT_API_URL": "http://127.0.0.1:9/api",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    })
    return env


def child(task: str, url: str, env: dict[str, str], *, commit: bool = False,
          timeout: float = 3600) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.child", task, url, AS_OF.isoformat()]
    if commit:
        cmd.append("--commit")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{task} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = round(wall, 3)
    return out


def timed_command(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=3600, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    return wall, proc.stdout


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 1) if b > 0 else None


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def run_daily(url: str, env: dict[str, str], repeat: int) -> dict[str, Any]:
    """Floor and cycle alternately (the cycle rolled back, so every run reviews the same
    actions), then the cycle once more, committed, as the product runs it."""
    floors, cycles = [], []
    for _ in range(repeat):
        floors.append(child("daily_floor", url, env))
        cycles.append(child("daily", url, env))
    committed = child("daily", url, env, commit=True)
    cycles.append(committed)
    walls = [c["wall_s"] for c in cycles]
    floor_walls = [f["wall_s"] for f in floors]
    return {
        "wall_s": _median(walls), "wall_min_s": min(walls), "walls_s": walls,
        "committed_wall_s": committed["wall_s"],
        "peak_rss_mb": max(c["peak_rss_mb"] for c in cycles),
        "rss_after_import_mb": cycles[0]["rss_after_import_mb"],
        "floor_s": _median(floor_walls), "floor_min_s": min(floor_walls),
        "floor_walls_s": floor_walls, "floor_peak_rss_mb": max(f["peak_rss_mb"] for f in floors),
        "ratio": _ratio(statistics.median(walls), statistics.median(floor_walls)),
        "ratio_of_minimums": _ratio(min(walls), min(floor_walls)),
        "floor_rows": {k: floors[0][k] for k in ("actions", "reviews", "evidence")},
        "result": {k: committed[k] for k in (
            "open_actions", "reviewed", "already_reviewed", "not_due", "ratings", "escalated",
            "de_escalated", "reopened", "closed_sustained")},
        "per_reviewed_action_ms": round(statistics.median(walls) / max(1, committed["reviewed"])
                                        * 1000, 3),
    }


def run_weekly(url: str, env: dict[str, str], repeat: int) -> dict[str, Any]:
    floors = [child("weekly_floor", url, env) for _ in range(repeat)]
    runs = [child("weekly", url, env) for _ in range(max(1, min(repeat, 2)))]
    stages = {k: _median([r["stages"][k] for r in runs if k in r["stages"]])
              for k in runs[0]["stages"]}
    floor = _median([f["wall_s"] for f in floors])
    cycle = stages.get("weekly_cycle_s", 0.0)
    total = stages.get("total_s", 0.0)
    last = runs[-1]
    return {
        "stages": stages, "floor_s": floor, "floor_rows": floors[0]["rows"],
        "floor_json_mb": floors[0]["json_mb"],
        "cycle_ratio": _ratio(cycle, floor), "total_ratio": _ratio(total, floor),
        "render_vs_json": _ratio(stages.get("report_markdown_s", 0.0),
                                 stages.get("snapshot_json_s", 0.0)),
        "pack_render_vs_json": _ratio(stages.get("pack_render_html_s", 0.0),
                                      stages.get("pack_json_s", 0.0)),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "pack_error": last.get("pack_error"), "pack_html_mb": last.get("pack_html_mb"),
        **{k: last[k] for k in ("actions", "high", "weaknesses", "emails")},
    }


def run_action_list(url: str, env: dict[str, str], repeat: int) -> dict[str, Any]:
    cli = str(Path(sys.executable).parent / "recovery")
    walls, floors, starts = [], [], []
    count = 0
    for _ in range(repeat):
        wall, out = timed_command([cli, "action", "list", "--json"], env)
        walls.append(wall)
        count = len(json.loads(out))
        floors.append(child("list_floor", url, env)["process_wall_s"])
        starts.append(timed_command([sys.executable, "-c", "import recovery.cli"], env)[0])
    return {"actions": count, "wall_s": _median(walls), "walls_s": [round(w, 3) for w in walls],
            "floor_s": _median(floors), "ratio": _ratio(_median(walls), _median(floors)),
            "import_recovery_cli_s": _median(starts),
            "per_action_ms": round(_median(walls) / max(1, count) * 1000, 3)}


def run_signoff_latency(env: dict[str, str]) -> dict[str, Any] | None:
    """benchmarks/signoff_latency.py, written separately, if it is there: called, not
    rewritten. It serves its own deployment and reports p50/p95 over its sign-offs."""
    script = Path(__file__).resolve().parent / "signoff_latency.py"
    if not script.exists():
        return None
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.signoff_latency", "--json"],
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith(("RECOVERY_", "PREFECT_"))},
                          cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    wall = round(time.perf_counter() - t0, 1)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}",
                "wall_s": wall}
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    try:
        data: dict[str, Any] = json.loads(lines[-1]) if lines else {"raw": proc.stdout[-1500:]}
    except json.JSONDecodeError:
        data = {"raw": proc.stdout[-1500:]}
    data["wall_s"] = wall
    return data


def scaling_table(db: str) -> list[str]:
    rows = []
    for size in SIZES:
        path = RESULTS / f"{size}-{db}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        d = r["daily"]
        rows.append(f"  {size:<6} {r['generated']['rows']['recovery_action']:>7} actions "
                    f"{d['result']['reviewed']:>7} reviewed  daily {d['wall_s']:>7.2f} s  "
                    f"{d['per_reviewed_action_ms']:>6.2f} ms/action  floor "
                    f"{d['floor_s'] / max(1, d['floor_rows']['actions']) * 1000:>6.3f} "
                    f"ms/action  gate p50 {r['gate']['p50_ms']} ms")
    return rows


def report(res: dict[str, Any]) -> str:
    d, w, g, a = res["daily"], res["weekly"], res["gate"], res["action_list"]
    s = res["signoff"]
    lines = [
        f"== recovery-gates benchmarks: {res['size']} on {res['db']} ({res['started']}) ==",
        f"machine: {machine.one_line(res['machine'])}",
        f"load average at start/end: {res['loadavg_start']} / {res['loadavg_end']}",
        f"data: {json.dumps(res['generated']['rows'])}",
        f"generated in {res['generated']['seconds']['total']} s "
        f"(load {res['generated']['seconds']['load']} s); as of {res['as_of']}",
        "",
        f"daily review cycle   {d['wall_s']:.2f} s median (min {d['wall_min_s']:.2f}, runs "
        f"{d['walls_s']}) = {d['ratio']}x its SQL floor {d['floor_s']:.3f} s "
        f"(min/min {d['ratio_of_minimums']}x)",
        f"  peak RSS {d['peak_rss_mb']} MB (after imports {d['rss_after_import_mb']} MB; "
        f"floor process {d['floor_peak_rss_mb']} MB)",
        f"  reviewed {d['result']['reviewed']} of {d['result']['open_actions']} open "
        f"(not due {d['result']['not_due']}); ratings {d['result']['ratings']}; escalated "
        f"{d['result']['escalated']}, de-escalated {d['result']['de_escalated']}, reopened "
        f"{d['result']['reopened']}, closed sustained {d['result']['closed_sustained']}",
        f"  per reviewed action {d['per_reviewed_action_ms']} ms; floor read "
        f"{d['floor_rows']}",
        f"weekly governance    cycle {w['stages'].get('weekly_cycle_s')} s = "
        f"{w['cycle_ratio']}x its floor {w['floor_s']} s (SQL + JSON of the same data, "
        f"{w['floor_json_mb']} MB)",
        f"  stages {w['stages']}",
        f"  markdown render {w['render_vs_json']}x serialising the snapshot to JSON; pack "
        f"HTML {w.get('pack_html_mb')} MB, render {w['pack_render_vs_json']}x the pack's JSON",
        f"  weekly incl. pack {w['stages'].get('total_s')} s = {w['total_ratio']}x the floor; "
        f"peak RSS {w['peak_rss_mb']} MB" + (f"; pack error: {w['pack_error']}"
                                              if w.get("pack_error") else ""),
        f"gate evaluation      p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms (max {g['max_ms']}) "
        f"over {g['n']} actions; floor p50 {g['floor']['p50_ms']} ms, p99 "
        f"{g['floor']['p99_ms']} ms -> p50 {_ratio(g['p50_ms'], g['floor']['p50_ms'])}x",
        f"action list --json   {a['wall_s']} s for {a['actions']} actions (runs {a['walls_s']}) "
        f"= {a['ratio']}x its floor {a['floor_s']} s (python + SQL + json.dumps, start-up "
        f"included); `import recovery.cli` alone {a['import_recovery_cli_s']} s",
        "sign-off -> next stage " + ("not measured (benchmarks/signoff_latency.py absent)"
                                     if s is None else json.dumps(s)[:600]),
    ]
    scaling = scaling_table(res["db"])
    if scaling:
        lines += ["", f"per-action cost by size ({res['db']}):", *scaling]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("size", choices=list(SIZES))
    parser.add_argument("--db", choices=["sqlite", "postgres"], default=None,
                        help="default: sqlite, postgres for huge")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-signoff", action="store_true",
                        help="skip the sign-off latency benchmark")
    args = parser.parse_args(argv)
    db = args.db or ("postgres" if args.size == "huge" else "sqlite")
    size = SIZES[args.size]

    res: dict[str, Any] = {
        "size": size.name, "db": db, "as_of": AS_OF.isoformat(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(PG_ADMIN_URL), "loadavg_start": _loadavg(),
    }
    print(f"machine: {machine.one_line(res['machine'])}; load {res['loadavg_start']}",
          flush=True)
    url = fresh_database(db, size.name)
    home = Path(f"/tmp/recovery-bench/home-{size.name}-{os.getpid()}")
    env = _env(url, home)
    try:
        print(f"generating {size.name} into {url} ...", flush=True)
        res["generated"] = generate(url, size)
        print(f"  {res['generated']['seconds']} {res['generated']['rows']}", flush=True)
        print("daily review cycle ...", flush=True)
        res["daily"] = run_daily(url, env, args.repeat)
        print(f"  {res['daily']['walls_s']} s vs floor {res['daily']['floor_walls_s']}",
              flush=True)
        print("weekly governance ...", flush=True)
        res["weekly"] = run_weekly(url, env, args.repeat)
        print(f"  {res['weekly']['stages']}", flush=True)
        print("gate evaluation ...", flush=True)
        res["gate"] = child("gate", url, env)
        print("action list --json ...", flush=True)
        res["action_list"] = run_action_list(url, env, args.repeat)
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            drop_database(url)
    res["signoff"] = None if args.no_signoff else run_signoff_latency(env)
    res["loadavg_end"] = _loadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{size.name}-{db}.json").write_text(json.dumps(res, indent=2, default=str))
    print()
    print(report(res))


if __name__ == "__main__":
    main()
