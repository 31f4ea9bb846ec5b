"""The toy-only ``history_features`` modes ("signed", "pair-difference") apply in every forward path.

Training (`target_logits`), uncached scoring (`PrefVLM.forward`), the prefix
cache and the batched scorer must all see the same signed embeddings, or a
model trained one way would be scored another.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from prefcli.errors import ConfigError
from prefcli.train.loop import target_logits
from prefcli.vlm import scoring
from prefcli.vlm.model import VLMSpec, history_signs, tiny_vlm
from prefcli.vlm.template import HistoryItem


def _img(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (40, 40, 3), dtype=np.uint8))


ITEMS = [HistoryItem(_img(1), "-"), HistoryItem(_img(2), "+"), HistoryItem(_img(3), "+"), HistoryItem(_img(4), "-")]
CANDS = [_img(10), _img(11), _img(12)]


def _model(mode: str, latents: int = 2):
    m = tiny_vlm(template="compact", tokenizer="tiny", tiny={"latents": latents}, seed=3, history_features=mode)
    with torch.no_grad():
        for p in m.core.parameters():
            if p.ndim >= 2:
                p.mul_(4)
    return m.eval()


def test_signs_follow_the_label_after_each_image_run():
    m = _model("signed", latents=2)
    seq = m.encoder.encode(ITEMS, CANDS[0], None)
    ids = torch.tensor([seq.ids])
    s = history_signs(ids, m.image_token_id, m.plus_id, m.minus_id)[0]
    img = (ids[0] == m.image_token_id).nonzero().flatten().tolist()
    assert len(img) == 2 * 5  # 4 history images + the target, 2 latents each
    # label order "-", "+", "+", "-", then the target (no label after it: +1)
    assert s[img].tolist() == [-1, -1, 1, 1, 1, 1, -1, -1, 0, 0]
    assert (s[ids[0] != m.image_token_id] == 0).all()


@pytest.mark.parametrize("mode", ["signed", "pair-difference"])
def test_history_features_change_scores_and_every_path_agrees(mode):
    plain, signed = _model("plain"), _model(mode)
    signed.core.load_state_dict(plain.core.state_dict())
    with torch.no_grad():
        a = scoring.score_uncached(plain, ITEMS, CANDS, [None] * 3, batch_size=3).plus
        b = scoring.score_uncached(signed, ITEMS, CANDS, [None] * 3, batch_size=3).plus
        assert (a - b).abs().max() > 1e-3  # the switch does something
        cached = scoring.score_candidates(
            signed, scoring.condition(signed, ITEMS), CANDS, [None] * 3, batch_size=2
        ).plus
        torch.testing.assert_close(cached, b, rtol=1e-4, atol=1e-6)
        # the training forward (vision once per distinct image, gathered by index)
        seqs = [signed.encoder.encode(ITEMS, c, None) for c in CANDS]
        batch = signed.make_batch(seqs)
        pv = batch.pixel_values
        logits = target_logits(signed, batch.input_ids, batch.attention_mask, pv, torch.arange(pv.shape[0]))
        torch.testing.assert_close(logits[:, signed.plus_id], b, rtol=1e-4, atol=1e-6)
        # with no history, signed and plain are the same model
        e1 = scoring.score_uncached(plain, [], CANDS, [None] * 3, batch_size=3).plus
        e2 = scoring.score_uncached(signed, [], CANDS, [None] * 3, batch_size=3).plus
        torch.testing.assert_close(e1, e2)


def test_history_features_need_the_compact_template():
    with pytest.raises(ConfigError, match="compact"):
        VLMSpec(template="preftoken", history_features="signed")
    with pytest.raises(ConfigError, match="history_features"):
        VLMSpec(template="compact", history_features="bogus")


def test_pair_difference_gives_both_items_of_a_pair_the_liked_minus_disliked_features():
    m = _model("pair-difference", latents=1)
    seq = m.encoder.encode(ITEMS, CANDS[0], None)
    ids = torch.tensor([seq.ids])
    emb = torch.randn(1, ids.shape[1], 4)
    from prefcli.vlm.model import transform_history_features

    out = transform_history_features(emb, ids, m.image_token_id, m.plus_id, m.minus_id, 1, "pair-difference")
    img = (ids[0] == m.image_token_id).nonzero().flatten().tolist()
    e = emb[0]
    # items: (-, +) then (+, -); the target is untouched, and so is every non-image position
    d1, d2 = e[img[1]] - e[img[0]], e[img[2]] - e[img[3]]
    for k, want in zip(img, [d1, d1, d2, d2, e[img[4]]]):
        torch.testing.assert_close(out[0, k], want)
    rest = [k for k in range(ids.shape[1]) if k not in img]
    torch.testing.assert_close(out[0, rest], e[rest])
