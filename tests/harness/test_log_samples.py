"""`eval --log-samples` and `bench --log-samples`: one JSON line per task, matching the reported accuracy."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import harness_fakes as fakes
from prefcli import plugins
from prefcli.cli import app
from prefcli.harness import metrics, source


@pytest.fixture
def mocks(monkeypatch, tmp_path):
    plugins.register_plugin(fakes.MockPlugin(), name="harness-mocks-samples")
    fakes.reset()
    (tmp_path / "ds").mkdir()
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.setattr(source, "open_dataset", lambda path: fakes.FakeDataset())
    yield fakes
    plugins.unregister_plugin(name="harness-mocks-samples")
    fakes.reset()


def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_eval_log_samples_is_one_line_per_task_and_agrees_with_the_metric(mocks, tmp_path):
    path = tmp_path / "s" / "samples.jsonl"
    res = invoke(
        "eval",
        tmp_path / "ds",
        "--scorer",
        "mock-free",
        "--protocol",
        "1v3",
        "--no-cache",
        "--no-progress",
        "--bootstrap",
        "10",
        "--format",
        "json",
        "--log-samples",
        path,
    )
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    tasks = fakes.make_tasks(6, 3, "1v3", 8)
    assert len(lines) == len(tasks) == 18
    first = lines[0]
    assert set(first) >= {"task_id", "user_id", "seen", "candidates", "scores", "liked_index", "rank", "hit", "hits"}
    assert first["task_id"] == tasks[0].task_id and first["candidates"] == [c.image_id for c in tasks[0].candidates]
    assert first["scores"] == pytest.approx([fakes.quality(c.image_id) for c in tasks[0].candidates])
    for ln in lines:
        assert ln["rank"] == metrics.liked_rank(ln["scores"], ln["liked_index"]) and ln["hit"] == (ln["rank"] == 1)
        assert set(ln["hits"]) == {"top1", "top2", "top3"}
    doc = json.loads(res.stdout)
    assert {"command", "results", "scorer", "weights", "revision", "options", "skipped", "provenance"} <= set(doc)
    assert doc["command"] == "eval" and doc["revision"] == "mock-w" and doc["options"]["protocol"] == "1v3"
    top1 = doc["results"]["metrics"]["all"]["top1"]["value"]
    assert sum(ln["hit"] for ln in lines) / len(lines) == pytest.approx(top1)


def test_bench_log_samples_writes_one_file_per_run(mocks, tmp_path):
    out = tmp_path / "bench"
    res = invoke(
        "bench",
        tmp_path / "ds",
        "--scorers",
        "mock-free,mock-hist",
        "--n-ref",
        "2,4",
        "--protocols",
        "1v1",
        "--out",
        out,
        "--no-cache",
        "--no-progress",
        "--bootstrap",
        "10",
        "--log-samples",
        "--format",
        "json",
    )
    doc = json.loads(res.stdout)
    assert doc["command"] == "bench" and set(doc["scorers"]) == {"mock-free", "mock-hist"} and doc["skipped"] == []
    assert [t["name"] for t in doc["results"]["tables"]][:1] == ["table1_1v1"] and len(doc["results"]["runs"]) == 3
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert names == ["mock-free_1v1.jsonl", "mock-hist_1v1_nref2.jsonl", "mock-hist_1v1_nref4.jsonl"]
    lines = (out / "samples" / "mock-hist_1v1_nref4.jsonl").read_text().splitlines()
    assert len(lines) == 18 and json.loads(lines[0])["n_ref"] == 4 and json.loads(lines[0])["scorer"] == "mock-hist"
