"""`--policy-file` read again on SIGHUP (issue 15), on a real server process: the new policies govern the next
failure, the cron entries follow the file, run-time changes stay over it, and a file that does not parse leaves
the policies in force (logged) and the server running."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from test_store_holder import Server

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, wait_until

BEFORE = '[functions.f]\nretries = 0\n[[cron]]\nfunction = "r"\nschedule = "@daily"\n'
AFTER = """
[functions.f]
retries = 1
backoff = "fixed"
backoff_base = "1h"
[[cron]]
function = "s"
schedule = "@hourly"
"""


def fail_one(address: str, unique: bytes) -> bytes:
    with GearmanSocket(address) as client, GearmanSocket(address, timeout=15) as worker:
        client.send(P.SUBMIT_JOB_BG, b"f", unique, b"x")
        handle = client.expect(P.JOB_CREATED).body
        worker.send(P.CAN_DO, b"f")
        assert worker.grab().args[0] == handle
        worker.send(P.WORK_FAIL, handle)
        worker.sync()
    return handle


def policy_of(address: str, function: str) -> dict[str, object]:
    shown = json.loads(admin_raw(address, f"policy show {function}"))
    entry = shown["functions"][function]
    assert isinstance(entry, dict)
    return entry


def cron_functions(address: str) -> list[str]:
    return [line.split("\t")[0] for line in admin_raw(address, "cron list").decode().splitlines() if line != "."]


def hang_up_and_wait(server: Server, log: Path, line: str) -> None:
    seen = log.read_text().count(line)
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: log.read_text().count(line) > seen, timeout=15, message=f"{line!r} in the log")


def test_sighup_reads_the_policy_file_again_and_keeps_the_policies_when_it_is_broken(tmp_path: Path) -> None:
    policy, log = tmp_path / "policy.toml", tmp_path / "server.log"
    policy.write_text(BEFORE)
    server = Server(
        "--store", "memory", "--policy-file", str(policy), "--verbose", "INFO", "--log-file", str(log)
    ).wait_ready()
    try:
        address = server.address
        dead = fail_one(address, b"u1")
        assert admin_raw(address, "dead list").startswith(dead + b"\t")  # retries = 0: dead at once
        assert cron_functions(address) == ["r"]
        assert admin_raw(address, "policy set f timeout=30s") == b"OK\r\n"
        policy.write_text(AFTER)
        hang_up_and_wait(server, log, "life cycle: reloaded")
        in_force = policy_of(address, "f")
        assert in_force["overrides"] == {"timeout": "30s"}  # the run-time change stays over the new file
        assert in_force["policy"]["retries"] == 1  # type: ignore[index]
        assert cron_functions(address) == ["s"]
        retried = fail_one(address, b"u2")
        assert not admin_raw(address, "dead list").startswith(retried)  # waiting out its hour of backoff
        assert admin_raw(address, "dead list").count(b"\n") == 2  # the old dead job and "."
        assert admin_raw(address, "status").startswith(b"f\t1\t0\t")
        policy.write_text('[functions.f]\nretries = "many"\n')
        hang_up_and_wait(server, log, "life cycle: kept the policies in force")
        assert 'functions.f.retries: "many"' in log.read_text()
        assert policy_of(address, "f")["policy"]["retries"] == 1  # type: ignore[index]
        assert cron_functions(address) == ["s"]
        time.sleep(0.2)
        assert server.proc.poll() is None
    finally:
        server.stop()
