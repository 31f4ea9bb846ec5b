"""PickScore against its published scoring snippet (the authors' README) run under transformers 4.27.3.

The tiny CLIP is saved as a real model folder (safetensors, config, tokenizer,
preprocessor config, as the hub repos hold them) and loaded back through the
scorer's real path. The reference is the README's formula
(tests/reference/pickscore_readme.py, README.md lines 49-93) on the inputs
that transformers 4.27.3 itself — the version PickScore's requirements.txt
pins (line 8) — makes of the same files with `AutoProcessor.from_pretrained`
(tests/reference/transformers427.py runs it in a child process). Every image
kind (square, non-square, palette, RGBA) and a prompt longer than the context
are checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from picture_factory import structured_images
from reference import PARITY_RTOL, rel_err, transformers427
from reference.parity_images import KINDS, LONG_PROMPT, parity_files, prefcli_candidates
from reference.pickscore_readme import calc_probs_and_scores, scores_from_inputs

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from prefcli import clip_common  # noqa: E402
from prefcli.errors import DataError, WeightsError  # noqa: E402
from prefcli.plugins import get_scorer_spec, load_scorer  # noqa: E402
from prefcli.types import Candidate, HistoryPair, UserHistory  # noqa: E402

PROMPT = "a watercolor painting of a red fox in the snow"
ENTITY_PROMPT = "fish &amp; chips on a   plate"
needs_oracle = pytest.mark.skipif(
    not transformers427.available(),
    reason="transformers 4.27.3 as an oracle: pip install --no-deps --target .venv/oracles/transformers-4.27.3 transformers==4.27.3",
)


def _images(n: int = 4, seed: int = 4) -> list[Image.Image]:
    sizes = [(48, 40), (40, 64), (32, 32), (90, 50), (50, 50), (64, 36)]
    return structured_images([sizes[i % len(sizes)] for i in range(n)], seed)


def _png(im: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def images():
    return _images()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny PickScore-like model folder: CLIPModel weights + its processor files."""
    from transformers import CLIPProcessor

    d = tmp_path_factory.mktemp("pickscore")
    model = clip_common.tiny_clip_model(seed=21)
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)  # PickScore's learned temperature is ≈ 100 = e^4.6
    model.save_pretrained(d)
    CLIPProcessor(
        image_processor=clip_common.tiny_image_processor(32), tokenizer=clip_common.offline_clip_tokenizer()
    ).save_pretrained(d)
    # The hub repos keep the image preprocessing in preprocessor_config.json, which transformers 4 reads.
    clip_common.tiny_image_processor(32).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_model(model_dir):
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(str(model_dir)).eval()


class Oracle:
    """transformers 4.27.3's processor outputs for every file and prompt this module checks, from one child process.

    Each child starts a Python that imports transformers 4.27.3 (~2 CPU-s); the child preprocesses each file
    and each prompt alone, so one child for all of them gives what one child per test gave.
    """

    def __init__(self, model_dir, files: list[bytes], prompts: list[str]):
        out = transformers427.readme_inputs(model_dir, files, prompts)
        self.image_processor, self.tokenizer = out["image_processor"], out["tokenizer"]
        self._pixels = dict(zip(files, out["pixels"]))
        self._ids = dict(zip(prompts, out["input_ids"]))

    def pixels(self, files: list[bytes]) -> np.ndarray:
        return np.stack([self._pixels[f] for f in files])

    def input_ids(self, prompt: str) -> list[int]:
        return self._ids[prompt]


@pytest.fixture(scope="module")
def oracle(model_dir, images) -> Oracle:
    if not transformers427.available():
        pytest.skip("transformers 4.27.3 is the oracle (see tests/reference/transformers427.py)")
    files = [_png(im) for im in images] + [f for k in KINDS for f in parity_files(k)]
    return Oracle(model_dir, files, [PROMPT, LONG_PROMPT, ENTITY_PROMPT])


def readme_scores(oracle, model, files, prompt):
    """The README under transformers 4.27.3: its processor's inputs, its formula."""
    assert oracle.image_processor == "CLIPImageProcessor" and oracle.tokenizer == "CLIPTokenizerFast"
    pixels = torch.tensor(oracle.pixels(files))
    ids = torch.tensor([oracle.input_ids(prompt)])
    return scores_from_inputs(model, pixels, ids)


@pytest.fixture(scope="module")
def reference_scores(oracle, tiny_model, images):
    return readme_scores(oracle, tiny_model, [_png(im) for im in images], PROMPT)


@pytest.fixture(scope="module")
def scorer(model_dir):
    return load_scorer("pickscore", weights=str(model_dir))


def _cands(images, prompt=PROMPT):
    return [Candidate.from_image(im, prompt=prompt) for im in images]


def test_registered_as_an_embedding_scorer_with_a_probe():
    spec = get_scorer_spec("pickscore")
    assert spec.default_weights == "yuvalkirstain/PickScore_v1"
    assert spec.embedding and spec.differentiable
    probe = get_scorer_spec("pickscore-probe")
    assert probe.uses_history and probe.base == "pickscore"


def test_matches_the_readme_formula_on_the_same_model(scorer, images, reference_scores):
    probs, ref = reference_scores
    ours = scorer.score(_cands(images))
    assert np.std(ref) > 0.1, "scores must vary, or parity proves little"
    assert rel_err(ours, ref) < PARITY_RTOL
    # The README's probabilities are a softmax over the same scores.
    ours_probs = torch.softmax(torch.tensor(ours), dim=-1).tolist()
    assert rel_err(ours_probs, probs) < PARITY_RTOL


def test_processor_from_another_folder_when_the_model_folder_has_none(tmp_path, model_dir, images, reference_scores):
    weights_only = tmp_path / "model"
    weights_only.mkdir()
    for f in model_dir.iterdir():
        if f.name in ("config.json", "model.safetensors"):
            (weights_only / f.name).write_bytes(f.read_bytes())
    s = load_scorer("pickscore", weights=str(weights_only), processor=str(model_dir))
    assert rel_err(s.score(_cands(images)), reference_scores[1]) < PARITY_RTOL
    # a non-default processor is part of what the scores depend on: its content is in the cache key
    assert s.identity["options"]["processor"].startswith("folder:sha256:")


@needs_oracle
@pytest.mark.parametrize("kind", KINDS)
def test_every_image_kind_matches_the_readme_under_transformers_4(scorer, oracle, tiny_model, kind):
    files = parity_files(kind)
    _, ref = readme_scores(oracle, tiny_model, files, PROMPT)
    assert np.std(ref) > 0.01
    assert rel_err(scorer.score(prefcli_candidates(files, PROMPT)), ref) < PARITY_RTOL


@needs_oracle
def test_pixels_equal_transformers_4s_processor_exactly(scorer, oracle):
    """The PIL-backed processor after a plain convert("RGB") is transformers 4.27.3's preprocessing, to the float."""
    files = [f for k in KINDS for f in parity_files(k)]
    ref = oracle.pixels(files)
    ours = scorer.bundle.pixel_values([c.original for c in prefcli_candidates(files, None)]).numpy()
    assert float(np.abs(ours - ref).max()) < 1e-6


@needs_oracle
@pytest.mark.parametrize("prompt", [LONG_PROMPT, ENTITY_PROMPT])
def test_long_and_html_prompts_are_tokenized_as_the_readme_did(scorer, oracle, tiny_model, prompt):
    """Truncated at 77 tokens; HTML entities left as they are (HF's fast tokenizer never unescaped them)."""
    files = parity_files("non-square")
    _, ref = readme_scores(oracle, tiny_model, files, prompt)
    assert rel_err(scorer.score(prefcli_candidates(files, prompt)), ref) < PARITY_RTOL
    ids = oracle.input_ids(prompt)
    ours = scorer._tokens([prompt])
    assert ours["input_ids"][0][ours["attention_mask"][0].bool()].tolist() == ids


@needs_oracle
def test_the_torchvision_backed_processor_is_caught(scorer, model_dir, oracle, tiny_model, monkeypatch):
    """transformers 5's default CLIPImageProcessor (torchvision resize) is what prefcli used before."""
    from transformers import CLIPImageProcessor

    files = parity_files("non-square")
    _, ref = readme_scores(oracle, tiny_model, files, PROMPT)
    monkeypatch.setattr(scorer.bundle, "processor", CLIPImageProcessor.from_pretrained(str(model_dir)))
    assert rel_err(scorer.score(prefcli_candidates(files, PROMPT)), ref) > PARITY_RTOL


@needs_oracle
@pytest.mark.parametrize("kind", ["palette", "RGBA"])
def test_compositing_onto_white_is_caught(scorer, oracle, tiny_model, kind):
    files = parity_files(kind)
    _, ref = readme_scores(oracle, tiny_model, files, PROMPT)
    flattened = [Candidate.from_image(c.image, prompt=PROMPT) for c in prefcli_candidates(files, PROMPT)]
    assert rel_err(scorer.score(flattened), ref) > PARITY_RTOL


def test_wrong_normalization_is_caught(model_dir, images, scorer):
    from transformers import CLIPModel, CLIPProcessor

    processor = CLIPProcessor.from_pretrained(str(model_dir))
    processor.image_processor.image_mean = [0.485, 0.456, 0.406]  # ImageNet's, not OpenAI CLIP's
    processor.image_processor.image_std = [0.229, 0.224, 0.225]
    _, wrong = calc_probs_and_scores(processor, CLIPModel.from_pretrained(str(model_dir)).eval(), PROMPT, images)
    assert rel_err(scorer.score(_cands(images)), wrong) > PARITY_RTOL


def test_missing_temperature_is_caught(scorer, images, reference_scores):
    cos_only = [s / scorer.logit_scale for s in scorer.score(_cands(images))]
    assert rel_err(cos_only, reference_scores[1]) > PARITY_RTOL


def test_each_candidate_is_scored_against_its_own_prompt(scorer, images):
    prompts = ["a cat", "a dog", "a cat", "a bird"]
    mixed = scorer.score([Candidate.from_image(im, prompt=p) for im, p in zip(images, prompts)])
    singly = [scorer.score([Candidate.from_image(im, prompt=p)])[0] for im, p in zip(images, prompts)]
    assert rel_err(mixed, singly) < PARITY_RTOL


def test_model_folder_without_weights_is_an_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="no model weights"):
        load_scorer("pickscore", weights=str(tmp_path))


def test_tiny_is_offline_and_differs_from_tiny_clip(images):
    pick = load_scorer("pickscore", weights="tiny")
    clip_emb = clip_common.tiny_clip_model(0)
    assert pick.identity["scorer"] == "pickscore" and pick.weights_id == "tiny:0"
    a = pick.embed_images(_cands(images[:2]))
    with torch.no_grad():
        b = clip_common.image_features(clip_emb, pick.bundle.pixel_values(images[:2])).numpy()
    assert not np.allclose(a, b, atol=1e-3)


def test_reward_is_differentiable_and_equals_score_at_model_size(scorer):
    arr = np.random.default_rng(8).integers(20, 235, (32, 32, 3), dtype=np.uint8)
    want = scorer.score([Candidate.from_image(Image.fromarray(arr), prompt=PROMPT)])[0]
    pixels = (torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0).requires_grad_(True)
    got = scorer.reward(pixels, PROMPT)
    got.sum().backward()
    assert float(pixels.grad.abs().sum()) > 0
    assert abs(float(got[0].detach()) - want) <= PARITY_RTOL * max(abs(want), 1.0)


def test_probe_learns_a_user_from_pickscore_embeddings(model_dir):
    pytest.importorskip("sklearn")
    imgs = _images(6, seed=9)
    liked, disliked = imgs[:3], imgs[3:]
    history = UserHistory(
        pairs=tuple(HistoryPair(Candidate.from_image(a), Candidate.from_image(b)) for a, b in zip(liked, disliked))
    )
    probe = load_scorer("pickscore-probe", weights=str(model_dir))
    state = probe.condition(history)
    p_liked = probe.score([Candidate.from_image(im) for im in liked], state)
    p_disliked = probe.score([Candidate.from_image(im) for im in disliked], state)
    assert min(p_liked) > max(p_disliked)


def test_a_candidate_without_prompt_is_a_data_error(scorer, images):
    with pytest.raises(DataError, match="needs the prompt"):
        scorer.score([Candidate.from_image(images[0])])
