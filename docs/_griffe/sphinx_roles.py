"""A griffe extension for the documentation site: turns the Sphinx roles of geartrain's docstrings into links.

The docstrings write cross-references as Sphinx does (``:class:`~geartrain.errors.JobFailed```, ``:meth:`close```).
mkdocstrings renders Markdown, where those would show as stray text; this rewrites each role into an optional
autorefs reference: a link when the target is documented on the site, plain code when it is not. Loaded by
mkdocs.yml (``extensions``); not part of the package.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from griffe import Alias, Extension, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):`(?P<target>[^`]+)`")


def _target(obj: Object, name: str) -> str:
    """The full path a role's name stands for, looked up from where the docstring is, as Sphinx would: the first
    part in the enclosing scopes (members and imports), then the rest as members; canonical where known."""
    name = name.lstrip(".~")
    first, _, rest = name.partition(".")
    path = name
    scope: Object | None = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:
        try:
            path = scope.resolve(first) + (f".{rest}" if rest else "")
            break
        except Exception:  # not in this scope: try the enclosing one
            scope = scope.parent
    try:
        return obj.modules_collection[path].canonical_path
    except Exception:  # not loaded (another package) or not an object: leave it to autorefs as written
        return path


def _replace(obj: Object, match: re.Match[str]) -> str:
    raw = match["target"]
    explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<name>[^>]+)>", raw)  # :class:`title <path>`
    name = explicit["name"] if explicit else raw
    if explicit:
        title = explicit["title"]
    elif raw.startswith("~"):
        title = raw.rsplit(".", 1)[-1]
    else:
        title = raw.lstrip(".")
    identifier = _target(obj, name)
    return f'<autoref identifier="{escape(identifier)}" optional><code>{escape(title)}</code></autoref>'


class SphinxRoles(Extension):
    """Rewrites ``:role:`target``` in every docstring once the package is loaded."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if isinstance(obj, Alias) or obj.docstring is None:
            return
        obj.docstring.value = ROLE.sub(lambda match: _replace(obj, match), obj.docstring.value)
