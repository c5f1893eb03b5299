"""The files beside the code that mkdocs does not build: README's links lead somewhere, the licence is the one
pyproject names. (docs/ itself is checked by `make docs`: mkdocs build --strict fails on a broken link.)"""

from __future__ import annotations

import re
import tomllib

from servers import REPO_ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_links_point_at_files_of_the_repository() -> None:
    targets = {target for target in LINK.findall((REPO_ROOT / "README.md").read_text()) if "://" not in target}
    assert {"docs/migration.md", "docs/troubleshooting.md", "LICENSE"} <= targets
    missing = sorted(target for target in targets if not (REPO_ROOT / target).exists())
    assert not missing, missing


def test_the_licence_file_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "the geartrain authors" in text
