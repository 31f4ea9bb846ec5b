"""`-o KEY VALUE` on every command that loads a scorer, `--device auto`, `--dtype`, and their one-line errors."""

from __future__ import annotations

import json

import pytest

import harness_fakes as fakes
from cli_runner import run_cli as run
from prefcli.cli.options import join_option_pairs, scorer_options


@pytest.fixture
def mocks(monkeypatch, tmp_path):
    (tmp_path / "ds").mkdir()
    monkeypatch.setenv("PREFCLI_CACHE_DIR", str(tmp_path / "default-cache"))
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "prefcli-cache"))
    with fakes.serving(monkeypatch):
        yield fakes


def test_pairs_are_joined_and_split_again():
    args = join_option_pairs(["rank", "-o", "base", "./b", "--option", "C", "0.5", "--", "-o", "x", "y"])
    assert args[:5] == ["rank", "--option", args[2], "--option", args[4]]
    assert args[5:] == ["--", "-o", "x", "y"]  # nothing after -- is touched
    assert scorer_options([args[2], args[4]]) == {"base": "./b", "C": "0.5"}


def test_eval_passes_options_and_records_them(mocks, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "eval",
        tmp_path / "ds",
        "--scorer",
        "mock-free",
        "-o",
        "batch_size",
        "2",
        "--format",
        "json",
        "--no-progress",
        "--bootstrap",
        "10",
        "--out",
        tmp_path / "r.json",
        "--no-cache",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["provenance"]["config"]["options"] == {"batch_size": 2}
    assert (tmp_path / "r.json").is_file()  # the output file is --out; -o means options


def test_eval_bad_option_is_one_line_naming_it(mocks, tmp_path, capsys):
    code, out, err = run(
        capsys, "eval", tmp_path / "ds", "--scorer", "mock-free", "-o", "batch_sise", "2", "--no-progress"
    )
    assert code == 2
    assert err.strip().count("\n") == 0 and "unknown option 'batch_sise'" in err and "Did you mean 'batch_size'" in err
    code, out, err = run(
        capsys, "eval", tmp_path / "ds", "--scorer", "mock-free", "-o", "batch_size", "lots", "--no-progress"
    )
    assert code == 2 and "batch_size" in err and "expected an integer" in err


def test_bench_scoped_options(mocks, tmp_path, capsys):
    from prefcli.harness.bench import scoped_options

    assert scoped_options({"mock-free.batch_size": "3", "batch_size": "5"}, ["mock-free", "mock-hist"]) == {
        "mock-free": {"batch_size": "3"},
        "mock-hist": {"batch_size": "5"},
    }

    def bench(scorers: str, key: str, *more):
        return run(capsys, "bench", tmp_path / "ds", "--scorers", scorers, "-o", key, "2", "--out", tmp_path / "o",
                   "--no-progress", *more)  # fmt: skip

    code, out, err = bench("mock-free", "clip.batch_size")
    assert code == 2 and "'clip' is not one of the benchmarked scorers" in err
    code, out, err = bench("mock-free,mock-hist", "mock-hist.batch_size", "--bootstrap", "10", "--protocols", "1v1")
    assert code == 0, err
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert doc["provenance"]["config"]["options"] == {"mock-hist": {"batch_size": "2"}}


@pytest.mark.parametrize("command", ["rank", "eval", "bench"])
def test_every_scoring_command_defaults_to_auto_and_has_dtype_and_options(command):
    import inspect

    from prefcli.cli import bench_cmd, eval_cmd, rank

    fn = {"rank": rank.rank_command, "eval": eval_cmd.eval_command, "bench": bench_cmd.bench_command}[command]
    params = inspect.signature(fn).parameters
    assert params["device"].default == "auto"
    assert "dtype" in params and "option" in params


def test_device_errors_are_one_line(capsys, tmp_path):
    import torch

    from prefcli.devices import resolve_device

    assert resolve_device("auto") in ("cuda", "mps", "cpu")
    (tmp_path / "c").mkdir()
    structured = __import__("picture_factory").structured_images([(32, 32)], seed=1)
    structured[0].save(tmp_path / "c" / "a.png")
    rank = ("rank", tmp_path / "c", "--scorer", "clip", "--weights", "tiny", "--prompt", "x")
    code, out, err = run(capsys, *rank, "--device", "bogus")
    assert code == 2 and err.startswith("prefcli: error: --device bogus: not a device") and err.count("\n") == 1
    if not torch.cuda.is_available():
        code, out, err = run(capsys, *rank, "--device", "cuda")
        assert code == 2 and "no CUDA device" in err and err.count("\n") == 1


def test_rank_takes_options_and_dtype(capsys, tmp_path):
    (tmp_path / "c").mkdir()
    for i, im in enumerate(__import__("picture_factory").structured_images([(32, 32)] * 2, seed=2)):
        im.save(tmp_path / "c" / f"{i}.png")
    hpsv2 = ("rank", tmp_path / "c", "--scorer", "hpsv2", "--weights", "tiny", "--prompt", "a fox")
    code, out, err = run(capsys, *hpsv2, "-o", "percent", "true", "--dtype", "fp32", "--format", "json")
    assert code == 0, err
    pct = [r["score"] for r in json.loads(out)["results"]["ranking"]]
    code, out, err = run(capsys, *hpsv2, "--format", "json")
    cos = [r["score"] for r in json.loads(out)["results"]["ranking"]]
    assert pytest.approx(sorted(pct)) == sorted(100 * c for c in cos)
    code, out, err = run(capsys, *hpsv2, "-o", "version", "3")
    assert code == 2 and "version" in err and "allowed: 2.0, 2.1" in err
