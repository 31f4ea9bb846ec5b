"""Paper-standard tables: LaTeX booktabs, the best value in bold, fractions in CSV/JSON, words never cut."""

from __future__ import annotations

import json

from prefcli.harness import tables


def _runs():
    def run(name, v, seen, unseen, hist, n_ref):
        acc = lambda x: {"top1": {"value": x, "se": 0.01, "n_tasks": 10, "n_users": 5}}  # noqa: E731
        return {
            "scorer": name,
            "protocol": "1v1",
            "n_ref": n_ref,
            "uses_history": hist,
            "n_tasks": 10,
            "metrics": {"all": acc(v), "seen": acc(seen), "unseen": acc(unseen)},
        }

    return [
        run("clip_x", 0.61, 0.62, 0.60, False, None),
        run("ours", 0.80, 0.84, 0.78, True, 8),
        run("probe", 0.80, 0.70, 0.69, True, 8),
    ]


def test_best_per_column_is_bold_in_latex_markdown_and_ties_share_it():
    t1 = tables.table1(_runs())
    tex = t1.to_latex()
    assert tex.count("\\textbf{80.0 $\\pm$ 1.0}") == 2  # a tie at the shown precision: both bold
    assert "\\textbf{50.0" not in tex  # Random is a reference, never "best"
    assert "clip\\_x" in tex and "\\toprule" in tex and "\\midrule\nRandom" in tex
    assert "Top-1 (\\%) $\\uparrow$" in tex
    t3 = tables.table3(_runs())
    md = t3.to_markdown()
    assert "**1.0 ± 1.4**" in md  # the smallest gap |Δ| ↓ is the best one
    assert "**84.0 ± 1.0**" in md and "**78.0 ± 1.0**" in md and "**60.0" not in md and "**70.0" not in md


def test_machine_readable_tables_hold_fractions_and_null():
    t1 = tables.table1(_runs())
    doc = json.loads(t1.to_json())
    by = {r["scorer"]: r for r in doc["rows"]}
    assert by["clip_x"]["n_ref"] is None and by["ours"]["top1"] == 0.8 and by["Random"]["top1"] == 0.5
    assert next(c for c in doc["columns"] if c["key"] == "top1")["unit"] == "fraction"
    assert "–" not in t1.to_csv()


def test_latex_escape():
    assert tables.latex_escape("a_b & 50% #1 ~x^2 {y} \\ ± |Δ| ↓") == (
        "a\\_b \\& 50\\% \\#1 \\textasciitilde{}x\\textasciicircum{}2 \\{y\\} \\textbackslash{} $\\pm$ \\textbar{}$\\Delta$\\textbar{} $\\downarrow$"
    )


def test_a_table_printed_to_a_pipe_is_never_cut(capsys):
    rows = [{"scorer": "a-very-long-scorer-name-that-does-not-fit", "n_ref": 8, "top1": 0.5, "top1_se": 0.01}]
    t = tables.Table(
        "x", "t", [tables.Column("scorer", "Scorer"), tables.Column("top1", "Top-1 (%) ↑", pm=True, percent=True)], rows
    )
    t.print("table")
    out = capsys.readouterr().out
    assert "a-very-long-scorer-name-that-does-not-fit" in out and "50.0 ± 1.0" in out


def test_a_narrow_terminal_wraps_between_words_never_inside_one(monkeypatch, capsys):
    """On a 30-column terminal the table wraps cells at spaces; a word longer than the room is kept whole."""
    import sys

    from prefcli.output import print_rich_table

    monkeypatch.setenv("COLUMNS", "30")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    words = ["preference-token", "model", "with", "contrastive", "loss"]
    rows = [{"scorer": " ".join(words), "top1": 0.8765, "top1_se": 0.0123}]
    t = tables.Table(
        "x", "t", [tables.Column("scorer", "Scorer"), tables.Column("top1", "Top-1 (%) ↑", pm=True, percent=True)], rows
    )
    print_rich_table(t.rich())
    out = capsys.readouterr().out
    for w in words + ["87.6 ± 1.2"]:
        assert w in out, (w, out)


def test_analyze_help_imports_nothing_heavy():
    import subprocess
    import sys

    probe = (
        "import sys\nfrom prefcli.cli import main\n"
        "for argv in (['analyze', '--help'], ['analyze', 'clusters', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('@@', sorted(m for m in ('torch', 'numpy', 'matplotlib', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "clusters" in out.stdout and out.stdout.rsplit("@@", 1)[1].strip() == "[]"
