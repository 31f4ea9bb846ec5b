"""The `image-reward` package (v1.5) made importable on today's libraries, for parity tests only.

The package is installed with `pip install --no-deps image-reward==1.5`: its
pins (timm 0.6.13, fairscale, clip, diffusers, datasets) are not. Its scoring
code is left untouched; only what stands around it is shimmed:

- `ImageReward/__init__.py` and `ImageReward/models/__init__.py` import the
  ReFL trainer (diffusers, datasets) and CLIP/Aesthetic scorers (`clip`);
  they are skipped by registering the two packages as bare modules, so only
  `ImageReward.ImageReward` and `ImageReward.models.BLIP.*` load.
- `vit.py` imports fairscale's `checkpoint_wrapper` (only for gradient
  checkpointing): a stub module stands in while importing.
- `med.py` imports `apply_chunking_to_forward`, `find_pruneable_heads_and_indices`
  and `prune_linear_layer` from `transformers.modeling_utils` (moved or removed
  in transformers 5): they are provided there while importing, and its
  BertModel gets back the two PreTrainedModel helpers it calls that
  transformers 5 removed (`get_head_mask`, `invert_attention_mask`), written
  as transformers 4 had them, and its `init_weights()` applies its own
  `_init_weights` as transformers 4 did (5's needs post_init state; the drawn
  weights are replaced by the checkpoint).
- `BertTokenizer.from_pretrained('bert-base-uncased')` would need the network:
  it reads the given vocabulary folder instead, and regains the
  `additional_special_tokens_ids` that transformers 5 dropped (BLIP reads
  `[ENC]`'s id from it).
- BLIP is hard-wired to ViT-L and a 768-wide head: for tiny weights,
  `create_vit` builds the package's own VisionTransformer at the tiny size and
  `MLP` is built at the tiny text width. Layers and forward code stay theirs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGE = "ImageReward"


def available() -> bool:
    return importlib.util.find_spec(PACKAGE) is not None


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    mod.__dict__.update(attrs)
    return mod


@contextlib.contextmanager
def _temporarily(modules: dict[str, types.ModuleType], attrs: list[tuple[Any, str, Any]]) -> Iterator[None]:
    saved_mods = {k: sys.modules.get(k) for k in modules}
    saved_attrs = [(obj, name, getattr(obj, name, _MISSING)) for obj, name, _ in attrs]
    sys.modules.update(modules)
    for obj, name, value in attrs:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for k, v in saved_mods.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for obj, name, value in saved_attrs:
            if value is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, value)


_MISSING = object()


def _find_pruneable_heads_and_indices(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called when scoring
    raise NotImplementedError("head pruning is not part of ImageReward scoring")


def _import_package() -> dict[str, types.ModuleType]:
    """Import the package's BLIP and ImageReward modules (once per process)."""
    if f"{PACKAGE}.ImageReward" in sys.modules:
        return {n: sys.modules[f"{PACKAGE}.{n}"] for n in ("ImageReward", "models.BLIP.blip", "models.BLIP.blip_pretrain", "models.BLIP.med")}
    import transformers.modeling_utils as tmu
    import transformers.pytorch_utils as tpu

    root = Path(importlib.util.find_spec(PACKAGE).origin).parent
    # Bare parent packages: their __init__ files import the trainer and the CLIP scorers.
    for name, path in ((PACKAGE, root), (f"{PACKAGE}.models", root / "models")):
        if name not in sys.modules:
            mod = _stub(name)
            mod.__path__ = [str(path)]
            mod.__spec__.submodule_search_locations = [str(path)]
            sys.modules[name] = mod
    fairscale = {
        "fairscale": _stub("fairscale"),
        "fairscale.nn": _stub("fairscale.nn"),
        "fairscale.nn.checkpoint": _stub("fairscale.nn.checkpoint"),
        "fairscale.nn.checkpoint.checkpoint_activations": _stub(
            "fairscale.nn.checkpoint.checkpoint_activations", checkpoint_wrapper=lambda module, *a, **k: module
        ),
    }
    moved = [
        (tmu, "apply_chunking_to_forward", tpu.apply_chunking_to_forward),
        (tmu, "prune_linear_layer", tpu.prune_linear_layer),
        (tmu, "find_pruneable_heads_and_indices", getattr(tpu, "find_pruneable_heads_and_indices", _find_pruneable_heads_and_indices)),
    ]
    with _temporarily(fairscale, [m for m in moved if not hasattr(tmu, m[1])]):
        med = importlib.import_module(f"{PACKAGE}.models.BLIP.med")
        blip = importlib.import_module(f"{PACKAGE}.models.BLIP.blip")
        blip_pretrain = importlib.import_module(f"{PACKAGE}.models.BLIP.blip_pretrain")
        ir = importlib.import_module(f"{PACKAGE}.ImageReward")
    _restore_bert_helpers(med.BertModel)
    return {"ImageReward": ir, "models.BLIP.blip": blip, "models.BLIP.blip_pretrain": blip_pretrain, "models.BLIP.med": med}


def _restore_bert_helpers(cls: type) -> None:
    """transformers 4's PreTrainedModel helpers that med.py's BertModel calls."""
    import torch

    # transformers 5's init_weights needs attributes that only its post_init
    # sets; transformers 4's applied the model's own _init_weights, which is
    # what this does (the drawn weights are replaced by the checkpoint anyway).
    if "init_weights" not in cls.__dict__:
        cls.init_weights = lambda self: self.apply(self._init_weights)

    if not hasattr(cls, "get_head_mask"):

        def get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
            if head_mask is not None:  # pragma: no cover - ImageReward never masks heads
                raise NotImplementedError("head masks are not part of ImageReward scoring")
            return [None] * num_hidden_layers

        cls.get_head_mask = get_head_mask
    if not hasattr(cls, "invert_attention_mask"):

        def invert_attention_mask(self, encoder_attention_mask):
            if encoder_attention_mask.dim() == 3:
                ext = encoder_attention_mask[:, None, :, :]
            else:
                ext = encoder_attention_mask[:, None, None, :]
            ext = ext.to(dtype=self.dtype)
            return (1.0 - ext) * torch.finfo(self.dtype).min

        cls.invert_attention_mask = invert_attention_mask


def load_reference(
    med_config: str | Path,
    checkpoint: str | Path | None,
    vocab_dir: str | Path,
    *,
    vit: dict | None = None,
    text_width: int = 768,
) -> Any:
    """The package's `ImageReward` model with `checkpoint` loaded strictly (if given), in eval mode.

    `vit` (keyword arguments of the package's VisionTransformer) and
    `text_width` size the tiny model; leave them out for the real ViT-L/768.
    """
    import torch
    from transformers import BertTokenizer

    mods = _import_package()
    ir, blip, blip_pretrain = mods["ImageReward"], mods["models.BLIP.blip"], mods["models.BLIP.blip_pretrain"]
    vocab_dir = str(vocab_dir)

    class OfflineBertTokenizer(BertTokenizer):
        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):  # 'bert-base-uncased' → the given vocabulary
            return super().from_pretrained(vocab_dir, *args, **kwargs)

        @property
        def additional_special_tokens_ids(self):
            return self.convert_tokens_to_ids([str(t) for t in getattr(self, "_extra_special_tokens", [])])

    patches = [(blip, "BertTokenizer", OfflineBertTokenizer)]
    if vit is not None:
        vit_cls = importlib.import_module(f"{PACKAGE}.models.BLIP.vit").VisionTransformer

        def create_vit(name, image_size, use_grad_checkpointing=False, ckpt_layer=0, drop_path_rate=0):
            return vit_cls(**vit), vit["embed_dim"]

        patches.append((blip_pretrain, "create_vit", create_vit))
    if text_width != 768:
        base_mlp = ir.MLP

        class SizedMLP(base_mlp):
            def __init__(self, input_size):
                super().__init__(text_width)

        patches.append((ir, "MLP", SizedMLP))

    with _temporarily({}, patches):
        model = ir.ImageReward(med_config=str(med_config), device="cpu")
    if checkpoint is not None:
        state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()
