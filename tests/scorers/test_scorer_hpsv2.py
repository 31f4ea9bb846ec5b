"""HPSv2 against hpsv2's own code (the `hpsv2` package, run as the oracle), on the same tiny weights.

The tiny open_clip model's weights are saved in the official checkpoint
format (`{"state_dict": ...}`, the two version file names) and loaded back
through the scorer's real path; the oracle (tests/reference/hpsv2_official.py)
builds the model and `preprocess_val` with the package's own
`create_model_and_transforms(..., light_augmentation=True)`
(github.com/tgxs002/HPSv2, hpsv2/img_score.py lines 20-38; the transform is
hpsv2/src/open_clip/transform.py lines 26-56 and 141-157) and scores one image
at a time as img_score.py lines 61-83 do. Every image kind (square,
non-square, palette, RGBA) and a prompt longer than the context are checked
for both versions and both antialias settings.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from picture_factory import structured_images
from reference import PARITY_RTOL, rel_err
from reference import hpsv2_official as official
from reference.parity_images import KINDS, LONG_PROMPT, SHORT_PROMPT, parity_files, prefcli_candidates, upstream_open

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from prefcli.errors import DataError, WeightsError  # noqa: E402
from prefcli.plugins import get_scorer_spec, load_scorer  # noqa: E402
from prefcli.types import Candidate  # noqa: E402
from prefcli_hpsv2 import scorer as hps  # noqa: E402

PROMPT = SHORT_PROMPT
needs_oracle = pytest.mark.skipif(
    not official.available(), reason="the hpsv2 package (pip install --no-deps hpsv2==1.2.0) is the oracle"
)


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
def oracle_models(hps_dir):
    if not official.available():
        pytest.skip("the hpsv2 package (pip install --no-deps hpsv2==1.2.0) is the oracle")
    official.register_config(hps._TINY_CONFIG)
    return {v: official.load_model(hps.TINY_ARCH, hps_dir / f) for v, f in hps.VERSION_FILES.items()}


def oracle_scores(oracle_models, version, images, prompt=PROMPT, antialias=False, preprocess=None):
    return official.score(
        oracle_models[version], hps.TINY_ARCH, images, prompt, antialias=antialias, preprocess=preprocess
    )


@pytest.fixture(scope="module")
def reference_scores(oracle_models, images):
    return oracle_scores(oracle_models, "2.1", images)


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


def test_matches_the_official_code_on_the_same_weights(scorer, images, reference_scores):
    ours = scorer.score(_cands(images))
    assert np.std(reference_scores) > 0.01, "scores must vary, or parity proves little"
    assert rel_err(ours, reference_scores) < PARITY_RTOL


@needs_oracle
@pytest.mark.parametrize("version", ["2.0", "2.1"])
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_every_image_kind_matches_the_official_code(hps_dir, oracle_models, version, antialias, kind):
    """Files read through prefcli.images vs `Image.open` + the package's preprocess_val and model."""
    files = parity_files(kind)
    s = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", version=version, antialias=antialias)
    ref = oracle_scores(oracle_models, version, [upstream_open(d) for d in files], antialias=antialias)
    assert np.std(ref) > 1e-3
    assert rel_err(s.score(prefcli_candidates(files, PROMPT)), ref) < PARITY_RTOL


@needs_oracle
def test_a_long_prompt_is_truncated_as_the_official_tokenizer_does(scorer, oracle_models):
    files = parity_files("non-square")
    ref = oracle_scores(oracle_models, "2.1", [upstream_open(d) for d in files], prompt=LONG_PROMPT)
    assert rel_err(scorer.score(prefcli_candidates(files, LONG_PROMPT)), ref) < PARITY_RTOL
    ours = scorer.tokenizer([LONG_PROMPT])
    assert torch.equal(ours, official.tokenize(hps.TINY_ARCH, [LONG_PROMPT]))
    assert int(ours[0, -1]) == 49407  # cut at the context, the end token kept


@needs_oracle
def test_the_official_transform_keeps_rgba_which_its_model_cannot_take(oracle_models):
    """Why prefcli scores only the colour channels of an RGBA file (docs/scorers/hpsv2.md)."""
    rgba = upstream_open(parity_files("RGBA")[0])
    x = official.preprocess_val(hps.TINY_ARCH, antialias=False)(rgba)
    assert x.shape[0] == 4  # transform.py lines 52-56 and 72-73: alpha passed through
    with pytest.raises(RuntimeError):
        oracle_models["2.1"].encode_image(x[None])
    ours = hps.val_transform(32, antialias=False)(rgba)
    assert torch.allclose(ours, x[:3], atol=1e-6)


def test_version_picks_the_file_and_is_part_of_the_weights_id(hps_dir, images, oracle_models, reference_scores):
    v20 = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", version="2.0")
    v21 = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", version="v2.1")
    # each identity is the content of the file actually loaded
    from prefcli.weights import identity

    assert (
        v20.weights_id
        == identity(str(hps_dir / "HPS_v2_compressed.pt"))
        != v21.weights_id
        == identity(str(hps_dir / "HPS_v2.1_compressed.pt"))
    )
    ref20 = oracle_scores(oracle_models, "2.0", images)
    assert rel_err(v20.score(_cands(images)), ref20) < PARITY_RTOL
    assert rel_err(ref20, reference_scores) > 0.01  # the two files really hold different weights
    with pytest.raises(ValueError, match=r"option version = '3' is not allowed; allowed: 2\.0, 2\.1"):
        load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", version="3")


def test_antialias_is_an_option_that_changes_scores_and_the_weights_id(hps_dir, scorer):
    on = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", antialias="true")
    assert on.options.antialias is True and scorer.options.antialias is False
    assert on.cache_key != scorer.cache_key  # the same file, other numbers: never one cache entry
    files = parity_files("square")  # 300 px: a real downscale
    assert (
        rel_err(on.score(prefcli_candidates(files, PROMPT)), scorer.score(prefcli_candidates(files, PROMPT)))
        > PARITY_RTOL
    )
    with pytest.raises(ValueError, match="antialias"):
        load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", antialias="sometimes")


def test_percent_is_one_hundred_times_the_cosine(hps_dir, scorer, images):
    pct = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", percent=True)
    assert rel_err(pct.score(_cands(images)), [100 * s for s in scorer.score(_cands(images))]) < 1e-6
    assert pct.cache_key != scorer.cache_key  # cached scores of the two scales never mix


def test_wrong_mean_std_is_caught(scorer, oracle_models, images):
    imagenet = official.open_clip_fork().image_transform(
        32, is_train=False, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize_longest_max=True
    )
    wrong = oracle_scores(oracle_models, "2.1", images, preprocess=imagenet)
    assert rel_err(scorer.score(_cands(images)), wrong) > PARITY_RTOL


def test_wrong_resize_is_caught(scorer, oracle_models, monkeypatch):
    """The shortest-side resize + centre crop prefcli used before differs on non-square images."""
    from torchvision import transforms as T

    files = parity_files("non-square")
    ref = oracle_scores(oracle_models, "2.1", [upstream_open(d) for d in files])
    crop = T.Compose([T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), lambda im: im.convert("RGB"), T.ToTensor(),
                      T.Normalize(hps.clip_common.OPENAI_CLIP_MEAN, hps.clip_common.OPENAI_CLIP_STD)])  # fmt: skip
    monkeypatch.setattr(scorer, "transform", crop)
    assert rel_err(scorer.score(prefcli_candidates(files, PROMPT)), ref) > PARITY_RTOL


def test_wrong_antialias_is_caught(scorer, oracle_models):
    files = parity_files("square")
    other = oracle_scores(oracle_models, "2.1", [upstream_open(d) for d in files], antialias=True)
    assert rel_err(scorer.score(prefcli_candidates(files, PROMPT)), other) > PARITY_RTOL


@pytest.mark.parametrize("kind", ["palette", "RGBA"])
def test_compositing_onto_white_is_caught(scorer, oracle_models, kind):
    """What prefcli did before: every transparent image flattened onto white before the scorer saw it."""
    files = parity_files(kind)
    ref = oracle_scores(oracle_models, "2.1", [upstream_open(d) for d in files])
    flattened = [Candidate.from_image(c.image, prompt=PROMPT) for c in prefcli_candidates(files, PROMPT)]
    assert rel_err(scorer.score(flattened), ref) > PARITY_RTOL


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
    with pytest.raises(WeightsError, match="prefcli convert hpsv2"):
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


@pytest.mark.parametrize("antialias", [False, True])
def test_reward_follows_the_official_transform_on_non_square_pixels(hps_dir, oracle_models, antialias):
    """`reward` on B×3×H×W pixels = the oracle on the same pixels as an RGB file (any size, both antialias settings)."""
    s = load_scorer("hpsv2", weights=str(hps_dir), arch="tiny", antialias=antialias)
    for w, h in ((57, 40), (40, 91), (300, 129)):
        arr = np.asarray(upstream_open(parity_files("non-square")[0]).convert("RGB").resize((w, h)))
        ref = oracle_scores(oracle_models, "2.1", [Image.fromarray(arr)], antialias=antialias)
        pixels = torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        got = s.reward(pixels, PROMPT)
        assert rel_err([float(got[0].detach())], ref) < PARITY_RTOL


def test_a_candidate_without_prompt_is_a_data_error(scorer, images):
    with pytest.raises(DataError, match="needs the prompt"):
        scorer.score([Candidate.from_image(images[0])])
