"""The two kinds of task this product runs, as typed decorator factories.

`@task(**SETTINGS)` with a plain dict hides the task's signature from mypy (no overload of
`prefect.task` accepts a `dict[str, object]`), so each kind is a function that returns
Prefect's own typed decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

P = ParamSpec("P")
R = TypeVar("R")


def db_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A lifecycle stage: one unit of work, retried twice on a busy database, never cached
    (the flow restarts from the top after each resume and must read the database again)."""
    return task(name=name, retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)


def cycle_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A review-cycle step over every action at once: retried twice, five seconds apart."""
    return task(name=name, retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
