"""OpenAI's `clip` package itself (openai-clip 1.0.1, installed with `--no-deps`), as the oracle for clip and aesthetic.

openai-clip 1.0.1 is github.com/openai/CLIP's `clip/` folder as published on
PyPI: `clip/clip.py` and `clip/simple_tokenizer.py` are the repository's
(commit d05afc4) except that clip.py imports `packaging` through
`pkg_resources`. What the tests run is theirs:

- `clip.clip._transform(n_px)` (clip/clip.py lines 75-86): Resize(n_px,
  bicubic) on the PIL image in its own mode → CenterCrop(n_px) →
  `_convert_image_to_rgb` → ToTensor → Normalize(OpenAI mean/std). It is what
  `clip.load` returns as `preprocess` (line 202), which the LAION aesthetic
  predictor applies to `Image.open(img_path)` (github.com/christophschuhmann/
  improved-aesthetic-predictor, simple_inference.py lines 103-108).
- `clip.tokenize(texts, context_length=77, truncate=...)` (clip/clip.py lines
  205-245) with the tokenizer's cleaning (simple_tokenizer.py lines 50-59 and
  123: ftfy, `html.unescape` twice, whitespace, lower case). By default a text
  longer than the context raises `RuntimeError`; `truncate=True` keeps the
  first 76 tokens and ends in `<|endoftext|>`.

The one shim: `pkg_resources` (gone from recent setuptools) is provided as a
module holding `packaging` when it is missing; clip.py only calls
`packaging.version.parse` with it. No weights are downloaded: the models are
prefcli's tiny HF CLIPs (the format `openai/clip-vit-*` hub repos hold),
whose `get_image_features` / `get_text_features` are the HF port of
`encode_image` / `encode_text`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from collections.abc import Sequence
from typing import Any

PACKAGE = "clip"


def _shim_pkg_resources() -> None:
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        import packaging.version

        shim = types.ModuleType("pkg_resources")
        shim.packaging = types.SimpleNamespace(version=packaging.version)
        sys.modules["pkg_resources"] = shim


def available() -> bool:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None or not spec.origin.endswith("clip/__init__.py"):
        return False
    _shim_pkg_resources()  # finding the submodule imports the package, whose clip.py needs pkg_resources
    try:
        return importlib.util.find_spec("clip.simple_tokenizer") is not None
    except ImportError:
        return False


@functools.lru_cache(maxsize=1)
def package() -> types.ModuleType:
    _shim_pkg_resources()
    return importlib.import_module(PACKAGE)


def transform(n_px: int) -> Any:
    """`clip.load`'s preprocess for a model of input resolution `n_px`."""
    return package().clip._transform(n_px)


def tokenize(texts: Sequence[str], truncate: bool = False) -> Any:
    return package().tokenize(list(texts), truncate=truncate)


def image_embeddings(model: Any, images: Sequence[Any], n_px: int) -> Any:
    """L2-normalized image embeddings, one image per forward pass, of images as opened."""
    import torch

    pre = transform(n_px)
    with torch.no_grad():
        out = []
        for im in images:
            f = model.get_image_features(pixel_values=pre(im).unsqueeze(0))
            f = f if hasattr(f, "dim") else f.pooler_output
            out.append(f[0])
        feats = torch.stack(out)
    return feats / feats.norm(dim=-1, keepdim=True)


def clip_scores(model: Any, images: Sequence[Any], prompt: str, n_px: int) -> list[float]:
    """CLIP score 100 · cos(encode_image(preprocess(image)), encode_text(clip.tokenize(prompt, truncate=True)))."""
    import torch

    img = image_embeddings(model, images, n_px)
    tokens = tokenize([prompt], truncate=True).long()
    with torch.no_grad():
        # OpenAI's encode_text reads the features at the first <|endoftext|>
        # under the causal mask alone; HF CLIP pools there too (eos_token_id).
        t = model.get_text_features(input_ids=tokens)
        t = t if hasattr(t, "dim") else t.pooler_output
    t = t / t.norm(dim=-1, keepdim=True)
    return [float(v) for v in 100.0 * (img @ t[0])]


def laion_normalized(a: Any, axis: int = -1, order: int = 2) -> Any:
    """simple_inference.py lines 84-89: numpy L2 normalization, zero norms left at 1."""
    import numpy as np

    l2 = np.atleast_1d(np.linalg.norm(a, order, axis))
    l2[l2 == 0] = 1
    return a / np.expand_dims(l2, axis)
