"""The README's Python example runs as written (only the port changes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from inprocess import InProcessServer

README = Path(__file__).resolve().parents[2] / "README.md"


def test_python_worker_and_client_from_the_readme(server: InProcessServer) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    worker_code, client_code = (block.replace("127.0.0.1:4730", server.address) for block in blocks[:2])
    assert "SyncWorker" in worker_code and "SyncClient" in client_code
    worker = subprocess.Popen([sys.executable, "-c", worker_code])
    try:
        result = subprocess.run([sys.executable, "-c", client_code], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "b'!dlroW olleH'"
    finally:
        worker.kill()
        worker.wait(10)
