"""A fault-injecting proxy between the libraries and the server: splits, delays and random cuts.

Every foreground job ends exactly once for its client (right result or a clear error), every acknowledged
background job runs, and the server is unharmed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from faults import run_faults
from serverproc import ServerProcess

from proxy import FaultyProxy


def test_every_job_ends_once_or_with_a_clear_error_through_a_faulty_network(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    server = ServerProcess(tmp_path / "server.log", "--store", "memory")
    proxy = FaultyProxy("127.0.0.1", server.port, seed=seed, cut_probability=0.02)
    try:
        report = asyncio.run(run_faults(f"127.0.0.1:{proxy.port}", 4, 60, 20, server_address=server.address))
        print(f"seed {seed}: {proxy.cuts} cuts in {proxy.chunks} chunks; {report}")
        assert proxy.cuts > 0, "the proxy never cut a connection: nothing was tested"
        assert report.wrong_results == 0, f"seed {seed}"
        assert report.hangs == 0, f"seed {seed}"
        assert report.foreground_ok + sum(report.foreground_errors.values()) == 4 * 60
        assert report.foreground_ok > 0
        assert set(report.foreground_errors) <= {"ConnectionLost"}, report.foreground_errors
        assert report.background_acknowledged > 0
        assert report.background_lost == 0, f"seed {seed}"
        # Nothing is left behind on the server: abandoned jobs were dropped, cut workers' jobs requeued and done.
        assert report.left_on_server == 0, f"seed {seed}"
        assert server.alive()
    finally:
        proxy.close()
        assert server.stop() == 0, server.log()
