"""Saving and loading a PrefVLM as a folder: spec + weights + tokenizer + preference tokens.

Layout of a model folder::

    vlm_spec.json            the VLMSpec it was built from (+ free-form metadata)
    tokenizer/               tokenizer files (save_pretrained)
    model.safetensors        all core weights — bases built from a config (tiny / random)
    adapter/                 peft LoRA adapter (adapter_config.json, adapter_model.safetensors)
                             — pretrained bases, and any QLoRA model
    vision.safetensors       the vision encoder, when it trained beside the adapter
    pref_tokens.safetensors  the preference tokens, if any

Everything is safetensors; the folder is written beside its final place and
renamed into it, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from prefcli.atomic import replace_dir
from prefcli.errors import WeightsError
from prefcli.vlm.model import PrefVLM, TinySize, VLMSpec, build_model
from prefcli.vlm.pref_tokens import FILENAME as PREF_FILE
from prefcli.vlm.pref_tokens import load_pref_tokens, save_pref_tokens

SPEC_FILE = "vlm_spec.json"
MODEL_FILE = "model.safetensors"
ADAPTER_DIR = "adapter"
VISION_FILE = "vision.safetensors"
TOKENIZER_DIR = "tokenizer"


def _uses_adapter(spec: VLMSpec) -> bool:
    return spec.lora and (spec.weights == "pretrained" or spec.qlora)


def save_vlm(vlm: PrefVLM, out_dir: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write `vlm` to `out_dir` (replaced atomically if it exists)."""
    from prefcli.atomic import writing

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with writing(out):  # a full disk names the model folder it could not write
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with writing(out, work=tmp):
            _write_parts(vlm, tmp, metadata)
            replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_parts(vlm: PrefVLM, tmp: Path, metadata: dict[str, Any] | None) -> None:
    from safetensors.torch import save_file

    spec = dataclasses.asdict(vlm.spec)
    spec["n_pref_tokens"] = vlm.n_pref_tokens  # tokens may have been added after building
    (tmp / SPEC_FILE).write_text(json.dumps({"spec": spec, "metadata": metadata or {}}, indent=2, allow_nan=False))
    vlm.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
    if _uses_adapter(vlm.spec):
        vlm.hf_model.save_pretrained(str(tmp / ADAPTER_DIR))
        if vlm.spec.train_vision:
            sd = {k: v.detach().cpu().contiguous() for k, v in vlm.inner.vision_model.state_dict().items()}
            save_file(sd, str(tmp / VISION_FILE))
    else:
        sd = {k: v.detach().cpu().contiguous() for k, v in vlm.core.state_dict().items()}
        save_file(sd, str(tmp / MODEL_FILE))
    if vlm.pref_tokens is not None:
        save_pref_tokens(vlm.pref_tokens, tmp / PREF_FILE)


def read_spec(model_dir: str | os.PathLike) -> tuple[VLMSpec, dict[str, Any]]:
    path = Path(model_dir) / SPEC_FILE
    if not path.is_file():
        raise WeightsError(f"{model_dir}: not a prefcli model folder (no {SPEC_FILE})")
    from prefcli.jsonio import check_type, read_json

    data = read_json(path, error=WeightsError, expect=dict, what="a model spec")
    check_type(data.get("spec"), dict, str(path), "its 'spec'", error=WeightsError)
    check_type(data.get("metadata", {}), dict, str(path), "its 'metadata'", error=WeightsError)
    try:
        d = dict(data["spec"])
        d["tiny"] = TinySize(**d.get("tiny", {}))
        known = {f.name for f in dataclasses.fields(VLMSpec)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise WeightsError(f"{path}: unknown spec keys {unknown}")
        spec = VLMSpec(**d)
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: malformed model spec ({e})") from e
    check_spec_sizes(spec, path)
    return spec, data.get("metadata", {})


def check_spec_sizes(spec: VLMSpec, path: Path) -> None:
    """Every size a spec gives, within sane bounds, before a model is built from it (a negative or 2**40
    dimension is otherwise a RuntimeError or an allocator failure inside torch)."""
    from prefcli.bounds import TINY_SIZE_MAX, check_finite, check_int

    for f in dataclasses.fields(spec.tiny):
        check_int(
            getattr(spec.tiny, f.name), f"{path}: spec.tiny.{f.name}", low=1, high=TINY_SIZE_MAX, error=WeightsError
        )
    for key, low, high in (
        ("n_pref_tokens", 0, 4096),
        ("lora_r", 1, 4096),
        ("lora_alpha", 1, 10**6),
        ("max_prompt_tokens", 1, 100_000),
        ("seed", 0, 2**32 - 1),
    ):
        check_int(getattr(spec, key), f"{path}: spec.{key}", low=low, high=high, error=WeightsError)
    check_finite(spec.lora_dropout, f"{path}: spec.lora_dropout", low=0.0, high=0.999, error=WeightsError)


def load_vlm(
    model_dir: str | os.PathLike, *, device: str | None = None, offline: bool | None = None, **overrides: Any
) -> PrefVLM:
    """Rebuild a PrefVLM saved by `save_vlm` (base weights come from the spec's source)."""
    from prefcli.weights import load_safetensors  # checked first: a garbage file is one line

    root = Path(model_dir)
    spec, _ = read_spec(root)
    tok_dir = root / TOKENIZER_DIR
    changes: dict[str, Any] = {"n_pref_tokens": 0, **overrides}
    if tok_dir.is_dir():
        changes["tokenizer"] = str(tok_dir)
    if device is not None:
        changes["device"] = device
    if offline is not None:
        changes["offline"] = offline
    spec = dataclasses.replace(spec, **changes)
    vlm = build_model(spec)
    try:
        if (root / MODEL_FILE).is_file():
            missing, unexpected = vlm.core.load_state_dict(load_safetensors(root / MODEL_FILE), strict=False)
            if missing or unexpected:
                raise WeightsError(
                    f"{root / MODEL_FILE}: does not match the model (missing {missing[:3]}, "
                    f"unexpected {unexpected[:3]})"
                )
        elif (root / ADAPTER_DIR).is_dir():
            from peft.utils import set_peft_model_state_dict

            afile = root / ADAPTER_DIR / "adapter_model.safetensors"
            if not afile.is_file():
                raise WeightsError(f"{afile}: adapter weights missing")
            res = set_peft_model_state_dict(vlm.hf_model, load_safetensors(afile))
            if getattr(res, "unexpected_keys", None):
                raise WeightsError(f"{afile}: unexpected adapter keys {res.unexpected_keys[:3]}")
            if (root / VISION_FILE).is_file():
                vlm.inner.vision_model.load_state_dict(load_safetensors(root / VISION_FILE))
        else:
            raise WeightsError(f"{root}: neither {MODEL_FILE} nor {ADAPTER_DIR}/ found")
    except RuntimeError as e:
        raise WeightsError(f"{root}: weights do not fit the model ({e})") from e
    if (root / PREF_FILE).is_file():
        try:
            vlm.set_pref_tokens(load_pref_tokens(root / PREF_FILE))
        except WeightsError as e:
            raise WeightsError(e if str(root / PREF_FILE) in str(e) else f"{root / PREF_FILE}: {e}") from None
        vlm.spec = dataclasses.replace(vlm.spec, n_pref_tokens=vlm.n_pref_tokens)
    vlm.to(torch.device(spec.device)) if not spec.qlora else None
    return vlm.eval()
