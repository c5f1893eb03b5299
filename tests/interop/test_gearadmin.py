"""Every `gearadmin` option against each server. Outputs are checked by structure (names, counts, pids), since
version strings and row order legitimately differ between implementations."""

from __future__ import annotations

import re
import subprocess

import pytest
from programs import gearadmin

from servers import (
    GearmanServer,
    GearmanSocket,
    PacketType,
    StatusRow,
    admin,
    listing_lines,
    parse_status,
    wait_until,
)

pytestmark = pytest.mark.interop

VERBOSE_LEVELS = {"FATAL", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}
OPTIONS = (
    "--server-version", "--server-verbose", "--create-function", "--cancel-job", "--drop-function",
    "--show-unique-jobs", "--show-jobs", "--getpid", "--status", "--priority-status", "--workers",
)  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """stdout of a successful run that printed nothing on stderr."""
    assert (result.returncode, result.stderr) == (0, ""), result
    return result.stdout


def admin_error(result: subprocess.CompletedProcess[str]) -> str:
    """gearadmin prints a server `ERR x` as `Error: x` on stderr, and still exits 0."""
    assert (result.returncode, result.stdout) == (0, ""), result
    assert result.stderr.startswith("Error: "), result
    return result.stderr.removeprefix("Error: ").strip()


def show_jobs(server: GearmanServer) -> dict[str, list[int]]:
    """`--show-jobs` -> {handle: [retries, ignore, queued_in_persistent_store]}."""
    rows = {}
    for line in listing_lines(ok(gearadmin(server, "--show-jobs"))):
        handle, *numbers = line.split("\t")
        assert len(numbers) == 3, line
        rows[handle] = [int(n) for n in numbers]
    return rows


def test_server_version(gearman_server: GearmanServer) -> None:
    version = ok(gearadmin(gearman_server, "--server-version")).strip()
    assert version and "\n" not in version
    assert admin(gearman_server, "version").strip() == f"OK {version}"


def test_server_verbose(gearman_server: GearmanServer) -> None:
    assert ok(gearadmin(gearman_server, "--server-verbose")).strip() in VERBOSE_LEVELS


def test_getpid(gearman_server: GearmanServer) -> None:
    assert int(ok(gearadmin(gearman_server, "--getpid"))) == gearman_server.pid


def test_status(gearman_server: GearmanServer) -> None:
    with (
        GearmanSocket(gearman_server) as client,
        GearmanSocket(gearman_server) as busy,
        GearmanSocket(gearman_server) as idle,
    ):
        for n in range(3):
            client.submit("st", b"%d" % n, ptype=PacketType.SUBMIT_JOB_BG)
        busy.send(PacketType.CAN_DO, b"st")
        busy.send(PacketType.GRAB_JOB)
        assert busy.expect(PacketType.JOB_ASSIGN).args[1] == b"st"
        idle.send(PacketType.CAN_DO, b"st")
        idle.sync()
        status = parse_status(ok(gearadmin(gearman_server, "--status")))
        assert status["st"] == StatusRow(total=3, running=1, workers=2)


def test_priority_status(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client, GearmanSocket(gearman_server) as worker:
        for ptype, count in ((PacketType.SUBMIT_JOB_HIGH_BG, 1), (PacketType.SUBMIT_JOB_BG, 2),
                             (PacketType.SUBMIT_JOB_LOW_BG, 3)):  # fmt: skip
            for n in range(count):
                client.submit("ps", b"%d" % n, ptype=ptype)
        worker.send(PacketType.CAN_DO, b"ps")
        worker.sync()
        rows = {}
        for line in listing_lines(ok(gearadmin(gearman_server, "--priority-status"))):
            name, *counts = line.split("\t")
            rows[name] = [int(c) for c in counts]
        assert rows["ps"] == [1, 2, 3, 1]  # high, normal, low, workers


def test_workers(gearman_server: GearmanServer) -> None:
    row = re.compile(r"^(\d+) (\S+) (\S+) :((?: \S+)*)$")
    with GearmanSocket(gearman_server) as worker:
        worker.send(PacketType.SET_CLIENT_ID, b"interop-worker")
        worker.send(PacketType.CAN_DO, b"wf1")
        worker.send(PacketType.CAN_DO, b"wf2")
        worker.sync()
        lines = listing_lines(ok(gearadmin(gearman_server, "--workers")))
        for line in lines:
            assert row.match(line), line
        ours = [m for m in map(row.match, lines) if m and m.group(3) == "interop-worker"]
        assert len(ours) == 1, lines
        assert ours[0].group(2) == "127.0.0.1"
        assert sorted(ours[0].group(4).split()) == ["wf1", "wf2"]

    def gone() -> bool:
        return all("interop-worker" not in line for line in listing_lines(ok(gearadmin(gearman_server, "--workers"))))

    wait_until(gone, message="the closed connection to leave the workers list")


def test_show_jobs(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client:
        handles = {
            client.submit("sj", b"a", ptype=PacketType.SUBMIT_JOB_BG),
            client.submit("sj", b"b", ptype=PacketType.SUBMIT_JOB_LOW_BG),
            client.submit("sj", b"c"),
        }
        jobs = show_jobs(gearman_server)
        assert set(jobs) == handles
        for retries, ignore, _stored in jobs.values():
            assert (retries, ignore) == (0, 0)


def test_show_unique_jobs(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client:
        client.submit("su", b"1", unique="u-one", ptype=PacketType.SUBMIT_JOB_BG)
        client.submit("su", b"2", unique="u-two", ptype=PacketType.SUBMIT_JOB_BG)
        client.submit("su", b"3", ptype=PacketType.SUBMIT_JOB_BG)
        lines = listing_lines(ok(gearadmin(gearman_server, "--show-unique-jobs")))
        assert set(lines) - {""} == {"u-one", "u-two"}


def test_create_and_drop_function(gearman_server: GearmanServer) -> None:
    def status() -> dict[str, StatusRow]:
        return parse_status(ok(gearadmin(gearman_server, "--status")))

    assert ok(gearadmin(gearman_server, "--create-function", "made_by_admin")).strip() == "OK"
    assert status()["made_by_admin"] == StatusRow(0, 0, 0)
    assert ok(gearadmin(gearman_server, "--drop-function", "made_by_admin")).strip() == "OK"
    assert "made_by_admin" not in status()
    assert admin_error(gearadmin(gearman_server, "--drop-function", "made_by_admin"))


def test_drop_function_refused_while_a_worker_can_do_it(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as worker:
        worker.send(PacketType.CAN_DO, b"busy_fn")
        worker.sync()
        assert admin_error(gearadmin(gearman_server, "--drop-function", "busy_fn"))
        assert "busy_fn" in parse_status(ok(gearadmin(gearman_server, "--status")))


def test_cancel_queued_background_job(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client:
        handle = client.submit("cancel_me", b"data", ptype=PacketType.SUBMIT_JOB_BG)
        keep = client.submit("cancel_me", b"other", ptype=PacketType.SUBMIT_JOB_BG)
    assert ok(gearadmin(gearman_server, "--cancel-job", handle)).strip() == "OK"

    # gearmand keeps a cancelled job listed with IGNORE=1 until a worker skips over it; dropping it at once is
    # just as good. Either way no worker may ever receive it.
    jobs = show_jobs(gearman_server)
    assert handle not in jobs or jobs[handle][1] == 1, jobs
    with GearmanSocket(gearman_server) as worker:
        worker.send(PacketType.CAN_DO, b"cancel_me")
        worker.send(PacketType.GRAB_JOB)
        assert worker.expect(PacketType.JOB_ASSIGN).args[0].decode() == keep
        worker.send(PacketType.GRAB_JOB)
        worker.expect(PacketType.NO_JOB)
        assert set(show_jobs(gearman_server)) == {keep}


def test_cancel_foreground_job_fails_its_client(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client:
        handle = client.submit("cancel_fg", b"data")
        assert ok(gearadmin(gearman_server, "--cancel-job", handle)).strip() == "OK"
        assert client.expect(PacketType.WORK_FAIL).args == [handle.encode()]


def test_cancel_unknown_job(gearman_server: GearmanServer) -> None:
    assert admin_error(gearadmin(gearman_server, "--cancel-job", "nosuch")) == "UNKNOWN_JOB"


def test_help(gearman_server: GearmanServer) -> None:
    text = ok(gearadmin(gearman_server, "--help"))
    for option in OPTIONS:
        assert option in text
