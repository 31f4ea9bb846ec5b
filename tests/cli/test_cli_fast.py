"""`prefcli --help` and `prefcli scorers` must not import torch (simonw/llm issues 732, 915; docs/architecture.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "open_clip", "sklearn", "matplotlib", "pyarrow", "timm", "peft", "accelerate")

PROBE = """
import sys, json
from prefcli.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("\\n@@" + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("argv", [["--help"], ["scorers"], ["scorers", "--format", "json"], ["data", "--help"]])
def test_light_commands_import_nothing_heavy(argv):
    env = dict(os.environ, PREFCLI_LOAD_PLUGINS=os.environ.get("PREFCLI_LOAD_PLUGINS", ""))
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    imported = json.loads(out.stdout.rsplit("@@", 1)[1])
    assert imported == [], f"`prefcli {' '.join(argv)}` imported {imported}"


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "prefcli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "scorers" in out.stdout


def _all_commands(cmd, path=()):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _all_commands(sub, path + (name,))


def test_help_texts_lose_nothing_to_rich_markup():
    """--help is rendered as rich markup: '[default: ...]' or '[@rev]' would vanish from it."""
    import typer
    from rich.text import Text

    from prefcli.cli import app

    lost = []
    for path, cmd in _all_commands(typer.main.get_command(app)):
        texts = [("help", cmd.help or "")] + [(p.name, getattr(p, "help", None) or "") for p in cmd.params]
        for where, text in texts:
            if Text.from_markup(text).plain != text:
                lost.append(f"prefcli {' '.join(path)} {where}: {text!r}")
    assert lost == []
