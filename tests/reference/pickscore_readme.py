"""PickScore's published scoring snippet (github.com/yuvalkirstain/PickScore, README.md lines 49-93).

Written out here as the paper's authors publish it, one prompt against its
candidate images: processor → get_image_features / get_text_features →
L2-normalize → `model.logit_scale.exp() * text_embs @ image_embs.T`.
The one adaptation: transformers 5 returns an output object from
`get_*_features`, whose `pooler_output` is the projected embedding that
transformers 4 returned directly.

The processor the README meant is transformers 4.27.3's (requirements.txt
line 8); `tests/reference/transformers427.py` runs that version itself and
`scores_from_inputs` takes what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _features(out: Any) -> Any:
    return out if hasattr(out, "dim") else out.pooler_output


def scores_from_inputs(model: Any, pixel_values: Any, input_ids: Any, attention_mask: Any = None) -> tuple[list[float], list[float]]:
    """README lines 81-93 on given processor outputs: (probabilities, scores) of the images for the one prompt."""
    import torch

    with torch.no_grad():
        image_embs = _features(model.get_image_features(pixel_values=pixel_values))
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = _features(model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        scores = model.logit_scale.exp() * (text_embs @ image_embs.T)[0]
        probs = torch.softmax(scores, dim=-1)
    return probs.tolist(), scores.tolist()


def calc_probs_and_scores(processor: Any, model: Any, prompt: str, images: Sequence[Any]) -> tuple[list[float], list[float]]:
    """(probabilities, scores) of `images` for `prompt`, exactly as the README computes them, with `processor`."""
    image_inputs = processor(images=list(images), padding=True, truncation=True, max_length=77, return_tensors="pt")
    text_inputs = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
    return scores_from_inputs(model, image_inputs["pixel_values"], text_inputs["input_ids"], text_inputs.get("attention_mask"))
