"""Every `.tex` prefcli writes compiles with pdflatex in a plain `article` + `booktabs` (prefcli/latex.py).

The compile tests run where pdflatex is installed (CI: Debian's texlive-latex-base and
texlive-latex-recommended) and skip saying so where it is not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcli import latex
from prefcli.cli import app
from prefcli.harness import tables

PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None, reason="pdflatex is not installed (Debian: texlive-latex-base, texlive-latex-recommended)"
)


def compile_tex(body: str, where: Path) -> str:
    """Compile `body` inside a plain article with booktabs; fail with LaTeX's own error; return the log."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "doc.tex").write_text(latex.DOCUMENT_PREAMBLE + body + latex.DOCUMENT_END, encoding="utf-8")
    res = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
        cwd=where,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    log = (where / "doc.log").read_text(errors="replace") if (where / "doc.log").is_file() else res.stdout
    assert res.returncode == 0 and (where / "doc.pdf").is_file(), log[-3000:]
    # pdflatex drops a glyph its font lacks with only a log line: that is a wrong table too.
    assert "Missing character" not in log, [ln for ln in log.splitlines() if "Missing character" in ln]
    return log


def compile_file(path: Path, tmp_path: Path) -> None:
    """Compile a `.tex` a command wrote (the command tests call this where pdflatex is installed)."""
    compile_tex(path.read_text(encoding="utf-8"), tmp_path / f"tex-{path.stem}")


@pytest.mark.parametrize(
    "text,want",
    [
        ("a_b & 50% #1 $x", r"a\_b \& 50\% \#1 \$x"),
        ("{~^\\}", r"\{\textasciitilde{}\textasciicircum{}\textbackslash{}\}"),
        ("|Δ| ↓", r"\textbar{}$\Delta$\textbar{} $\downarrow$"),
        ("Spearman ρ, Kendall τ", r"Spearman $\rho$, Kendall $\tau$"),
        ("P → ←", r"P $\rightarrow$ $\leftarrow$"),
        ("±·×−≤", r"$\pm \cdot \times - \leq$"),
        ("▁cat", r"\textvisiblespace{}cat"),
        ("▁\n", r"\textvisiblespace{}\textbackslash{}n"),
        ("a\tb\x07\x1b", r"a\textbackslash{}tb\textbackslash{}a\textbackslash{}x1b"),
        ("café", r"caf\'{e}"),
        ("中", r"{[}U+4E2D{]}"),
        ("[1] *", r"{[}1{]} {*}"),
        ("<s>", r"\textless{}s\textgreater{}"),
    ],
)
def test_escape_by_character_class(text, want):
    assert latex.escape(text) == want
    assert latex.escape(text).isascii()


@pytest.mark.parametrize(
    "title,want",
    [
        ("Table 1 · 1-vs-1 top-1 accuracy", "1-vs-1 top-1 accuracy"),
        ("Table 4: HPSv2 of personalized generation", "HPSv2 of personalized generation"),
        ("User clustering", "User clustering"),
    ],
)
def test_caption_does_not_repeat_table_n(title, want):
    assert latex.caption(title) == want


def test_table1_caption_is_not_doubled():
    tex = tables.table1(
        [
            {
                "scorer": "s",
                "protocol": "1v1",
                "n_ref": None,
                "uses_history": False,
                "n_tasks": 2,
                "metrics": {"all": {"top1": {"value": 0.5, "se": 0.1}}},
            }
        ]
    ).to_latex()
    assert "\\caption{1-vs-1 top-1 accuracy}" in tex and "Table 1" not in tex


_HOSTILE = [
    "▁\n",
    "ρ τ Δ Ω λ",
    "→ ⇒ ↦ ↑",
    "| _ % & # $ \\ { } ~ ^",
    "中文 😀 привет",
    "naïve Ł ß",
    "[x] *y <s>",
    "\x00\x1b\u200b",
]


@needs_pdflatex
def test_every_character_class_compiles(tmp_path):
    t = tables.Table(
        "hostile",
        "Table 9 · every class: ρ → ▁",
        [tables.Column("a", "Piece | ρ ↑"), tables.Column("b", "τ")],
        [{"a": s, "b": s[::-1]} for s in _HOSTILE],
        note="→ ▁\n ρ",
    )
    compile_tex(t.to_latex(), tmp_path)


@needs_pdflatex
def test_tokens_tex_with_a_raw_newline_piece_compiles(tmp_path):
    """analyze's table holds vocabulary pieces as they are: '▁\\n' with its raw newline, other scripts."""
    from prefcli.analyze.tokens import tokens_table

    neigh = [
        {"rank": r, "id": r, "piece": p, "text": p, "script": s, "distance": 0.5 + r}
        for r, (p, s) in enumerate([("▁\n", "symbol"), ("中", "cjk"), ("λ", "greek"), ("→", "symbol")], start=1)
    ]
    res = {
        "tokens": [{"index": 0, "norm": 1.0, "neighbours": neigh}],
        "k": 4,
        "dim": 8,
        "scale": {"vocab_nearest_neighbour_median": 0.7},
    }
    compile_tex(tokens_table(res).to_latex(), tmp_path)


@needs_pdflatex
def test_ratings_table_tex_compiles(tmp_path):
    def m(v):
        return {"value": v, "se": 0.01, "n_users": 4}

    runs = [
        {
            "scorer": name,
            "protocol": "rating",
            "n_ref": 16,
            "uses_history": hist,
            "metrics": {
                g: {"spearman": m(0.4), "kendall": m(0.3), "pairwise_accuracy": m(0.6), "mae_calibrated": m(0.8)}
                for g in ("all", "seen", "unseen")
            },
        }
        for name, hist in (("phi_emb", False), ("phi_emb-probe", True))
    ]
    tex = tables.rating_table(runs).to_latex()
    assert "$\\rho$" in tex and "$\\tau$" in tex
    compile_tex(tex, tmp_path)


@needs_pdflatex
def test_bench_writes_tex_files_that_compile(tmp_path, monkeypatch):
    import harness_fakes as fakes
    from prefcli import plugins
    from prefcli.harness import source

    plugins.register_plugin(fakes.MockPlugin(), name="latex-mocks")
    fakes.reset()
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.setattr(source, "open_dataset", lambda path: fakes.FakeDataset())
    (tmp_path / "ds").mkdir()
    try:
        out = tmp_path / "bench"
        res = CliRunner().invoke(
            app,
            [
                "bench",
                str(tmp_path / "ds"),
                "--scorers",
                "mock-free,mock-hist",
                "--n-ref",
                "1,2",
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--no-progress",
                "--bootstrap",
                "20",
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
    finally:
        plugins.unregister_plugin(name="latex-mocks")
        fakes.reset()
    res = CliRunner().invoke(
        app, ["analyze", "history", str(out / "results.json"), "--out", str(out / "analysis")], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    texs = sorted(out.glob("*.tex")) + [out / "analysis" / "history.tex"]
    assert {p.name for p in texs} >= {"tables.tex", "table1_1v1.tex", "table3_seen_unseen.tex", "nref_sweep.tex"}
    for p in texs:
        compile_file(p, tmp_path)


def _table4_data():
    scores = {
        "hpsv2": {arm: {"anime": [0.25, 0.27], "photo": [0.26, 0.3]} for arm in ("unguided", "guided")},
        "imagereward": {arm: {"anime": [-0.5, 0.1], "photo": [0.2, 0.3]} for arm in ("unguided", "guided")},
    }
    return {"styles": ["anime", "photo"], "scores": scores, "n": {"anime": 2, "photo": 2}}


def test_bench_generate_writes_table4_tex(tmp_path):
    from prefcli.generate import bench

    written = bench.write_tables(_table4_data(), tmp_path)
    assert tmp_path / "table4.tex" in written
    tex = (tmp_path / "table4.tex").read_text()
    assert "\\caption{HPSv2 of personalized generation}" in tex and "\\toprule" in tex
    assert "HPSv2 guided $\\uparrow$" in tex and "0.28 $\\pm$ 0.02" in tex  # photo's guided mean ± se


@needs_pdflatex
def test_table4_tex_compiles(tmp_path):
    from prefcli.generate import bench

    bench.write_tables(_table4_data(), tmp_path / "out")
    compile_file(tmp_path / "out" / "table4.tex", tmp_path)
    assert json.loads((tmp_path / "out" / "table4.json").read_text())["results"]["styles"] == ["anime", "photo"]
