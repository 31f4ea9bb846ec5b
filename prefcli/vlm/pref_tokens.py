"""Preference tokens P_v: L_p learnable vectors prepended to the embedded sequence.

Initialization:
- ``"vocab"`` (default): each dimension drawn from a normal with the mean and
  standard deviation of that dimension over the vocabulary embedding rows, so
  the tokens start at the scale of real token embeddings;
- ``"uniform"``: U(-1, 1), the authors' PromptPool init (L2P's default).

Saved as their own safetensors file (key ``pref_tokens``), so an adapter and
its tokens travel separately and load without unpickling anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from prefcli.errors import WeightsError

INITS = ("vocab", "uniform")
TENSOR_KEY = "pref_tokens"
FILENAME = "pref_tokens.safetensors"


class PreferenceTokens(nn.Module):
    """An (L_p, D) parameter; ``forward(batch_size)`` gives (B, L_p, D)."""

    def __init__(self, n_tokens: int, dim: int, dtype: Any = None) -> None:
        super().__init__()
        if n_tokens <= 0:
            raise ValueError("n_tokens must be positive")
        self.weight = nn.Parameter(torch.zeros(n_tokens, dim, dtype=dtype or torch.float32))
        self.init_method = "zeros"

    @property
    def n_tokens(self) -> int:
        return int(self.weight.shape[0])

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    @torch.no_grad()
    def reset(self, init: str = "vocab", embedding: Any = None, generator: Any = None) -> PreferenceTokens:
        if init not in INITS:
            raise ValueError(f"unknown preference-token init {init!r}; choose one of {', '.join(INITS)}")
        w = self.weight
        if init == "uniform":
            noise = torch.rand(w.shape, generator=generator, dtype=torch.float32)
            w.copy_((noise * 2 - 1).to(w.dtype))
        else:
            if embedding is None:
                raise ValueError("the 'vocab' init needs the vocabulary embedding matrix")
            e = embedding.detach().float().cpu()
            mean, std = e.mean(0), e.std(0)
            noise = torch.randn(w.shape, generator=generator, dtype=torch.float32)
            w.copy_((mean + std * noise).to(w.dtype))
        self.init_method = init
        return self

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.weight.unsqueeze(0).expand(batch_size, -1, -1)


def new_preference_tokens(
    n_tokens: int, dim: int, *, init: str = "vocab", embedding: Any = None, seed: int = 0, dtype: Any = None
) -> Any:
    """Fresh tokens, initialized reproducibly from `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    return PreferenceTokens(n_tokens, dim, dtype=dtype).reset(init, embedding, g)


def save_pref_tokens(tokens: Any, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write the tokens (a module or an (L_p, D) tensor) atomically as safetensors."""
    from safetensors.torch import save_file

    from prefcli.atomic import atomic_path

    w = tokens.weight if hasattr(tokens, "weight") else tokens
    w = w.detach().cpu().contiguous()
    meta = {"n_tokens": str(w.shape[0]), "dim": str(w.shape[1])}
    if hasattr(tokens, "init_method"):
        meta["init"] = tokens.init_method
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v, allow_nan=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({TENSOR_KEY: w}, str(tmp), metadata=meta)
    return path


def load_pref_tokens(path: str | os.PathLike, dtype: Any = None) -> Any:
    """Read tokens written by `save_pref_tokens` (safetensors only; nothing is unpickled)."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise WeightsError(f"{path}: preference-token file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            if TENSOR_KEY not in f.keys():
                raise WeightsError(f"{path}: no '{TENSOR_KEY}' tensor in this safetensors file")
            w = f.get_tensor(TENSOR_KEY)
            meta = f.metadata() or {}
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt file is a user-facing error
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from e
    if w.ndim != 2:
        raise WeightsError(f"{path}: preference tokens must be a 2-D (L_p, D) tensor, got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        raise WeightsError(f"{path}: preference tokens must be floating point, got {w.dtype}")
    if not bool(torch.isfinite(w).all()):  # NaN tokens score NaN everywhere and break every plot downstream
        raise WeightsError(f"{path}: preference tokens hold NaN or infinite values")
    mod = PreferenceTokens(w.shape[0], w.shape[1], dtype=dtype or w.dtype)
    with torch.no_grad():
        mod.weight.copy_(w.to(mod.weight.dtype))
    mod.init_method = meta.get("init", "loaded")
    return mod
