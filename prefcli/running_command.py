"""The CLI command running now, as the user typed it after the program name ("rank", "bench generate").

Progress lines (`[rank 3/60] ...`) and the JSON envelope's "command" both name it; one
reading, here, so they cannot disagree. Kept import-light: click is only read if the CLI
already loaded it, so library use neither imports click nor gets a name it did not run.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Typer 0.2x carries its own copy of click (a separate context stack); older Typer runs on click itself.
_CLICK_GLOBALS = ("typer._click.globals", "click")


def _context() -> Any:
    for name in _CLICK_GLOBALS:
        getter = getattr(sys.modules.get(name), "get_current_context", None)
        ctx = getter(silent=True) if getter is not None else None
        if ctx is not None:
            return ctx
    return None


def _after_program(words: list[str]) -> list[str]:
    """The words of a root context's name after the program ("python -m prefcli bench generate" -> bench generate).

    A root context is named after the program as invoked: "prefcli", a path to it, or
    "python -m prefcli" (click's name when run as a module). A sub-app started by hand with
    its own arguments (`bench generate`, see prefcli.cli.bench_cmd) is a root too, named
    "<program> bench generate".
    """
    for i, w in enumerate(words):
        base = os.path.basename(w)
        if base == "prefcli" or base.startswith("prefcli.") or base == "__main__.py":
            return words[i + 1 :]
    return words[1:]


def current_command() -> str | None:
    """The running command's words after the program ("data info", "bench generate"), or None outside the CLI."""
    ctx = _context()
    if ctx is None:
        return None
    names: list[str] = []
    while ctx.parent is not None:
        if ctx.info_name:
            names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(_after_program((ctx.info_name or "").split()) + names[::-1]) or None
