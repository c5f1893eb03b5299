"""The systemd unit shipped in contrib/ (docs/migration.md installs it): systemd accepts it, and its command line
is one geartrain accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servers import REPO_ROOT

UNIT = REPO_ROOT / "contrib" / "systemd" / "geartrain.service"
INSTALLED = "/opt/geartrain/bin/geartrain"  # where the unit's comments (and docs/migration.md) install it
GEARTRAIN = Path(sys.executable).parent / "geartrain"


def exec_start() -> list[str]:
    lines = [line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1
    return shlex.split(lines[0].removeprefix("ExecStart="))


def test_the_unit_runs_the_installed_server_with_its_queue_in_the_state_directory() -> None:
    command = exec_start()
    assert command[:2] == [INSTALLED, "server"]
    assert "StateDirectory=geartrain" in UNIT.read_text()
    assert command[command.index("--state-dir") + 1] == "/var/lib/geartrain"
    assert "contrib/systemd/geartrain.service" in (REPO_ROOT / "docs" / "migration.md").read_text()


def test_the_units_options_are_ones_geartrain_accepts(tmp_path: Path) -> None:
    command = [word for word in exec_start()[1:] if word != "$GEARTRAIN_OPTS"]
    command[command.index("--state-dir") + 1] = str(tmp_path)
    result = subprocess.run(
        [str(GEARTRAIN), *command, "--check-args"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package): the unit is not verified")
    # verify insists that ExecStart's program exists: point it at this venv's geartrain instead of /opt's.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(GEARTRAIN)))
    result = subprocess.run(
        [tool, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # Unknown keys and bad values are warnings with exit status 0: any output at all fails the test.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr + result.stdout
