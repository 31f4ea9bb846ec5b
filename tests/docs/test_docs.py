"""Docs that tests keep honest (datasette's habit): every hook is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

from prefcli import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"


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


def test_every_scorer_spec_field_is_documented():
    import dataclasses

    from prefcli.scorer import ScorerSpec

    text = (DOCS / "plugins.md").read_text()
    for f in dataclasses.fields(ScorerSpec):
        assert f"`{f.name}`" in text, f"docs/plugins.md does not describe ScorerSpec.{f.name}"


def test_the_plugin_example_in_the_docs_runs(tmp_path):
    """The two code blocks of docs/plugins.md, registered in-process, rank real pictures with -o."""
    import re
    import sys
    import types

    from prefcli import plugins
    from prefcli.types import Candidate

    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "plugins.md").read_text(), re.S)
    pkg, model = types.ModuleType("my_scorer"), types.ModuleType("my_scorer.model")
    sys.modules["my_scorer"], sys.modules["my_scorer.model"] = pkg, model
    try:
        exec(compile(blocks[0], "plugins.md", "exec"), pkg.__dict__)
        exec(compile(blocks[1], "plugins.md", "exec"), model.__dict__)
        plugins.register_plugin(pkg, name="docs-example")
        scorer = plugins.load_scorer("sharpness", device="cpu", options={"grey": "false"})
        from picture_factory import structured_images

        vals = scorer.score([Candidate.from_image(im) for im in structured_images([(16, 16)] * 2, seed=1)])
        assert len(vals) == 2 and scorer.options.grey is False
    finally:
        plugins.unregister_plugin(name="docs-example")
        sys.modules.pop("my_scorer", None)
        sys.modules.pop("my_scorer.model", None)
