"""PickScore's published scoring snippet (github.com/yuvalkirstain/PickScore, README "Inference").

Written out here as the paper's authors publish it, one prompt against its
candidate images: processor → get_image_features / get_text_features →
L2-normalize → `model.logit_scale.exp() * text_embs @ image_embs.T`.
The one adaptation: transformers 5 returns an output object from
`get_*_features`, whose `pooler_output` is the projected embedding that
transformers 4 returned directly.
"""

from __future__ import annotations

from typing import Any, Sequence


def _features(out: Any) -> Any:
    return out if hasattr(out, "dim") else out.pooler_output


def calc_probs_and_scores(processor: Any, model: Any, prompt: str, images: Sequence[Any]) -> tuple[list[float], list[float]]:
    """(probabilities, scores) of `images` for `prompt`, exactly as the README computes them."""
    import torch

    image_inputs = processor(images=list(images), padding=True, truncation=True, max_length=77, return_tensors="pt")
    text_inputs = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        image_embs = _features(model.get_image_features(**image_inputs))
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = _features(model.get_text_features(**text_inputs))
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        scores = model.logit_scale.exp() * (text_embs @ image_embs.T)[0]
        probs = torch.softmax(scores, dim=-1)
    return probs.tolist(), scores.tolist()
