"""Crash safety on the embedded SQLite store (the server stores run the same scenario in tests/stores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crash import crash_and_recover


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_kill_9_loses_no_acknowledged_job_on_sqlite(tmp_path: Path, sync: str) -> None:
    report = crash_and_recover(f"sqlite://{tmp_path}/queue.db?sync={sync}")
    print(report)
    assert report["acknowledged"] > 0
