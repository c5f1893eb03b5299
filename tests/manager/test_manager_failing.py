"""Workers that cannot start: backed off up to a cap, marked FAILING in the log and the status report, and
forgiven once a process stays up."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from managertools import StartManager, python_group

from geartrain.manager.config import ManagerSettings
from geartrain.manager.restarts import FAILING_AFTER, QUICK_EXITS_BEFORE_BACKOFF, RestartPolicy
from servers import GearmanServer

SETTINGS = ManagerSettings(backoff_initial=1.0, backoff_max=8.0, stable_after=10.0)


def delays(log: str, slot: str) -> list[float]:
    """The restart delays logged for ``slot``, oldest first."""
    pattern = rf" {re.escape(slot)}: .*(?:restarting|retrying) in ([\d.]+)s"
    return [float(seconds) for seconds in re.findall(pattern, log)]


# ------------------------------------------------------------------------------------------ the rules alone


def test_crashes_at_start_back_off_to_the_cap_and_mark_the_slot_failing() -> None:
    policy = RestartPolicy(SETTINGS)
    restarts = [policy.ended(3, 0.2, recycled=False, how=f"exit {n}") for n in range(7)]
    assert [r.paced for r in restarts] == [True] * 7
    # 1, 2, 4, 8, 8, ... with up to 20 % jitter either way
    for restart, nominal in zip(restarts, [1, 2, 4, 8, 8, 8, 8], strict=True):
        assert nominal * 0.8 <= restart.delay <= nominal * 1.2
    assert [r.became_failing for r in restarts] == [n == FAILING_AFTER - 1 for n in range(7)]
    assert policy.failing and policy.failures == 7
    assert policy.describe() == "FAILING (7 starts in a row failed; the last: exit 6)"


def test_a_process_that_stays_up_resets_the_backoff_and_the_mark() -> None:
    policy = RestartPolicy(SETTINGS)
    for _ in range(4):
        policy.ended(1, 0.1, recycled=False, how="exit status 1")
    assert policy.failing
    assert policy.stayed_up() is True  # what the slot's timer calls at stable_after
    assert not policy.failing and policy.describe() == ""
    assert policy.stayed_up() is False
    crash = policy.ended(-9, 60.0, recycled=False, how="killed")
    assert 0.8 <= crash.delay <= 1.2 and not crash.became_failing


def test_a_long_run_ending_counts_as_staying_up_even_without_the_timer() -> None:
    policy = RestartPolicy(SETTINGS)
    for _ in range(3):
        policy.ended(1, 0.1, recycled=False, how="exit status 1")
    restart = policy.ended(1, 30.0, recycled=False, how="exit status 1")
    assert restart.recovered and 0.8 <= restart.delay <= 1.2 and not policy.failing


def test_clean_exits_restart_at_once_until_they_come_too_fast() -> None:
    policy = RestartPolicy(SETTINGS)
    assert policy.ended(0, 50.0, recycled=False, how="exit 0").delay == 0.0
    assert policy.ended(143, 5.0, recycled=True, how="recycled").delay == 0.0  # recycled by the clock
    quick = [policy.ended(0, 0.1, recycled=False, how="exit 0") for _ in range(QUICK_EXITS_BEFORE_BACKOFF + 3)]
    assert [r.delay > 0 for r in quick] == [n >= QUICK_EXITS_BEFORE_BACKOFF - 1 for n in range(len(quick))]
    assert policy.failing  # a command that does nothing is a failing one too
    assert policy.ended(0, 2.0, recycled=False, how="exit 0").recovered  # it did its work and exited: healthy


def test_a_program_that_cannot_be_started_counts_as_a_failed_start() -> None:
    policy = RestartPolicy(SETTINGS)
    restarts = [policy.could_not_start("cannot start nope: [Errno 2]") for _ in range(FAILING_AFTER)]
    assert restarts[-1].became_failing and "cannot start nope" in policy.describe()


# ------------------------------------------------------------------------------------------ the real manager


def test_a_callable_that_cannot_be_imported(server: GearmanServer, run_manager: StartManager, tmp_path: Path) -> None:
    manager = run_manager(python_group("broken", "no_such_function"))  # backoff 0.05 doubling up to 0.5
    manager.wait_log("broken#1: crashed: pid", count=5)
    log = manager.log()
    assert "(exit status 3: cannot import jobs:no_such_function) after" in log
    assert log.count("broken#1: FAILING: 3 starts in a row failed or ended within 10s") == 1
    waits = delays(log, "broken#1")
    # The bounds of the 20 % jitter, widened by the log's rounding to hundredths (a 0.3204 s wait reads 0.32,
    # below 0.4 * 0.8 in floating point).
    rounding = 0.005
    assert waits[0] <= 0.05 * 1.2 + rounding and waits[3] >= 0.4 * 0.8 - rounding, waits
    assert max(waits) <= 0.5 * 1.2 + rounding, waits
    errors = (tmp_path / "manager-0.err").read_text()
    assert "broken-1: cannot load jobs:no_such_function: AttributeError" in errors

    report = manager.status("broken#1")
    assert report[0] == "1 group(s), 0 process(es) finishing their job, 1 FAILING"
    assert report[1].startswith("broken#1: FAILING (") and "cannot import jobs:no_such_function" in report[1]


def test_a_failing_command_recovers_once_it_stays_up(
    server: GearmanServer, run_manager: StartManager, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    script = f"test -e {ready} || exit 1; exec sleep 60"
    body = f'[groups.flaky]\ncommand = ["sh", "-c", "{script}"]\n\n[groups.missing]\ncommand = "no-such-worker"\n'
    manager = run_manager(body, stable_after=1.0)
    manager.wait_log("flaky#1: FAILING: 3 starts in a row failed or ended within 1s")
    manager.wait_log("missing#1: FAILING: 3 starts in a row")
    assert "missing#1: cannot start no-such-worker: " in manager.log()
    report = manager.status("flaky#1", "missing#1")
    assert report[0].endswith(", 2 FAILING")
    assert report[1].startswith("flaky#1: FAILING (") and "exit status 1" in report[1]

    ready.touch()
    manager.wait_log("flaky#1: up for 1s: no longer failing")
    report = manager.status("flaky#1", "missing#1")
    assert report[0].endswith(", 1 FAILING")
    assert report[1].startswith(f"flaky#1: pid {manager.pid_of('flaky#1')}, up ")

    # The backoff was reset too: a crash now is restarted after backoff_initial, not the cap.
    crashes = manager.log().count("flaky#1: crashed: pid")
    os.kill(manager.pid_of("flaky#1"), signal.SIGKILL)
    manager.wait_log("flaky#1: crashed: pid", count=crashes + 1)
    crash = manager.log().split("flaky#1: crashed: pid")[-1]
    assert float(re.search(r"restarting in ([\d.]+)s", crash).group(1)) <= 0.05 * 1.2  # type: ignore[union-attr]
