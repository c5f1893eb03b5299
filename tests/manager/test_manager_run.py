"""`geartrain manager` with real worker processes against a real geartrain server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from managertools import GEARTRAIN, StartManager, python_group

from geartrain import SyncClient
from servers import GearmanServer, wait_until

Start = StartManager


def ask(server: GearmanServer, function: str, data: bytes) -> bytes:
    with SyncClient(server.address) as client:
        return client.do(function, data)


def command_group(name: str, command: list[str], processes: int = 1) -> str:
    words = ", ".join(f'"{word}"' for word in command)
    return f"[groups.{name}]\ncommand = [{words}]\nprocesses = {processes}\n\n"


def test_kill_9_a_worker_and_it_comes_back(server: GearmanServer, run_manager: Start) -> None:
    manager = run_manager(python_group("rev", "reverse", processes=2))
    manager.wait_workers("rev", 2)
    assert ask(server, "rev", b"abc") == b"cba"
    victim = manager.pid_of("rev#1")
    os.kill(victim, signal.SIGKILL)
    manager.wait_log("rev#1: crashed: pid")
    wait_until(lambda: manager.pid_of("rev#1") != victim, message="a new rev#1")
    manager.wait_workers("rev", 2)
    assert "killed by SIGKILL" in manager.log()
    for n in range(4):
        assert ask(server, "rev", f"job {n}".encode()) == f"{n} boj".encode()

    manager.send(signal.SIGUSR1)
    manager.wait_log("status: rev#2:")
    log = manager.log()
    assert "status: 1 group(s), 0 process(es) finishing their job" in log
    assert f"status: rev#1: pid {manager.pid_of('rev#1')}, up " in log and "2 start(s), 1 crash(es)" in log
    assert f"status: rev#2: pid {manager.pid_of('rev#2')}, up " in log and "1 start(s), 0 crash(es)" in log


def test_a_crashing_command_is_restarted_with_backoff(server: GearmanServer, run_manager: Start) -> None:
    manager = run_manager(command_group("bad", [sys.executable, "-c", "raise SystemExit(7)"]))
    manager.wait_log("bad#1: crashed", count=3)
    log = manager.log()
    assert "exit status 7" in log and "restarting in" in log
    assert manager.process.poll() is None


def test_term_lets_the_running_job_finish(server: GearmanServer, run_manager: Start, tmp_path: Path) -> None:
    manager = run_manager(python_group("gated", "gated"))
    manager.wait_workers("gated", 1)
    gate = tmp_path / "gate"
    gate.mkdir()
    results: list[bytes] = []
    client = threading.Thread(target=lambda: results.append(ask(server, "gated", str(gate).encode())))
    client.start()
    wait_until(lambda: (gate / "started").exists(), message="the job to start")
    worker_pid = manager.pid_of("gated#1")

    manager.send(signal.SIGTERM)
    manager.wait_log("stopping: draining 1 process")
    # The worker is finishing its job: neither it nor the manager has gone.
    assert manager.process.poll() is None and os.path.exists(f"/proc/{worker_pid}")
    assert "stopped: pid" not in manager.log()

    (gate / "release").touch()
    client.join(30)
    assert results == [f"finished {worker_pid}".encode()]
    assert manager.wait() == 0
    assert f"gated#1: stopped: pid {worker_pid} ended (exit status 0)" in manager.log()


def test_hup_applies_the_edited_config(server: GearmanServer, run_manager: Start) -> None:
    keep = python_group("keep", "pid")
    manager = run_manager(keep + python_group("rev", "reverse", processes=1))
    manager.wait_workers("rev", 1)
    manager.wait_workers("keep", 1)
    kept = manager.pid_of("keep#1")

    manager.write_config(keep + python_group("rev", "reverse", processes=3))
    manager.send(signal.SIGHUP)
    manager.wait_workers("rev", 3)
    assert "group rev: 1 -> 3 process(es)" in manager.log()

    keep = python_group("keep", "pid", stop_timeout=5)  # changes in place: the process stays
    manager.write_config(keep + python_group("rev", "reverse", processes=1) + python_group("pid2", "pid"))
    manager.send(signal.SIGHUP)
    manager.wait_workers("rev", 1)
    manager.wait_workers("pid2", 1)
    assert "group keep: stop_timeout 30s -> 5s" in manager.log()

    manager.write_config("[groups.broken]\nprocesses = 1\n")
    manager.send(signal.SIGHUP)
    manager.wait_log("reload refused, keeping the running configuration")
    assert ask(server, "rev", b"still") == b"llits"

    manager.write_config(python_group("rev", "reverse", processes=1))
    manager.send(signal.SIGHUP)
    manager.wait_workers("keep", 0)
    manager.wait_workers("pid2", 0)
    assert manager.workers_serving("rev") == 1
    # 'keep' ran untouched through every reload until it was removed.
    assert [pid for slot, pid in manager.started() if slot == "keep#1"] == [kept]


def test_a_changed_group_is_replaced(server: GearmanServer, run_manager: Start) -> None:
    manager = run_manager(python_group("who", "pid"))
    manager.wait_workers("who", 1)
    before = int(ask(server, "who", b""))
    manager.write_config(python_group("who", "pid", concurrency=2))
    manager.send(signal.SIGHUP)
    manager.wait_log("group who: configuration changed")
    manager.wait_log(f"stopped: pid {before}")
    manager.wait_workers("who", 1)
    assert int(ask(server, "who", b"")) != before


def test_recycle_after_n_jobs(server: GearmanServer, run_manager: Start) -> None:
    manager = run_manager(python_group("who", "pid", recycle_jobs=2))
    manager.wait_workers("who", 1)
    pids = [int(ask(server, "who", b"")) for _ in range(6)]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]
    assert len(set(pids)) == 3, pids
    manager.wait_log("starting a fresh one", count=2)
    assert "crashed" not in manager.log()


def test_recycle_after_some_time(server: GearmanServer, run_manager: Start) -> None:
    manager = run_manager(python_group("who", "pid", recycle_seconds=0.5))
    manager.wait_log("who#1: recycling after 0.5s", count=2)
    assert int(ask(server, "who", b"")) in {pid for slot, pid in manager.started() if slot == "who#1"}
    assert "crashed" not in manager.log()
    assert len({pid for slot, pid in manager.started() if slot == "who#1"}) >= 2


def test_a_command_group(server: GearmanServer, run_manager: Start) -> None:
    gearman = [sys.executable, "-m", "geartrain.cli.gearman"]
    manager = run_manager(command_group("wc", [*gearman, "-w", "-f", "wc", "--", "wc", "-l"], processes=2))
    manager.wait_workers("wc", 2)
    assert ask(server, "wc", b"a\nb\nc\n").strip() == b"3"
    os.kill(manager.pid_of("wc#2"), signal.SIGKILL)
    manager.wait_log("wc#2: crashed")
    manager.wait_workers("wc", 2)
    assert ask(server, "wc", b"a\n").strip() == b"1"


def test_an_invalid_config_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[groups.x]\ncallable = "m:f"\nprocesses = "two"\n')
    result = subprocess.run([*GEARTRAIN, "manager", str(path)], capture_output=True, timeout=30)
    assert result.returncode == 2
    expected = f"geartrain manager: {path}: groups.x.processes: must be a whole number, not 'two'\n"
    assert result.stderr.decode() == expected
    checked = subprocess.run([*GEARTRAIN, "manager", "--check", str(path)], capture_output=True, timeout=30)
    assert checked.returncode == 2

    path.write_text('servers = "h:1"\n' + python_group("x", "pid", processes=2, recycle_jobs=9))
    checked = subprocess.run([*GEARTRAIN, "manager", "--check", str(path)], capture_output=True, timeout=30)
    assert (checked.returncode, checked.stdout) == (0, b"x: 2 x jobs:pid -> x (servers h:1, recycle after 9 jobs)\n")


def test_term_drains_a_command_worker(server: GearmanServer, run_manager: Start, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = f"touch {gate}/started; while [ ! -e {gate}/release ]; do sleep 0.02; done; echo done"
    work = [*GEARTRAIN, "work", "--drain", "gatedcmd", "--", "sh", "-c", script]
    manager = run_manager(command_group("cmd", work))
    manager.wait_workers("gatedcmd", 1)
    results: list[bytes] = []
    client = threading.Thread(target=lambda: results.append(ask(server, "gatedcmd", b"")))
    client.start()
    wait_until(lambda: (gate / "started").exists(), message="the job to start")

    manager.send(signal.SIGTERM)
    manager.wait_log("stopping: draining 1 process")
    assert manager.process.poll() is None and "stopped: pid" not in manager.log()
    (gate / "release").touch()
    client.join(30)
    assert results == [b"done\n"]
    assert manager.wait() == 0
    assert "cmd#1: stopped: pid" in manager.log()


def test_a_command_that_exits_at_once_is_paced(server: GearmanServer, run_manager: Start) -> None:
    manager = run_manager(command_group("quick", ["true"]))
    manager.wait_log("times in a row at once; restarting in", count=2)
    assert "crashed" not in manager.log()


def test_workers_do_not_outlive_a_killed_manager(server: GearmanServer, run_manager: Start) -> None:
    gearman = [sys.executable, "-m", "geartrain.cli.gearman"]
    manager = run_manager(python_group("rev", "reverse") + command_group("wc", [*gearman, "-w", "-f", "wc"]))
    manager.wait_workers("rev", 1)
    manager.wait_workers("wc", 1)
    pids = [manager.pid_of("rev#1"), manager.pid_of("wc#1")]
    manager.process.kill()
    manager.wait()
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids), message="the workers to exit")
    manager.wait_workers("rev", 0)


def test_a_second_term_kills_at_once(server: GearmanServer, run_manager: Start, tmp_path: Path) -> None:
    manager = run_manager(python_group("gated", "gated"))
    manager.wait_workers("gated", 1)
    gate = tmp_path / "gate"
    gate.mkdir()
    with SyncClient(server.address) as client:
        client.submit("gated", str(gate).encode(), background=True)
    wait_until(lambda: (gate / "started").exists(), message="the job to start")
    worker_pid = manager.pid_of("gated#1")
    manager.send(signal.SIGTERM)
    manager.wait_log("stopping: draining 1 process")
    manager.send(signal.SIGTERM)
    assert manager.wait() == 0
    assert "SIGTERM received again: killing the remaining processes" in manager.log()
    assert f"stopped: pid {worker_pid} ended (killed by SIGKILL)" in manager.log()
    assert not (gate / "release").exists()


def test_an_async_callable_recycled_after_each_job(server: GearmanServer, run_manager: Start) -> None:
    manager = run_manager(python_group("apid", "async_pid", recycle_jobs=1))
    manager.wait_workers("apid", 1)
    pids = [int(ask(server, "apid", b"")) for _ in range(3)]
    assert len(set(pids)) == 3, pids


def test_every_process_shows_its_group_and_index_as_client_id(server: GearmanServer, run_manager: Start) -> None:
    """docs/manager.md: GROUP-N in the server's workers list, for a Python group (--client-id of the child) and
    for a command group whose command is `geartrain work` or our `gearman -w` (GEARTRAIN_CLIENT_ID)."""
    manager = run_manager(
        python_group("rev", "reverse", processes=2)
        + command_group("wc", [*GEARTRAIN, "work", "--drain", "wc", "--", "wc", "-l"], processes=2)
        + command_group("up", ["gearman", "-w", "-f", "up", "--", "tr", "a-z", "A-Z"], processes=1)
    )
    manager.wait_workers("rev", 2)
    manager.wait_workers("wc", 2)
    manager.wait_workers("up", 1)
    assert manager.client_ids("rev") == ["rev-1", "rev-2"]
    assert manager.client_ids("wc") == ["wc-1", "wc-2"]
    assert manager.client_ids("up") == ["up-1"]
