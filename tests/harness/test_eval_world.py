"""`prefcli eval` on a synthetic world: group-balanced accuracy, the history swap, the world's references."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefcli.train import pretrained


@pytest.fixture(scope="module")
def new_users(tmp_path_factory):
    """New people of the shipped models' world (same images and tastes, a new user seed, balanced groups)."""
    from prefcli.train.loop import synthetic_dataset

    world = {
        "preset": "opposed",
        "n_users": 16,
        "pairs_per_user": 24,
        "image_size": 32,
        "world_seed": 0,
        "user_seed": 7,
        "group_weights": [0.5, 0.5],
    }
    build = {"n_ref": 8, "val_users": 2, "test_users": 12, "seen_frac": 0.0, "hold_out": "user", "seed": 0}
    return synthetic_dataset(world, build, root=tmp_path_factory.mktemp("newusers"))


def _eval(ds, weights, *extra):
    from prefcli.cli import app

    r = CliRunner().invoke(
        app,
        [
            "eval",
            str(ds),
            "--scorer",
            "preftoken",
            "--weights",
            weights,
            "--no-cache",
            "--no-progress",
            "--bootstrap",
            "10",
            "--format",
            "json",
            *extra,
        ],
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout[r.stdout.index("{") :])["results"]


def test_eval_reports_balanced_swap_and_references(new_users):
    if "tiny-opposed-cp" not in pretrained.names():
        pytest.skip("tiny-opposed-cp is not shipped")
    run = _eval(new_users, "tiny-opposed-cp")
    w = run["world"]
    assert w["reads_history"] is True and run["n_ref"] == 8
    model, swap = w["model"]["unseen"], w["swap"]["unseen"]
    assert model["balanced"] > 0.7 and swap["balanced"] < 0.3  # it reads the history
    refs = w["references"]
    assert refs["user utility"]["unseen"]["balanced"] >= refs["population utility"]["unseen"]["balanced"]
    assert w["gap_fraction"]["unseen"] > 0.5
    # the raw accuracy in `metrics` is the harness's own
    assert run["metrics"]["unseen"]["top1"]["value"] == pytest.approx(model["raw"])


def test_population_model_reads_no_history_and_has_no_swap(new_users):
    if "tiny-opposed-population" not in pretrained.names():
        pytest.skip("tiny-opposed-population is not shipped")
    run = _eval(new_users, "tiny-opposed-population")
    assert run["n_ref"] is None and run["reads_history"] is False
    assert run["world"]["reads_history"] is False and "swap" not in run["world"]
    assert 0.3 < run["world"]["model"]["unseen"]["balanced"] < 0.7  # the average of two opposed tastes


def test_eval_table_shows_the_world(new_users):
    if "tiny-opposed-cp" not in pretrained.names():
        pytest.skip("tiny-opposed-cp is not shipped")
    from prefcli.cli import app

    r = CliRunner().invoke(
        app,
        [
            "eval",
            str(new_users),
            "--scorer",
            "preftoken",
            "--weights",
            "tiny-opposed-cp",
            "--no-cache",
            "--no-progress",
            "--bootstrap",
            "10",
            "--format",
            "markdown",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "history swapped" in r.stdout and "ref: history: Bayes group" in r.stdout and "gap closed" in r.stdout
