"""`prefcli bench generate --limit 2`: the paper's table 4 layout with tiny models, resumable.

Layout and scores checked against hpsv2/evaluation.py (hpsv2 1.2.0), cited per test.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")

from typer.testing import CliRunner  # noqa: E402

from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli.cli import app  # noqa: E402
from prefcli.generate import bench  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out, `make test` (CI) runs it


def test_chunked_mean_is_hpsv2s_style_score():
    """hpsv2/evaluation.py line 148: [np.mean(res[i:i+80]) for i in range(0, len(res), 80)], then their mean;
    line 151: the average is the mean over all images."""
    scores = [float(i % 7) for i in range(200)]  # chunks of 80, 80, 40
    want = (sum(scores[:80]) / 80 + sum(scores[80:160]) / 80 + sum(scores[160:]) / 40) / 3
    assert bench.chunked_mean(scores) == pytest.approx(want)
    assert bench.chunked_mean(scores) != pytest.approx(sum(scores) / 200)


def _prompt_folder(tmp_path):
    """The real HPSv2 prompts when ../shared/data is here, else a small stand-in in the same format."""
    from conftest import SHARED_DATA

    real = SHARED_DATA / "hpsv2_benchmark"
    if (real / "photo.json").is_file():
        return real
    d = tmp_path / "prompts"
    d.mkdir()
    for style in ("anime", "concept-art", "paintings", "photo"):
        (d / f"{style}.json").write_text(json.dumps([f"a {style} fox, number {i}" for i in range(3)]))
    return d


def test_bench_generate_limit_2_writes_table4_and_resumes(tmp_path):
    """Images under OUT/<arm>/<style>/<index:05d>.jpg (hpsv2/evaluation.py line 33: f'{idx:05d}.jpg';
    line 128: one folder per style named as its prompt file), history and sidecars beside them."""
    out = tmp_path / "b"
    prompts_dir = _prompt_folder(tmp_path)
    args = [
        "bench",
        "generate",
        "--prompts",
        prompts_dir,
        "--styles",
        "anime,photo",
        "--limit",
        "2",
        "--out",
        out,
        "--model",
        "tiny",
        "--liked-model",
        "tiny:1",
        "--weights",
        "tiny",
        "--weights",
        "preftoken=tiny-opposed-cp",
        "--steps",
        "3",
        "--judges",
        "imagereward",
        "--device",
        "cpu",
        "--format",
        "json",
    ]
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = validate(json.loads(res.stdout))["results"]
    for arm in ("unguided", "guided"):
        assert sorted(p.name for p in (out / arm).iterdir()) == ["anime", "photo"]
        for style in ("anime", "photo"):
            assert sorted(p.name for p in (out / arm / style).iterdir()) == ["00000.jpg", "00001.jpg"]
    hist = out / "history" / "anime" / "00001"
    assert sorted(p.name for p in hist.iterdir()) == sorted(
        [f"{w}-{k}.jpg" for w in ("disliked", "liked") for k in range(3)] + ["history.json"]
    )
    side = json.loads((out / "runs" / "photo" / "00001.json").read_text())
    prompts = json.loads((prompts_dir / "photo.json").read_text())
    assert (
        side["prompt"] == prompts[1] and side["style"] == "photo" and side["index"] == 1 and len(side["history"]) == 3
    )
    assert side["rewards"][0]["name"] == "preftoken" and side["rewards"][0]["weight"] == 0.75
    # Structured rows, one per (style, metric, arm): no keys like "hpsv2 unguided se".
    assert [r["style"] for r in doc["rows"] if (r["metric"], r["arm"]) == ("hpsv2", "guided")] == [
        "anime",
        "photo",
        "average",
    ]
    avg = {(r["metric"], r["arm"]): r for r in doc["rows"] if r["style"] == "average"}
    assert set(avg) == {(m, a) for m in ("hpsv2", "imagereward") for a in ("unguided", "guided")}
    assert (
        avg["hpsv2", "guided"]["n"] == 4
        and avg["hpsv2", "guided"]["se"] is not None
        and avg["imagereward", "guided"]["judge"]
    )
    # The average is the mean over all images; a style's score is its chunk mean.
    table = validate(json.loads((out / "table4.json").read_text()))
    assert table["command"] == "bench generate" and table["results"]["rows"] == doc["rows"]
    all_guided = (
        table["results"]["scores"]["hpsv2"]["guided"]["anime"] + table["results"]["scores"]["hpsv2"]["guided"]["photo"]
    )
    assert avg["hpsv2", "guided"]["value"] == pytest.approx(sum(all_guided) / 4)
    assert (out / "table4.md").read_text().count("|") > 10 and "HPSv2 guided" in (out / "table4.md").read_text()
    assert doc["counts"] == {"liked": 12, "disliked": 12, "optimized": 4, "kept": 0}
    from tests.core.test_latex import PDFLATEX, compile_file

    assert "\\caption{HPSv2 of personalized generation}" in (out / "table4.tex").read_text()
    if PDFLATEX:
        compile_file(out / "table4.tex", tmp_path)

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"]["counts"] == {"liked": 0, "disliked": 0, "optimized": 0, "kept": 4}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == before
    assert json.loads(res.stdout)["results"]["rows"] == doc["rows"]  # same images, same scores


def test_bench_without_generate_is_unchanged():
    res = CliRunner().invoke(app, ["bench", "--help"])
    assert res.exit_code == 0 and "--scorers" in res.output and "bench generate" in res.output
    res = CliRunner().invoke(app, ["bench", "generate", "--help"])
    assert res.exit_code == 0 and "--liked-model" in res.output and "--scorers" not in res.output
