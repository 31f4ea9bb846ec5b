"""`hpsv3` against upstream's own `HPSv3RewardInferencer`, run on the same tiny checkpoint.

Upstream is the hpsv3 1.0.0 wheel, run unmodified under the transformers
4.45.2 it pins, in a subprocess (tests/reference/hpsv3_inferencer.py says how
it is installed and which imports are shimmed, none on the inference path).
Both sides load the very file `prefcli_hpsv3.tiny` writes in the official
format (HPSv3.safetensors, loaded strictly by upstream: inference.py line 48)
and score square, non-square, palette (two with a transparent entry) and RGBA
files from tests/reference/parity_images.py, with a short and a long prompt,
upstream reading the files from paths as its users do (inference.py lines
97-137). What is compared, in float32 on the CPU:

- the token ids and attention mask of `prepare_batch` (the chat template, the
  instruction, `<|Reward|>`, the image placeholders, right padding): equal;
- the pixel patches: equal to 1e-5 (upstream: PIL resize, then transformers
  4.45.2's numpy rescale/normalize; prefcli: the same PIL resize, torch ops);
- μ and σ (`reward(...)[:, 0]` and `[:, 1]`, inference.py line 166): 1e-4
  relative, and the spread of μ across the images is checked to be far larger
  than that tolerance, so the comparison can see a wrong image or prompt path.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import hpsv3_inferencer as O
from reference import parity_images as PI

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not O.available(), reason="hpsv3 oracle not installed (see tests/reference/hpsv3_inferencer.py)"
    ),
]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    import torch

    from prefcli import plugins
    from prefcli_hpsv3 import tiny

    d = tiny.save_tiny(tmp_path_factory.mktemp("hpsv3") / "tiny", seed=3)
    base = O.base_with_weights(d, d / "HPSv3.safetensors", d.parent / "base")
    batches = [
        (PI.parity_files(kind), [prompt] * 3) for kind in PI.KINDS for prompt in (PI.SHORT_PROMPT, PI.LONG_PROMPT)
    ]
    upstream = O.rewards(base, d / "HPSv3.safetensors", batches)
    scorer = plugins.get_scorer_spec("hpsv3").load(str(d), device="cpu", dtype="float32", options={"batch_size": 3})
    ours = []
    for files, prompts in batches:
        cands = PI.prefcli_candidates(files, prompts[0])
        mu = scorer.score(cands)
        sigma = [e["sigma"] for e in scorer.candidate_extras(cands)]
        px = [PI_tensor(scorer, c) for c in cands]
        with torch.no_grad():
            inputs = scorer.batch(px, prompts)
        ours.append({"mu": np.array(mu), "sigma": np.array(sigma), "inputs": {k: v.numpy() for k, v in inputs.items()}})
    return upstream, ours


def PI_tensor(scorer, c):
    from prefcli_hpsv3.pixels import load_image, to_tensor

    return to_tensor(load_image(c.original, scorer.options.min_pixels, scorer.options.max_pixels))


def test_upstream_ran_from_the_oracle_folders(both):
    upstream, _ = both
    assert "oracles/hpsv3-1.0.0" in upstream["hpsv3_file"]
    assert "oracles/transformers-4.45.2" in upstream["transformers_file"]


def test_prepare_batch_tokens_and_pixels_are_upstreams(both):
    upstream, ours = both
    for up, me in zip(upstream["batches"], ours):
        np.testing.assert_array_equal(me["inputs"]["input_ids"], up["input_ids"])
        np.testing.assert_array_equal(me["inputs"]["attention_mask"], up["attention_mask"])
        np.testing.assert_array_equal(me["inputs"]["image_grid_thw"], up["image_grid_thw"])
        np.testing.assert_allclose(me["inputs"]["pixel_values"], up["pixel_values"], rtol=0, atol=1e-5)


def test_mu_and_sigma_are_upstreams(both):
    upstream, ours = both
    up_mu = np.concatenate([b["rewards"][:, 0] for b in upstream["batches"]])
    up_sigma = np.concatenate([b["rewards"][:, 1] for b in upstream["batches"]])
    mu = np.concatenate([o["mu"] for o in ours])
    sigma = np.concatenate([o["sigma"] for o in ours])
    np.testing.assert_allclose(mu, up_mu, rtol=1e-4, atol=0)
    np.testing.assert_allclose(sigma, up_sigma, rtol=1e-4, atol=0)
    # the tolerance is far below what images and prompts change: a wrong path could not hide in it
    assert np.ptp(up_mu) > 20 * 1e-4 * np.abs(up_mu).max()
    centred, up_centred = mu - mu.mean(), up_mu - up_mu.mean()
    np.testing.assert_allclose(centred, up_centred, rtol=0, atol=0.02 * np.ptp(up_mu))
