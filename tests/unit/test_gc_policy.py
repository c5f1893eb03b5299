"""The server's collector policy: young collections by threshold, survivors frozen, full collections on a timer."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from geartrain.server.gc_policy import UNREACHABLE_THRESHOLD, CollectionPolicy, GcSettings


class Node:
    """A container object that can form a reference cycle (lists of ints cannot be garbage in a cycle)."""

    other: Node | None = None


def make_cycle() -> weakref.ref[Node]:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()


@pytest.mark.usefixtures("restore_gc")
def test_young_collections_collect_cycles_and_freeze_survivors() -> None:
    policy = CollectionPolicy(GcSettings(young_limit=500))
    policy.start()
    try:
        assert gc.get_threshold() == (500, UNREACHABLE_THRESHOLD, UNREACHABLE_THRESHOLD)
        frozen_before = gc.get_freeze_count()
        cycle = make_cycle()
        kept = [[n] for n in range(2000)]  # survivors: enough new containers for several young collections
        assert policy.young_collections >= 3
        assert cycle() is None  # garbage in the young generation goes at the next young collection
        assert gc.get_freeze_count() >= frozen_before + 1500  # what survived is frozen, not traversed again
        assert len(kept) == 2000
    finally:
        policy.stop()


@pytest.mark.usefixtures("restore_gc")
def test_cycles_among_frozen_objects_go_at_a_full_collection() -> None:
    policy = CollectionPolicy(GcSettings(young_limit=500))
    policy.start()
    try:
        cycle = make_cycle()
        gc.freeze()  # as if it had survived a young collection before becoming garbage
        kept = [[n] for n in range(2000)]
        assert cycle() is not None  # young collections never look at frozen objects
        policy.collect_all()
        assert cycle() is None
        assert policy.full_collections == 1
        assert len(kept) == 2000
    finally:
        policy.stop()


@pytest.mark.usefixtures("restore_gc")
def test_a_full_collection_is_skipped_when_the_frozen_heap_is_too_large(caplog: pytest.LogCaptureFixture) -> None:
    policy = CollectionPolicy(GcSettings(full_limit=10))
    policy.start()
    try:
        cycle = make_cycle()
        gc.freeze()
        with caplog.at_level("INFO", logger="geartrain.gc"):
            policy.collect_all()
        assert cycle() is not None
        assert policy.full_collections == 0
        assert "skipping a full collection" in caplog.text
    finally:
        policy.stop()


@pytest.mark.usefixtures("restore_gc")
def test_full_collections_run_on_the_loop_timer() -> None:
    async def scenario() -> tuple[int, bool]:
        policy = CollectionPolicy(GcSettings(full_interval=0.02))
        policy.start(asyncio.get_running_loop())
        try:
            cycle = make_cycle()
            gc.freeze()
            deadline = asyncio.get_running_loop().time() + 10.0  # a busy machine may delay the timer, never skip it
            while policy.full_collections < 2 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            return policy.full_collections, cycle() is None
        finally:
            policy.stop()

    full_collections, freed = asyncio.run(scenario())
    assert full_collections >= 2
    assert freed


@pytest.mark.usefixtures("restore_gc")
def test_stop_gives_the_collector_back_as_it_was() -> None:
    gc.set_threshold(700, 10, 10)
    gc.disable()
    policy = CollectionPolicy(GcSettings())
    policy.start()
    assert gc.isenabled()
    policy.stop()
    assert gc.get_threshold() == (700, 10, 10)
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert policy._after_collection not in gc.callbacks


@pytest.mark.usefixtures("restore_gc")
def test_disabled_policy_leaves_the_collector_alone() -> None:
    gc.set_threshold(700, 10, 10)
    policy = CollectionPolicy(GcSettings(enabled=False))
    policy.start()
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    policy.stop()
