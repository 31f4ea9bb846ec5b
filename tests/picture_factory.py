"""Colourful test pictures with structure: never all-black (Idefics2 treats zeros as padding)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def structured_images(sizes, seed: int) -> list[Image.Image]:
    """One image per (width, height): random mid-range pixels plus a gradient in one channel."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (w, h) in enumerate(sizes):
        arr = rng.integers(25, 230, (h, w, 3), dtype=np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        arr[..., i % 3] = ((xx + yy * (i + 1)) % 256).astype(np.uint8)
        out.append(Image.fromarray(arr))
    return out
