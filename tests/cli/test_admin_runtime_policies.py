"""`geartrain admin policy`, `policy-set`, `policy-unset`, `cron-add` and `cron-remove` end to end, against a real
server with a policy file (docs/lifecycle.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import ours, run

from servers import GearmanSocket, PacketType, admin_raw, free_port, wait_until

P = PacketType
POLICY = '[functions.flaky]\nretries = 1\n[[cron]]\nfunction = "report"\nschedule = "@daily"\n'


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    """A geartrain server with a policy file: its Gearman address."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    port = free_port()
    command = [sys.executable, "-m", "geartrain", "server", "--listen", "127.0.0.1", "--port", str(port)]
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [*command, "--store", "memory", "--policy-file", str(policy)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    address = f"127.0.0.1:{port}"

    def up() -> bool:
        if server.poll() is not None:
            raise AssertionError((tmp_path / "server.log").read_text())
        try:
            return admin_raw(address, "version", timeout=1).startswith(b"OK")
        except OSError:
            return False

    try:
        wait_until(up, timeout=30, message="the server to start")
        yield address
    finally:
        server.terminate()
        server.wait(10)


def admin(address: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run([*ours("geartrain"), "admin", "-s", address, *args])


def overrides(address: str, function: str) -> object:
    result = admin(address, "--json", "policy", function)
    assert result.returncode == 0, result
    return json.loads(result.stdout)[0]["result"]["functions"][function]["overrides"]


def test_policy_set_show_and_unset(address: str) -> None:
    result = admin(address, "policy-set", "flaky", "retries=5", "rate=100/s", "backoff_base=1h30m")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"OK\n", b""), result
    assert overrides(address, "flaky") == {"retries": 5, "rate": "100/s", "backoff_base": "1h30m"}
    table = admin(address, "policy").stdout.decode()
    header, defaults, flaky = table.splitlines()[:3]
    assert header.split()[:3] == ["FUNCTION", "RETRIES", "BACKOFF"] and defaults.startswith("(defaults)")
    assert flaky.split()[:4] == ["flaky", "5*", "exponential", "90m*"]  # * : set at run time
    assert admin(address, "policy-unset", "flaky", "rate", "backoff_base").stdout == b"OK\n"
    assert overrides(address, "flaky") == {"retries": 5}
    assert admin(address, "policy-unset", "flaky").stdout == b"OK\n"
    assert overrides(address, "flaky") == {}
    assert admin(address, "policy", "flaky").stdout.decode().splitlines()[2].split()[:2] == ["flaky", "1"]


def test_cron_add_fires_and_cron_remove_removes(address: str) -> None:
    result = admin(address, "cron-add", "tick", "@every 1s", "--payload", "two words", "--priority", "high")
    assert result.returncode == 0 and result.stdout.startswith(b"added; first run: "), result
    assert b"@every 1s" in admin(address, "cron").stdout
    with GearmanSocket(address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"tick")
        worker.send(P.PRE_SLEEP)
        worker.expect(P.NOOP)  # the first firing, a second from now at most
        assert worker.grab().args[1:] == [b"tick", b"two words"]
    added = admin(address, "--json", "cron-add", "nightly", "0 3 * * *", "--timezone", "Europe/Berlin")
    assert isinstance(json.loads(added.stdout)[0]["result"]["next"], int), added
    assert admin(address, "cron-remove", "tick", "@every 1s").stdout == b"removed: 1\n"
    assert admin(address, "cron-remove", "report").stdout == b"removed: 0\n"  # the file's entry stays
    assert admin(address, "cron-remove", "nightly").stdout == b"removed: 1\n"
    functions = [entry["function"] for entry in json.loads(admin(address, "--json", "cron").stdout)[0]["result"]]
    assert functions == ["report"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("policy-set", "flaky", "retries=many"), (b"INVALID_ARGUMENTS", b"retries", b'"many"')),
        (("policy-set", "flaky", "retry=1"), (b"retry",)),
        (("policy-set", "flaky", "retries"), (b"KEY=VALUE",)),
        (("cron-add", "t", "61 * * * *"), (b"schedule",)),
        (("cron-add", "report", "@daily"), (b"policy file",)),
    ],
)
def test_a_bad_value_is_one_line_on_stderr(address: str, args: tuple[str, ...], words: tuple[bytes, ...]) -> None:
    result = admin(address, *args)
    assert result.returncode == 1 and result.stdout == b"", result
    assert result.stderr.count(b"\n") == 1 and all(word in result.stderr for word in words), result.stderr
    assert b"Traceback" not in result.stderr


def test_the_blocking_admin_client_has_the_life_cycle_commands(address: str) -> None:
    """SyncAdminClient: the same life-cycle calls as AdminClient, without await, against the real server."""
    from geartrain import SyncAdminClient

    with SyncAdminClient(address) as sync_admin:
        sync_admin.policy_set("flaky", {"retries": "4", "backoff": "fixed"})
        assert sync_admin.policy_show("flaky")["functions"]["flaky"]["overrides"] == {"retries": 4, "backoff": "fixed"}
        sync_admin.policy_unset("flaky", ["backoff"])
        assert sync_admin.policy_show("flaky")["functions"]["flaky"]["overrides"] == {"retries": 4}
        first = sync_admin.cron_add("nightly", "0 3 * * *", payload="x")
        assert first > 0 and {e["function"] for e in sync_admin.cron_list()} == {"report", "nightly"}
        assert sync_admin.cron_remove("nightly") == 1
        sync_admin.pause("flaky")
        assert sync_admin.paused() == ["flaky"]
        sync_admin.resume("flaky")
        assert sync_admin.paused() == []
        assert sync_admin.dead_list() == [] and sync_admin.dead_retry("all") == 0 and sync_admin.dead_delete("all") == 0
        status = sync_admin.status_json()
        assert status is not None and "totals" in status
