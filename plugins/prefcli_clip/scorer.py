"""CLIP score: 100 · cos(image embedding, prompt embedding).

Weights: the default `openai/clip-vit-large-patch14`, any directory holding an
HF CLIP model (weights, tokenizer, preprocessor config), or "tiny" (a seeded
random tiny CLIP for tests and offline demos).
"""

from __future__ import annotations

from typing import Any

from prefcli import clip_common, devices


class ClipScorer(clip_common.ClipBundleScorer):
    """Options: `batch_size` (images per forward pass, default 16), `device`, `dtype`.

    Preprocessing is OpenAI CLIP's (`clip.load`'s `_transform` on the image as
    opened, sizes from the model's processor config) and prompts are cleaned as
    OpenAI's tokenizer cleans them (ftfy, HTML entities, whitespace); prompts
    longer than 77 tokens are cut as `clip.tokenize(..., truncate=True)` cuts them.
    """

    name = "clip"
    clean_text = staticmethod(clip_common.openai_clean_text)

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        dev = devices.torch_device(device)
        self.bundle = clip_common.load_clip(
            self.weights, device=dev, dtype=devices.torch_dtype(dtype, dev, getattr(self.spec, "cuda_dtype", None))
        )

    def scale(self, model: Any) -> Any:
        return 100.0
