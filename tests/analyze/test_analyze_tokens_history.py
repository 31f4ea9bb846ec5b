"""`prefcli analyze tokens` and `prefcli analyze history`, on a shipped tiny checkpoint and on bench run records."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli.cli import app

ENVELOPE = {
    "command",
    "prefcli_version",
    "results",
    "scorer",
    "weights",
    "revision",
    "options",
    "skipped",
    "provenance",
}


def invoke(*args, code: int = 0):
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res


@pytest.mark.parametrize(
    "piece,script",
    [
        ("▁cat", "latin"),
        ("中", "cjk"),
        ("▁привет", "cyrillic"),
        ("<0xE4>", "byte"),
        ("12", "symbol"),
        ("カ", "japanese"),
        ("aб", "mixed"),
        ("λ", "greek"),
    ],
)
def test_script_names_non_latin_tokens(piece, script):
    from prefcli.analyze.scripts import display, script_of

    assert script_of(piece) == script
    shown = display(piece, script)
    assert shown.startswith(piece) and (shown.endswith(f"[{script}]") != (script in ("latin", "symbol")))


def test_nearest_tokens_are_the_euclidean_nearest_rows():
    from prefcli.analyze.tokens import nearest_tokens
    from prefcli.train.checkpoint import load_checkpoint

    vlm = load_checkpoint("tiny-opposed-tokens")
    res = nearest_tokens(vlm, k=4)
    E = vlm.text_model.get_input_embeddings().weight.detach().double().numpy()
    P = vlm.pref_tokens.weight.detach().double().numpy()
    special = set(vlm.tokenizer.all_special_ids) | {vlm.image_token_id}
    ok = [i for i in range(len(vlm.tokenizer)) if i not in special]
    assert len(res["tokens"]) == P.shape[0] == 10 and res["dim"] == P.shape[1]
    for t in res["tokens"]:
        d = np.linalg.norm(E[ok] - P[t["index"]], axis=1)
        want = [ok[j] for j in np.argsort(d, kind="stable")[:4]]
        got = [n["id"] for n in t["neighbours"]]
        assert got == want
        assert [n["distance"] for n in t["neighbours"]] == pytest.approx(np.sort(d)[:4], rel=1e-9)
        assert not set(got) & special
    assert res["scale"]["vocab_nearest_neighbour_median"] > 0


def test_tokens_command_writes_table7_and_the_json_shape(tmp_path):
    out = tmp_path / "tok"
    res = invoke(
        "analyze", "tokens", "tiny-opposed-tokens", "--k", "3", "--out", out, "--format", "json", "--no-progress"
    )
    doc = validate(json.loads(res.stdout))
    assert set(doc) == ENVELOPE and doc["scorer"] == "preftoken" and doc["weights"] == "tiny-opposed-tokens"
    assert len(doc["revision"]) == 12 and doc["options"]["k"] == 3
    assert json.loads((out / "tokens.json").read_text())["results"]["k"] == 3
    rows = list(csv.DictReader(io.StringIO((out / "tokens.csv").read_text())))
    assert len(rows) == 30 and {r["rank"] for r in rows} == {"1", "2", "3"}
    md = (out / "tokens.md").read_text()
    assert "| P1 |" in md and "#3 (distance)" in md
    tex = (out / "tokens.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "P10" in tex
    from tests.core.test_latex import PDFLATEX, compile_file

    if PDFLATEX:  # the whole .tex, as written, compiles in a plain article + booktabs
        compile_file(out / "tokens.tex", tmp_path)
    for ext in ("png", "pdf", "svg"):
        assert (out / f"tokens.{ext}").stat().st_size > 1000


def test_tokens_on_a_model_without_tokens_is_one_line(tmp_path):
    from prefcli.cli import main

    with pytest.raises(SystemExit) as e:
        main(["analyze", "tokens", "tiny-opposed-cp", "--out", str(tmp_path / "t"), "--no-progress"])
    assert e.value.code == 2


def _run(scorer, n_ref, all_, seen, unseen, protocol="1v1", hist=True):
    m = lambda v: {"top1": {"value": v, "se": 0.02, "n_tasks": 40, "n_users": 10}}  # noqa: E731
    return {
        "scorer": scorer,
        "protocol": protocol,
        "n_ref": n_ref if hist else None,
        "uses_history": hist,
        "n_candidates": 2,
        "n_tasks": 40,
        "metrics": {"all": m(all_), "seen": m(seen), "unseen": m(unseen)},
    }


def _results(tmp_path, runs):
    p = tmp_path / "results.json"
    p.write_text(json.dumps({"provenance": {"dataset": {"name": "toy"}, "git_commit": "abc"}, "runs": runs}))
    return p


def test_history_command_draws_curves_and_gap_per_nref(tmp_path):
    from PIL import Image

    runs = [_run("probe", n, 0.5 + 0.04 * i, 0.6 + 0.04 * i, 0.5 + 0.03 * i) for i, n in enumerate((1, 2, 4, 8))]
    runs += [_run("ours", n, 0.55 + 0.05 * i, 0.62 + 0.05 * i, 0.58 + 0.05 * i) for i, n in enumerate((1, 2, 4, 8))]
    # Two history-free scorers with the same accuracy: one line naming both.
    runs += [_run("clip", None, 0.52, 0.52, 0.52, hist=False), _run("aesthetic", None, 0.52, 0.52, 0.52, hist=False)]
    out = tmp_path / "h"
    res = invoke("analyze", "history", _results(tmp_path, runs), "--out", out, "--format", "json")
    doc = json.loads(res.stdout)
    assert set(doc) == ENVELOPE and doc["results"]["n_refs"] == [1, 2, 4, 8]
    rows = {(r["scorer"], r["n_ref"]): r for r in doc["results"]["rows"]}
    r = rows[("probe", 4)]
    assert r["gap"] == pytest.approx(abs(0.68 - 0.56)) and r["gap_se"] == pytest.approx(np.hypot(0.02, 0.02))
    assert rows[("clip", None)]["n_ref"] is None and r["top1"] == pytest.approx(0.58)  # fractions, null N_ref
    for stem in ("nref_top1", "seen_unseen_gap"):
        for ext in ("png", "pdf", "svg"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000, f"{stem}.{ext}"
        dpi = Image.open(out / f"{stem}.png").info["dpi"]
        assert dpi[0] == pytest.approx(300, abs=1)
    svg = (out / "nref_top1.svg").read_text()
    assert "clip = aesthetic (no history)" in svg  # equal baselines are one labelled line, not two hidden ones
    csv_text = (out / "history.csv").read_text()
    assert "–" not in csv_text and "0.58" in csv_text
    assert (out / "history.tex").read_text().count("\\\\") >= 10
    from tests.core.test_latex import PDFLATEX, compile_file

    if PDFLATEX:  # the whole .tex, as written, compiles in a plain article + booktabs
        compile_file(out / "history.tex", tmp_path)


def test_history_with_one_nref_says_so_and_bad_input_is_one_line(tmp_path):
    from prefcli.cli import main

    res = invoke("analyze", "history", _results(tmp_path, [_run("ours", 8, 0.7, 0.7, 0.7)]), "--out", tmp_path / "o")
    assert "only N_ref 8 was run" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"runs": 3}')
    for p in (bad, tmp_path / "missing.json"):
        with pytest.raises(SystemExit) as e:
            main(["analyze", "history", str(p), "--out", str(tmp_path / "o2")])
        assert e.value.code == 2
