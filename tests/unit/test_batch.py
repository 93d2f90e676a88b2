"""`recovery.batch.frozen_heap`: batches run with what was alive before them out of the
collector's sight, and nothing is kept from collection after them."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

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
