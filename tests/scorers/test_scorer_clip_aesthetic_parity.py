"""clip and aesthetic against OpenAI's `clip` package (the oracle) and the LAION predictor's inference code.

The upstream code that made these scorers' published numbers preprocesses
with OpenAI CLIP's `clip.load` transform (github.com/openai/CLIP, clip/clip.py
lines 75-86 and 202) on `Image.open(path)` (improved-aesthetic-predictor,
simple_inference.py lines 103-108), and tokenizes with `clip.tokenize`
(clip/clip.py lines 205-245, cleaning in simple_tokenizer.py lines 50-59
and 123). The oracle runs that package's own `_transform` and `tokenize`
(tests/reference/openai_clip.py) on the same tiny HF CLIP the scorer loads;
files of every kind (square, non-square, palette, RGBA) are read through
`prefcli.images` on one side and `Image.open` on the other.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import PARITY_RTOL, rel_err
from reference import openai_clip as oc
from reference.parity_images import KINDS, LONG_PROMPT, SHORT_PROMPT, parity_files, prefcli_candidates, upstream_open

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if not oc.available():
    pytest.skip(
        "OpenAI's clip package is the oracle: pip install --no-deps openai-clip==1.0.1", allow_module_level=True
    )

from prefcli import plugins  # noqa: E402
from prefcli.types import Candidate  # noqa: E402

ENTITY_PROMPT = "Fish &amp;amp; chips   on a\tplate, &quot;photo&quot; ÃƒÂ©"
N_PX = 32  # the tiny CLIP's input size (shortest edge = crop = 32, as OpenAI's n_px)


@pytest.fixture(scope="module")
def clip_tiny():
    return plugins.load_scorer("clip", weights="tiny")


class LaionMLP(torch.nn.Module):
    """improved-aesthetic-predictor, simple_inference.py lines 41-63 (`MLP(pl.LightningModule)` minus Lightning)."""

    def __init__(self, input_size):
        super().__init__()
        self.input_size = input_size
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(self.input_size, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x):
        return self.layers(x)


@pytest.fixture(scope="module")
def aesthetic(tmp_path_factory):
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        head = LaionMLP(768).eval()
        # Weights large enough that the score follows the embedding (the default
        # init makes a near-constant head, and parity on a constant proves nothing).
        with torch.no_grad():
            for i, layer in enumerate(m for m in head.layers if isinstance(m, torch.nn.Linear)):
                layer.weight.normal_(0.0, 1.0 if i == 0 else layer.in_features**-0.5)
    path = tmp_path_factory.mktemp("aesthetic") / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(head.state_dict(), path)  # the released file's format: a plain state dict
    return plugins.load_scorer("aesthetic", weights=str(path), clip_weights="tiny"), head


def clip_reference(scorer, files, prompt):
    return oc.clip_scores(scorer.bundle.model, [upstream_open(d) for d in files], prompt, N_PX)


def aesthetic_reference(scorer, head, files):
    """simple_inference.py lines 106-117: preprocess(Image.open) → encode_image → normalized() → MLP."""
    emb = oc.image_embeddings(scorer.bundle.model, [upstream_open(d) for d in files], N_PX).numpy()
    # encode_image's raw features, then upstream's own numpy normalization (lines 84-89, 115)
    with torch.no_grad():
        pre = oc.transform(N_PX)
        raw = torch.cat([_raw(scorer.bundle.model, pre(upstream_open(d))[None]) for d in files]).numpy()
    im_emb_arr = oc.laion_normalized(raw)
    assert np.allclose(im_emb_arr, emb, atol=1e-6)
    with torch.no_grad():
        return [float(v) for v in head(torch.from_numpy(im_emb_arr).float()).squeeze(-1)]


def _raw(model, px):
    f = model.get_image_features(pixel_values=px)
    return f if hasattr(f, "dim") else f.pooler_output


@pytest.mark.parametrize("kind", KINDS)
def test_clip_matches_openai_clip_on_every_image_kind(clip_tiny, kind):
    files = parity_files(kind)
    ref = clip_reference(clip_tiny, files, SHORT_PROMPT)
    assert np.std(ref) > 0.01
    assert rel_err(clip_tiny.score(prefcli_candidates(files, SHORT_PROMPT)), ref) < PARITY_RTOL


@pytest.mark.parametrize("kind", KINDS)
def test_aesthetic_matches_the_laion_inference_code_on_every_image_kind(aesthetic, kind):
    scorer, head = aesthetic
    files = parity_files(kind)
    ref = aesthetic_reference(scorer, head, files)
    assert np.std(ref) > 1e-3
    assert rel_err(scorer.score(prefcli_candidates(files, None)), ref) < PARITY_RTOL


def test_pixels_equal_openai_preprocess_exactly(clip_tiny):
    files = [f for k in KINDS for f in parity_files(k)]
    pre = oc.transform(N_PX)
    ref = torch.stack([pre(upstream_open(d)) for d in files])
    ours = clip_tiny.bundle.pixel_values([c.original for c in prefcli_candidates(files, None)])
    assert float((ours - ref).abs().max()) < 1e-6


@pytest.mark.parametrize("prompt", [LONG_PROMPT, ENTITY_PROMPT])
def test_prompts_are_cleaned_and_cut_as_clip_tokenize_does(clip_tiny, prompt):
    """ftfy, HTML entities, whitespace, lower case; past 77 tokens, `truncate=True`'s cut."""
    ref_ids = oc.tokenize([prompt], truncate=True)[0]
    ref_ids = ref_ids[: int((ref_ids == 49407).nonzero()[0]) + 1].tolist()
    enc = clip_tiny._tokens([prompt])
    assert enc["input_ids"][0][enc["attention_mask"][0].bool()].tolist() == ref_ids
    files = parity_files("non-square")
    assert (
        rel_err(clip_tiny.score(prefcli_candidates(files, prompt)), clip_reference(clip_tiny, files, prompt))
        < PARITY_RTOL
    )


def test_clip_tokenize_refuses_long_prompts_by_default():
    """Why docs/scorers/clip.md says prefcli cuts instead: upstream's default raises."""
    with pytest.raises(RuntimeError, match="too long"):
        oc.tokenize([LONG_PROMPT])


# ---- deliberate breaks: what prefcli did before each fix


def test_the_torchvision_backed_hf_processor_is_caught(clip_tiny, monkeypatch):
    files = parity_files("non-square")
    ref = clip_reference(clip_tiny, files, SHORT_PROMPT)
    monkeypatch.setattr(clip_tiny.bundle, "pipeline", "hf-pil")  # through transformers 5's CLIPImageProcessor
    assert rel_err(clip_tiny.score(prefcli_candidates(files, SHORT_PROMPT)), ref) > PARITY_RTOL


@pytest.mark.parametrize("kind", ["palette", "RGBA"])
def test_compositing_onto_white_is_caught(clip_tiny, aesthetic, kind):
    files = parity_files(kind)
    flat = [Candidate.from_image(c.image, prompt=SHORT_PROMPT) for c in prefcli_candidates(files, SHORT_PROMPT)]
    assert rel_err(clip_tiny.score(flat), clip_reference(clip_tiny, files, SHORT_PROMPT)) > PARITY_RTOL
    scorer, head = aesthetic
    assert rel_err(scorer.score(flat), aesthetic_reference(scorer, head, files)) > PARITY_RTOL


def test_uncleaned_prompts_are_caught(clip_tiny, monkeypatch):
    files = parity_files("square")
    ref = clip_reference(clip_tiny, files, ENTITY_PROMPT)
    monkeypatch.setattr(clip_tiny, "clean_text", None)
    assert rel_err(clip_tiny.score(prefcli_candidates(files, ENTITY_PROMPT)), ref) > PARITY_RTOL
