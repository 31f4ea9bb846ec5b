"""HPSv2 / HPSv2.1: cos(image embedding, prompt embedding) of a preference-tuned OpenCLIP ViT-H-14.

Facts kept from the official evaluation code (github.com/tgxs002/HPSv2,
`hpsv2/img_score.py`), without depending on its package:

- architecture: open_clip `ViT-H-14` (no score or region predictor heads);
- checkpoint: `HPS_v2_compressed.pt` (v2.0) or `HPS_v2.1_compressed.pt`
  (v2.1) from hub repo `xswu/HPSv2`, the weights under the key `state_dict`,
  loaded strictly;
- preprocessing: `img_score.py` builds its model with `light_augmentation=True`,
  so `preprocess_val` is open_clip-fork `image_transform(..., resize_longest_max=True)`:
  `convert("RGB")` (an RGBA image is kept as it is, and only its colour
  channels can reach the model) → ToTensor → bicubic resize of the *tensor*
  so that the longest side is 224 (`round()` for the other side) → zero
  padding to 224×224, centred (left/top get the floor half) → OpenAI CLIP
  mean/std. The tensor resize follows torchvision's `antialias` default, which
  changed in torchvision 0.17: the `antialias` option picks it (see
  docs/scorers/hpsv2.md for which setting reproduces which table);
- tokenizer: open_clip's `ViT-H-14` tokenizer (OpenAI BPE, context 77);
- score: `image_features @ text_features.T`, diagonal, i.e. the cosine of
  the two L2-normalized embeddings. The HPS benchmark reports 100 · cos:
  pass `percent=True` for that scale (the ranking is the same).

Weights: the hub repo (default; `version` picks the file), a local folder
holding the version's file, a checkpoint file (.pt with `state_dict`, or a
flat .safetensors), or "tiny"/"tiny:SEED" (a tiny open_clip config with
seeded random weights, offline). Files are read with safetensors or
`torch.load(weights_only=True)`; a checkpoint that needs more is converted
once with `prefcli convert hpsv2 SRC DST` (see docs/scorers/hpsv2.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefcli import clip_common, devices
from prefcli.errors import WeightsError
from prefcli.scorer import EmbeddingScorer, broadcast_prompts, require_prompt
from prefcli.types import Candidate
from prefcli_hpsv2 import DEFAULT_VERSION  # noqa: F401 - declared once, with the options

VERSION_FILES = {"2.0": "HPS_v2_compressed.pt", "2.1": "HPS_v2.1_compressed.pt"}
TINY_ARCH = "prefcli-hpsv2-tiny"  # open_clip config shipped next to this module
CHECKPOINT_KEY = "state_dict"

_TINY_CONFIG = Path(__file__).with_name(f"{TINY_ARCH}.json")


def register_tiny_config() -> None:
    """Make the tiny architecture known to open_clip (idempotent)."""
    import open_clip

    if TINY_ARCH not in open_clip.list_models():
        open_clip.add_model_config(_TINY_CONFIG)


def _precision(dtype: Any) -> str:
    import torch

    return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")


def create_model(arch: str, device: Any = "cpu", dtype: Any = None, seed: int | None = None) -> Any:
    """An open_clip model of `arch` with random weights (seeded when `seed` is given), in eval mode.

    `device="meta"` builds the skeleton only (no memory, no initialization),
    for loading a checkpoint into with `apply_state_dict`.
    """
    import open_clip
    import torch

    if arch == TINY_ARCH:
        register_tiny_config()
    root = logging.getLogger()
    # open_clip warns that the model is "initialized randomly"; the checkpoint is loaded right after.
    quiet = _DropRandomInitWarning()
    root.addFilter(quiet)
    try:
        with torch.random.fork_rng(devices=[]), torch.device(device):
            if seed is not None:
                torch.manual_seed(int(seed))
            model = open_clip.create_model(
                arch, pretrained=None, precision=_precision(dtype), device=device, output_dict=True
            )
    finally:
        root.removeFilter(quiet)
    return model.eval()


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


def load_checkpoint(path: str | Path) -> dict:
    """The state dict of an HPS checkpoint, read without executing code from the file."""
    from prefcli import weights as W

    try:
        return W.load_state_dict(path, key=CHECKPOINT_KEY)
    except WeightsError as e:
        if "pickled Python objects" in str(e):
            raise WeightsError(
                f"{path}: the checkpoint holds pickled Python objects besides its weights, which prefcli will not "
                f"execute; convert it once with `prefcli convert hpsv2 {path} hps.safetensors` (the restricted "
                f"loader: nothing from the file runs) and pass --weights hps.safetensors"
            ) from None
        raise


def apply_state_dict(model: Any, state: dict, source: str) -> None:
    """Load strictly, as the official code does: a missing, unexpected or mis-shaped key is an error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise WeightsError(f"{source}: not an HPSv2 checkpoint for this architecture: {', '.join(parts)}")
    model.load_state_dict(state, strict=True, assign=any(p.is_meta for p in own.values()))
    _materialize_buffers(model)


def _materialize_buffers(model: Any) -> None:
    """Rebuild the one non-persistent buffer of a meta-built CLIP: the text tower's causal mask."""
    import torch

    for mod_name, module in model.named_modules():
        for name, buf in list(module._buffers.items()):
            if buf is None or not buf.is_meta:
                continue
            if name != "attn_mask" or buf.dim() != 2:
                raise WeightsError(f"cannot rebuild buffer {mod_name}.{name} of a meta-built model")
            # open_clip's build_causal_mask: -inf above the diagonal, 0 elsewhere.
            module._buffers[name] = torch.full(tuple(buf.shape), float("-inf"), dtype=buf.dtype).triu_(1)


def checkpoint_file(weights: str, version: str) -> Path:
    """The checkpoint named by a weights spec: the version's file in a repo or folder, or the file itself."""
    from prefcli import weights as W

    return Path(W.resolve_file(weights, VERSION_FILES[version]))


def resize_longest_and_pad(x: Any, size: int, antialias: bool) -> Any:
    """(…, C, H, W) float tensor → (…, C, size, size): the longest side bicubic-resized to `size`, zero-padded, centred.

    The geometry of hpsv2's `ResizeMaxSize` (hpsv2/src/open_clip/transform.py,
    lines 37-49): the shorter side becomes `round(side · size / longest)`, the
    padding puts the floor half of the gap on the left and top. Upstream
    leaves an image whose longest side already equals `size` untouched (a
    non-square one then cannot enter the model); it is padded here. Plain torch
    ops, so `reward` differentiates through it.
    """
    import torch.nn.functional as F
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    h, w = int(x.shape[-2]), int(x.shape[-1])
    scale = size / float(max(h, w))
    if scale != 1.0:
        new_h, new_w = round(h * scale), round(w * scale)
        x = TF.resize(x, [new_h, new_w], InterpolationMode.BICUBIC, antialias=bool(antialias))
    else:
        new_h, new_w = h, w
    pad_h, pad_w = size - new_h, size - new_w
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
    return x


def normalize(
    x: Any, mean: Sequence[float] = clip_common.OPENAI_CLIP_MEAN, std: Sequence[float] = clip_common.OPENAI_CLIP_STD
) -> Any:
    import torch

    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - m) / s


def val_transform(image_size: int, antialias: bool = False) -> Any:
    """hpsv2's `preprocess_val` (light_augmentation=True) for one PIL image → 3×S×S tensor.

    `convert("RGB")` gives every mode what upstream's `_convert_to_rgb_or_rgba`
    gives its colour channels (Pillow's RGBA → RGB drops alpha without
    compositing, and the resize treats channels independently), then
    ToTensor, `resize_longest_and_pad`, OpenAI mean/std.
    """
    from torchvision.transforms import functional as TF

    def transform(image: Any) -> Any:
        x = TF.to_tensor(image if image.mode == "RGB" else image.convert("RGB"))
        return normalize(resize_longest_and_pad(x, image_size, antialias))

    return transform


class HPSv2Scorer(EmbeddingScorer):
    """Options (`self.options`): `HPSv2Options` in prefcli_hpsv2: `version`, `percent`, `arch`, `antialias`
    (false: torchvision's default before 0.17, which the published HPSv2 tables were made with)."""

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        from prefcli import weights as W

        super().__init__(weights, device, dtype, spec=spec, options=options)
        arch = self.options.arch
        dev = devices.torch_device(device)
        tdtype = devices.torch_dtype(dtype, dev, getattr(self.spec, "cuda_dtype", None))
        if W.is_tiny(self.weights):
            self.arch, seed = TINY_ARCH, W.tiny_seed(self.weights)
            # The random weights go through the same strict loading as a real checkpoint.
            state = create_model(TINY_ARCH, seed=seed).state_dict()
            self.source = f"hpsv2-tiny:{seed}"
        else:
            self.arch = TINY_ARCH if arch in ("tiny", TINY_ARCH) else arch
            path = checkpoint_file(self.weights, self.options.version)
            self.checkpoint = path
            state = load_checkpoint(path)
            src = W.parse(self.weights)
            named_file = src.kind == "local" and src.path is not None and src.path.is_file()
            # The version's file inside a repo or folder is part of what identifies the weights.
            self.source = str(path) if named_file else f"{src.describe()}#{path.name}"
        # Built without initialization: every tensor comes from the checkpoint
        # (a random ViT-H-14 costs ~15 s of CPU time for nothing).
        self.model = create_model(self.arch, device="meta", dtype=tdtype)
        apply_state_dict(self.model, state, self.source)
        self.model.to(device=dev, dtype=tdtype)
        import open_clip

        self.tokenizer = open_clip.get_tokenizer(self.arch)
        self.image_size = int(self._image_size())
        self.transform = val_transform(self.image_size, self.options.antialias)

    def modules(self) -> Any:
        return (self.model,)

    def _image_size(self) -> int:
        size = getattr(self.model.visual, "image_size", 224)
        return size[0] if isinstance(size, (tuple, list)) else size

    @property
    def device_(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype_(self) -> Any:
        return next(self.model.parameters()).dtype

    @property
    def weights_id(self) -> str:
        """The checkpoint file actually loaded, by content (and hub commit); `percent` is an option of the identity."""
        from prefcli.weights import identity

        return self.source if self.source.startswith("hpsv2-tiny:") else identity(str(self.checkpoint))

    @property
    def _scale(self) -> float:
        return 100.0 if self.options.percent else 1.0

    def _image_features(self, images: Sequence[Any]) -> Any:
        import torch

        px = torch.stack([self.transform(im) for im in images]).to(self.device_, self.dtype_)
        return self.model.encode_image(px, normalize=True)

    def _text_features(self, prompts: Sequence[str]) -> Any:
        tokens = self.tokenizer(list(prompts)).to(self.device_)
        return self.model.encode_text(tokens, normalize=True)

    def embed_images(self, candidates: Sequence[Candidate]) -> Any:
        """(N, D) float32 numpy array of L2-normalized image embeddings."""
        import numpy as np
        import torch

        out = []
        with torch.no_grad():
            for batch in clip_common.batched(list(candidates), self.batch_size):
                # The image as opened: the transform converts it as upstream does.
                out.append(self._image_features([c.original for c in batch]).float().cpu().numpy())
        if not out:
            return np.zeros((0, int(self.model.text_projection.shape[-1])), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def embed_texts(self, prompts: Sequence[str]) -> Any:
        """(N, D) float32 numpy array of L2-normalized prompt embeddings."""
        import numpy as np
        import torch

        out = []
        with torch.no_grad():
            for batch in clip_common.batched(list(prompts), self.batch_size):
                out.append(self._text_features(batch).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        candidates = list(candidates)
        prompts = [require_prompt(c, "hpsv2") for c in candidates]
        if not candidates:
            return []
        unique = list(dict.fromkeys(prompts))  # one task's candidates share a prompt
        text = dict(zip(unique, self.embed_texts(unique)))
        images = self.embed_images(candidates)
        return [float(self._scale * (images[i] @ text[p])) for i, p in enumerate(prompts)]

    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        """Differentiable HPS for B×3×H×W pixels in [0, 1]; one prompt per image, or one for all."""
        prompts = broadcast_prompts(prompts, pixels.shape[0])
        if pixels.dim() != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected pixels of shape B×3×H×W, got {tuple(pixels.shape)}")
        # The same tensor ops as `score`'s transform after its ToTensor.
        px = normalize(
            resize_longest_and_pad(pixels.to(self.device_).float(), self.image_size, self.options.antialias)
        ).to(self.dtype_)
        img = self.model.encode_image(px, normalize=True)
        txt = self._text_features(prompts)
        return self._scale * (img.float() * txt.float()).sum(-1)
