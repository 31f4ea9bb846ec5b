"""The scorer contract every registered scorer honours: typed options, and `reward(pixels, prompts, state)`
for each scorer whose spec says `differentiable` (what `prefcli generate` calls).

Each differentiable scorer is built from its tiny random weights; a picture is
given once as a PIL image to `score` and once as a (1, 3, H, W) tensor in
[0, 1] to `reward`, at the model's own input size (so no resampling differs):
the two numbers must agree, and the reward's gradient must reach the pixels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from picture_factory import structured_images
from prefcli import plugins
from prefcli.errors import OptionError
from prefcli.options import Options
from prefcli.types import Candidate, HistoryPair, UserHistory

#: The input resolution of each differentiable scorer's tiny model. A new
#: differentiable scorer must be added here (the first test says so).
INPUT_SIZE = {
    "clip": 32,
    "aesthetic": 32,
    "pickscore": 32,
    "hpsv2": 32,
    "imagereward": 224,
    "viper": 32,
    "idefics": 32,
    "preftoken": 32,
    "hpsv3": 448,
}
PROMPT = "a red fox in the snow"


def _differentiable() -> list[str]:
    return sorted(n for n, s in plugins.scorers().items() if s.differentiable)


def test_every_differentiable_scorer_is_covered():
    assert set(_differentiable()) == set(INPUT_SIZE), "add the scorer's tiny input size to INPUT_SIZE"


def _history(seed: int) -> UserHistory:
    imgs = structured_images([(32, 32)] * 4, seed=seed)
    pairs = [
        HistoryPair(
            liked=Candidate.from_image(imgs[2 * i], prompt=PROMPT),
            disliked=Candidate.from_image(imgs[2 * i + 1], prompt=PROMPT),
            prompt=PROMPT,
        )
        for i in range(2)
    ]
    return UserHistory(pairs=tuple(pairs), user_id="u")


@pytest.mark.parametrize("name", sorted(INPUT_SIZE))
def test_reward_equals_score_and_has_gradients(name):
    import torch

    spec = plugins.get_scorer_spec(name)
    scorer = spec.load("tiny", device="cpu", dtype="fp32")
    size = INPUT_SIZE[name]
    images = structured_images([(size, size), (size, size)], seed=3)
    cands = [Candidate.from_image(im, prompt=PROMPT) for im in images]
    state = scorer.condition(_history(5) if spec.uses_history else None)
    scores = scorer.score(cands, state)

    pixels = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1) for im in images])
    pixels.requires_grad_(True)
    reward = scorer.reward(pixels, PROMPT, state)
    assert tuple(reward.shape) == (2,)
    assert torch.isfinite(reward).all()
    for r, s in zip(reward.detach().tolist(), scores):
        assert math.isclose(r, s, rel_tol=2e-3, abs_tol=2e-4), f"{name}: reward {r} vs score {s}"
    reward.sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all()
    assert pixels.grad.abs().sum() > 0, f"{name}: no gradient reaches the pixels"


def test_a_scorer_without_reward_says_it_is_not_differentiable():
    from prefcli.scorer import Scorer

    with pytest.raises(NotImplementedError, match="not differentiable"):
        Scorer().reward(None)


# -- typed options ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(plugins.scorers()))
def test_every_option_is_typed_and_has_help(name):
    """Options reach a scorer as `self.options` (tests/scorers/test_scorer_init_contract.py checks none is re-declared)."""
    spec = plugins.get_scorer_spec(name)
    assert issubclass(spec.options, Options)
    for f in dataclasses.fields(spec.options):
        assert f.metadata.get("help"), f"{name}: option {f.name} has no help"


def test_options_are_validated_with_the_name_and_the_allowed_values():
    hps = plugins.get_scorer_spec("hpsv2")
    assert hps.parse_options({"version": "v2.0"}).version == "2.0"
    with pytest.raises(OptionError, match=r"version.*allowed: 2\.0, 2\.1"):
        hps.parse_options({"version": "3"})
    with pytest.raises(OptionError, match=r"unknown option 'verison'.*Did you mean 'version'"):
        hps.parse_options({"verison": "2.0"})
    with pytest.raises(OptionError, match=r"batch_size.*expected an integer"):
        hps.parse_options({"batch_size": "many"})
    with pytest.raises(OptionError, match=r"batch_size.*at least 1"):
        hps.parse_options({"batch_size": "0"})
    assert hps.parse_options({"percent": "yes", "batch_size": "8"}).as_kwargs()["percent"] is True
    viper = plugins.get_scorer_spec("viper")
    with pytest.raises(OptionError, match=r"tokenizer.*allowed: tiny, idefics2"):
        viper.parse_options({"tokenizer": "gpt2"})
    probe = plugins.get_scorer_spec("clip-probe")
    assert probe.parse_options({"C": "0.5"}).C == 0.5


def test_the_options_reach_the_scorer():
    s = plugins.load_scorer("hpsv2", weights="tiny", device="cpu", options={"percent": "true", "batch_size": "3"})
    assert s.options.percent is True and s.batch_size == 3 and s.options.batch_size == 3
    assert s.spec.name == "hpsv2"  # the spec is passed in when the scorer is built
    probe = plugins.load_scorer("clip-probe", weights="tiny", device="cpu", C="0.25", batch_size=2)
    assert probe.options.C == 0.25 and probe.base.batch_size == 2
