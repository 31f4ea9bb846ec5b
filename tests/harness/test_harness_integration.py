"""The harness end to end on a real (synthetic) dataset with real tiny scorers."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefcli.cli import app


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory):
    from prefcli.data import pickapic, synthetic

    root = tmp_path_factory.mktemp("harness-world")
    cfg = synthetic.WorldConfig.from_preset(
        "opposed", n_users=24, pairs_per_user=16, image_size=32, n_prompts=6, images_per_prompt=8
    )
    synthetic.write_world(root / "world", cfg, progress=False)
    pickapic.build(
        str(root / "world"),
        root / "ds",
        pickapic.BuildParams(n_ref=4, min_liked=6, test_users=6, val_users=2),
        progress=False,
    )
    return root / "ds"


@pytest.mark.slow  # end to end: `make test-fast` leaves it out, `make test` (CI) runs it
def test_bench_on_synthetic_dataset_with_tiny_scorers_and_cached_rerun(synthetic_dataset, tmp_path):
    pytest.importorskip("open_clip")
    out = tmp_path / "bench"
    args = [
        "bench",
        str(synthetic_dataset),
        "--scorers",
        "clip,aesthetic,clip-probe",
        "--weights",
        "tiny",
        "--n-ref",
        "1,4",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
        "--bootstrap",
        "100",
        "--device",
        "cpu",
    ]
    first = CliRunner().invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    doc = json.loads((out / "results.json").read_text())
    runs = doc["results"]["runs"]
    assert {(r["scorer"], r["protocol"], r["n_ref"]) for r in runs} == {
        ("clip", "1v1", None), ("clip", "1v3", None), ("aesthetic", "1v1", None), ("aesthetic", "1v3", None),
        ("clip-probe", "1v1", 1), ("clip-probe", "1v1", 4), ("clip-probe", "1v3", 1), ("clip-probe", "1v3", 4),
    }  # fmt: skip
    for r in runs:
        assert r["n_tasks"] == 72 and set(r["metrics"]) == {"all", "seen", "unseen"}
        assert 0.0 <= r["metrics"]["all"]["top1"]["value"] <= 1.0
    assert doc["provenance"]["scorers"]["clip"]["weights_id"].startswith("tiny")
    assert doc["provenance"]["dataset"]["name"]
    assert (out / "nref_top1.png").stat().st_size > 1000
    # The rerun is answered from the cache: nothing scored, no model built, same numbers.
    second = CliRunner().invoke(app, args, catch_exceptions=False)
    assert second.exit_code == 0, second.output
    again = json.loads((out / "results.json").read_text())["results"]["runs"]
    assert all(r["stats"]["candidates_scored"] == 0 and not r["stats"]["loaded_model"] for r in again)
    assert [r["metrics"] for r in again] == [r["metrics"] for r in runs]


def test_eval_on_synthetic_dataset(synthetic_dataset, tmp_path):
    pytest.importorskip("open_clip")
    res = CliRunner().invoke(
        app,
        [
            "eval",
            str(synthetic_dataset),
            "--scorer",
            "clip-probe",
            "--weights",
            "tiny",
            "--protocol",
            "1v3",
            "--no-cache",
            "--no-progress",
            "--format",
            "json",
            "--bootstrap",
            "50",
            "--device",
            "cpu",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)["results"]
    assert run["n_ref"] == 4  # the dataset's build N_ref
    from prefcli.data.dataset import Dataset

    histories = {t.history.key() for t in Dataset.open(synthetic_dataset).tasks("test", "1v3", 4)}
    assert run["stats"]["conditioned"] == len(histories) > 1
    assert set(run["metrics"]["all"]) == {"top1", "top2", "top3"}
