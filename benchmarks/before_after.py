"""Before/after for a change anywhere in the tree: the whole tree at a git revision vs the
working copy, in alternating processes on one generated provider (round 8: the start-up
tricks removed).

    python -m benchmarks.before_after REV [--size large] [--pairs 5] [--floor-runs 10]

1. The daily cycle (`benchmarks.child daily`, rolled back, so every run reviews the same
   actions) of REV and of the working copy, with the SQL floor (`daily_floor`) between
   them: REV, floor, working copy, `--pairs` times. CPU of each process's own work.
2. The sign-off floor: a new process importing Prefect, its flow engine and the lifecycle
   flow, then exiting (`benchmarks.signoff_latency.FLOOR_IMPORTS`), wall time from outside,
   REV's tree and the working copy alternately, `--floor-runs` times each. A REV that
   relaxed the collector at a flow run's start-up (`recovery/batch.py:start_up`, before
   round 8) gets that start-up first, as its flow-run processes did.

REV's tree is exported with `git archive` to a temporary folder, compiled to bytecode as
`make setup` compiles the working copy, and run with this environment's packages and REV
first on PYTHONPATH. Prints every sample, the medians and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.generate import AS_OF, SIZES, drop_database, fresh_database, generate
from benchmarks.run import _env
from benchmarks.signoff_latency import FLOOR_IMPORTS, load_average

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "recovery", "flows", "tasks", "deployments", "devstack", "benchmarks")


def export(rev: str, into: Path) -> Path:
    """REV's tree under `into`, compiled."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    present = [p for p in PACKAGES if (into / p).is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *present],
                   cwd=into, check=True)
    return into


def child(tree: Path, task: str, url: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", task, url, AS_OF.isoformat()],
        env={**env, "PYTHONPATH": str(tree)}, cwd=tree, capture_output=True, text=True,
        check=True, timeout=3600)
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def process_floor(tree: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one floor process from `tree`."""
    code = FLOOR_IMPORTS["+ the lifecycle flow"]
    if (tree / "recovery" / "batch.py").is_file():  # a flow run's start-up before round 8
        code = "from recovery.batch import start_up; start_up(); " + code
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=tree, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(tree)}, timeout=120)
    wall = time.perf_counter() - t0
    after = os.times()
    return wall, (after.children_user - before.children_user
                  + after.children_system - before.children_system)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.before_after")
    parser.add_argument("rev")
    parser.add_argument("--size", choices=list(SIZES), default="large")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--floor-runs", type=int, default=10)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="before-after-"))
    before, after = export(args.rev, work), ROOT
    print(f"{args.rev} exported to {before}; load {load_average()}", flush=True)
    url = fresh_database("sqlite", args.size)
    env = _env(url, work / "home")
    cpu: dict[str, list[float]] = {"before": [], "floor": [], "after": []}
    try:
        generate(url, SIZES[args.size])
        for i in range(args.pairs):
            for label, tree, task in (("before", before, "daily"), ("floor", after, "daily_floor"),
                                      ("after", after, "daily")):
                cpu[label].append(child(tree, task, url, env)["cpu_s"])
            print(f"  daily pair {i + 1}: before {cpu['before'][-1]:.3f} s, floor "
                  f"{cpu['floor'][-1]:.3f} s, after {cpu['after'][-1]:.3f} s CPU; "
                  f"load {load_average()}", flush=True)
    finally:
        drop_database(url)
    floors: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for _ in range(args.floor_runs):
        floors["before"].append(process_floor(before))
        floors["after"].append(process_floor(after))
    shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"\ndaily cycle CPU, median of {args.pairs}: before {med['before']:.3f} s "
          f"({med['before'] / med['floor']:.1f}x the floor), after {med['after']:.3f} s "
          f"({med['after'] / med['floor']:.1f}x), floor {med['floor']:.3f} s")
    print("  after/before per pair: " + ", ".join(
        f"{a / b:.2f}" for a, b in zip(cpu["after"], cpu["before"], strict=True)))
    print(f"sign-off floor (a new process importing Prefect, its engine and the lifecycle "
          f"flow), median of {args.floor_runs}:")
    for label, samples in floors.items():
        wall = statistics.median(w for w, _ in samples)
        cpu_s = statistics.median(c for _, c in samples)
        print(f"  {label:6} wall {wall:.2f} s, CPU {cpu_s:.2f} s  (wall: "
              + ", ".join(f"{w:.2f}" for w, _ in samples) + ")")
    print(f"load {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
