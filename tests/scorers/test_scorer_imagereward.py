"""ImageReward, rebuilt on timm + transformers, against the `image-reward` package itself.

Both sides load the same tiny weights in the official `ImageReward.pt` layout;
the package runs its own one-image-at-a-time `score()`; ours runs batched.
The package is installed with `pip install --no-deps image-reward==1.5`
(`make venv` does it); the shims that let it import on today's libraries live
in tests/reference/imagereward_package.py. Without it, the parity tests skip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from picture_factory import structured_images
from reference import PARITY_RTOL, rel_err
from reference import imagereward_package as pkg
from reference.parity_images import KINDS, LONG_PROMPT, SHORT_PROMPT, parity_files, prefcli_candidates, upstream_open

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from prefcli.errors import DataError, WeightsError  # noqa: E402
from prefcli.plugins import get_scorer_spec, load_scorer  # noqa: E402
from prefcli.types import Candidate  # noqa: E402

TINY_VIT = dict(img_size=224, patch_size=16, embed_dim=32, depth=2, num_heads=2)
TINY_TEXT_WIDTH = 32
PROMPTS = ["a cat", "A red dog in the sky, oil painting!", "a cat", "portrait of an old man, detailed, realistic, 4k"]
needs_package = pytest.mark.skipif(
    not pkg.available(), reason="image-reward not installed (pip install --no-deps image-reward==1.5)"
)


def _images() -> list[Image.Image]:
    # landscape, portrait, exact, small: resize and crop both matter
    return structured_images([(240, 250), (300, 200), (224, 224), (180, 260)], seed=11)


@pytest.fixture(scope="module")
def images():
    return _images()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from prefcli_imagereward import tiny

    return tiny.save_tiny_checkpoint(tmp_path_factory.mktemp("imagereward"), seed=3)


@pytest.fixture(scope="module")
def reference(tiny_dir):
    if not pkg.available():
        pytest.skip("image-reward not installed (pip install --no-deps image-reward==1.5)")
    return pkg.load_reference(
        tiny_dir / "med_config.json", tiny_dir / "ImageReward.pt", tiny_dir, vit=TINY_VIT, text_width=TINY_TEXT_WIDTH
    )


@pytest.fixture(scope="module")
def reference_scores(reference, images):
    with torch.no_grad():
        return [reference.score(p, im) for p, im in zip(PROMPTS, images)]


@pytest.fixture(scope="module")
def scorer(tiny_dir):
    return load_scorer("imagereward", weights=str(tiny_dir))


def _cands(images, prompts=PROMPTS):
    return [Candidate.from_image(im, prompt=p) for p, im in zip(prompts, images)]


def test_registered_with_the_facts_of_the_design():
    spec = get_scorer_spec("imagereward")
    assert spec.default_weights == "THUDM/ImageReward"
    assert spec.needs == frozenset({"image", "prompt"}) and spec.differentiable and spec.higher_is_better


@needs_package
def test_matches_the_package_on_the_same_weights(scorer, images, reference_scores):
    ours = scorer.score(_cands(images))
    assert np.std(reference_scores) > 0.05, "scores must vary, or parity proves little"
    assert rel_err(ours, reference_scores) < PARITY_RTOL


@needs_package
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prompt", [SHORT_PROMPT, LONG_PROMPT])
def test_every_image_kind_and_long_prompts_match_the_package(scorer, reference, kind, prompt):
    """Files through prefcli.images vs `Image.open` + the package's `score(prompt, image)` (ImageReward.py lines 103-130);
    a long prompt is cut at 35 BERT tokens on both sides (line 110)."""
    files = parity_files(kind)
    with torch.no_grad():
        ref = [reference.score(prompt, upstream_open(d)) for d in files]
    assert np.std(ref) > 1e-3
    assert rel_err(scorer.score(prefcli_candidates(files, prompt)), ref) < PARITY_RTOL


@needs_package
@pytest.mark.parametrize("kind", ["palette", "RGBA"])
def test_compositing_onto_white_is_caught(scorer, reference, kind):
    files = parity_files(kind)
    with torch.no_grad():
        ref = [reference.score(SHORT_PROMPT, upstream_open(d)) for d in files]
    flat = [Candidate.from_image(c.image, prompt=SHORT_PROMPT) for c in prefcli_candidates(files, SHORT_PROMPT)]
    assert rel_err(scorer.score(flat), ref) > PARITY_RTOL


@needs_package
def test_loads_a_checkpoint_written_by_the_package_itself(tmp_path, tiny_dir, images):
    # The package's own state_dict is the official layout by definition.
    from prefcli_imagereward.tiny import randomize_

    ref = pkg.load_reference(tiny_dir / "med_config.json", None, tiny_dir, vit=TINY_VIT, text_width=TINY_TEXT_WIDTH)
    randomize_(ref, seed=5)
    ref.eval()
    for name in ("ImageReward.pt", "med_config.json", "vocab.txt", "tokenizer_config.json"):
        if name != "ImageReward.pt":
            (tmp_path / name).write_bytes((tiny_dir / name).read_bytes())
    torch.save(ref.state_dict(), tmp_path / "ImageReward.pt")
    with torch.no_grad():
        expected = [ref.score(p, im) for p, im in zip(PROMPTS, images)]
    ours = load_scorer("imagereward", weights=str(tmp_path / "ImageReward.pt")).score(_cands(images))
    assert rel_err(ours, expected) < PARITY_RTOL


@needs_package
def test_wrong_normalization_constant_is_caught(scorer, images, reference_scores, monkeypatch):
    from prefcli_imagereward import model

    monkeypatch.setattr(model, "REWARD_MEAN", 0.167)  # the constant rounded to 3 digits
    monkeypatch.setattr(model, "REWARD_STD", 1.033)
    err = rel_err(scorer.score(_cands(images)), reference_scores)
    assert err > PARITY_RTOL


@needs_package
def test_wrong_key_mapping_is_caught(tiny_dir, images, reference_scores, monkeypatch):
    from prefcli_imagereward import model

    right = model._official_to_ours

    def swapped(key):  # cross-attention key and value weights exchanged: same shapes, so only scores can tell
        out = right(key)
        if out and ".crossattention.self.key." in out:
            return out.replace(".key.", ".value.")
        if out and ".crossattention.self.value." in out:
            return out.replace(".value.", ".key.")
        return out

    monkeypatch.setattr(model, "_official_to_ours", swapped)
    ours = load_scorer("imagereward", weights=str(tiny_dir)).score(_cands(images))
    err = rel_err(ours, reference_scores)
    assert err > PARITY_RTOL


@needs_package
def test_wrong_preprocessing_is_caught(scorer, images, reference_scores, monkeypatch):
    from torchvision import transforms as T

    bilinear = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BILINEAR), *scorer.transform.transforms[1:]])
    monkeypatch.setattr(scorer, "transform", bilinear)
    err = rel_err(scorer.score(_cands(images)), reference_scores)
    assert err > PARITY_RTOL


@needs_package
def test_the_package_keeps_cls_first_so_swapping_in_enc_would_break_parity(
    scorer, images, reference_scores, monkeypatch
):
    enc_id = scorer.tokenizer.convert_tokens_to_ids("[ENC]")
    right = scorer._tokens

    def enc_first(prompts):
        ids, mask = right(prompts)
        ids = ids.clone()
        ids[:, 0] = enc_id
        return ids, mask

    monkeypatch.setattr(scorer, "_tokens", enc_first)
    err = rel_err(scorer.score(_cands(images)), reference_scores)
    assert err > PARITY_RTOL


def test_batched_scores_do_not_depend_on_batch_size(tiny_dir, images):
    one = load_scorer("imagereward", weights=str(tiny_dir), batch_size=1).score(_cands(images))
    many = load_scorer("imagereward", weights=str(tiny_dir), batch_size=3).score(_cands(images))
    assert rel_err(many, one) < PARITY_RTOL


def test_missing_and_unexpected_keys_are_errors(tmp_path, tiny_dir):
    state = torch.load(tiny_dir / "ImageReward.pt", weights_only=True)
    for name in ("med_config.json", "vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tiny_dir / name).read_bytes())

    broken = dict(state)
    del broken["blip.text_encoder.encoder.layer.0.crossattention.self.query.weight"]
    torch.save(broken, tmp_path / "ImageReward.pt")
    with pytest.raises(WeightsError, match="1 missing"):
        load_scorer("imagereward", weights=str(tmp_path))

    extra = dict(state, **{"blip.text_decoder.cls.predictions.bias": torch.zeros(3)})
    torch.save(extra, tmp_path / "ImageReward.pt")
    with pytest.raises(WeightsError, match="1 unexpected"):
        load_scorer("imagereward", weights=str(tmp_path))


def test_tokenizer_that_does_not_fit_the_weights_is_an_error(tmp_path, tiny_dir):
    for name in ("ImageReward.pt", "vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tiny_dir / name).read_bytes())
    cfg = json.loads((tiny_dir / "med_config.json").read_text())
    cfg["vocab_size"] += 5
    (tmp_path / "med_config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="do not belong together"):
        load_scorer("imagereward", weights=str(tmp_path))


def test_checkpoint_file_without_med_config_is_an_error(tmp_path, tiny_dir):
    (tmp_path / "ImageReward.pt").write_bytes((tiny_dir / "ImageReward.pt").read_bytes())
    with pytest.raises(WeightsError, match="med_config.json"):
        load_scorer("imagereward", weights=str(tmp_path / "ImageReward.pt"))


def test_tiny_spec_is_the_saved_tiny_checkpoint(tiny_dir, images):
    spec = load_scorer("imagereward", weights="tiny:3")
    assert spec.weights_id == "imagereward-tiny:3"
    from_files = load_scorer("imagereward", weights=str(tiny_dir)).score(_cands(images))
    assert rel_err(spec.score(_cands(images)), from_files) < 1e-6


def test_reward_is_differentiable_and_equals_score_at_model_size(scorer):
    rng = np.random.default_rng(2)
    arr = rng.integers(20, 235, (224, 224, 3), dtype=np.uint8)
    want = scorer.score([Candidate.from_image(Image.fromarray(arr), prompt="a cat")])[0]
    pixels = torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
    pixels.requires_grad_(True)
    got = scorer.reward(pixels, ["a cat"])
    got.sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0
    assert abs(float(got[0].detach()) - want) <= PARITY_RTOL * max(abs(want), 1.0)


def test_a_candidate_without_prompt_is_a_data_error(scorer, images):
    with pytest.raises(DataError, match="needs the prompt"):
        scorer.score([Candidate.from_image(images[0])])
