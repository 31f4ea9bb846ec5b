"""One device and dtype rule for every command and the Python API.

`--device auto` (the default everywhere) is the first of cuda, mps, cpu that
this machine has. An explicit device that is not here (`cuda` without CUDA,
`mps` without Metal) or is not a device at all is a DeviceError: one line,
exit 2. `--dtype auto` leaves the choice to the scorer: `torch_dtype` makes it
float32, except on CUDA, where it is the dtype the scorer's spec declares
(`ScorerSpec.cuda_dtype`, float16 unless a scorer says otherwise); scorers
whose checkpoint records its dtype (the VLM ones) keep that. The dtype a
scorer actually used is read back from its weights for provenance and the
cache key, so `auto` is never recorded.

This module is the only place that maps dtype names to torch dtypes or picks
a device for `auto` (tests/core/test_devices_single_rule.py checks it).

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from prefcli.errors import DeviceError

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"^(cpu|mps|cuda)(?::(\d+))?$")

#: Accepted dtype spellings and the canonical name each stands for.
DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}  # fmt: skip


def resolve_device(name: str | None = "auto") -> str:
    """A concrete torch device string for `name` ('auto' → cuda, else mps, else cpu)."""
    import torch

    raw = "auto" if name is None else str(name).strip().lower()
    if raw in ("", "auto"):
        mps = getattr(torch.backends, "mps", None)
        found = "cuda" if torch.cuda.is_available() else "mps" if mps is not None and mps.is_available() else "cpu"
        log.debug("--device auto: %s", found)
        return found
    m = _DEVICE.match(raw)
    if m is None:
        raise DeviceError(name, f"not a device; one of {', '.join(DEVICE_NAMES)}")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(name, f"this machine has no CUDA device (torch {torch.__version__})", use=("cpu", "auto"))
        if index is not None and int(index) >= torch.cuda.device_count():
            raise DeviceError(
                name,
                f"only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 to cuda:{torch.cuda.device_count() - 1})",
            )
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(name, "this machine has no Apple MPS device", use=("cpu", "auto"))
    if kind == "cpu" and index is not None:
        raise DeviceError(name, "the cpu device has no index", use=("cpu",))
    return raw


def check_device_name(name: str | None) -> str:
    """The device name if it is spelled like one (no torch import); DeviceError otherwise."""
    raw = "auto" if name is None else str(name).strip().lower()
    if raw in ("", "auto") or _DEVICE.match(raw):
        return raw or "auto"
    raise DeviceError(name, f"not a device; one of {', '.join(DEVICE_NAMES)}")


def normalize_dtype(name: str | None) -> str | None:
    """The canonical dtype name, or None for auto (the scorer's choice)."""
    if name is None:
        return None
    raw = getattr(name, "value", name)  # a CLI enum member
    raw = str(raw).strip().lower()
    if raw in ("", "auto"):
        return None
    if raw.startswith("torch."):
        raw = raw[len("torch.") :]
    if raw not in DTYPES:
        raise DeviceError(f"--dtype {name}: unknown dtype; use auto, fp32, bf16 or fp16")
    return DTYPES[raw]


#: What `dtype=auto` means on a CUDA device unless a scorer's spec says otherwise (`ScorerSpec.cuda_dtype`);
#: on every other device auto is float32.
CUDA_DTYPE = "float16"


def torch_device(name: Any = "auto") -> torch.device:
    """`resolve_device(name)` as a torch.device (a torch.device passes through)."""
    import torch

    if isinstance(name, torch.device):
        return name
    return torch.device(resolve_device(name))


def torch_dtype(name: Any, device: Any = None, cuda: str | None = None) -> torch.dtype:
    """A dtype name (or alias) as a torch dtype; None or 'auto' is `cuda` (default CUDA_DTYPE) on CUDA, else float32."""
    import torch

    canonical = normalize_dtype(name)
    if canonical is None:
        on_cuda = device is not None and device_kind(getattr(device, "type", device)) == "cuda"
        canonical = normalize_dtype(cuda or CUDA_DTYPE) if on_cuda else "float32"
    return getattr(torch, canonical)


def device_kind(device: Any) -> str:
    """'cuda', 'mps' or 'cpu': what identifies a device in cache keys (not its index)."""
    return str(device).split(":", 1)[0]


def used_dtype_device(scorer: Any) -> tuple[str | None, str | None]:
    """(dtype, device) of the first parameter of the modules the scorer declares (`Scorer.modules()`).

    Read back after loading, so provenance says what ran, never 'auto'.
    """
    for module in scorer.modules():
        for p in module.parameters():
            return str(p.dtype).replace("torch.", ""), str(p.device)
    return None, None
