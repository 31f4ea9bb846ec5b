"""Explicit, safe conversions of models released elsewhere into prefcli model folders.

``learn_user_pref(src, out)`` imports the release of the paper's authors (hub
``wenyii/learn-user-pref``): a peft LoRA adapter for IDEFICS2-8B
(``adapter_config.json`` + ``adapter_model.safetensors`` or ``.bin``) and
``prompt_pool.pt``, a ``torch.save`` of their ``PromptPool`` *module* whose
``prompt`` parameter (10 x 4096) holds the preference tokens.

Loading that module the usual way would import and run the authors' code (any
pickle can run code). Here nothing from the file is executed: it is read by
:func:`prefcli.safe_load.torch_load` (``torch.load(weights_only=True)``, a
TorchScript archive refused before anything opens it), with every class the
file names standing in as an inert :class:`Opaque` that only records the state
it was given. A pickle that *calls* anything else while loading (the REDUCE
opcode, e.g. ``os.system``) is refused with :class:`UnsafePickleError`; a
class rebuilt with NEWOBJ + BUILD (how ``torch.save`` writes an ``nn.Module``)
never has its ``__init__`` or ``__setstate__`` run.

``checkpoint_to_safetensors`` (``prefcli convert hpsv2``) turns a checkpoint
that carries pickled objects beside its weights (training arguments, ...)
into a plain safetensors file through the same loader.

The output is a ``prefcli.vlm.checkpoint`` model folder: ``vlm_spec.json``
(base ``HuggingFaceM4/idefics2-8b``, the paper's template, LoRA r/alpha from
the adapter), ``adapter/`` (config + safetensors weights) and
``pref_tokens.safetensors``; ``prefcli rank/eval --scorer preftoken --weights
OUT`` loads it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefcli.atomic import check_output_dir, replace_dir, tmp_dir_beside
from prefcli.errors import WeightsError
from prefcli.safe_load import Opaque, TorchScriptError, UnsafePickleError, torch_load
from prefcli.weights import sha256_file

__all__ = [
    "Opaque",
    "TorchScriptError",
    "UnsafePickleError",
    "checkpoint_to_safetensors",
    "learn_user_pref",
    "load_prompt_pool_tokens",
    "safe_torch_load",
]

LEARN_USER_PREF_REPO = "wenyii/learn-user-pref"
DEFAULT_BASE = "HuggingFaceM4/idefics2-8b"
PROMPT_POOL_FILE = "prompt_pool.pt"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter_model.safetensors"
ADAPTER_BIN = "adapter_model.bin"
# What a hub snapshot of the release needs (the .pt/.bin files are read by the safe unpickler only).
RELEASE_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.pt", "*.md", "*.txt"]


def safe_torch_load(path: str | os.PathLike) -> Any:
    """A release file through the restricted loader: weights_only, TorchScript refused, classes as inert stand-ins."""
    return torch_load(path, stand_ins=True)


# --------------------------------------------------------------------------- extracting the tokens


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def prompt_tensor(obj: Any, source: str = "prompt_pool.pt") -> Any:
    """The ``prompt`` tensor of a loaded PromptPool (an Opaque module), its state dict, or a bare tensor."""
    cands: list[Any] = []
    if _is_tensor(obj):
        cands.append(obj)
    elif isinstance(obj, dict):
        cands += [obj.get("prompt"), obj.get("prompt_pool.prompt")]
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith(".prompt"):
                cands.append(v)
    elif isinstance(obj, Opaque):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0]
        if isinstance(state, dict):
            params = state.get("_parameters")
            if isinstance(params, dict):
                cands.append(params.get("prompt"))
            cands.append(state.get("prompt"))
    for c in cands:
        if _is_tensor(c):
            t = c.detach().float().contiguous().clone()
            if t.ndim != 2:
                raise WeightsError(
                    f"{source}: 'prompt' must be a 2-D (tokens x dim) tensor, got shape {tuple(t.shape)}"
                )
            return t
    what = getattr(obj, "_pickle_global", type(obj).__name__)
    raise WeightsError(f"{source}: no 'prompt' parameter found (the file holds {what}); expected the PromptPool module")


def load_prompt_pool_tokens(path: str | os.PathLike) -> Any:
    """The preference tokens (L_p x D float32 tensor) of a pickled PromptPool, without running its code."""
    return prompt_tensor(safe_torch_load(path), str(path))


# --------------------------------------------------------------------------- the release


@dataclass
class ConversionResult:
    out: Path
    tokens_shape: tuple[int, int]
    adapter_keys: int
    lora_r: int
    lora_alpha: int
    base: str
    source: str
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"item": "model folder", "value": str(self.out)},
            {"item": "source", "value": self.source},
            {"item": "base model", "value": self.base},
            {"item": "preference tokens", "value": f"{self.tokens_shape[0]} x {self.tokens_shape[1]}"},
            {"item": "LoRA", "value": f"r {self.lora_r}, alpha {self.lora_alpha}, {self.adapter_keys} tensors"},
            *({"item": "note", "value": n} for n in self.notes),
        ]


def _find_one(root: Path, name: str) -> Path | None:
    direct = root / name
    if direct.is_file():
        return direct
    found = sorted(root.rglob(name))
    if len(found) > 1:
        raise WeightsError(
            f"{root}: {len(found)} files named {name} ({', '.join(str(f.relative_to(root)) for f in found[:4])}); "
            f"point SRC at the folder that holds the one to convert"
        )
    return found[0] if found else None


def _adapter_state(adapter_dir: Path) -> tuple[dict[str, Any], Path]:
    from prefcli.weights import load_state_dict

    st = adapter_dir / ADAPTER_SAFETENSORS
    if st.is_file():
        return load_state_dict(st), st
    binf = adapter_dir / ADAPTER_BIN
    if binf.is_file():
        obj = safe_torch_load(binf)
        if not isinstance(obj, dict) or not all(isinstance(k, str) and _is_tensor(v) for k, v in obj.items()):
            raise WeightsError(f"{binf}: expected a flat dict of tensors (a peft adapter state dict)")
        return dict(obj), binf
    raise WeightsError(f"{adapter_dir}: no {ADAPTER_SAFETENSORS} or {ADAPTER_BIN} beside {ADAPTER_CONFIG}")


def adapter_numbers(cfg: dict[str, Any], cfg_file: Path, state: dict[str, Any]) -> tuple[int, int, float]:
    """(r, lora_alpha, lora_dropout) of a peft adapter config, checked against sane bounds and against the
    adapter's own tensors (lora_A is r x in, lora_B out x r): a release whose config lies is refused here."""
    from prefcli.bounds import check_finite, check_int

    r = check_int(cfg.get("r", 8), f"{cfg_file}: r (the LoRA rank)", low=1, high=4096, error=WeightsError)
    alpha = check_int(cfg.get("lora_alpha", r), f"{cfg_file}: lora_alpha", low=1, high=10**6, error=WeightsError)
    raw = cfg.get("lora_dropout", 0.1)
    dropout = (
        0.0 if raw is None else check_finite(raw, f"{cfg_file}: lora_dropout", low=0.0, high=0.999, error=WeightsError)
    )
    for k, v in state.items():
        dim = 0 if ".lora_A" in k else 1 if ".lora_B" in k else None
        if dim is not None and (v.ndim != 2 or v.shape[dim] != r):
            raise WeightsError(f"{cfg_file}: says r {r}, but the adapter's {k} has shape {tuple(v.shape)}")
    return r, alpha, dropout


def _check_lora_targets(keys: list[str]) -> list[str]:
    """Adapter modules that prefcli's LoRA layout (text model, connector, perceiver) would not load."""
    from prefcli.vlm.model import LORA_TARGET_REGEX

    mods = {re.sub(r"\.lora_[AB](\.default)?\.weight$", "", k) for k in keys if ".lora_" in k}
    return sorted(m for m in mods if not re.match(LORA_TARGET_REGEX, m))


def learn_user_pref(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    base: str = DEFAULT_BASE,
    offline: bool | None = None,
    n_ref: int = 8,
    overwrite: bool = False,
) -> ConversionResult:
    """Convert the authors' release (a local folder or hub id) into a prefcli model folder at `out`."""
    from prefcli.vlm.model import VLMSpec
    from prefcli.vlm.pref_tokens import save_pref_tokens
    from prefcli.weights import parse, resolve_dir, save_state_dict

    out = Path(out)
    check_output_dir(out, overwrite=overwrite)  # before any work: never clobber a folder prefcli did not write
    src_s = str(src)
    root = Path(
        resolve_dir(src_s, allow_patterns=RELEASE_PATTERNS, offline=offline, flag="SRC")
    )  # `convert learn-user-pref` takes it as its SRC argument
    source = parse(src_s).describe()

    pool = _find_one(root, PROMPT_POOL_FILE)
    if pool is None:
        raise WeightsError(f"{root}: no {PROMPT_POOL_FILE} (the preference tokens) in the release")
    cfg_file = _find_one(root, ADAPTER_CONFIG)
    if cfg_file is None:
        raise WeightsError(f"{root}: no {ADAPTER_CONFIG} (the LoRA adapter) in the release")
    tokens = load_prompt_pool_tokens(pool)
    try:
        adapter_cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"{cfg_file}: not valid JSON ({e})") from None
    if not isinstance(adapter_cfg, dict) or str(adapter_cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise WeightsError(f"{cfg_file}: not a peft LoRA adapter config")
    state, weights_file = _adapter_state(cfg_file.parent)
    if not any(".lora_" in k for k in state):
        raise WeightsError(f"{weights_file}: holds no LoRA tensors (keys like '...lora_A.weight')")
    r, alpha, dropout = adapter_numbers(adapter_cfg, cfg_file, state)
    notes: list[str] = []
    outside = _check_lora_targets(list(state))
    if outside:
        notes.append(
            f"{len(outside)} adapter module(s) lie outside prefcli's LoRA targets (e.g. {outside[0]}); "
            f"loading will report them"
        )
    dim = int(tokens.shape[1])
    if base == DEFAULT_BASE and dim != 4096:
        notes.append(f"preference tokens have dimension {dim}, IDEFICS2-8B's text model 4096: loading will fail")

    spec = VLMSpec(
        base=base,
        weights="pretrained",
        template="preftoken",
        n_pref_tokens=int(tokens.shape[0]),
        pref_init="uniform",
        lora=True,
        lora_r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        train_vision=False,
    )
    metadata = {
        "converted_from": source,
        "converter": "prefcli convert learn-user-pref",
        "n_ref": int(n_ref),
        "sha256": {PROMPT_POOL_FILE: sha256_file(pool), weights_file.name: sha256_file(weights_file)},
    }
    tmp = tmp_dir_beside(out)
    try:
        (tmp / "vlm_spec.json").write_text(
            json.dumps({"spec": dataclasses.asdict(spec), "metadata": metadata}, indent=2, allow_nan=False)
        )
        (tmp / "adapter").mkdir()
        shutil.copyfile(cfg_file, tmp / "adapter" / ADAPTER_CONFIG)
        save_state_dict(state, tmp / "adapter" / ADAPTER_SAFETENSORS)
        save_pref_tokens(tokens, tmp / "pref_tokens.safetensors", metadata={"source": source})
        replace_dir(tmp, out, by="prefcli convert learn-user-pref", overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ConversionResult(out, (int(tokens.shape[0]), dim), len(state), r, alpha, base, source, notes)


# --------------------------------------------------------------------------- plain checkpoints (HPS)


def checkpoint_to_safetensors(
    src: str | os.PathLike, dst: str | os.PathLike, *, key: str = "state_dict", overwrite: bool = False
) -> tuple[Path, int]:
    """The tensors under `key` of a checkpoint (read by the restricted loader) written to `dst` as safetensors.

    Pickled objects beside the weights (training arguments, optimizer
    classes) stand in as inert records and are dropped; a file that would
    call code while loading, or a TorchScript archive, is refused.
    Returns (dst, number of tensors).
    """
    from prefcli.weights import save_state_dict

    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise WeightsError(f"{dst}: the converted checkpoint must be a .safetensors file")
    if dst.exists() and not overwrite:
        raise WeightsError(f"{dst}: already exists; pass --overwrite to replace it")
    obj = safe_torch_load(src)
    state = obj.get(key, obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict):
        raise WeightsError(
            f"{src}: expected a dict with a {key!r} entry, found {getattr(obj, '_pickle_global', type(obj).__name__)}"
        )
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and _is_tensor(v)}
    dropped = sorted(str(k) for k in state if k not in tensors)
    if dropped or not tensors:
        raise WeightsError(
            f"{src}: {key!r} holds non-tensor entries ({', '.join(dropped[:5]) or 'no tensors'}); "
            f"not a state dict of weights"
        )
    try:
        save_state_dict(tensors, dst, metadata={"converted_from": src.name, "converter": "prefcli convert"})
    except OSError as e:
        raise WeightsError(f"{dst}: could not be written ({e.strerror or e})") from None
    return dst, len(tensors)
