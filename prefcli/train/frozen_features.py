"""Image features computed once per stage while the image encoder is frozen.

A preference stage with ``train_vision: false`` (the toy recipe's ``main``)
never changes SigLIP or the connector, so an image's features are the same
at every step; recomputing them for the few hundred distinct images of every
batch was about a third of a toy step's CPU. ``FrozenFeatures`` computes the
features of every training image once when such a stage starts, and a step
gathers its images' rows from it instead of running the vision tower.

The numbers stay those of the per-step forward: the features are computed in
the model's own mode (train, as a step runs it) in chunks of many images (a
row's features do not depend on the other rows of a chunk of this size on
the CPU kernels measured; a single image alone can differ in the last bit),
and the cache is only used when nothing in the image encoder can differ
between two calls: no trainable parameter under the vision tower or the
connector and no dropout in them. tests/train/test_train_frozen_features.py
checks a run with and without it ends with the same weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

#: Images per forward when filling the cache (a step's batch holds a few hundred).
CHUNK = 256


def encoder_is_frozen(vlm: Any) -> bool:
    """True when the image encoder (SigLIP + connector) gives the same features at every call.

    No trainable parameter under it (base, LoRA or anything else) and, in
    training mode, no dropout: attention dropout of the vision and perceiver
    configs zero and no ``nn.Dropout`` with p > 0 in those modules.
    """
    for name, p in vlm.core.named_parameters():
        dotted = f".{name}"
        if (".vision_model." in dotted or ".connector." in dotted) and p.requires_grad:
            return False
    if not vlm.core.training:
        return True
    cfg = vlm.core.config
    for sub in (getattr(cfg, "vision_config", None), getattr(cfg, "perceiver_config", None)):
        if sub is not None and float(getattr(sub, "attention_dropout", 0.0) or 0.0) > 0:
            return False
    inner = vlm.inner
    for mod in (inner.vision_model, inner.connector):
        for m in mod.modules():
            if isinstance(m, torch.nn.Dropout) and m.p > 0:
                return False
    return True


class FrozenFeatures:
    """Image id -> its (image_seq_len, D) features, for a stage whose image encoder is frozen."""

    def __init__(self, feats: torch.Tensor, ids: Sequence[str]) -> None:
        self.feats = feats
        self.index = {i: k for k, i in enumerate(ids)}

    def get(self, image_ids: Sequence[str]) -> torch.Tensor | None:
        """The rows of `image_ids`, in that order; None when one of them is not in the cache."""
        try:
            rows = [self.index[i] for i in image_ids]
        except KeyError:
            return None
        return self.feats[torch.tensor(rows, dtype=torch.long, device=self.feats.device)]

    @classmethod
    def for_stage(cls, vlm: Any, store: Any, image_ids: Iterable[str], max_mb: int) -> FrozenFeatures | None:
        """A cache for the stage that was just set up, or None: the encoder trains, the cache is off
        (`max_mb` 0) or the features of all `image_ids` would take more than `max_mb`."""
        if max_mb <= 0 or not encoder_is_frozen(vlm):
            return None
        ids = list(dict.fromkeys(image_ids))
        if not ids:
            return None
        rows: list[torch.Tensor] = []
        with torch.no_grad():
            # One image tells the size of the whole cache: an 8B model's dataset that would not fit is
            # refused before a chunk of its images goes through the vision tower for nothing.
            one = vlm.image_features(store.get(ids[:1]).to(vlm.device))
            if one.numel() * one.element_size() * len(ids) > max_mb * (1 << 20):
                return None  # the per-step forward instead
            for s in range(0, len(ids), CHUNK):
                rows.append(vlm.image_features(store.get(ids[s : s + CHUNK]).to(vlm.device)))
        return cls(torch.cat(rows), ids)
