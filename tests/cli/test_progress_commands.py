"""With stderr redirected (a batch log), every long command writes progress lines naming itself and its stage.

Before these went through `prefcli.progress`, `rank`, `generate`, `bench generate`,
`data preferimg` and `data pamela` drew rich bars that print nothing off a terminal.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from prefcli.cli import app


@pytest.fixture
def log_lines(monkeypatch):
    monkeypatch.setenv("PREFCLI_PROGRESS_INTERVAL", "0")
    monkeypatch.delenv("PREFCLI_PROGRESS", raising=False)

    def run(*args) -> tuple[list[str], str]:
        res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert "\r" not in res.stderr and "\x1b[" not in res.stderr  # plain lines, not a redrawn bar
        return res.stderr.splitlines(), res.stdout

    return run


def _progress(lines: list[str], command: str, stage: str) -> list[str]:
    pat = re.compile(rf"^\[{re.escape(command)} \d+/\d+\] {stage}")
    return [ln for ln in lines if pat.match(ln)]


def test_rank_of_60_images_logs_its_scoring_stage(log_lines, tmp_path):
    folder = tmp_path / "cands"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(1, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"c{i:02d}.png")
    lines, out = log_lines(
        "rank", folder, "--scorer", "aesthetic", "--weights", "tiny", "--batch-size", "16", "--format", "csv"
    )
    got = _progress(lines, "rank", "scoring with aesthetic")
    assert got and got[-1].startswith("[rank 60/60] scoring with aesthetic · 100.0%"), lines
    assert len(got) >= 4  # one line per batch of 16 at interval 0, not only the end
    assert len(out.splitlines()) == 61


def test_rank_no_progress_is_quiet(log_lines, tmp_path):
    folder = tmp_path / "cands"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i + 20, 90, 200)).save(folder / f"c{i}.png")
    quiet, _ = log_lines(
        "rank", folder, "--scorer", "aesthetic", "--weights", "tiny", "--no-progress", "--format", "csv"
    )
    loud, _ = log_lines("rank", folder, "--scorer", "aesthetic", "--weights", "tiny", "--format", "csv")
    assert not _progress(quiet, "rank", "scoring") and _progress(loud, "rank", "scoring with aesthetic")


def test_generate_logs_each_iteration_of_each_seed(log_lines, tmp_path):
    pytest.importorskip("diffusers")
    lines, _ = log_lines(
        "generate",
        "a fox",
        "--model",
        "tiny",
        "--reward",
        "clip=1",
        "--weights",
        "tiny",
        "--steps",
        "2",
        "--n",
        "2",
        "--device",
        "cpu",
        "--out",
        tmp_path / "g",
    )
    first, second = _progress(lines, "generate", "optimizing seed 0"), _progress(lines, "generate", "optimizing seed 1")
    assert [ln.split("]")[0] for ln in first] == ["[generate 1/2", "[generate 2/2"], lines
    assert second and "clip " in second[-1] and "loss " in second[-1]
    # the per-seed result line is still there, between the progress lines
    assert any(ln.startswith("seed 0: made ") for ln in lines)


def test_bench_generate_logs_its_phases(log_lines, tmp_path):
    pytest.importorskip("diffusers")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "photo.json").write_text('["a photo of a fox"]')
    lines, _ = log_lines(
        "bench",
        "generate",
        "--prompts",
        prompts,
        "--styles",
        "photo",
        "--limit",
        "1",
        "--out",
        tmp_path / "b",
        "--model",
        "tiny",
        "--liked-model",
        "tiny:1",
        "--reward",
        "clip=1",
        "--weights",
        "tiny",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--format",
        "json",
    )
    for stage in ("making liked history with tiny:1", "making disliked history with tiny", "optimizing tiny images"):
        assert _progress(lines, "bench generate", stage), (stage, lines)


def test_data_preferimg_logs_its_import(log_lines, tmp_path):
    from tests.data.test_preferimg import write_benchmark

    write_benchmark(tmp_path / "PreferImg-Bench")
    lines, _ = log_lines("data", "preferimg", "--source", tmp_path / "PreferImg-Bench", "--out", tmp_path / "ds")
    got = _progress(lines, "data preferimg", "importing TEST_PICKAPIC records")
    assert got and "100.0%" in got[-1], lines


def test_data_pamela_logs_its_import(log_lines, tmp_path):
    log_lines(
        "data",
        "synthetic-ratings",
        "--out",
        tmp_path / "w",
        "--users",
        "8",
        "--ratings-per-user",
        "12",
        "--image-size",
        "16",
    )
    lines, _ = log_lines("data", "pamela", "--source", tmp_path / "w", "--out", tmp_path / "ds", "--n-ref", "4")
    got = _progress(lines, "data pamela", "importing PAMELA images")
    assert got and "100.0%" in got[-1], lines
