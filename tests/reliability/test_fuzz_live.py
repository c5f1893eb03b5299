"""Random and mutated packets against a live server process: no crash, no hang, others served, jobs kept."""

from __future__ import annotations

import os
from pathlib import Path

from livefuzz import fuzz, queue_kept_jobs, take_kept_jobs
from serverproc import ServerProcess

INPUTS = int(os.environ.get("GEARTRAIN_FUZZ_INPUTS", "4000"))
KEPT = 50


def test_hostile_input_does_not_disturb_other_clients_or_queued_jobs(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    server = ServerProcess(
        tmp_path / "server.log", "--store", f"sqlite://{tmp_path}/queue.db", "--max-packet-size", "1m"
    )
    try:
        kept = queue_kept_jobs(server.address, KEPT)
        report = fuzz(server.address, INPUTS, seed)
        print(f"seed {seed}: {report}")
        assert server.alive(), server.log()
        assert report.inputs > INPUTS * 0.9 and report.good_round_trips > 0
        assert report.closed_by_server > 0  # fatal input did reach the server and was handled by closing
        assert take_kept_jobs(server.address, KEPT) == kept
        assert "Traceback" not in server.log(), f"seed {seed}: internal error\n{server.log()}"
    finally:
        assert server.stop() == 0, server.log()
