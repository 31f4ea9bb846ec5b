"""How an image reaches HPSv3: upstream's resize, then Qwen2-VL's patches, in torch ops.

Upstream (hpsv3 1.0.0) prepares an image in two steps:

1. `hpsv3/dataset/utils.py` `fetch_image` (lines 84-176, a modified
   qwen-vl-utils): a PIL image is `convert("RGB")` (line 108: a plain
   conversion, so RGBA loses its alpha without compositing and a palette
   image takes its palette colours), then resized with PIL's BICUBIC (line 174)
   to `smart_resize` (lines 55-81; the same rule as qwen-vl-utils', shared here
   with vlm-judge) with min_pixels = max_pixels = 256·28·28 (inference.py
   lines 98-111);
2. the processor's Qwen2VLImageProcessor (transformers 4.45.2) applies
   smart_resize again with its own bounds (a no-op for those sizes), rescales
   by 1/255, normalizes with the OpenAI CLIP mean/std, repeats the frame for
   the temporal patch and flattens 14×14 patches in 2×2 merge order.

`load_image` is step 1 on a PIL image; `patches` is step 2 on a (3, H, W)
tensor in [0, 1], so `reward` differentiates through it. A tensor given to
`reward` is resized with torch's bicubic (antialiased when shrinking): on an
image already at its smart_resize size both paths are the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

FACTOR = 28


def target_size(height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    from prefcli.qwen2vl import smart_resize

    return smart_resize(height, width, FACTOR, min_pixels, max_pixels)


def load_image(image: Any, min_pixels: int, max_pixels: int) -> Any:
    """Step 1 for a PIL image as opened: plain RGB conversion, PIL bicubic resize to the smart_resize size."""
    from PIL import Image

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    h, w = target_size(rgb.height, rgb.width, min_pixels, max_pixels)
    return rgb.resize((w, h), Image.BICUBIC)


def resize_tensor(x: torch.Tensor, min_pixels: int, max_pixels: int) -> torch.Tensor:
    """Step 1 for a (3, H, W) tensor in [0, 1]: bicubic to the smart_resize size (nothing when already there)."""
    import torch.nn.functional as F

    h, w = target_size(int(x.shape[-2]), int(x.shape[-1]), min_pixels, max_pixels)
    if (h, w) == tuple(x.shape[-2:]):
        return x
    shrink = h < x.shape[-2] or w < x.shape[-1]
    return F.interpolate(x[None], size=(h, w), mode="bicubic", align_corners=False, antialias=shrink)[0].clamp(0, 1)


class PatchRule:
    """Step 2 with one processor's numbers (patch 14, merge 2, temporal 2 and the CLIP mean/std for Qwen2-VL)."""

    def __init__(self, config: dict[str, Any]):
        self.patch = int(config.get("patch_size", 14))
        self.merge = int(config.get("merge_size", 2))
        self.temporal = int(config.get("temporal_patch_size", 2))
        self.mean = tuple(float(v) for v in config.get("image_mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(float(v) for v in config.get("image_std", (0.26862954, 0.26130258, 0.27577711)))
        self.min_pixels = int(config.get("min_pixels", 56 * 56))
        self.max_pixels = int(config.get("max_pixels", 28 * 28 * 1280))

    def tokens(self, grid: Sequence[int]) -> int:
        """Image tokens in the text for one image's (t, h, w) patch grid."""
        t, h, w = (int(v) for v in grid)
        return t * h * w // (self.merge**2)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """(3, H, W) in [0, 1], sides multiples of patch·merge → (patches, C·T·P·P) and its (t, h, w) grid."""
        c, height, width = x.shape
        h2, w2 = target_size(height, width, self.min_pixels, self.max_pixels)
        if (h2, w2) != (height, width):  # the processor's own bounds (a no-op at HPSv3's sizes)
            x = resize_tensor(x, h2 * w2, h2 * w2)
            height, width = h2, w2
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        x = (x - mean) / std
        p, m, t = self.patch, self.merge, self.temporal
        gh, gw = height // p, width // p
        frames = x[None].expand(t, c, height, width)  # one image: the frame repeated for the temporal patch
        v = frames.reshape(1, t, c, gh // m, m, p, gw // m, m, p)
        v = v.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # grid_t, h-blocks, w-blocks, h-in-block, w-in-block, C, T, P, P
        return v.reshape(gh * gw, c * t * p * p), (1, gh, gw)


def to_tensor(image: Any) -> torch.Tensor:
    """A PIL RGB image → (3, H, W) float32 in [0, 1] (the processor's rescale by 1/255)."""
    import numpy as np

    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
