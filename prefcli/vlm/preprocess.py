"""Images into IDEFICS2 pixel tensors.

Full size (the paper and ViPer): every image is first resized to 512x512, then
goes through ``Idefics2ImageProcessor`` with longest_edge 448, shortest_edge
378 and no image splitting, so each image becomes one 3x448x448 tensor
(normalized with mean = std = 0.5). Tiny configs resize straight to the
model's small image size. Because every image ends up the same square size,
no pixel padding (and no pixel attention mask) is ever needed.

``preprocess_tensor`` is the torch-only path (differentiable, for reward
guidance): pixels in [0, 1] -> the same normalized tensors.

A preprocessor that keeps each image's aspect ratio (ViPer's, in the viper
plugin) returns images of different sizes on one canvas: the pixels outside
an image are ``PAD`` (NaN), which ``PrefVLM.image_features`` turns into
IDEFICS2's pixel attention mask. NaN never comes out of a decoded image or a
generator's [0, 1] output, so the padding travels in-band through every
cache and batch without a second tensor beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FULL_PRE_RESIZE = 512
FULL_SIZE = {"longest_edge": 448, "shortest_edge": 378}
MEAN = STD = 0.5
#: A pixel outside its image on a padded canvas (see the module docstring).
PAD = float("nan")


class ImagePreprocessor:
    """Callable: a list of PIL images (or objects with an ``.image``) -> tensor (N, 3, S, S)."""

    def __init__(self, image_size: int = 448, pre_resize: int | None = FULL_PRE_RESIZE, use_hf_processor: bool = True):
        self.image_size = int(image_size)
        self.pre_resize = pre_resize
        self.use_hf_processor = use_hf_processor
        self._proc = None

    @classmethod
    def full(cls) -> ImagePreprocessor:
        return cls(image_size=FULL_SIZE["longest_edge"], pre_resize=FULL_PRE_RESIZE, use_hf_processor=True)

    @classmethod
    def tiny(cls, image_size: int) -> ImagePreprocessor:
        return cls(image_size=image_size, pre_resize=None, use_hf_processor=False)

    def hf_processor(self) -> Any:
        if self._proc is None:
            from transformers import Idefics2ImageProcessor

            size = (
                FULL_SIZE
                if self.image_size == FULL_SIZE["longest_edge"]
                else {
                    "longest_edge": self.image_size,
                    "shortest_edge": self.image_size,
                }
            )
            self._proc = Idefics2ImageProcessor(do_image_splitting=False, size=size)
        return self._proc

    def _pil(self, img: Any) -> Any:
        if hasattr(img, "image") and not hasattr(img, "convert"):
            img = img.image  # a prefcli Candidate
        if img.mode != "RGB":  # convert() of an RGB image is a full copy of the same pixels
            img = img.convert("RGB")
        if self.pre_resize:
            img = img.resize((self.pre_resize, self.pre_resize))
        return img

    def tensor(self, pixels: Any) -> Any:
        """Torch-only, differentiable: (B, 3, H, W) in [0, 1] -> what ``__call__`` makes of such images."""
        return preprocess_tensor(pixels, self.image_size, self.pre_resize)

    def __call__(self, images: Sequence[Any]) -> Any:
        import numpy as np
        import torch

        pils = [self._pil(im) for im in images]
        if not pils:
            return torch.zeros(0, 3, self.image_size, self.image_size)
        if self.use_hf_processor:
            out = self.hf_processor()(images=[[p] for p in pils], return_tensors="pt")
            pv = out["pixel_values"]  # (N, 1, 3, H, W)
            return pv.reshape(pv.shape[0] * pv.shape[1], *pv.shape[2:]).float()
        from PIL import Image

        arrs = [
            np.asarray(p.resize((self.image_size, self.image_size), Image.BILINEAR), dtype=np.float32) for p in pils
        ]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2) / 255.0
        return (x - MEAN) / STD


def preprocess_tensor(pixels: Any, image_size: int, pre_resize: int | None = None) -> Any:
    """Torch-only, differentiable: (B, 3, H, W) in [0, 1] -> normalized (B, 3, S, S)."""
    import torch.nn.functional as F

    x = pixels
    if pre_resize:
        x = F.interpolate(x, size=(pre_resize, pre_resize), mode="bilinear", antialias=True, align_corners=False)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return (x - MEAN) / STD


def stack_padded(rows: Sequence[Any]) -> Any:
    """(3, h, w) tensors of any sizes -> (N, 3, H, W) on the largest canvas, ``PAD`` outside each image."""
    import torch
    import torch.nn.functional as F

    hh = max(int(r.shape[-2]) for r in rows)
    ww = max(int(r.shape[-1]) for r in rows)
    if all(tuple(r.shape[-2:]) == (hh, ww) for r in rows):
        return torch.stack(list(rows))
    return torch.stack([F.pad(r, (0, ww - int(r.shape[-1]), 0, hh - int(r.shape[-2])), value=PAD) for r in rows])
