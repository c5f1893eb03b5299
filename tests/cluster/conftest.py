"""The cluster tests import their harness (tests/cluster/harness.py) as a module of their own."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
