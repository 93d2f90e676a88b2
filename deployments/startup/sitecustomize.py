"""Start-up of the flow-run processes that `recovery serve` starts (and a worker, where the
work pool puts this folder on PYTHONPATH).

Prefect starts a new Python process for every flow run, and again for every run resumed
after a sign-off, so a reviewer waits on that process's imports (Prefect, SQLAlchemy, the
flows' modules: about 1.6 s of CPU). About a third of it was the garbage collector: each full
collection walks the whole heap, and a heap that only grows while modules load sets off one
after another (`benchmarks/notes/signoff.md`, round 5).

Python imports `sitecustomize` at start-up from the first folder on `sys.path` that has one;
`deployments/serve.py` puts this folder first on the PYTHONPATH its flow-run processes
inherit. For a `python -m prefect.engine` process only, the collector runs rarely while the
process loads (collection stays on: a generation-0 pass every 100,000 new objects instead of
every 700, and no full pass); each flow module, once loaded, calls
`recovery.batch.imports_done()`, which freezes what the imports made (it lives as long as
the process) and sets Python's usual thresholds back. Any other process is left alone.
"""

import sys

if "prefect.engine" in getattr(sys, "orig_argv", ()):
    from recovery.batch import start_up

    start_up()
