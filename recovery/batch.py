"""Batch work (the review cycles, the report packs) without the garbage collector walking
the whole process.

A cycle or pack runs in a process that has already imported Prefect, SQLAlchemy, pydantic
and the domain: several hundred thousand long-lived objects. Python's collector looks at
all of them in each full collection, and a cycle that makes hundreds of thousands of
short-lived rows, models and strings sets off many collections: on the large benchmark
provider that was ~30% of the daily cycle's CPU (`benchmarks/notes/daily.md`, round 5).

`frozen_heap()` moves what is alive when the batch starts into the collector's permanent
generation (`gc.freeze`, Python's documented tool for exactly this), so collections during
the batch look only at what the batch itself makes; it hands them back (`gc.unfreeze`)
when the outermost batch ends, so nothing is kept from collection for longer than a batch.
Nested and concurrent batches share one freeze. Collection itself stays on: reference
cycles the batch makes are collected as before.

A batch also collects its young generation less often (`BATCH_THRESHOLDS`): what it makes
lives until its chunk is written (rows, records, values), so a young collection every 700
allocations (Python's default) walks the same live objects hundreds of times to find
almost nothing; every 20,000 it finds the same garbage for a fraction of the walking. The
usual thresholds come back when the outermost batch ends.

A flow-run process freezes its import-time heap once, when its flow module has loaded
(`imports_done`). `gc.unfreeze` cannot hand back only part of the frozen generation, so in
such a process a batch leaves the freeze in place when it ends: what was alive when the
batch began stays frozen until the process (one flow run) exits, rather than the imports
being thawed and walked again by every later collection.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_DEPTH = 0
_THRESHOLDS_BEFORE: tuple[int, int, int] = (700, 10, 10)
_FROZEN_FOR_GOOD = False  # the process froze its import-time heap (`imports_done`)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Run the body with the objects alive now out of the collector's sight."""
    global _DEPTH, _THRESHOLDS_BEFORE
    with _LOCK:
        if _DEPTH == 0:
            gc.freeze()
            _THRESHOLDS_BEFORE = gc.get_threshold()
            gc.set_threshold(*BATCH_THRESHOLDS)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                gc.set_threshold(*_THRESHOLDS_BEFORE)
                if not _FROZEN_FOR_GOOD:
                    gc.unfreeze()


def frozen_depth() -> int:
    """How many batches hold the freeze now (0: none)."""
    return _DEPTH


#: the collector's thresholds while a flow-run process loads its modules (see
#: `deployments/startup/sitecustomize.py`), and Python's usual ones, set back afterwards
START_UP_THRESHOLDS = (100_000, 100, 100)
USUAL_THRESHOLDS = (700, 10, 10)
#: the collector's thresholds while a batch runs (see the module's docstring)
BATCH_THRESHOLDS = (20_000, 10, 10)


def start_up() -> None:
    """A flow-run process is starting: collect rarely until `imports_done`."""
    gc.set_threshold(*START_UP_THRESHOLDS)


def imports_done() -> None:
    """A flow module has loaded: if `start_up` relaxed the collector, freeze what the
    imports made (modules, classes, Prefect's and SQLAlchemy's registries: alive for the
    whole process) and collect as usual from here. A no-op in any other process."""
    global _FROZEN_FOR_GOOD
    if gc.get_threshold() == START_UP_THRESHOLDS:
        with _LOCK:
            gc.freeze()
            _FROZEN_FOR_GOOD = True
        gc.set_threshold(*USUAL_THRESHOLDS)
