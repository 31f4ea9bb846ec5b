"""hpsv2's own code (the `hpsv2` 1.2.0 package, installed with `--no-deps`), run as the test oracle.

The package is the repository github.com/tgxs002/HPSv2 (commit 866735e,
2024-02-21) as published on PyPI; its `img_score.py`,
`src/open_clip/transform.py` and `src/open_clip/factory.py` are byte for
byte the repository's (line endings aside). What is run here is theirs:

- `hpsv2/img_score.py` lines 20-38: `create_model_and_transforms(...,
  light_augmentation=True, output_dict=True)`, so `preprocess_val` is
- `hpsv2/src/open_clip/factory.py` lines 368-376: `image_transform(
  model.visual.image_size, is_train=False, resize_longest_max=True)`, i.e.
- `hpsv2/src/open_clip/transform.py` lines 141-157: `_convert_to_rgb_or_rgba`
  (lines 52-56: RGBA kept, anything else `convert("RGB")`) → `ToTensor()` →
  `ResizeMaxSize(image_size, fill=0)` (lines 26-49: bicubic `F.resize` of the
  *tensor* so the longest side is `image_size`, `round()` for the other side,
  then `F.pad(..., [pad_w//2, pad_h//2, pad_w - pad_w//2, pad_h - pad_h//2])`
  with zeros) → `MaskAwareNormalize` (lines 66-75: mean/std on the first three
  channels, a fourth (alpha) channel passed through);
- `hpsv2/img_score.py` lines 61-83: one image and the prompt per forward
  pass, `model(image, text)`, `image_features @ text_features.T`, diagonal,
  under `torch.cuda.amp.autocast()` (a no-op on CPU: fp32).

What stands around it, and why:

- `hpsv2/__init__.py` imports `clint` and downloads helpers (`utils.py`):
  `hpsv2` and `hpsv2.src` are registered as bare packages so that only
  `hpsv2.src.open_clip` (the fork of open_clip the scores were made with) loads.
- The PyPI package lacks the BPE vocabulary its tokenizer opens at import
  (`src/open_clip/tokenizer.py` line 153, `SimpleTokenizer()`): that one
  `gzip.open` is pointed at open_clip's copy of the same OpenAI file.
- `antialias`: `ResizeMaxSize` calls `F.resize(img, new_size, interpolation)`
  without `antialias`, so the result follows torchvision's default for
  tensors, which was False before torchvision 0.17 and is True since. The
  oracle runs with either, by giving the transform module an `F` whose
  `resize` passes the asked value.
- Checkpoints load with `torch.load(..., weights_only=True)` (img_score.py
  line 54 loads them fully; these test files hold tensors only).
"""

from __future__ import annotations

import functools
import gzip
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PACKAGE = "hpsv2"


def available() -> bool:
    return importlib.util.find_spec(PACKAGE) is not None


def _bare(name: str, path: Path) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
    mod.__spec__.submodule_search_locations = [str(path)]
    return mod


@functools.lru_cache(maxsize=1)
def open_clip_fork() -> types.ModuleType:
    """`hpsv2.src.open_clip`, imported from the installed package (once per process)."""
    import open_clip

    root = Path(importlib.util.find_spec(PACKAGE).origin).parent
    for name, path in ((PACKAGE, root), (f"{PACKAGE}.src", root / "src")):
        if not hasattr(sys.modules.get(name), "__path__"):
            sys.modules[name] = _bare(name, path)
    missing = str(root / "src" / "open_clip" / "bpe_simple_vocab_16e6.txt.gz")
    vocab = str(Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz")
    real_open = gzip.open

    def _open(filename, *args, **kwargs):
        return real_open(vocab if str(filename) == missing else filename, *args, **kwargs)

    gzip.open = _open
    try:
        return importlib.import_module(f"{PACKAGE}.src.open_clip")
    finally:
        gzip.open = real_open


def evaluation() -> types.ModuleType:
    """`hpsv2/evaluation.py` itself, for `evaluate_benchmark` (lines 116-151: the benchmark's layout and its
    per-style and average scores). Its module-level imports of training code (`hpsv2.src.training.*`,
    which needs einops), of `clint` and of `hpsv2.utils` (downloads) are stood in for by empty names:
    `evaluate_benchmark`, `BenchmarkDataset` and `collate_eval` use none of them."""
    name = f"{PACKAGE}.evaluation"
    if name in sys.modules and hasattr(sys.modules[name], "evaluate_benchmark"):
        return sys.modules[name]
    spec = importlib.util.find_spec(PACKAGE)
    root = Path(spec.origin).parent if spec is not None and spec.origin else Path(next(iter(spec.submodule_search_locations)))
    open_clip_fork()
    stand_ins = {"clint": {}, "clint.textui": {"progress": None}, f"{PACKAGE}.src.training": {},
                 f"{PACKAGE}.src.training.train": {"calc_ImageReward": None, "inversion_score": None},
                 f"{PACKAGE}.src.training.data": {"ImageRewardDataset": None, "collate_rank": None, "RankingDataset": None},
                 f"{PACKAGE}.utils": {"root_path": "", "hps_version_map": {}}}
    saved = {k: sys.modules.get(k) for k in stand_ins}
    for k, attrs in stand_ins.items():
        mod = types.ModuleType(k)
        mod.__dict__.update(attrs)
        sys.modules[k] = mod
    try:
        spec = importlib.util.spec_from_file_location(name, root / "evaluation.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for k, old in saved.items():
            if old is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = old
    sys.modules[name] = module
    return module


def register_config(config_json: str | Path) -> None:
    fork = open_clip_fork()
    name = Path(config_json).stem
    if name not in fork.list_models():
        fork.add_model_config(str(config_json))


class _Functional(types.SimpleNamespace):
    """torchvision.transforms.functional with `resize`'s antialias fixed."""


def preprocess_val(arch: str, antialias: bool) -> Any:
    """The fork's `preprocess_val` (light_augmentation=True), with torchvision's tensor antialias default set."""
    import torchvision.transforms.functional as TF

    fork = open_clip_fork()
    transform_mod = sys.modules[f"{PACKAGE}.src.open_clip.transform"]
    fixed = _Functional(**{k: getattr(TF, k) for k in dir(TF) if not k.startswith("__")})
    fixed.resize = functools.partial(TF.resize, antialias=antialias)
    transform_mod.F = fixed  # ResizeMaxSize.forward reads the module's F at call time
    _, _, pv = fork.create_model_and_transforms(
        arch, None, precision="fp32", device="cpu", light_augmentation=True, aug_cfg={}, output_dict=True
    )
    return pv


def load_model(arch: str, checkpoint: str | Path) -> Any:
    """The fork's CLIP built as img_score.py builds it, with the checkpoint's `state_dict` (strict)."""
    import torch

    fork = open_clip_fork()
    model, _, _ = fork.create_model_and_transforms(
        arch, None, precision="fp32", device="cpu", jit=False, force_quick_gelu=False, force_custom_text=False,
        force_patch_dropout=False, force_image_size=None, pretrained_image=False, image_mean=None, image_std=None,
        light_augmentation=True, aug_cfg={}, output_dict=True, with_score_predictor=False, with_region_predictor=False,
    )  # fmt: skip
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def score(model: Any, arch: str, images: Sequence[Any], prompt: str, *, antialias: bool, preprocess: Any = None) -> list[float]:
    """img_score.py lines 61-83: one image and the prompt per forward pass.

    An RGBA image gives a 4-channel tensor (transform.py lines 52-56, 72-73)
    that the model's 3-channel patch embedding refuses, so upstream cannot
    score it; here its colour channels (what the transform made of them) are
    scored, which is what prefcli does (docs/scorers/hpsv2.md).
    """
    import torch

    preprocess = preprocess or preprocess_val(arch, antialias)
    tokenizer = open_clip_fork().get_tokenizer(arch)
    result = []
    for img in images:
        with torch.no_grad():
            image = preprocess(img).unsqueeze(0)
            image = image[:, :3]  # the one departure: RGBA's alpha plane is not fed to a 3-channel model
            text = tokenizer([prompt])
            outputs = model(image, text)
            image_features, text_features = outputs["image_features"], outputs["text_features"]
            logits_per_image = image_features @ text_features.T
            hps_score = torch.diagonal(logits_per_image).cpu().numpy()
        result.append(float(hps_score[0]))
    return result


def tokenize(arch: str, prompts: Sequence[str]) -> Any:
    """The fork's tokenizer for `arch` (`factory.py` get_tokenizer: open_clip's `tokenize`, context 77, truncating)."""
    return open_clip_fork().get_tokenizer(arch)(list(prompts))
