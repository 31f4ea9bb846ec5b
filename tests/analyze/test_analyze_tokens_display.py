"""`analyze tokens` shows vocabulary pieces so a table stays a table: control characters escaped, non-Latin pieces marked."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefcli.analyze.scripts import display, script_of, visible
from prefcli.cli import app


@pytest.mark.parametrize(
    "piece,text,script,shown",
    [
        ("▁\n", "\n", "control", "▁\\n [control]"),  # Mistral's piece 13 (newline after a space)
        ("\t", "\t", "control", "\\t [control]"),
        ("▁привет", "привет", "cyrillic", "▁привет [cyrillic]"),  # the docs' examples, as documented
        ("中", "中", "cjk", "中 [cjk]"),
        ("<0xE4>", "\ufffd", "byte", "<0xE4> [byte]"),
        ("▁cat", "cat", "latin", "cat"),
        ("▁12", "12", "symbol", "12"),
    ],
)
def test_display_escapes_controls_and_marks_non_latin_pieces(piece, text, script, shown):
    assert script_of(piece) == script
    assert display(text.strip() or piece, script, piece) == shown
    assert "\n" not in shown and "\t" not in shown


def test_visible_escapes_only_control_characters():
    assert visible("a\nb\x07c\u2028d") == "a\\nb\\x07c\\u2028d"
    assert visible("▁привет \\ | ~") == "▁привет \\ | ~"


def test_tokens_markdown_rows_survive_a_newline_piece(tmp_path):
    """The tiny checkpoint's P5 has the piece '▁\\n' among its nearest three: its Markdown row must stay one line."""
    out = tmp_path / "tok"
    res = CliRunner().invoke(
        app,
        ["analyze", "tokens", "tiny-opposed-tokens", "--k", "3", "--out", str(out), "--no-progress"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "tokens.json").read_text())
    pieces = [n["piece"] for t in doc["results"]["tokens"] for n in t["neighbours"]]
    assert "▁\n" in pieces  # the raw piece stays in the JSON (and the CSV): data, not display
    rows = [ln for ln in (out / "tokens.md").read_text().splitlines() if ln.startswith("|")]
    assert len(rows) == 2 + len(doc["results"]["tokens"])
    assert all(ln.endswith("|") for ln in rows)
    assert any("▁\\n [control]" in ln for ln in rows)
    terminal = [ln for ln in res.stdout.splitlines() if "P5" in ln]
    assert len(terminal) == 1 and "▁\\n [control]" in terminal[0]
