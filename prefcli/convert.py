"""Explicit, safe conversions of models released elsewhere into prefcli model folders.

``learn_user_pref(src, out)`` imports the release of the paper's authors (hub
``wenyii/learn-user-pref``): a peft LoRA adapter for IDEFICS2-8B
(``adapter_config.json`` + ``adapter_model.safetensors`` or ``.bin``) and
``prompt_pool.pt``, a ``torch.save`` of their ``PromptPool`` *module* whose
``prompt`` parameter (10 x 4096) holds the preference tokens.

Loading that module the usual way would import and run the authors' code (any
pickle can run code). Here nothing from the file is executed: a restricted
unpickler (:class:`SafeUnpickler`) rebuilds tensors, parameters and ordered
dicts with torch's own rebuild functions, and turns every other class it meets
into an inert :class:`Opaque` that only records the state it was given. A
pickle that *calls* anything else while loading (the REDUCE opcode, e.g.
``os.system``) is refused with :class:`UnsafePickleError`. A class rebuilt
with NEWOBJ + BUILD (how ``torch.save`` writes an ``nn.Module``) never has its
``__init__`` or ``__setstate__`` run; only its recorded ``__dict__`` is read.

The output is a ``prefcli.vlm.checkpoint`` model folder: ``vlm_spec.json``
(base ``HuggingFaceM4/idefics2-8b``, the paper's template, LoRA r/alpha from
the adapter), ``adapter/`` (config + safetensors weights) and
``pref_tokens.safetensors``; ``prefcli rank/eval --scorer preftoken --weights
OUT`` loads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefcli.atomic import replace_dir
from prefcli.errors import WeightsError

LEARN_USER_PREF_REPO = "wenyii/learn-user-pref"
DEFAULT_BASE = "HuggingFaceM4/idefics2-8b"
PROMPT_POOL_FILE = "prompt_pool.pt"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter_model.safetensors"
ADAPTER_BIN = "adapter_model.bin"
# What a hub snapshot of the release needs (the .pt/.bin files are read by the safe unpickler only).
RELEASE_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.pt", "*.md", "*.txt"]


class UnsafePickleError(WeightsError):
    """A pickle that would run code (a call to something other than torch's tensor rebuilders)."""


# --------------------------------------------------------------------------- the restricted unpickler


class Opaque:
    """Stands in for any class named in a pickle: it records what the pickle gives it and runs nothing."""

    _pickle_global: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Opaque":
        obj = object.__new__(cls)
        object.__setattr__(obj, "new_args", args)
        object.__setattr__(obj, "state", None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Only reached through REDUCE, i.e. the pickle *calls* this global: that is running code.
        raise UnsafePickleError(f"the pickle calls {self._pickle_global}(...) while loading; refused")

    def __setstate__(self, state: Any) -> None:  # BUILD: record, never apply
        object.__setattr__(self, "state", state)

    def __repr__(self) -> str:
        return f"<opaque {self._pickle_global}>"


def _torch_allowed() -> dict[tuple[str, str], Any]:
    import torch
    import torch._utils as tu

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
    }
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"):
        if hasattr(tu, name):
            allowed[("torch._utils", name)] = getattr(tu, name)
    for name in dir(torch):
        obj = getattr(torch, name, None)
        if isinstance(obj, torch.dtype):
            allowed[("torch", name)] = obj
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """Allows only torch's tensor/parameter rebuilders, storage types, dtypes and plain containers.

    Any other global becomes an :class:`Opaque` subclass named after it:
    rebuilding it as an object (NEWOBJ) records its state, calling it
    (REDUCE) raises :class:`UnsafePickleError`. Storages are resolved by
    ``torch.load``'s own wrapper before this class is asked.
    """

    _allowed: dict[tuple[str, str], Any] | None = None
    _opaque: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if SafeUnpickler._allowed is None:
            SafeUnpickler._allowed = _torch_allowed()
        # Python 2 names (__builtin__.set) appear in protocol-2 pickles, torch.save's default;
        # the renamed global is still checked against the allow-list below.
        import _compat_pickle

        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = (module, name)
        if key in SafeUnpickler._allowed:
            return SafeUnpickler._allowed[key]
        if module == "torch" and name.endswith("Storage"):
            import torch

            obj = getattr(torch, name, None)
            if isinstance(obj, type):
                return obj
        if key not in SafeUnpickler._opaque:
            safe = re.sub(r"\W", "_", name) or "Global"
            SafeUnpickler._opaque[key] = type(safe, (Opaque,), {"_pickle_global": f"{module}.{name}",
                                                                "__module__": "prefcli.convert.opaque"})
        return SafeUnpickler._opaque[key]


def _safe_load(f: Any, **kwargs: Any) -> Any:
    return SafeUnpickler(f, **kwargs).load()


# torch.load(pickle_module=...) wants a module-like object with Unpickler and load.
safe_pickle_module = types.ModuleType("prefcli_safe_pickle")
safe_pickle_module.Unpickler = SafeUnpickler  # type: ignore[attr-defined]
safe_pickle_module.load = _safe_load  # type: ignore[attr-defined]
safe_pickle_module.Pickler = pickle.Pickler  # type: ignore[attr-defined]
safe_pickle_module.__dict__["UnpicklingError"] = pickle.UnpicklingError


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load`` through :class:`SafeUnpickler`: tensors on the CPU, nothing from the file executed."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    try:
        return torch.load(str(path), map_location="cpu", pickle_module=safe_pickle_module, weights_only=False)
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file fails in many ways
        raise WeightsError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None


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
                raise WeightsError(f"{source}: 'prompt' must be a 2-D (tokens x dim) tensor, got shape {tuple(t.shape)}")
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
        raise WeightsError(f"{root}: {len(found)} files named {name} ({', '.join(str(f.relative_to(root)) for f in found[:4])}); "
                           f"point SRC at the folder that holds the one to convert")
    return found[0] if found else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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


def _check_lora_targets(keys: list[str]) -> list[str]:
    """Adapter modules that prefcli's LoRA layout (text model, connector, perceiver) would not load."""
    from prefcli.vlm.model import LORA_TARGET_REGEX

    mods = {re.sub(r"\.lora_[AB](\.default)?\.weight$", "", k) for k in keys if ".lora_" in k}
    return sorted(m for m in mods if not re.match(LORA_TARGET_REGEX, m))


def learn_user_pref(src: str | os.PathLike, out: str | os.PathLike, *, base: str = DEFAULT_BASE,
                    offline: bool | None = None, n_ref: int = 8) -> ConversionResult:
    """Convert the authors' release (a local folder or hub id) into a prefcli model folder at `out`."""
    from prefcli.vlm.model import VLMSpec
    from prefcli.vlm.pref_tokens import save_pref_tokens
    from prefcli.weights import parse, resolve_dir, save_state_dict

    src_s = str(src)
    root = Path(resolve_dir(src_s, allow_patterns=RELEASE_PATTERNS, offline=offline))
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
    r = int(adapter_cfg.get("r", 8))
    alpha = int(adapter_cfg.get("lora_alpha", r))
    notes: list[str] = []
    outside = _check_lora_targets(list(state))
    if outside:
        notes.append(f"{len(outside)} adapter module(s) lie outside prefcli's LoRA targets (e.g. {outside[0]}); "
                     f"loading will report them")
    dim = int(tokens.shape[1])
    if base == DEFAULT_BASE and dim != 4096:
        notes.append(f"preference tokens have dimension {dim}, IDEFICS2-8B's text model 4096: loading will fail")

    spec = VLMSpec(base=base, weights="pretrained", template="preftoken", n_pref_tokens=int(tokens.shape[0]),
                   pref_init="uniform", lora=True, lora_r=r, lora_alpha=alpha,
                   lora_dropout=float(adapter_cfg.get("lora_dropout", 0.1) or 0.0), train_vision=False)
    metadata = {
        "converted_from": source,
        "converter": "prefcli convert learn-user-pref",
        "n_ref": int(n_ref),
        "sha256": {PROMPT_POOL_FILE: _sha256(pool), weights_file.name: _sha256(weights_file)},
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (tmp / "vlm_spec.json").write_text(json.dumps({"spec": dataclasses.asdict(spec), "metadata": metadata}, indent=2))
        (tmp / "adapter").mkdir()
        shutil.copyfile(cfg_file, tmp / "adapter" / ADAPTER_CONFIG)
        save_state_dict(state, tmp / "adapter" / ADAPTER_SAFETENSORS)
        save_pref_tokens(tokens, tmp / "pref_tokens.safetensors", metadata={"source": source})
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ConversionResult(out, (int(tokens.shape[0]), dim), len(state), r, alpha, base, source, notes)
