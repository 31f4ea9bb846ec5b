"""Docs that tests keep honest (datasette's habit): every hook is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

from prefcli import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_hook_is_documented_with_its_signature():
    text = (DOCS / "plugins.md").read_text()
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("register_"):
            continue
        signature = f"{name}{inspect.signature(fn)}"
        assert f"### {signature}" in text, f"docs/plugins.md lacks a section '### {signature}'"
