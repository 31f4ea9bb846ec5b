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


def _command_names() -> list[str]:
    import typer.main

    from prefcli.cli import app

    return sorted(typer.main.get_command(app).commands)


def test_every_command_has_a_docs_page():
    missing = []
    for name in _command_names():
        if not ((DOCS / "cli" / f"{name}.md").is_file() or (DOCS / f"{name}.md").is_file()):
            missing.append(name)
    assert not missing, f"commands without a page in docs/cli/: {missing}"


def test_docs_index_links_every_page():
    index = (DOCS / "index.md").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if p.name != "index.md"]
    unlinked = [p for p in pages if f"({p})" not in index]
    assert not unlinked, f"docs/index.md does not link {unlinked}"
