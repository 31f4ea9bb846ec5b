"""Tiny IDEFICS2 preference models: forward, preference tokens, padding, prefix cache, QLoRA, full-size counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from prefcli.errors import WeightsError
from prefcli.vlm import scoring
from prefcli.vlm.model import VLMSpec, build_model, parameter_counts, set_trainable, tiny_vlm
from prefcli.vlm.pref_tokens import load_pref_tokens, new_preference_tokens, save_pref_tokens
from prefcli.vlm.template import HistoryItem


def _img(seed: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(1, 255, (size, size, 3), dtype=np.uint8))


def _items(n_pairs: int = 2, seed: int = 0) -> list[HistoryItem]:
    out = []
    for i in range(n_pairs):
        out.append(HistoryItem(_img(seed + 2 * i), "-", f"prompt {i}"))
        out.append(HistoryItem(_img(seed + 2 * i + 1), "+", f"prompt {i}"))
    return out


CANDS = [_img(100 + i) for i in range(5)]
PROMPTS = ["a red circle", "blue", "a much longer prompt about a castle at night", None, "x"]


def _sharpen(m):
    """Random init (std 0.02) makes attention nearly uniform; larger weights make tests sensitive."""
    with torch.no_grad():
        for p in m.core.parameters():
            if p.ndim >= 2:
                p.mul_(4)
    return m


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=1e-6)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    out = {}
    for style in ("compact", "preftoken", "viper"):
        m = _sharpen(tiny_vlm(template=style, n_pref_tokens=3, tiny={"latents": 2}, seed=1))
        m.eval()
        out[style] = m
    return out


def test_tiny_forward_gives_finite_scores(models):
    m = models["preftoken"]
    with torch.no_grad():
        out = scoring.score_uncached(m, _items(), CANDS, PROMPTS)
    assert out.plus.shape == (5,) and out.logits.shape == (5, len(m.tokenizer))
    assert torch.isfinite(out.plus).all() and torch.isfinite(out.minus).all()
    assert torch.equal(out.plus, out.logits[:, m.plus_id])
    q = out.q
    assert ((q > 0) & (q < 1)).all()
    _close(q, torch.softmax(torch.stack([out.plus, out.minus], -1), -1)[:, 0])


def test_pref_tokens_change_output_and_mask_covers_them(models):
    m = models["compact"]
    L = m.n_pref_tokens
    emb = torch.randn(2, 4, m.pref_tokens.dim)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    e, mk = m.with_pref_tokens(emb, mask, "right")
    assert mk.tolist() == [[1] * L + [1, 1, 1, 0], [1] * L + [1, 1, 0, 0]]
    assert torch.equal(e[:, :L], m.pref_tokens.weight.unsqueeze(0).expand(2, -1, -1))
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    e, mk = m.with_pref_tokens(emb, left, "left")
    assert mk.tolist() == [[0] + [1] * (L + 3), [0, 0] + [1] * (L + 2)]
    assert torch.equal(e[1, 2 : 2 + L], m.pref_tokens.weight) and torch.equal(e[1, 2 + L :], emb[1, 2:])

    with torch.no_grad():
        before = scoring.score_uncached(m, _items(), CANDS[:2]).plus.clone()
        saved = m.pref_tokens.weight.clone()
        m.pref_tokens.weight.add_(torch.randn_like(saved))
        after = scoring.score_uncached(m, _items(), CANDS[:2]).plus
        m.pref_tokens.weight.copy_(saved)
    assert (before - after).abs().max() > 1e-5


@pytest.mark.parametrize("style", ["preftoken", "compact"])
def test_padded_batch_equals_unpadded_singles(models, style):
    m = models[style]
    items_long, items_short = _items(2, seed=0), _items(1, seed=10)
    seqs = [
        m.encoder.encode(items_long, CANDS[0], "a red circle"),
        m.encoder.encode(items_short, CANDS[1], "a much longer prompt about a castle at night"),
        m.encoder.encode(items_long[:3], CANDS[2], None),
    ]
    assert len({len(s.ids) for s in seqs}) == 3  # the batch really pads
    with torch.no_grad():
        singles = torch.cat([m.score_sequences([s]).plus for s in seqs])
        for side in ("right", "left"):
            batched = m.score_sequences(seqs, padding_side=side)
            _close(batched.plus, singles)
            assert torch.isfinite(batched.logits).all()


@pytest.mark.parametrize("style", ["preftoken", "viper", "compact"])
def test_prefix_cache_equals_full_sequence(models, style):
    m = models[style]
    items = _items(2)
    with torch.no_grad():
        state = scoring.condition(m, items)
        cached = scoring.score_candidates(m, state, CANDS, PROMPTS, batch_size=3)
        full = scoring.score_uncached(m, items, CANDS, PROMPTS, batch_size=5)
    assert state.length == m.n_pref_tokens + len(m.encoder.encode_prefix(items).ids)
    _close(cached.plus, full.plus)
    _close(cached.minus, full.minus)
    _close(cached.logits, full.logits)
    # the cached prefix is reused untouched: scoring again gives the same numbers
    with torch.no_grad():
        again = scoring.score_candidates(m, state, CANDS[:2], PROMPTS[:2])
    _close(again.plus, cached.plus[:2])


def test_cached_scores_are_differentiable_in_pixels(models):
    from prefcli.vlm.preprocess import preprocess_tensor

    m = models["compact"]
    with torch.no_grad():
        state = scoring.condition(m, _items(1))
    raw = torch.rand(2, 3, 40, 40, requires_grad=True)
    pv = preprocess_tensor(raw, m.core.config.vision_config.image_size)
    out = scoring.score_candidates(m, state, [None, None], pixel_values=pv)
    out.q.sum().backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0


def test_empty_history_and_no_pref_tokens():
    m = _sharpen(tiny_vlm(template="viper", seed=3)).eval()
    with torch.no_grad():
        state = scoring.condition(m, [])
        a = scoring.score_candidates(m, state, CANDS[:2])
        b = scoring.score_uncached(m, [], CANDS[:2])
    assert state.length == 1  # just <s>
    _close(a.plus, b.plus)


def test_training_pair_backward_reaches_every_part():
    from prefcli.vlm.losses import preference_loss

    m = tiny_vlm(template="compact", n_pref_tokens=2, seed=4)
    set_trainable(m, base=True, lora=False, tokens=True)
    m.train()
    items = _items(2)
    pos, neg = m.pair_logits([items, items[:2]], CANDS[:2], CANDS[2:4])
    preference_loss(pos.logits, neg.logits, m.plus_id, m.minus_id).total.backward()
    for part in (
        m.pref_tokens.weight,
        m.inner.vision_model.embeddings.patch_embedding.weight,
        m.inner.connector.perceiver_resampler.latents,
        m.text_model.layers[0].self_attn.q_proj.weight,
    ):
        assert part.grad is not None and part.grad.abs().sum() > 0


def test_qlora_tiny_forward_backward_on_cpu():
    pytest.importorskip("bitsandbytes")
    pytest.importorskip("peft")
    import bitsandbytes as bnb

    try:
        m = tiny_vlm(template="compact", lora=True, qlora=True, n_pref_tokens=2, seed=5)
    except Exception as e:  # noqa: BLE001 - bitsandbytes without a usable CPU backend
        pytest.skip(f"bitsandbytes 4-bit is unavailable here: {e}")
    base_q = m.text_model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(base_q, bnb.nn.Linear4bit)
    assert not isinstance(m.inner.vision_model.encoder.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    lora_names = [n for n, _ in m.core.named_modules() if n.endswith("lora_A")]
    assert any("text_model" in n for n in lora_names)
    assert any("modality_projection" in n for n in lora_names)
    assert any("perceiver_resampler" in n for n in lora_names)
    assert not any("vision_model" in n for n in lora_names)
    counts = parameter_counts(m)
    assert counts["text"]["trainable"] == 0 and counts["lora"]["trainable"] > 0
    assert counts["vision"]["trainable"] == counts["vision"]["total"]  # train_vision default
    m.train()
    from prefcli.vlm.losses import preference_loss

    items = _items(1)
    pos, neg = m.pair_logits([items], CANDS[:1], CANDS[1:2])
    assert torch.isfinite(pos.plus).all()
    preference_loss(pos.logits, neg.logits, m.plus_id, m.minus_id).total.backward()
    grads = [p.grad for n, p in m.core.named_parameters() if "lora_B" in n and "text_model" in n]
    assert grads and all(g is not None for g in grads)
    assert m.pref_tokens.weight.grad is not None


def test_full_size_meta_build_counts():
    m = build_model(VLMSpec(base="idefics2-8b", weights="meta", tokenizer="idefics2", lora=True, n_pref_tokens=10))
    c = parameter_counts(m)
    base_total = sum(c[k]["total"] for k in ("vision", "connector", "text", "lm_head"))
    assert base_total == 8_402_768_112  # IDEFICS2-8B: ~8.4B
    assert c["vision"]["total"] == 417_792_240 and c["text"]["total"] == 7_110_672_384
    assert c["lora"]["total"] == 23_326_720  # r 8 on text model, connector, perceiver
    assert c["pref_tokens"]["total"] == 10 * 4096
    assert m.image_seq_len == 64 and m.image_token_id == 32001


def test_pref_tokens_init_and_safetensors_roundtrip(tmp_path):
    emb = torch.randn(500, 16) * 3 + 1
    t = new_preference_tokens(200, 16, init="vocab", embedding=emb, seed=0)
    assert abs(t.weight.mean().item() - emb.mean().item()) < 0.3
    assert abs(t.weight.std().item() - emb.std().item()) < 0.4
    u = new_preference_tokens(10, 16, init="uniform", seed=0)
    assert u.weight.min() >= -1 and u.weight.max() <= 1
    assert torch.equal(new_preference_tokens(10, 16, init="uniform", seed=0).weight, u.weight)
    path = save_pref_tokens(t, tmp_path / "tok.safetensors", {"base": "tiny"})
    back = load_pref_tokens(path)
    assert torch.equal(back.weight, t.weight) and back.init_method == "vocab"
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError):
        load_pref_tokens(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("lora", [False, True])
def test_save_and_load_model_folder_roundtrip(tmp_path, lora):
    from prefcli.vlm.checkpoint import load_vlm, save_vlm

    m = _sharpen(tiny_vlm(template="preftoken", n_pref_tokens=2, lora=lora, seed=6)).eval()
    if lora:
        with torch.no_grad():  # make the adapter non-trivial (LoRA B starts at zero)
            for n, p in m.core.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.5)
    items = _items(1)
    with torch.no_grad():
        want = scoring.score_uncached(m, items, CANDS[:3], PROMPTS[:3]).logits
    out = save_vlm(m, tmp_path / "ckpt", {"step": 7})
    save_vlm(m, out)  # overwriting an existing folder works
    back = load_vlm(out)
    assert back.n_pref_tokens == 2 and back.spec.template == "preftoken"
    with torch.no_grad():
        got = scoring.score_uncached(back, items, CANDS[:3], PROMPTS[:3]).logits
    _close(got, want)
    with pytest.raises(WeightsError):
        load_vlm(tmp_path)


def test_pretrained_folder_loads_through_weights_resolution(tmp_path):
    m = _sharpen(tiny_vlm(template="viper", seed=7)).eval()
    m.core.save_pretrained(tmp_path / "w")
    m.tokenizer.save_pretrained(tmp_path / "w")
    back = build_model(VLMSpec(base=str(tmp_path / "w"), weights="pretrained", template="viper"))
    with torch.no_grad():
        a = scoring.score_uncached(m, _items(1), CANDS[:2]).plus
        b = scoring.score_uncached(back.eval(), _items(1), CANDS[:2]).plus
    _close(a, b)
    with pytest.raises(WeightsError):
        build_model(VLMSpec(base=str(tmp_path / "missing"), weights="pretrained"))


def test_a_base_stage_with_vision_off_keeps_the_whole_image_encoder_frozen():
    """Toy recipe: the attributes stage teaches the image encoder; ``train_vision: false`` keeps it."""
    m = tiny_vlm(template="compact")
    set_trainable(m, base=True, lora=False, vision=False)
    grads = {n: p.requires_grad for n, p in m.core.named_parameters()}
    enc = [n for n in grads if ".vision_model." in f".{n}" or ".connector." in f".{n}"]
    assert enc and not any(grads[n] for n in enc)
    assert all(grads[n] for n in grads if n not in enc)
    set_trainable(m, base=True, lora=False)  # the default: everything trains with the base weights
    assert all(p.requires_grad for p in m.core.parameters())
