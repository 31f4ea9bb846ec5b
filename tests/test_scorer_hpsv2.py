"""HPSv2 against the formula and preprocessing of the official evaluation code, on the same tiny weights.

The tiny open_clip model's weights are saved in the official checkpoint
format (`{"state_dict": ...}`, the two version file names) and loaded back
through the scorer's real path; the reference (tests/reference/hpsv2_official.py)
loads the same file its own way and scores one image at a time.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from picture_factory import structured_images
from reference import PARITY_RTOL, rel_err
from reference import hpsv2_official as official

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from prefcli.errors import DataError, WeightsError  # noqa: E402
from prefcli.plugins import get_scorer_spec, load_scorer  # noqa: E402
from prefcli.types import Candidate  # noqa: E402
from prefcli_hpsv2 import scorer as hps  # noqa: E402

PROMPT = "a cozy cabin in a snowy forest at night, digital art"


def _images(n: int = 4, seed: int = 5) -> list[Image.Image]:
    sizes = [(48, 40), (40, 64), (32, 32), (90, 50)]
    return structured_images([sizes[i % len(sizes)] for i in range(n)], seed)


@pytest.fixture(scope="module")
def images():
    return _images()


@pytest.fixture(scope="module")
def hps_dir(tmp_path_factory):
    """A folder like the hub repo: both version files, official format, different weights."""
    d = tmp_path_factory.mktemp("hpsv2")
    for seed, version in ((1, "2.0"), (2, "2.1")):
        state = hps.create_model(hps.TINY_ARCH, seed=seed).state_dict()
        torch.save({"state_dict": state}, d / hps.VERSION_FILES[version])
    return d


@pytest.fixture(scope="module")
def reference_scores(hps_dir, images):
    hps.register_tiny_config()  # the architecture is open_clip's config; the scoring code is the reference's
    model = official.load_model(hps.TINY_ARCH, str(hps_dir / hps.VERSION_FILES["2.1"]))
    return official.score(model, hps.TINY_ARCH, images, PROMPT)


@pytest.fixture(scope="module")
def scorer(hps_dir):
    return load_scorer("hpsv2", weights=str(hps_dir), arch="tiny")


def _cands(images, prompt=PROMPT):
    return [Candidate.from_image(im, prompt=prompt) for im in images]


def test_registered_with_the_facts_of_the_design():
    spec = get_scorer_spec("hpsv2")
    assert spec.default_weights == "xswu/HPSv2" and spec.differentiable and spec.embedding
    assert get_scorer_spec("hpsv2-probe").uses_history
    assert hps.VERSION_FILES == {"2.0": "HPS_v2_compressed.pt", "2.1": "HPS_v2.1_compressed.pt"}
    assert hps.DEFAULT_VERSION == "2.1"


def test_matches_the_official_formula_on_the_same_weights(scorer, images, reference_scores):
    ours = scorer.score(_cands(images))
    assert np.std(reference_scores) > 0.01, "scores must vary, or parity proves little"
    assert rel_err(ours, reference_scores) < PARITY_RTOL


def test_version_picks_the_file_and_is_part_of_the_weights_id(hps_dir, images, reference_scores):
    v20 = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", version="2.0")
    v21 = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", version="v2.1")
    # each identity is the content of the file actually loaded
    from prefcli.weights import identity

    assert v20.weights_id == identity(str(hps_dir / "HPS_v2_compressed.pt")) != v21.weights_id == identity(str(hps_dir / "HPS_v2.1_compressed.pt"))
    hps.register_tiny_config()
    ref20 = official.score(official.load_model(hps.TINY_ARCH, str(hps_dir / "HPS_v2_compressed.pt")), hps.TINY_ARCH, images, PROMPT)
    assert rel_err(v20.score(_cands(images)), ref20) < PARITY_RTOL
    assert rel_err(ref20, reference_scores) > 0.01  # the two files really hold different weights
    with pytest.raises(ValueError, match="unknown HPS version"):
        load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", version="3")


def test_percent_is_one_hundred_times_the_cosine(hps_dir, scorer, images):
    pct = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", percent=True)
    assert rel_err(pct.score(_cands(images)), [100 * s for s in scorer.score(_cands(images))]) < 1e-6
    assert pct.cache_key != scorer.cache_key  # cached scores of the two scales never mix


def test_wrong_mean_std_is_caught(scorer, hps_dir, images):
    hps.register_tiny_config()
    imagenet = official.preprocess_val(32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    model = official.load_model(hps.TINY_ARCH, str(hps_dir / hps.VERSION_FILES["2.1"]))
    wrong = official.score(model, hps.TINY_ARCH, images, PROMPT, preprocess=imagenet)
    assert rel_err(scorer.score(_cands(images)), wrong) > PARITY_RTOL


def test_wrong_resize_is_caught(scorer, images, reference_scores, monkeypatch):
    from torchvision import transforms as T

    bilinear = T.Compose([T.Resize(scorer.image_size, interpolation=T.InterpolationMode.BILINEAR), *scorer.transform.transforms[1:]])
    monkeypatch.setattr(scorer, "transform", bilinear)
    assert rel_err(scorer.score(_cands(images)), reference_scores) > PARITY_RTOL


def test_a_checkpoint_of_another_architecture_is_an_error(hps_dir):
    with pytest.raises(WeightsError, match="not an HPSv2 checkpoint for this architecture"):
        load_scorer("hpsv2", weights=str(hps_dir / "HPS_v2.1_compressed.pt"), arch="ViT-B-32")


def test_a_missing_key_is_an_error(tmp_path, hps_dir):
    state = torch.load(hps_dir / "HPS_v2.1_compressed.pt", weights_only=True)["state_dict"]
    del state["visual.proj"]
    torch.save({"state_dict": state}, tmp_path / "broken.pt")
    with pytest.raises(WeightsError, match="1 missing"):
        load_scorer("hpsv2", weights=str(tmp_path / "broken.pt"), arch="tiny")


def test_pickled_objects_need_the_explicit_conversion(tmp_path, hps_dir, images, reference_scores):
    from prefcli_hpsv2.convert import main as convert_main

    state = torch.load(hps_dir / "HPS_v2.1_compressed.pt", weights_only=True)["state_dict"]
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1e-5)}, tmp_path / "HPS_v2.1_compressed.pt")
    with pytest.raises(WeightsError, match="prefcli_hpsv2.convert"):
        load_scorer("hpsv2", weights=str(tmp_path / "HPS_v2.1_compressed.pt"), arch="tiny")
    out = tmp_path / "hps.safetensors"
    assert convert_main([str(tmp_path / "HPS_v2.1_compressed.pt"), str(out)]) == 0
    converted = load_scorer("hpsv2", weights=str(out), arch="tiny")
    assert rel_err(converted.score(_cands(images)), reference_scores) < PARITY_RTOL


def test_tiny_spec_scores_offline(images):
    s = load_scorer("hpsv2", weights="tiny:4")
    assert s.weights_id == "hpsv2-tiny:4"
    scores = s.score(_cands(images))
    assert len(scores) == 4 and all(-1.0 <= x <= 1.0 for x in scores)
    emb = s.embed_images(_cands(images))
    assert emb.shape == (4, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_reward_is_differentiable_and_equals_score_at_model_size(scorer):
    arr = np.random.default_rng(8).integers(20, 235, (32, 32, 3), dtype=np.uint8)
    want = scorer.score([Candidate.from_image(Image.fromarray(arr), prompt=PROMPT)])[0]
    pixels = (torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0).requires_grad_(True)
    got = scorer.reward(pixels, PROMPT)
    got.sum().backward()
    assert float(pixels.grad.abs().sum()) > 0
    assert abs(float(got[0].detach()) - want) <= PARITY_RTOL * max(abs(want), 0.1)


def test_a_candidate_without_prompt_is_a_data_error(scorer, images):
    with pytest.raises(DataError, match="needs the prompt"):
        scorer.score([Candidate.from_image(images[0])])
