"""`blend` as a `generate` reward (issue 21): z(general) + w·z(personal) with gradients, w fixed from the
history, the same number a ranking gives; a clear one-line error when a part is not differentiable."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

import generate_fakes as fakes  # noqa: E402
from cli_runner import one_error_line, run_cli  # noqa: E402
from prefcli import plugins  # noqa: E402
from prefcli.types import Candidate  # noqa: E402
from prefcli_blend import weighting  # noqa: E402


@pytest.fixture
def colours():
    plugins.register_plugin(fakes.ColourPlugin(), name="colour-scorers")
    fakes.CALLS.clear()
    yield fakes
    plugins.unregister_plugin(name="colour-scorers")


def _folders(root, liked, disliked):
    for sub, cols in (("liked", liked), ("disliked", disliked)):
        (root / sub).mkdir(parents=True)
        for k, c in enumerate(cols):
            Image.new("RGB", (16, 16), c).save(root / sub / f"{k}.png")
    return root / "liked", root / "disliked"


def _history(tmp_path):
    from prefcli.data.folders import history_from_folders

    # Three pairs, liked greenish, disliked reddish: the general part (red) is wrong on every pair,
    # the personal one (taste, from the other pairs) right, so this person's w leans personal.
    liked, disliked = _folders(
        tmp_path, [(40, 200, 30), (60, 180, 90), (20, 160, 60)], [(200, 40, 30), (180, 70, 60), (220, 90, 40)]
    )
    return history_from_folders(liked, disliked)[0], liked, disliked


def test_reward_is_the_rankings_score_with_gradients(colours, tmp_path):
    history, _, _ = _history(tmp_path)
    blend = plugins.load_scorer("blend", device="cpu", general="red", personal="taste")
    state = blend.condition(history)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(30, 230, (16, 16, 3), dtype=np.uint8)) for _ in range(3)]
    pixels = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1) for im in images])
    pixels.requires_grad_(True)

    reward = blend.reward(pixels, ["p"] * 3, state)
    ranked = blend.score([Candidate.from_image(im, prompt="p") for im in images], state)
    np.testing.assert_allclose(reward.detach().numpy(), ranked, rtol=1e-5, atol=1e-5)

    # The formula, from the parts alone: the pools are the general part's scores of the history images and the
    # personal part's scores of each pair conditioned on the other pairs; w is the history's (leave-one-out, shrunk).
    ev = blend.evidence(history)
    assert ev.loo_pairs == 3 and ev.loo_general == 0.0 and ev.loo_personal == 1.0 and ev.weight > weighting.GRID[4]
    red, taste = fakes.Red(), fakes.Taste()
    images_h = [im for p in history.pairs for im in (p.liked, p.disliked)]
    g_hist = red.score(images_h)
    p_hist = []
    for i, p in enumerate(history.pairs):
        rest = type(history)(pairs=tuple(q for j, q in enumerate(history.pairs) if j != i))
        p_hist += taste.score([p.liked, p.disliked], taste.condition(rest))
    g = fakes.redness(pixels.detach()).numpy()
    pr = (pixels.detach().mean(dim=(2, 3)) @ taste.condition(history)).numpy()
    expected, _, _ = weighting.combine(g, pr, ev.weight, g_hist, p_hist)
    np.testing.assert_allclose(reward.detach().numpy(), expected, rtol=1e-5, atol=1e-5)

    reward.sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0
    # Once per history: a second reward call conditions nothing again.
    before = fakes.CALLS["taste.condition"]
    blend.reward(pixels.detach(), ["p"] * 3, state)
    assert fakes.CALLS["taste.condition"] == before


def test_one_image_keeps_a_scale(colours, tmp_path):
    history, _, _ = _history(tmp_path)
    blend = plugins.load_scorer("blend", device="cpu", general="red", personal="taste")
    px = torch.full((1, 3, 8, 8), 0.5)
    px[:, 1] = 0.9  # green: what this person's history likes
    px.requires_grad_(True)
    r = blend.reward(px, ["p"], blend.condition(history))
    assert r.shape == (1,) and float(r) != 0.0
    r.sum().backward()
    assert float(px.grad.abs().sum()) > 0


def test_generate_steers_toward_the_blend(colours, tmp_path):
    from prefcli.generate.pipelines import load_generator
    from prefcli.generate.run import GenerateConfig, generate

    _, liked, disliked = _history(tmp_path / "h")
    cfg = GenerateConfig(
        "a fox",
        model="tiny",
        rewards=[("blend", 10.0)],
        steps=4,
        out=str(tmp_path / "out"),
        likes=str(liked),
        dislikes=str(disliked),
        options={"blend": {"general": "red", "personal": "taste"}},
    )
    rec = generate(cfg, generator=load_generator("tiny", device="cpu"))[0]
    assert rec["final"]["rewards"]["blend"] > rec["unguided"]["rewards"]["blend"]
    assert fakes.CALLS["taste.condition"] <= 1 + 3 + 1  # the full history, each leave-one-out, the reward's state: once


@pytest.mark.parametrize(
    "opts, needle",
    [
        (["-o", "blend.general", "red"], "its personal part clip-probe is not differentiable"),
        (
            ["-o", "blend.general", "green", "-o", "blend.personal", "taste"],
            "its general part green is not differentiable",
        ),
    ],
)
def test_a_part_that_is_not_differentiable_is_one_line(colours, tmp_path, capsys, opts, needle):
    _, liked, disliked = _history(tmp_path / "h")
    code, _, err = run_cli(
        capsys,
        "generate",
        "p",
        "--model",
        "tiny",
        "--out",
        tmp_path / "o",
        "--reward",
        "blend=1",
        "--likes",
        liked,
        "--dislikes",
        disliked,
        *opts,
    )
    one_error_line(code, err, needle, "-o blend.")
    assert not (tmp_path / "o").exists()


def test_tiny_models_as_parts(tmp_path):
    """aesthetic (general) and the preference-token model (personal), both tiny random models, both differentiable."""
    from prefcli.data.folders import history_from_folders

    liked, disliked = _folders(tmp_path, [(40, 200, 30), (60, 180, 90)], [(200, 40, 30), (180, 70, 60)])
    history = history_from_folders(liked, disliked)[0]
    blend = plugins.load_scorer("blend", "tiny", device="cpu", general="aesthetic", personal="preftoken")
    blend.check_reward()
    px = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    px.requires_grad_(True)
    r = blend.reward(px, ["a fox"] * 2, blend.condition(history))
    assert r.shape == (2,) and torch.isfinite(r).all()
    r.sum().backward()
    assert float(px.grad.abs().sum()) > 0
