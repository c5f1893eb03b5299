"""The manager's configuration: what a valid file gives, and the message each mistake gets."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from geartrain.manager.config import ConfigError, GroupConfig, ManagerConfig, load_config, parse_config
from geartrain.manager.process import launch_spec
from geartrain.manager.programs import own_program

GOOD = """
servers = ["10.0.0.1:4730", "10.0.0.2"]

[manager]
stop_timeout = 12
backoff_initial = 0.25

[groups.rev]
callable = "myapp.jobs:reverse"
functions = ["reverse", "rev2"]
processes = 3
concurrency = 2
recycle_jobs = 100
recycle_seconds = 60.5
env = { MODE = "prod" }

[groups.wc]
command = "gearman -w -f wc -- wc -l"
servers = ["127.0.0.1:4731"]
stop_timeout = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workers.toml"
    path.write_text(text)
    return path


def test_a_complete_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert (config.settings.stop_timeout, config.settings.backoff_initial) == (12.0, 0.25)
    assert config.settings.backoff_max == 30.0  # a default
    rev, wc = config.groups["rev"], config.groups["wc"]
    assert rev.is_python and not wc.is_python
    assert rev.functions == ("reverse", "rev2") and rev.processes == 3 and rev.concurrency == 2
    assert (rev.recycle_jobs, rev.recycle_seconds, rev.stop_timeout) == (100, 60.5, 12.0)
    assert rev.servers == ("10.0.0.1:4730", "10.0.0.2") and rev.env == (("MODE", "prod"),)
    assert wc.command == ("gearman", "-w", "-f", "wc", "--", "wc", "-l")
    assert (wc.servers, wc.processes, wc.stop_timeout) == (("127.0.0.1:4731",), 1, 2.0)


def test_defaults_a_python_group_serves_its_own_name() -> None:
    config = parse_config({"groups": {"resize": {"callable": "imaging:resize"}}})
    assert config.groups["resize"].functions == ("resize",)
    assert config.groups["resize"].servers == ("localhost:4730",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[groups.a]\ncallable = 'm:f'\nproccesses = 2\n", "groups.a.proccesses: unknown key"),
        ("[groups.a]\ncallable = 'm:f'\ncommand = 'x'\n", "groups.a: give either 'callable'"),
        ("[groups.a]\nprocesses = 2\n", "groups.a: give either 'callable'"),
        ("[groups.a]\ncallable = 'm:f'\nprocesses = -1\n", "groups.a.processes: must be at least 0"),
        ("[groups.a]\ncallable = 'm:f'\nprocesses = '2'\n", "groups.a.processes: must be a whole number"),
        ("[groups.a]\ncallable = 'm:f'\nconcurrency = 0\n", "groups.a.concurrency: must be at least 1"),
        ("[groups.a]\ncallable = 'no colon'\n", 'groups.a.callable: must be "package.module:function"'),
        ("[groups.a]\ncallable = 'm:f'\nfunctions = []\n", "groups.a.functions: must be a non-empty list"),
        ("[groups.a]\ncallable = 'm:f'\nfunctions = ['a b']\n", "cannot hold spaces"),
        ("[groups.a]\ncallable = 'm:f'\nenv = { X = 1 }\n", "groups.a.env.X: must be a string"),
        ("[groups.a]\ncallable = 'm:f'\nrecycle_seconds = -5\n", "groups.a.recycle_seconds: must not be negative"),
        ("[groups.a]\ncommand = 'w'\nrecycle_jobs = 5\n", "groups.a.recycle_jobs: only for Python groups"),
        ("[groups.a]\ncommand = ''\n", "groups.a.command: is empty"),
        ("[groups.a]\ncommand = 'a \"b'\n", "groups.a.command: cannot split"),
        ("servers = []\n[groups.a]\ncommand = 'w'\n", "servers: must be a non-empty list"),
        ("servers = ['h:port']\n[groups.a]\ncommand = 'w'\n", "'h:port' is not a valid host:port"),
        ("[manager]\nbackoff_max = 0.1\n[groups.a]\ncommand = 'w'\n", "manager.backoff_max: must not be less"),
        ("[manager]\nretries = 3\n[groups.a]\ncommand = 'w'\n", "manager.retries: unknown key"),
        ("group = 1\n", "group: unknown key (expected one of: groups, manager, servers)"),
        ("servers = ['a:1']\n", "no worker groups"),
        ("[groups\n", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nosuch.toml")


def test_reload_comparison() -> None:
    group = GroupConfig("a", ("h:1",), processes=2, callable="m:f", functions=("a",))
    assert group.updatable_in_place(replace(group, processes=5, stop_timeout=3))
    assert not group.updatable_in_place(replace(group, concurrency=2))
    assert not group.updatable_in_place(replace(group, servers=("h:2",)))
    assert group != replace(group, env=(("X", "1"),))


def test_launch_specs() -> None:
    config = load_config_text(GOOD)
    rev = launch_spec(config.groups["rev"], 2, {"PATH": "/bin", "MODE": "dev"})
    argv = list(rev.argv)
    assert argv[1:3] == ["-m", "geartrain.manager.child"]
    assert argv[argv.index("--callable") + 1] == "myapp.jobs:reverse"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--function"] == ["reverse", "rev2"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--server"] == ["10.0.0.1:4730", "10.0.0.2"]
    assert argv[argv.index("--recycle-jobs") + 1] == "100" and argv[argv.index("--client-id") + 1] == "rev-2"
    assert rev.env["MODE"] == "prod" and rev.env["PATH"] == "/bin"  # the group's env wins over the manager's

    wc = launch_spec(config.groups["wc"], 1, {})
    assert wc.argv == (*own_program("gearman"), "-w", "-f", "wc", "--", "wc", "-l")  # geartrain's, not PATH's
    assert wc.env["GEARMAN_SERVER"] == "127.0.0.1:4731"
    assert (wc.env["GEARTRAIN_WORKER_GROUP"], wc.env["GEARTRAIN_WORKER_INDEX"]) == ("wc", "1")
    assert wc.env["GEARTRAIN_CLIENT_ID"] == "wc-1" and rev.env["GEARTRAIN_CLIENT_ID"] == "rev-2"


def load_config_text(text: str) -> ManagerConfig:
    return parse_config(tomllib.loads(text))


def test_the_example_in_the_docs_is_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "manager.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    config = parse_config(tomllib.loads(example), "docs/manager.md")
    assert set(config.groups) == {"thumbnails", "wc"}
    assert config.groups["wc"].command == ("geartrain", "work", "--drain", "wc", "--", "wc", "-l")
    assert config.groups["thumbnails"].stop_timeout == 120 and config.groups["wc"].stop_timeout == 30
