"""What `prefcli train` tells a person: the model folder it wrote, numbers rounded for reading, one name per metric."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from prefcli.cli import app
from tests.train.test_train_loop import config_file, dataset_dir  # noqa: F401 - the tiny world and config fixtures


def _few_digits(s: str) -> bool:
    """A whole number, or at most three significant digits (241, 24.1, 2.41, 0.853): never 241.4054."""
    if "." not in s:
        return re.fullmatch(r"[\d,]+", s) is not None
    return re.fullmatch(r"\d+\.\d+", s) is not None and len(s.replace(".", "").lstrip("0")) <= 3


def _markdown_row(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return dict(zip(head, (c.strip() for c in lines[2].strip("|").split("|"))))


def test_max_steps_summary_names_the_model_folder_and_rounds(tmp_path, dataset_dir, config_file, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PREFCLI_PROGRESS_INTERVAL", "0")
    monkeypatch.delenv("PREFCLI_PROGRESS", raising=False)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(config_file),
            "--data",
            str(dataset_dir),
            "--out",
            str(out),
            "--max-steps",
            "3",
            "--format",
            "markdown",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    row = _markdown_row(r.stdout)
    model = out / "checkpoints" / "step-00000003" / "model"
    assert row["model_dir"] == str(model) and (model / "vlm_spec.json").is_file()
    assert row["stopped_early"] == "yes"
    assert _few_digits(row["pairs_per_s"]), row
    assert re.fullmatch(r"[\d,]+|\d+\.\d", row["seconds"]), row
    assert re.fullmatch(r"0\.\d{3}|1\.000", row["final_val_acc"]), row

    # One name per number: the progress line and the log line say "val top-1" for the same value.
    logged = re.search(r"prefcli: step 3: (val top-1 (\d\.\d{3}), group-balanced \d\.\d{3})", r.stderr)
    assert logged and logged.group(2) == row["final_val_acc"], r.stderr
    bar = [ln for ln in r.stderr.splitlines() if ln.startswith("[train 3/3] training test-tiny (main)")]
    assert bar and logged.group(1) in bar[-1], r.stderr
    assert not re.search(r"\bacc \d", r.stderr)
    assert _few_digits(re.search(r"pairs/s (\S+)", bar[-1]).group(1))


def test_the_json_summary_names_pairs_per_s_as_metrics_jsonl_does(tmp_path):
    from prefcli.train.loop import TrainResult

    row = TrainResult(tmp_path, 3, True, 0.5, 241.4054, 12.0, tmp_path / "m").as_dict()
    assert row["pairs_per_s"] == 241.4054 and "samples_per_s" not in row and row["model_dir"] == str(tmp_path / "m")


def test_dry_run_memory_is_in_tenths_of_a_gib():
    r = CliRunner().invoke(
        app, ["train", "--dry-run", "--config", "preftoken-idefics2-8b", "--format", "markdown"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    table = r.stdout[r.stdout.index("estimated GPU memory") :]
    cells = {
        c[0].strip(): c[1].strip() for c in (ln.strip("|").split("|") for ln in table.splitlines()[3:]) if len(c) == 2
    }
    assert re.fullmatch(r"\d+\.\d", cells["total"]), cells  # 25.0, not 25.0000
    seq = next(v for k, v in cells.items() if k.startswith("sequence tokens"))
    assert re.fullmatch(r"[\d,]+ tokens", seq), cells
