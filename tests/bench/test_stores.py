"""The persistent section's pieces: queues built straight into each database are what geartrain's stores read back,
and a limited drain stops where it was told (the replayed queue keeps the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from databases import require_service
from geartrain.bench import replay, stores, workloads
from geartrain.bench.workloads import Target
from geartrain.store.url import open_store
from servers import GearmanServer

JOBS = 120


@pytest.mark.parametrize("kind", stores.KINDS)
def test_a_built_queue_is_read_back_by_the_store_in_order(kind: str, tmp_path: Path) -> None:
    if kind != "sqlite":
        require_service("postgres" if kind == "postgres" else kind)
    store_kind = stores.StoreKind(kind)
    assert store_kind.unavailable() is None
    location = stores.fresh_location(kind, tmp_path)
    store_kind.build(location, JOBS, "built", payload_size=7)
    try:
        url = store_kind.geartrain_args(location)[1]
        store = open_store(url)
        assert store is not None
        store.open()
        try:
            jobs = list(store.load())
        finally:
            store.close()
        assert [job.unique for job in jobs] == [b"built-%d" % n for n in range(JOBS)]
        assert {job.function for job in jobs} == {b"built"}
        assert [job.priority for job in jobs] == [n % 3 for n in range(JOBS)]
        assert {job.data for job in jobs} == {b"x" * 7}
    finally:
        store_kind.drop(location)
    if kind != "sqlite":
        store = open_store(url)
        assert store is not None
        store.open()
        try:
            assert list(store.load()) == []
        finally:
            store.close()


def test_a_limited_drain_takes_that_many_and_leaves_the_rest(gearman_server: GearmanServer) -> None:
    target = Target(gearman_server.host, gearman_server.port, gearman_server.pid, gearman_server.name)
    filled = workloads.bg_submit(target, jobs=300, connections=1, unique=True, processes=1)
    function = filled.params["function"]
    result = workloads.drain_queued(target, function, workers=1, limit=100)
    assert result.counts == {"completed": 100}
    status = replay.admin_status(gearman_server.host, gearman_server.port).decode()
    total, running = next(line.split("\t")[1:3] for line in status.splitlines() if line.startswith(function))
    # The job handed out last was not worked on: it went back to the queue when the worker disconnected.
    assert (int(total), int(running)) == (200, 0)
