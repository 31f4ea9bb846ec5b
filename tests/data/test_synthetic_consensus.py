"""The `consensus` preset, `--shared-taste`, and worlds of 6 and 8 taste groups (issue 21)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_runner import run_cli
from prefcli.data import synthetic as S

SMALL = dict(n_users=12, pairs_per_user=4, image_size=32, n_prompts=4, images_per_prompt=6)


def _cosines(W: np.ndarray) -> np.ndarray:
    U = W / np.linalg.norm(W, axis=1, keepdims=True)
    c = U @ U.T
    return c[np.triu_indices(len(W), 1)]


def test_consensus_is_default_with_more_shared_taste():
    cfg = S.WorldConfig.from_preset("consensus")
    ref = S.WorldConfig.from_preset("default")
    assert cfg.shared_taste == 0.85 and cfg.n_groups == 4
    differing = {k for k, v in cfg.to_dict().items() if v != ref.to_dict()[k]}
    assert differing == {"preset", "shared_taste"}
    # Same seed stream as default: --preset consensus is --preset default --shared-taste 0.85.
    same = S.WorldConfig.from_preset("default", shared_taste=0.85)
    np.testing.assert_allclose(S.group_weight_vectors(cfg), S.group_weight_vectors(same))
    # General taste dominates: the groups' directions are much closer than in default.
    assert _cosines(S.group_weight_vectors(cfg)).mean() > 0.7 > _cosines(S.group_weight_vectors(ref)).mean()


def test_shared_taste_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "w"
    code, _, err = run_cli(
        capsys,
        *[
            "data",
            "synthetic",
            "--out",
            str(out),
            "--users",
            "4",
            "--pairs-per-user",
            "3",
            "--image-size",
            "32",
            "--prompts",
            "4",
            "--images-per-prompt",
            "6",
            "--shared-taste",
            "0.95",
            "--no-progress",
            "--format",
            "json",
        ],
    )
    assert code == 0, err
    world = json.loads((out / "world.json").read_text())
    assert world["config"]["shared_taste"] == 0.95 and world["config"]["preset"] == "default"
    code, _, err = run_cli(capsys, "data", "synthetic", "--out", tmp_path / "bad", "--shared-taste", "1.5")
    assert code == 2 and "shared-taste" in err


def test_consensus_preset_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "c"
    code, _, err = run_cli(
        capsys,
        *[
            "data",
            "synthetic",
            "--out",
            str(out),
            "--preset",
            "consensus",
            "--users",
            "4",
            "--pairs-per-user",
            "3",
            "--image-size",
            "32",
            "--prompts",
            "4",
            "--images-per-prompt",
            "6",
            "--no-progress",
            "--format",
            "json",
        ],
    )
    assert code == 0, err
    world = json.loads((out / "world.json").read_text())
    assert world["config"]["preset"] == "consensus" and world["config"]["shared_taste"] == 0.85


@pytest.mark.parametrize("groups", [6, 8])
@pytest.mark.parametrize("preset", ["default", "consensus"])
def test_worlds_of_many_groups_build(tmp_path, preset, groups):
    cfg = S.WorldConfig.from_preset(preset, n_groups=groups, **SMALL)
    summary = S.write_world(tmp_path, cfg, progress=False)
    assert summary["users"] == 12 and len(summary["users_per_group"]) == groups
    assert sum(summary["users_per_group"]) == 12 and min(summary["users_per_group"]) >= 1
    truth = S.load_truth(tmp_path)
    assert truth.group_weights.shape == (groups, len(S.FEATURE_NAMES))
    assert len(set(truth.user_group.values())) == groups
    # Every group is a distinct taste.
    assert _cosines(truth.group_weights).max() < 0.999
