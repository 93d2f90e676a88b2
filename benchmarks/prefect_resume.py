"""How often a Prefect UI resume is refused as "busy" by a Prefect server on SQLite.

    python -m benchmarks.prefect_resume [--resumes 80] [--load-flows 2]

The Prefect UI sends one resume request and does not retry: a 503 ("database is locked",
SQLite refusing a deferred transaction's upgrade to a write when another connection wrote
meanwhile) shows the reviewer "Failed to resume flow run". This measures how often that
happens on a machine as busy as a demo gets, for Prefect's default server settings and for
the settings `devstack.prefect_server.SQLITE_SERVER_SETTINGS` gives the demo's (and the
tests') server. For each: a fresh server on SQLite; a served-deployment poller asking for
scheduled runs every second (as `recovery serve` does); `--load-flows` processes running
flows of ten tasks back to back (the task-run and event writes a lifecycle run makes);
two CPU-bound processes per core; then `--resumes` resumes of a paused run, each sent
once like the UI's, counting busy answers. Prints the rate for each and the ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import httpx

from benchmarks import machine
from devstack.prefect_server import SQLITE_SERVER_SETTINGS, start_prefect_server


def _spin() -> None:  # pragma: no cover - a CPU-bound child
    while True:
        pass


def _load_flows() -> None:
    """Run flows of ten tasks back to back against PREFECT_API_URL (a child process)."""
    from prefect import flow, task

    @task
    def step(n: int) -> int:
        return n + 1

    @flow(name="benchmark-load", log_prints=False)
    def load() -> int:
        return sum(step(n) for n in range(10))

    while True:
        load()


def _poller(api_url: str, deployment_id: str, stop: threading.Event) -> None:
    """What `recovery serve` does every second: ask for its deployments' scheduled runs
    (the server marks the deployments polled: a write)."""
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            client.post(f"{api_url}/deployments/get_scheduled_flow_runs",
                        json={"deployment_ids": [deployment_id], "limit": 10})
            stop.wait(1.0)


def measure(label: str, settings: Mapping[str, str], *, resumes: int,
            load_flows: int) -> dict[str, Any]:
    server = start_prefect_server(extra_env=dict(settings))
    burners = [multiprocessing.Process(target=_spin, daemon=True)
               for _ in range(2 * (os.cpu_count() or 1))]
    loads: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        env = {**os.environ, **server.env, "PREFECT_LOGGING_LEVEL": "WARNING"}
        with server.settings():
            from prefect import flow
            from prefect.client.orchestration import get_client
            from prefect.states import Paused

            @flow(name="benchmark-paused")
            def paused() -> None:  # never run: its run is paused and resumed by hand
                return None

            with get_client(sync_client=True) as client:
                flow_id = client.create_flow(paused)
                deployment_id = client.create_deployment(flow_id=flow_id, name="poller")
                run = client.create_flow_run(paused)
                poller = threading.Thread(target=_poller, daemon=True,
                                          args=(server.api_url, str(deployment_id), stop))
                poller.start()
                loads = [subprocess.Popen(
                    [sys.executable, "-c", "from benchmarks.prefect_resume import "
                     "_load_flows; _load_flows()"], env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL) for _ in range(load_flows)]
                for burner in burners:
                    burner.start()
                time.sleep(5)  # the load under way
                busy, seconds = 0, []
                with httpx.Client(timeout=60) as raw:
                    for n in range(resumes):
                        client.set_flow_run_state(UUID(str(run.id)),
                                                  Paused(pause_key=f"k{n}"), force=True)
                        started = time.perf_counter()
                        answer = raw.post(f"{server.api_url}/flow_runs/{run.id}/resume",
                                          json={})
                        seconds.append(time.perf_counter() - started)
                        if answer.status_code == 503:
                            busy += 1
                        else:
                            answer.raise_for_status()
                        time.sleep(0.2)
    finally:
        stop.set()
        for process in loads:
            process.kill()
        for burner in burners:
            burner.kill()
        server.stop()
    return {"label": label, "resumes": resumes, "busy": busy,
            "rate": busy / resumes, "p50_s": statistics.median(seconds),
            "max_s": max(seconds)}


def prefect_defaults() -> dict[str, str]:
    """The same settings at Prefect's own defaults (read from Prefect, not typed here)."""
    from prefect.settings import Settings

    services = Settings().server.services
    values = {
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE":
            services.task_run_recorder.batch_size,
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL":
            services.task_run_recorder.flush_interval,
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE":
            services.event_persister.batch_size,
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL":
            services.event_persister.flush_interval,
    }
    assert set(values) == set(SQLITE_SERVER_SETTINGS)
    return {k: str(v) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resumes", type=int, default=80)
    parser.add_argument("--load-flows", type=int, default=2)
    args = parser.parse_args()
    print(machine.one_line(machine.describe()))
    results = [measure(label, settings, resumes=args.resumes, load_flows=args.load_flows)
               for label, settings in (("Prefect's defaults", prefect_defaults()),
                                       ("SQLITE_SERVER_SETTINGS", SQLITE_SERVER_SETTINGS))]
    for r in results:
        print(f"{r['label']:<24} {r['busy']:>3} of {r['resumes']} resumes refused as busy "
              f"({r['rate']:.0%}); resume p50 {r['p50_s'] * 1000:.0f} ms, "
              f"max {r['max_s'] * 1000:.0f} ms")
    before, after = results[0]["rate"], results[1]["rate"]
    ratio = f"{before / after:.1f}x fewer" if after else "none left"
    print(f"busy answers with SQLITE_SERVER_SETTINGS: {ratio} than with Prefect's defaults")


if __name__ == "__main__":
    main()
