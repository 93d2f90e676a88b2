"""`recovery.batch`: batches run with what was alive before them out of the collector's
sight, and nothing is kept from collection after them; a flow-run process loads its modules
with the collector relaxed, then collects as usual."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import pytest

from deployments.serve import STARTUP, flow_run_pythonpath
from recovery import batch


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_the_heap_is_frozen_for_the_batch_and_handed_back_after() -> None:
    assert gc.get_freeze_count() == 0 and batch.frozen_depth() == 0
    gc.disable()  # only the explicit collections below run
    try:
        before = _cycle()  # garbage already, but uncollected when the batch starts
        with batch.frozen_heap():
            assert gc.get_freeze_count() > 0 and batch.frozen_depth() == 1
            made_here = _cycle()
            gc.collect()
            # what the batch makes is collected as usual; what was there before is not
            assert made_here() is None
            assert before() is not None
    finally:
        gc.enable()
    assert gc.get_freeze_count() == 0 and batch.frozen_depth() == 0
    gc.collect()
    assert before() is None  # handed back: collected by the next full collection


def test_nested_batches_share_one_freeze_and_an_error_still_hands_it_back() -> None:
    @batch.frozen_heap()
    def inner() -> int:
        assert batch.frozen_depth() == 2
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"), batch.frozen_heap():
        frozen = gc.get_freeze_count()
        inner()
    assert gc.get_freeze_count() == 0 and batch.frozen_depth() == 0
    assert frozen > 0


def test_concurrent_batches_unfreeze_only_when_the_last_one_ends() -> None:
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with batch.frozen_heap():
            first_in.set()
            second_done.wait(10)
            seen.append(gc.get_freeze_count())  # the second batch ended: still frozen

    worker = threading.Thread(target=first)
    worker.start()
    assert first_in.wait(10)
    with batch.frozen_heap():
        assert batch.frozen_depth() == 2
    second_done.set()
    worker.join(10)
    assert seen and seen[0] > 0
    assert gc.get_freeze_count() == 0 and batch.frozen_depth() == 0


def test_a_batch_collects_its_young_generation_less_often_and_sets_it_back() -> None:
    usual = gc.get_threshold()
    gc.set_threshold(1234, 5, 6)  # whatever the process had, it gets back
    try:
        with pytest.raises(RuntimeError, match="midway"), batch.frozen_heap():
            assert gc.get_threshold() == batch.BATCH_THRESHOLDS
            with batch.frozen_heap():  # nested: still the batch's
                assert gc.get_threshold() == batch.BATCH_THRESHOLDS
            assert gc.get_threshold() == batch.BATCH_THRESHOLDS
            raise RuntimeError("midway")
        assert gc.get_threshold() == (1234, 5, 6)
    finally:
        gc.set_threshold(*usual)
    assert batch.BATCH_THRESHOLDS[0] > usual[0]  # less often than Python's default


def test_a_batch_still_collects_reference_cycles_without_an_explicit_collect() -> None:
    """Collection stays on in a batch: cycles the batch makes are collected by the young
    generation's own passes, only less often."""
    with batch.frozen_heap():
        made = [_cycle() for _ in range(batch.BATCH_THRESHOLDS[0])]
        # twice the threshold in new container objects sets off at least one collection
        ballast = [[] for _ in range(2 * batch.BATCH_THRESHOLDS[0])]
        collected = sum(ref() is None for ref in made)
        del ballast
    assert collected > len(made) * 0.9


def test_a_batch_keeps_a_flow_run_processs_import_time_freeze(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a process that froze its imports (`imports_done`), a batch's end does not thaw
    them (gc.unfreeze would hand back the whole frozen generation)."""
    monkeypatch.setattr(batch, "_FROZEN_FOR_GOOD", True)
    try:
        with batch.frozen_heap():
            frozen = gc.get_freeze_count()
        # still frozen (a thaw would leave 0; a few frozen objects may die meanwhile)
        assert frozen > 0 and gc.get_freeze_count() > frozen * 0.9
        assert batch.frozen_depth() == 0
    finally:
        gc.unfreeze()  # this test process is not a flow run


# ------------------------------------------------ the start-up of a flow-run process

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import gc, json; loading = gc.get_threshold(); import flows.lifecycle; "
         "from recovery import batch; after = gc.get_freeze_count(); "
         "exec('with batch.frozen_heap(): pass'); "
         "print(json.dumps([loading, gc.get_threshold(), after, "
         "gc.get_freeze_count() > after * 0.9]))")


def _probe(*argv: str) -> list[object]:
    """Start a Python process as `recovery serve` starts a flow run's (the start-up folder
    first on PYTHONPATH), load the lifecycle flow's module, and report the collector's
    thresholds while loading, after loading, how many objects are frozen, and whether
    they still are after a batch."""
    env = {**os.environ, "PYTHONPATH": flow_run_pythonpath(os.environ.get("PYTHONPATH"))}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    result: list[object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_flow_run_process_loads_with_the_collector_relaxed_then_as_usual() -> None:
    # the runner's command is `python -m prefect.engine`: the start-up looks for it
    loading, after, frozen, kept = _probe("prefect.engine")
    assert loading == list(batch.START_UP_THRESHOLDS)
    assert after == list(batch.USUAL_THRESHOLDS)
    assert isinstance(frozen, int) and frozen > 10_000  # the imports' objects
    assert kept is True  # a batch in the flow run leaves them frozen


def test_any_other_process_starts_as_python_does() -> None:
    loading, after, frozen, _ = _probe()
    assert loading == after == list(batch.USUAL_THRESHOLDS)
    assert frozen == 0


def test_the_start_up_folder_goes_first_on_the_flow_runs_pythonpath_once() -> None:
    start = str(STARTUP)
    assert flow_run_pythonpath(None) == start
    assert flow_run_pythonpath(os.pathsep.join(["/a", start, "/b"])) == \
        os.pathsep.join([start, "/a", "/b"])
    assert (STARTUP / "sitecustomize.py").is_file()
