"""`prefcli eval` and `prefcli bench` through the CLI, on in-memory tasks and mock scorers."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

import harness_fakes as fakes
from prefcli import plugins
from prefcli.cli import app
from prefcli.harness import metrics, source


@pytest.fixture
def mocks(monkeypatch, tmp_path):
    plugin = fakes.MockPlugin()
    plugins.register_plugin(plugin, name="harness-mocks")
    fakes.reset()
    (tmp_path / "ds").mkdir()
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "default-cache"))  # never the user's cache
    monkeypatch.setattr(source, "open_dataset", lambda path: fakes.FakeDataset())
    yield fakes
    plugins.unregister_plugin(name="harness-mocks")
    fakes.reset()


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_eval_json_and_out_file(mocks, tmp_path):
    out = tmp_path / "r.json"
    res = invoke(
        "eval",
        tmp_path / "ds",
        "--scorer",
        "mock-free",
        "--protocol",
        "1v3",
        "--format",
        "json",
        "--out",
        out,
        "--cache-dir",
        tmp_path / "cache",
        "--no-progress",
        "--bootstrap",
        "100",
    )
    doc = json.loads(res.stdout)
    tasks = fakes.make_tasks(6, 3, "1v3", 8)
    want = sum(
        metrics.liked_rank([fakes.quality(c.image_id) for c in t.candidates], t.liked_index) == 1 for t in tasks
    ) / len(tasks)
    assert doc["results"]["metrics"]["all"]["top1"]["value"] == pytest.approx(want)
    assert set(doc["results"]["metrics"]) == {"all", "seen", "unseen"}
    assert set(doc["results"]["metrics"]["all"]) == {"top1", "top2", "top3"}
    assert doc["provenance"]["seeds"] == {"bootstrap": 0}
    assert doc["provenance"]["scorers"]["mock-free"]["weights_id"] == "mock-w"
    saved = json.loads(out.read_text())
    assert len(saved["results"]["tasks"]) == 18 and saved["provenance"]["dataset"]["name"] == "fake"
    assert "prefcli" in saved["provenance"]["versions"]


def test_eval_table_and_csv(mocks, tmp_path):
    res = invoke("eval", tmp_path / "ds", "--scorer", "mock-hist", "--n-ref", "2", "--no-cache", "--no-progress")
    assert "Top-1 (%) ↑" in res.stdout and "±" in res.stdout and "unseen" in res.stdout
    res = invoke(
        "eval",
        tmp_path / "ds",
        "--scorer",
        "mock-hist",
        "--n-ref",
        "2",
        "--no-cache",
        "--no-progress",
        "--format",
        "csv",
    )
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["group"] for r in rows] == ["all", "seen", "unseen"]
    assert float(rows[0]["top1"]) >= 0 and rows[0]["n_tasks"] == "18"


def test_eval_unknown_scorer_is_a_one_line_error(mocks, tmp_path):
    from prefcli.cli import main

    with pytest.raises(SystemExit) as e:
        main(["eval", str(tmp_path / "ds"), "--scorer", "mock-fre", "--no-progress"])
    assert e.value.code == 2


def test_bench_writes_every_table_plot_and_provenance(mocks, tmp_path):
    out = tmp_path / "bench"
    args = [
        "bench",
        tmp_path / "ds",
        "--scorers",
        "mock-free,mock-hist,mock-emb-probe",
        "--weights",
        "w1",
        "--weights",
        "mock-hist=w2",
        "--n-ref",
        "1,2,4",
        "--out",
        out,
        "--cache-dir",
        tmp_path / "cache",
        "--no-progress",
        "--bootstrap",
        "50",
    ]
    res = invoke(*args)
    for name in ("table1_1v1", "table2_1v3", "table3_seen_unseen", "nref_sweep"):
        for ext in ("md", "tex", "csv", "json"):
            assert (out / f"{name}.{ext}").is_file(), f"{name}.{ext} missing"
    assert (out / "nref_top1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "nref_top1.pdf").read_bytes()[:5] == b"%PDF-" and b"<svg" in (out / "nref_top1.svg").read_bytes()
    assert "\\toprule" in (out / "table1_1v1.tex").read_text() and (out / "tables.tex").is_file()
    # Machine-readable tables: accuracies as fractions, a missing N_ref as null / empty, never "–".
    t2 = json.loads((out / "table2_1v3.json").read_text())
    random_row = next(r for r in t2["rows"] if r["scorer"] == "Random")
    assert [random_row[f"top{k}"] for k in (1, 2, 3)] == [0.25, 0.5, 0.75] and random_row["n_ref"] is None
    t1 = list(csv.DictReader(io.StringIO((out / "table1_1v1.csv").read_text())))
    by = {r["scorer"]: r for r in t1}
    assert by["mock-free"]["n_ref"] == "" and by["mock-hist"]["n_ref"] == "4" and by["Random"]["top1"] == "0.5"
    assert "–" not in (out / "table1_1v1.csv").read_text() + (out / "table1_1v1.json").read_text()
    assert "| – |" in (out / "table1_1v1.md").read_text() and "| 50.0 |" in (out / "table1_1v1.md").read_text()
    assert "↑" in (out / "table1_1v1.md").read_text() and "\\|Δ\\| ↓" in (out / "table3_seen_unseen.md").read_text()
    doc = json.loads((out / "results.json").read_text())
    prov = doc["provenance"]
    assert prov["scorers"]["mock-free"]["weights"] == "w1" and prov["scorers"]["mock-hist"]["weights"] == "w2"
    assert prov["scorers"]["mock-emb-probe"]["weights_id"] == "w1"
    assert prov["config"]["n_refs"] == [1, 2, 4] and prov["seeds"] == {"bootstrap": 0}
    assert {"versions", "git_commit", "dataset", "python"} <= set(prov)
    # history-free: once per protocol; history-conditioned: per protocol and N_ref.
    assert len(doc["results"]["runs"]) == 2 + 2 * 3 * 2
    assert "Table 2" in res.stdout and "Random" in res.stdout
    # A rerun recomputes nothing and loads no model.
    fakes.reset()
    invoke(*args)
    assert fakes.CALLS["mock-free.score"] == fakes.CALLS["mock-hist.score"] == fakes.CALLS["mock-emb.embed"] == 0
    doc2 = json.loads((out / "results.json").read_text())
    assert [r["metrics"] for r in doc2["results"]["runs"]] == [r["metrics"] for r in doc["results"]["runs"]]
    assert all(not r["stats"]["loaded_model"] for r in doc2["results"]["runs"])


def test_bench_rejects_weights_for_an_unbenchmarked_scorer(mocks, tmp_path):
    from prefcli.cli import main

    with pytest.raises(SystemExit) as e:
        main(
            [
                "bench",
                str(tmp_path / "ds"),
                "--scorers",
                "mock-free",
                "--weights",
                "clip=tiny",
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
    assert e.value.code == 2


@pytest.mark.parametrize("command", ["eval", "bench"])
def test_help_imports_nothing_heavy(command):
    import subprocess
    import sys

    probe = (
        "import sys\nfrom prefcli.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print('@@', sorted(m for m in ('torch', 'numpy', 'matplotlib', 'sklearn', 'pyarrow', 'accelerate') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Examples" in out.stdout
    assert out.stdout.rsplit("@@", 1)[1].strip() == "[]"
