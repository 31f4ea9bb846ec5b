"""CLIP score: 100 · cos(image embedding, prompt embedding).

Weights: the default `openai/clip-vit-large-patch14`, any directory holding an
HF CLIP model (weights, tokenizer, preprocessor config), or "tiny" (a seeded
random tiny CLIP for tests and offline demos).
"""

from __future__ import annotations

from typing import Any, Sequence

from prefcli import clip_common
from prefcli.errors import DataError
from prefcli.scorer import EmbeddingScorer
from prefcli.types import Candidate

DEFAULT_WEIGHTS = "openai/clip-vit-large-patch14"


def _prompt_of(candidate: Candidate) -> str:
    if candidate.prompt is None:
        where = candidate.path or candidate.image_id
        raise DataError(f"{where}: the clip scorer needs the prompt the image was made from, and this candidate has none")
    return candidate.prompt


class ClipScorer(EmbeddingScorer):
    """Options: `batch_size` (images per forward pass, default 16), `device`, `dtype`."""

    def __init__(self, weights: str | None = None, device: str = "cpu", dtype: str | None = None, *, batch_size: int = 16, **options: Any):
        super().__init__(weights=weights or DEFAULT_WEIGHTS, device=device, dtype=dtype, **options)
        self.batch_size = int(batch_size)
        dev = clip_common.torch_device(device)
        self.bundle = clip_common.load_clip(self.weights, device=dev, dtype=clip_common.torch_dtype(dtype, dev))

    @property
    def weights_id(self) -> str:
        return self.bundle.source if self.bundle.source.startswith("tiny:") else str(self.weights)

    def embed_images(self, candidates: Sequence[Candidate]) -> Any:
        """(N, D) float32 numpy array of L2-normalized image embeddings."""
        import numpy as np
        import torch

        out = []
        with torch.no_grad():
            for batch in clip_common.batched(list(candidates), self.batch_size):
                px = self.bundle.pixel_values([c.image for c in batch])
                out.append(clip_common.image_features(self.bundle.model, px).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.bundle.embed_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def embed_texts(self, prompts: Sequence[str]) -> Any:
        """(N, D) float32 numpy array of L2-normalized text embeddings."""
        import numpy as np
        import torch

        out = []
        with torch.no_grad():
            for batch in clip_common.batched(list(prompts), self.batch_size):
                tok = clip_common.tokenize(self.bundle.tokenizer, batch, device=self.bundle.device)
                out.append(clip_common.text_features(self.bundle.model, **tok).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.bundle.embed_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        candidates = list(candidates)
        prompts = [_prompt_of(c) for c in candidates]
        if not candidates:
            return []
        # Candidates of one task usually share a prompt: embed each text once.
        unique = list(dict.fromkeys(prompts))
        text = dict(zip(unique, self.embed_texts(unique)))
        images = self.embed_images(candidates)
        return [float(100.0 * images[i] @ text[p]) for i, p in enumerate(prompts)]

    def reward(self, pixels: Any, prompts: Sequence[str]) -> Any:
        """Differentiable 100 · cos for B×3×H×W pixels in [0, 1] and one prompt per image (or one for all)."""
        prompts = list(prompts) if not isinstance(prompts, str) else [prompts]
        if len(prompts) == 1 and pixels.shape[0] > 1:
            prompts = prompts * pixels.shape[0]
        if len(prompts) != pixels.shape[0]:
            raise ValueError(f"got {pixels.shape[0]} images but {len(prompts)} prompts")
        model = self.bundle.model
        img = clip_common.image_features(model, self.bundle.preprocess_tensor(pixels))
        tok = clip_common.tokenize(self.bundle.tokenizer, prompts, device=self.bundle.device)
        txt = clip_common.text_features(model, **tok)
        return 100.0 * (img.float() * txt.float()).sum(-1)
