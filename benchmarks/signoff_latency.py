"""How long from a sign-off to the lifecycle's next stage starting.

Brings up the real thing on loopback (a Prefect server, a mail sink, `recovery serve` with
its poll interval set, a fresh app database), opens N actions, and for each
one waits until its run is suspended for plan sign-off, then answers it with the code from
the email exactly as `recovery signoff` does (``resume_flow_run``) and measures, from the
moment of the resume call:

- resume -> run Pending: the served runner's poll found the rescheduled run (every
  RECOVERY_RUNNER_POLL_SECONDS);
- resume -> run Running: the runner started a flow-run process, which imported the flow's
  code and proposed Running;
- resume -> first task run started: the next stage starts (the run restarts from the top,
  so this is the first task of the re-run);
- resume -> decision applied (the ``apply-signoff`` task started);
- resume -> in recovery (the ``closure-request-wait`` task started: the next human wait).

Sign-offs are measured one at a time (no run competes with another). The floor, measured
in the same run: a new Python process that imports Prefect, its flow engine and the
lifecycle flow's module, then exits (what the runner's spawned flow-run process must do
before anything else; Prefect 3 starts one for every resumed run), timed from outside: a
plain interpreter, as the flow-run processes are. It is measured at the end, and once
right after each sign-off, so that on a shared machine each sign-off has a floor taken
under the same load.
Also reported per sign-off: the CPU time of the flow-run process (user + system, read from the serve
process's reaped-children counters once the run has suspended again and its process has
gone) and the load average. Prints each sample and p50/p95. Usage::

    .venv/bin/python -m benchmarks.signoff_latency [--runs 5] [--poll 0.5] [--pycache DIR] [--keep]

``--poll`` is passed as RECOVERY_RUNNER_POLL_SECONDS (the runner's poll interval in
`recovery serve`) and, rounded up to whole seconds, as ``PREFECT_RUNNER_POLL_FREQUENCY``
(what a serve that predates the setting reads).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.prefect_server import start_prefect_server, wait_until  # noqa: E402
from tests.support.recovery_stack import (  # noqa: E402
    SEED,
    RecoveryStack,
    make_template_database,
)

PLANS = [SEED["ROSE-SG-001"], SEED["QUAY-MED-001"], SEED["ELM-STF-001"]]
REVIEWERS = {"ROSE": "ni@harbourcare.example", "QUAY": "rm@quay.example",
             "ELM": "provider.lead@harbourcare.example"}
MARKS = ("pending", "running", "first_task", "apply_signoff", "next_wait")
TICKS = os.sysconf("SC_CLK_TCK")


def children_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of the reaped children of ``pid`` (its flow-run
    processes, once they have exited), from /proc/<pid>/stat (cutime, cstime)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # after the ")": state is field 3, so cutime (16) and cstime (17) are at 13 and 14
    return (int(fields[13]) + int(fields[14])) / TICKS


FLOOR_IMPORTS = {
    "import prefect": "import prefect",
    "+ its flow engine": "import prefect, prefect.flow_engine",
    "+ the lifecycle flow": "import prefect, prefect.flow_engine, flows.lifecycle",
}


def process_floor(runs: int) -> dict[str, list[float]]:
    """Wall seconds for a new Python process to import each of FLOOR_IMPORTS and exit,
    `runs` times each, with the environment the stack's processes get."""
    out: dict[str, list[float]] = {}
    for label, code in FLOOR_IMPORTS.items():
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                           check=True,
                           capture_output=True, timeout=120)
            times.append(time.perf_counter() - t0)
        out[label] = times
    return out


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def state_since(client: Any, run_id: UUID, after: datetime, kind: str) -> datetime | None:
    for state in client.read_flow_run_states(run_id):
        if state.type.value == kind and state.timestamp >= after:
            return state.timestamp  # type: ignore[no-any-return]
    return None


def measure_one(stack: RecoveryStack, ref: str) -> dict[str, float]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.flow_runs import resume_flow_run

    stack.wait_for_wait(ref, "plan-signoff-1-", timeout=120)
    stack.serve.wait_for_idle(timeout=30, quiet=0.5)  # the suspended process has gone
    code = stack.signoff_code(ref, "plan")
    run_id = UUID(stack.flow_run_id(ref))
    run_input = {"reviewer_email": REVIEWERS[ref.split("-")[0]], "code": code,
                 "decision": "approve",
                 "rationale": "Benchmark sign-off: plan reviewed and proportionate"}

    cpu_before = children_cpu(stack.serve.pid)
    with stack.server.settings():
        t0 = datetime.now(UTC)
        resume_flow_run(run_id, run_input=run_input)
        call = (datetime.now(UTC) - t0).total_seconds()

    def task_starts() -> dict[str, datetime] | None:
        with stack.client() as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        starts: dict[str, datetime] = {}
        for task_run in runs:
            if task_run.start_time is None or task_run.start_time < t0:
                continue
            name = task_run.name.rsplit("-", 1)[0]
            if name not in starts or task_run.start_time < starts[name]:
                starts[name] = task_run.start_time
        return starts if "closure-request-wait" in starts else None

    starts = wait_until(task_starts, timeout=120, interval=0.2,
                        message=f"{ref}: the run to reach its next wait")
    with stack.client() as client:
        pending = state_since(client, run_id, t0, "PENDING")
        running = state_since(client, run_id, t0, "RUNNING")
    assert pending is not None, f"{ref}: no Pending state after the resume"
    assert running is not None, f"{ref}: no Running state after the resume"
    stack.wait_for_wait(ref, "closure-request-", timeout=120)
    stack.serve.wait_for_idle(timeout=30, quiet=0.2)  # the flow-run process has exited
    return {
        "resume_call": call,
        "pending": (pending - t0).total_seconds(),
        "running": (running - t0).total_seconds(),
        "first_task": (min(starts.values()) - t0).total_seconds(),
        "apply_signoff": (starts["apply-signoff"] - t0).total_seconds(),
        "next_wait": (starts["closure-request-wait"] - t0).total_seconds(),
        "run_cpu": children_cpu(stack.serve.pid) - cpu_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="sign-offs to measure")
    parser.add_argument("--poll", type=float, default=0.5,
                        help="the serve process's poll interval, RECOVERY_RUNNER_POLL_SECONDS "
                             "(seconds)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (logs, database, mail)")
    parser.add_argument("--pycache", metavar="DIR", default=None,
                        help="let every process of the stack cache compiled bytecode in DIR "
                             "(PYTHONPYCACHEPREFIX; PYTHONDONTWRITEBYTECODE removed), as an "
                             "install with compiled bytecode would; default: the environment "
                             "as it is")
    args = parser.parse_args(argv)
    if args.pycache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(args.pycache).resolve())
    bytecode = ("cached in " + os.environ["PYTHONPYCACHEPREFIX"]
                if os.environ.get("PYTHONPYCACHEPREFIX")
                and not os.environ.get("PYTHONDONTWRITEBYTECODE")
                else "not written (PYTHONDONTWRITEBYTECODE)"
                if os.environ.get("PYTHONDONTWRITEBYTECODE") else "written beside the code")

    work = Path(tempfile.mkdtemp(prefix="signoff-latency-"))
    print(f"starting a Prefect server, mail sink and `recovery serve` under {work} ...",
          flush=True)
    server = start_prefect_server(home=work / "prefect")
    stack = RecoveryStack(server, work / "home",
                          template=make_template_database(work / "template"),
                          extra_env={  # Prefect's setting is whole seconds
                            "PREFECT_RUNNER_POLL_FREQUENCY": str(max(1, math.ceil(args.poll))),
                            "RECOVERY_RUNNER_POLL_SECONDS": f"{args.poll:g}"})
    samples: list[dict[str, float]] = []
    load_start = load_average()
    try:
        stack.start()
        refs = []
        for i in range(args.runs):
            opened = stack.cli_json("action", "open", PLANS[i % len(PLANS)],
                                    "--by", "rm@rose.example")
            refs.append(opened["ref"])
        print(f"opened {', '.join(refs)}; runner poll {args.poll:g} s", flush=True)
        for ref in refs:
            sample = measure_one(stack, ref)
            samples.append(sample)
            # the floor once more beside each sign-off: on a shared machine the load moves
            # between the first sign-off and the last, and a ratio wants both sides under it
            sample["floor"] = process_floor(1)["+ the lifecycle flow"][0]
            print(f"  {ref:14} " + "  ".join(f"{k}={v:5.2f}s" for k, v in sample.items()),
                  flush=True)
            time.sleep(0.5)
    finally:
        stack.stop()
        server.stop(remove_home=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nsign-off -> next stage, {len(samples)} sign-offs "
          f"(runner poll {args.poll:g} s; bytecode {bytecode}; load average "
          f"{load_start} at the start, {load_average()} at the end):")
    labels = {"pending": "resume -> runner picked it up (Pending)",
              "running": "resume -> run Running",
              "first_task": "resume -> next task run starts",
              "apply_signoff": "resume -> decision applied",
              "next_wait": "resume -> in recovery (next wait)"}
    for key in MARKS:
        values = [s[key] for s in samples]
        print(f"  {labels[key]:36} p50 {percentile(values, 50):5.2f}s   "
              f"p95 {percentile(values, 95):5.2f}s   "
              f"(min {min(values):.2f}s, max {max(values):.2f}s, "
              f"mean {statistics.fmean(values):.2f}s)")
    steps = {"picked up (poll)": ("resume_at", "pending"),
             "process start + imports + flow load": ("pending", "running"),
             "engine to first task": ("running", "first_task"),
             "tasks until the decision is applied": ("first_task", "apply_signoff"),
             "decision to the next wait": ("apply_signoff", "next_wait")}
    print("  breakdown (median of each step):")
    for label, (a, b) in steps.items():
        values = [s[b] - (s[a] if a != "resume_at" else 0.0) for s in samples]
        print(f"    {label:38} {statistics.median(values):5.2f}s")
    cpu = [s["run_cpu"] for s in samples]
    print(f"  flow-run process CPU (user+sys)       p50 {percentile(cpu, 50):5.2f}s   "
          f"p95 {percentile(cpu, 95):5.2f}s")
    floor = process_floor(max(3, min(10, len(samples))))
    print("  floor: a new process that imports, then exits (wall):")
    for label, values in floor.items():
        print(f"    {label:34} p50 {percentile(values, 50):5.2f}s   "
              f"p95 {percentile(values, 95):5.2f}s")
    whole = percentile(floor["+ the lifecycle flow"], 50)
    first = percentile([s["first_task"] for s in samples], 50)
    print(f"  next task starts p50 {first:.2f}s = {first / whole:.1f}x the floor's p50 "
          f"{whole:.2f}s (a process importing Prefect, its engine and the lifecycle flow)")
    beside = [s["floor"] for s in samples]
    ratios = [s["first_task"] / s["floor"] for s in samples]
    print(f"  the floor measured beside each sign-off: p50 {percentile(beside, 50):.2f}s; next "
          f"task starts / that floor, per sign-off: p50 {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
