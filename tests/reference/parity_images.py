"""The image kinds every parity test runs: square, non-square, palette and RGBA files, and long prompts.

Each image is a PNG file's bytes. prefcli reads it through `prefcli.images`
(the one way in); the upstream reference opens the same bytes with
`PIL.Image.open`, as every upstream script does with a path. Sizes are
larger than the tiny models' inputs, so every kind is downscaled (where
resize filters and antialiasing matter) and the odd sizes exercise rounding
of the resize and the crop or pad offsets.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

KINDS = ("square", "non-square", "palette", "RGBA")

SHORT_PROMPT = "a cozy cabin in a snowy forest at night, digital art"
# Longer than CLIP's 77-token context (BOS + 75 + EOS), with the HTML entities
# and runs of whitespace that OpenAI's tokenizer cleans.
LONG_PROMPT = (
    "an extremely detailed matte painting of a lighthouse on a rocky cliff &amp; a stormy sea at dusk,   "
    "waves crashing, seagulls, dramatic clouds, volumetric light, rain, reflections on wet stones, "
    "a small red boat, fishermen in yellow coats, lanterns, fog rolling in from the horizon, "
    "trending on artstation, highly detailed, 8k, octane render, cinematic composition, golden hour, "
    "by a famous painter of the nineteenth century &quot;romantic&quot; school, oil on canvas"
)


def _pattern(w: int, h: int, seed: int) -> np.ndarray:
    """Structured, never-black RGB pixels: a gradient, a sine pattern and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 40 + 180 * xx / max(w - 1, 1)
    g = 40 + 180 * yy / max(h - 1, 1)
    b = 130 + 90 * np.sin(xx / 3.0 + seed) * np.cos(yy / 5.0)
    arr = np.stack([r, g, b], -1) + rng.normal(0, 18, (h, w, 3))
    return np.clip(arr, 25, 235).astype(np.uint8)


def _png(im: Image.Image, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def parity_files(kind: str) -> list[bytes]:
    """Three PNG files of one kind (see KINDS)."""
    if kind == "square":
        return [_png(Image.fromarray(_pattern(s, s, i))) for i, s in enumerate((40, 97, 300))]
    if kind == "non-square":
        return [_png(Image.fromarray(_pattern(w, h, 10 + i))) for i, (w, h) in enumerate(((57, 40), (40, 91), (301, 128)))]
    if kind == "palette":
        out = []
        for i, (w, h) in enumerate(((50, 37), (64, 64), (33, 120))):
            im = Image.fromarray(_pattern(w, h, 20 + i)).quantize(colors=48, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            # The first two carry a transparent palette entry (index 0), as GIFs and small PNGs do.
            out.append(_png(im, transparency=0) if i < 2 else _png(im))
        return out
    if kind == "RGBA":
        out = []
        for i, (w, h) in enumerate(((45, 60), (80, 80), (150, 47))):
            rgb = _pattern(w, h, 30 + i)
            yy, xx = np.mgrid[0:h, 0:w]
            alpha = np.clip(255 * (xx / max(w - 1, 1)) + 60 * np.sin(yy / 4.0), 0, 255).astype(np.uint8)
            alpha[: h // 4] = 0  # a fully transparent band whose colours are still stored
            out.append(_png(Image.fromarray(np.dstack([rgb, alpha]), "RGBA")))
        return out
    raise ValueError(f"unknown kind {kind!r}")


def upstream_open(data: bytes) -> Image.Image:
    """What upstream code gets from `Image.open(path)`."""
    return Image.open(io.BytesIO(data))


def prefcli_candidates(files: list[bytes], prompt: str | None) -> list[Any]:
    """Candidates read through prefcli's one way in (lazily, like files from a folder)."""
    from prefcli import images
    from prefcli.types import Candidate

    return [
        Candidate(image_id=images.content_id(d), prompt=prompt, loader=lambda d=d: images.decode_image(d, keep_mode=True))
        for d in files
    ]
