"""The clip and aesthetic scorers, clip-probe, and the shared CLIP helpers.

Everything runs on tiny, seeded, random CLIP models; the aesthetic head is
checked for parity against the LAION reference module. Parity of the
preprocessing and tokenization with OpenAI's `clip` package itself is
tests/scorers/test_scorer_clip_aesthetic_parity.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from prefcli import clip_common, plugins  # noqa: E402
from prefcli.errors import DataError, WeightsError  # noqa: E402
from prefcli.types import Candidate, HistoryPair, UserHistory  # noqa: E402

# improved-aesthetic-predictor's MLP, typed once, with its upstream lines cited, in the parity tests.
from tests.scorers.test_scorer_clip_aesthetic_parity import LaionMLP  # noqa: E402

PROMPTS = [
    "a red fox in snow",
    "an oil painting of mountains at dusk",
    "a bowl of ramen, studio photo",
    "a red fox in snow",
    "neon city street",
]


def colorful(seed: int, size=(40, 48), tint=None) -> Image.Image:
    """Random but structured colorful image (never all black)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            np.sin(xx / rng.uniform(2, 9) + rng.uniform(0, 6)),
            np.cos(yy / rng.uniform(2, 9)),
            np.sin((xx + yy) / rng.uniform(3, 12)),
        ],
        -1,
    )
    arr = 127 + 100 * base + rng.normal(0, 20, (h, w, 3))
    if tint is not None:
        arr = 0.4 * arr + 0.6 * np.asarray(tint, dtype=float)
    return Image.fromarray(arr.clip(1, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def candidates() -> list[Candidate]:
    sizes = [(32, 32), (48, 64), (64, 40), (33, 50), (40, 40)]
    return [Candidate.from_image(colorful(i, s), prompt=p) for i, (s, p) in enumerate(zip(sizes, PROMPTS))]


@pytest.fixture(scope="module")
def clip_tiny():
    return plugins.load_scorer("clip", weights="tiny")


# --------------------------------------------------------------------------- registry


def test_registry_lists_clip_aesthetic_and_probe():
    specs = plugins.scorers()
    assert {"clip", "aesthetic", "clip-probe"} <= set(specs)
    assert specs["clip"].needs == frozenset({"image", "prompt"}) and specs["clip"].differentiable
    assert specs["aesthetic"].needs == frozenset({"image"}) and specs["aesthetic"].differentiable
    assert specs["clip-probe"].uses_history
    assert specs["clip-probe"].default_weights == "openai/clip-vit-large-patch14"
    assert specs["aesthetic"].default_weights.endswith("sac+logos+ava1-l14-linearMSE.pth")
    assert "aesthetic-probe" not in specs  # it would only repeat clip-probe


def test_plugin_packages_import_no_torch():
    code = "import sys, prefcli_clip, prefcli_aesthetic; sys.exit(int(any(m in sys.modules for m in ('torch', 'transformers', 'open_clip'))))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --------------------------------------------------------------------------- shared helpers


def test_offline_tokenizer_matches_open_clip():
    import open_clip

    texts = ["a photo of a CAT!", "héllo wörld 🙂 2024", "word " * 100, ""]
    enc = clip_common.tokenize(clip_common.offline_clip_tokenizer(), texts)
    ref = open_clip.tokenize(texts)
    assert enc["input_ids"].shape == (4, 77)
    for i in range(len(texts)):
        ours = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
        assert ours == ref[i][ref[i] != 0].tolist()
    assert enc["input_ids"][2, -1].item() == clip_common.EOS_TOKEN_ID  # truncated, still ends in EOT


def test_preprocess_pixels_matches_hf_processor_geometry():
    # A smooth image: the only difference left is PIL vs torch bicubic rounding.
    h, w = 48, 72
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 3.5, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    proc = clip_common.tiny_image_processor(24)
    ref = proc(images=[Image.fromarray(arr)], return_tensors="pt")["pixel_values"]
    ours = clip_common.preprocess_pixels(torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1)[None] / 255, size=24)
    assert ours.shape == ref.shape == (1, 3, 24, 24)
    assert (ours - ref).abs().mean() < 0.02
    # A crop from the wrong place (e.g. the left edge) is far off.
    assert (
        clip_common.preprocess_pixels(
            torch.tensor(arr[:, :48], dtype=torch.float32).permute(2, 0, 1)[None] / 255, size=24
        )
        - ref
    ).abs().mean() > 0.1


def test_batched_and_options():
    assert [list(b) for b in clip_common.batched([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    with pytest.raises(ValueError):
        list(clip_common.batched([1], 0))
    from prefcli import devices
    from prefcli.errors import DeviceError

    assert devices.torch_dtype("bf16") is torch.bfloat16
    assert devices.torch_dtype(None, torch.device("cpu")) is torch.float32
    with pytest.raises(DeviceError):
        devices.torch_dtype("float8")


# --------------------------------------------------------------------------- clip


def test_clip_deterministic_per_seed(clip_tiny, candidates):
    a = clip_tiny.score(candidates)
    b = plugins.load_scorer("clip", weights="tiny").score(candidates)
    c = plugins.load_scorer("clip", weights="tiny:1").score(candidates)
    assert a == b
    assert not np.allclose(a, c, atol=1e-3)
    assert clip_tiny.weights_id == "tiny:0"


def test_clip_batch_equals_one_by_one(candidates):
    batched = plugins.load_scorer("clip", weights="tiny", batch_size=3).score(candidates)
    single = [plugins.load_scorer("clip", weights="tiny", batch_size=1).score([c])[0] for c in candidates]
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_clip_score_is_100_cos_by_hand(clip_tiny, candidates):
    model, bundle = clip_tiny.bundle.model, clip_tiny.bundle
    with torch.no_grad():
        # The scorer's own preprocessing (its parity with OpenAI's is tests/scorers/test_scorer_clip_aesthetic_parity.py).
        px = bundle.pixel_values([c.original for c in candidates])
        img = model.vision_model(pixel_values=px).pooler_output @ model.visual_projection.weight.T
        tok = bundle.tokenizer(
            [c.prompt for c in candidates], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        )
        txt = (
            model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output
            @ model.text_projection.weight.T
        )
    expected = 100 * torch.nn.functional.cosine_similarity(img, txt, dim=-1)
    np.testing.assert_allclose(clip_tiny.score(candidates), expected.numpy(), atol=1e-3)
    # Same image, same prompt, same score (candidates 0 and 3 share a prompt).
    twin = Candidate.from_image(candidates[0].image.copy(), prompt=candidates[0].prompt)
    assert clip_tiny.score([twin])[0] == pytest.approx(clip_tiny.score(candidates)[0], abs=1e-4)


def test_clip_embeddings_unit_norm(clip_tiny, candidates):
    e = clip_tiny.embed_images(candidates)
    assert e.shape == (len(candidates), 16) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    t = clip_tiny.embed_texts(PROMPTS)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert clip_tiny.embed_images([]).shape == (0, 16)


def test_clip_needs_a_prompt(clip_tiny):
    with pytest.raises(DataError, match="prompt"):
        clip_tiny.score([Candidate.from_image(colorful(9))])


def test_clip_reward_is_differentiable_and_matches_score(clip_tiny):
    im = colorful(3, (32, 32))
    pixels = (torch.tensor(np.asarray(im), dtype=torch.float32).permute(2, 0, 1)[None] / 255).repeat(2, 1, 1, 1)
    pixels.requires_grad_(True)
    r = clip_tiny.reward(pixels, ["a red fox in snow", "neon city street"])
    assert r.shape == (2,)
    r.sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    # At the model's own size no resize happens: the reward equals the score.
    expected = clip_tiny.score(
        [Candidate.from_image(im, prompt="a red fox in snow"), Candidate.from_image(im, prompt="neon city street")]
    )
    np.testing.assert_allclose(r.detach().numpy(), expected, atol=1e-3)
    # Larger, non-square tensors go through resize + crop.
    big = torch.rand(1, 3, 50, 70, requires_grad=True)
    clip_tiny.reward(big, "a cat").sum().backward()
    assert big.grad.abs().sum() > 0


def test_clip_loads_a_local_hf_directory(tmp_path, clip_tiny, candidates):
    d = tmp_path / "clip"
    clip_tiny.bundle.model.save_pretrained(d)
    clip_tiny.bundle.tokenizer.save_pretrained(d)
    clip_tiny.bundle.processor.save_pretrained(d)
    local = plugins.load_scorer("clip", weights=str(d))
    np.testing.assert_allclose(local.score(candidates), clip_tiny.score(candidates), atol=1e-4)
    # A checkpoint that does not fit its config is an error, not random weights.
    other = tmp_path / "other"
    clip_common.tiny_clip_model(0, projection_dim=8).save_pretrained(other)
    (d / "model.safetensors").replace(tmp_path / "keep.safetensors")
    (other / "model.safetensors").replace(d / "model.safetensors")
    with pytest.raises(WeightsError, match="does not match"):
        plugins.load_scorer("clip", weights=str(d))


def test_clip_directory_without_preprocessor_is_an_error(tmp_path, clip_tiny):
    clip_tiny.bundle.model.save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="preprocessor_config.json"):
        plugins.load_scorer("clip", weights=str(tmp_path))


# --------------------------------------------------------------------------- clip-probe


def test_clip_probe_ranks_like_the_history():
    red, blue = (230, 40, 40), (40, 60, 230)
    liked = [colorful(100 + i, tint=red) for i in range(4)]
    disliked = [colorful(200 + i, tint=blue) for i in range(4)]
    history = UserHistory(
        pairs=tuple(
            HistoryPair(liked=Candidate.from_image(a, "p"), disliked=Candidate.from_image(b, "p"))
            for a, b in zip(liked, disliked)
        )
    )
    probe = plugins.load_scorer("clip-probe", weights="tiny")
    state = probe.condition(history)
    queries = [
        Candidate.from_image(liked[1].copy()),
        Candidate.from_image(disliked[2].copy()),
        Candidate.from_image(colorful(7)),
    ]
    scores = probe.score(queries, state)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.5 > scores[1]
    assert scores[0] > scores[1]
    assert probe.weights_id == "tiny:0"


def test_clip_probe_on_viper_examples(viper_examples: Path):
    load = Candidate.from_path  # the real way files enter the program
    liked = [load(p) for p in sorted((viper_examples / "liked").glob("*.png"))]
    disliked = [load(p) for p in sorted((viper_examples / "disliked").glob("*.png"))]
    assert len(liked) == len(disliked) == 8
    history = UserHistory(pairs=tuple(HistoryPair(liked=a, disliked=b) for a, b in zip(liked, disliked)))
    queries = [load(viper_examples / f"query{i}.png") for i in range(1, 5)]
    probe = plugins.load_scorer("clip-probe", weights="tiny", batch_size=8)
    scores = probe.score(queries, probe.condition(history))
    assert len(scores) == 4
    assert all(np.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)


# --------------------------------------------------------------------------- aesthetic


@pytest.fixture(scope="module")
def laion_head(tmp_path_factory):
    torch.manual_seed(1234)
    ref = LaionMLP(768).eval()
    path = tmp_path_factory.mktemp("aesthetic") / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


def test_aesthetic_parity_with_reference_head(laion_head, candidates):
    ref, path = laion_head
    scorer = plugins.load_scorer("aesthetic", weights=str(path), clip_weights="tiny")
    assert scorer.bundle.embed_dim == 768
    ours = scorer.score(candidates)
    # The reference pipeline, by hand: CLIP image features, L2-normalized, then the head.
    model = scorer.bundle.model
    with torch.no_grad():
        px = scorer.bundle.pixel_values([c.original for c in candidates])
        feats = model.vision_model(pixel_values=px).pooler_output @ model.visual_projection.weight.T
        feats = feats / feats.norm(dim=-1, keepdim=True)
        expected = ref(feats).squeeze(-1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    emb = scorer.embed_images(candidates)
    np.testing.assert_allclose(
        scorer.score_embeddings(emb), ref(torch.tensor(emb)).squeeze(-1).detach().numpy(), atol=1e-5
    )


def test_aesthetic_loads_safetensors_head(laion_head, candidates, tmp_path):
    from safetensors.torch import save_file

    ref, path = laion_head
    st = tmp_path / "head.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(st))
    a = plugins.load_scorer("aesthetic", weights=str(path), clip_weights="tiny").score(candidates)
    b = plugins.load_scorer("aesthetic", weights=str(st), clip_weights="tiny").score(candidates)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_aesthetic_key_or_shape_mismatch_is_an_error(laion_head, tmp_path):
    ref, _ = laion_head
    sd = ref.state_dict()
    renamed = {k.replace("layers.7", "layers.8"): v for k, v in sd.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(WeightsError, match="missing keys"):
        plugins.load_scorer("aesthetic", weights=str(tmp_path / "renamed.pth"), clip_weights="tiny")
    wrong = dict(sd)
    wrong["layers.2.weight"] = torch.zeros(100, 1024)
    torch.save(wrong, tmp_path / "shape.pth")
    with pytest.raises(WeightsError):
        plugins.load_scorer("aesthetic", weights=str(tmp_path / "shape.pth"), clip_weights="tiny")
    # A head for 768-d embeddings on a backbone with another width.
    with pytest.raises(WeightsError, match="768"):
        plugins.load_scorer("aesthetic", weights=str(_path_of(laion_head)), clip_weights=str(_small_clip_dir(tmp_path)))


def _path_of(laion_head):
    return laion_head[1]


def _small_clip_dir(tmp_path) -> Path:
    d = tmp_path / "clip16"
    clip_common.tiny_clip_model(0, projection_dim=16).save_pretrained(d)
    clip_common.offline_clip_tokenizer().save_pretrained(d)
    clip_common.tiny_image_processor(32).save_pretrained(d)
    return d


def test_aesthetic_tiny_and_reward(candidates):
    a = plugins.load_scorer("aesthetic", weights="tiny")
    s1 = a.score(candidates)
    assert s1 == plugins.load_scorer("aesthetic", weights="tiny").score(candidates)
    assert not np.allclose(s1, plugins.load_scorer("aesthetic", weights="tiny:2").score(candidates))
    assert all(np.isfinite(s1)) and len(set(s1)) > 1
    pixels = torch.rand(2, 3, 40, 56, requires_grad=True)
    r = a.reward(pixels)
    assert r.shape == (2,)
    r.sum().backward()
    assert pixels.grad.abs().sum() > 0


def test_aesthetic_default_weights_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match="offline"):
        plugins.load_scorer("aesthetic")
