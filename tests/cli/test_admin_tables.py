"""`geartrain admin`: aligned tables with headers by default, and --json on every subcommand."""

from __future__ import annotations

import json

from clitools import ours, run

from servers import GearmanServer, GearmanSocket, PacketType


def admin(server: GearmanServer, *args: str) -> tuple[int, str]:
    result = run([*ours("geartrain"), "admin", "-s", server.address, *args])
    return result.returncode, result.stdout.decode()


def columns(line: str, header: str) -> dict[str, str]:
    """Cut a table line at the header's column starts (names are single words in these tables)."""
    starts = [header.index(name) for name in header.split()]
    ends = [*starts[1:], None]
    return {name: line[start:end].strip() for name, start, end in zip(header.split(), starts, ends, strict=True)}


def test_status_is_an_aligned_sorted_table(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client:
        for name, count in (("zeta", 1), ("alpha", 12), ("mid", 3)):
            for n in range(count):
                client.submit(name, str(n).encode(), ptype=PacketType.SUBMIT_JOB_BG)
        status, text = admin(gearman_server, "status")
    assert status == 0
    header, *lines = text.splitlines()
    assert header.split() == ["FUNCTION", "TOTAL", "RUNNING", "QUEUED", "WORKERS"]
    assert [line.split()[0] for line in lines] == ["alpha", "mid", "zeta"]
    # Numbers are right-aligned under their header: every row ends where the header ends.
    assert all(len(line) == len(header) for line in lines), text
    assert columns(lines[0], header) == {"FUNCTION": "alpha", "TOTAL": "12", "RUNNING": "0", "QUEUED": "12",
                                         "WORKERS": "0"}  # fmt: skip

    _, priorities = admin(gearman_server, "priority-status")
    assert priorities.splitlines()[0].split() == ["FUNCTION", "HIGH", "NORMAL", "LOW", "WORKERS"]
    _, jobs = admin(gearman_server, "jobs")
    assert jobs.splitlines()[0].split() == ["HANDLE", "RETRIES", "IGNORED", "STORED"]
    assert len(jobs.splitlines()) == 1 + 16


def test_empty_listings_still_have_their_header(gearman_server: GearmanServer) -> None:
    assert admin(gearman_server, "unique-jobs") == (0, "UNIQUE\n")
    assert admin(gearman_server, "jobs") == (0, "HANDLE  RETRIES  IGNORED  STORED\n")


def test_every_subcommand_speaks_json(gearman_server: GearmanServer) -> None:
    commands = [
        ["status"],
        ["priority-status"],
        ["workers"],
        ["jobs"],
        ["unique-jobs"],
        ["version"],
        ["verbose"],
        ["getpid"],
        ["create-function", "made"],
        ["maxqueue", "made", "5"],
        ["cancel", "H:none:1"],
        ["drop-function", "made"],
    ]
    for command in commands:
        for placement in (["--json", *command], [*command, "--json"]):
            status, text = admin(gearman_server, *placement)
            (entry,) = json.loads(text)
            assert entry["server"] == gearman_server.address, (placement, text)
            assert "result" in entry, (placement, text)
            if command[0] != "cancel":
                assert status == 0 and "error" not in entry, (placement, text)
            if command[0] == "drop-function":
                admin(gearman_server, "create-function", "made")  # for the second placement
    status, text = admin(gearman_server, "--json", "cancel", "H:none:1")
    assert (status, json.loads(text)[0]["result"]) == (1, {"H:none:1": False})
