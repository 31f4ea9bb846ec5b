"""The one place prefcli reads or writes weights files, and how it opens a pickled one without running its code.

Safetensors files are checked (header, byte ranges) before safetensors reads
them, and written atomically (:func:`save_state_dict`); :func:`load_state_dict`
reads either kind into a flat {name: tensor} dict. Every read of a pickled
file goes through :func:`torch_load`:

- a TorchScript archive (``torch.jit.save``) is refused *before* anything
  reads it: loading one runs the code it carries (its ``__setstate__`` can,
  e.g., ``torch.from_file(..., shared=True)`` any path the user can write);
- everything else is read by ``torch.load(weights_only=True)``, torch's own
  restricted unpickler, which rebuilds tensors and plain containers only.

A release that pickles a whole module (the authors' ``prompt_pool.pt`` is a
``PromptPool`` nn.Module) names classes weights_only does not know. With
``stand_ins=True`` every such global is registered, for this one call
(``torch.serialization.safe_globals``), as an inert :class:`Opaque` subclass
named after it: rebuilding it as an object (NEWOBJ + BUILD, how torch.save
writes a module) records the state it is given and runs nothing; *calling* it
(REDUCE, e.g. ``os.system``) raises :class:`UnsafePickleError`. The real
class is never imported.

torch >= 2.6 is required (pyproject): earlier weights_only loaders had a
known bypass.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcli.errors import WeightsError, one_line

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "Opaque",
    "TorchScriptError",
    "UnsafePickleError",
    "check_safetensors",
    "check_safetensors_folder",
    "check_zip_size",
    "hf_folder_state",
    "load_safetensors",
    "load_state_dict",
    "not_a_file",
    "refuse_torchscript",
    "save_state_dict",
    "torch_load",
]


class UnsafePickleError(WeightsError):
    """A pickle that would run code (a call to something other than torch's tensor rebuilders)."""


class TorchScriptError(WeightsError):
    """A TorchScript archive: loading it would run the code inside it."""


class Opaque:
    """Stands in for a class named in a pickle: it records what the pickle gives it and runs nothing."""

    _pickle_global: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
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


_STAND_INS: dict[str, type] = {}


def _stand_in(full_name: str) -> type:
    if full_name not in _STAND_INS:
        safe = re.sub(r"\W", "_", full_name.rsplit(".", 1)[-1]) or "Global"
        _STAND_INS[full_name] = type(
            safe, (Opaque,), {"_pickle_global": full_name, "__module__": "prefcli.safe_load.opaque"}
        )
    return _STAND_INS[full_name]


def _wo_reason(msg: str) -> str:
    """The line of torch's weights_only error that says what was refused (not its boilerplate)."""
    m = re.search(r"WeightsUnpickler error:\s*([^\n]+)", msg)
    if m:
        return m.group(1).strip()
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    keep = [
        ln for ln in lines if not ln.startswith(("Weights only load failed", "Check the documentation", "(1)", "(2)"))
    ]
    return keep[0] if keep else (lines[-1] if lines else msg)


#: A zip member may expand this many times its stored size before the archive is refused unread:
#: torch.save stores its members uncompressed (ratio 1), so only a crafted archive comes near it.
ZIP_MAX_RATIO = 20
#: ... and however it is stored, an archive may not expand past this (an 8B model in fp32 is ~32 GB).
ZIP_MAX_BYTES = 256 * 2**30
_ZIP_SMALL = 16 * 2**20  # below this, any ratio: tiny archives compress well and cost nothing


def not_a_file(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a weights file ("file not found", "not a regular file (...)"), else None."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found"
    except OSError as e:
        return f"cannot be read ({e.strerror or one_line(e, 200)})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a character device" if stat.S_ISCHR(mode) else "a block device"
            if stat.S_ISBLK(mode) else "a FIFO / named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a special file")  # fmt: skip
    return f"not a regular file ({kind})"


def check_zip_size(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive whose members, per its central directory, expand past the bounds, before any is read."""
    stored = max(os.path.getsize(path), 1)
    total = sum(max(i.file_size, 0) for i in infos)
    if total > ZIP_MAX_BYTES:
        raise WeightsError(
            f"{path}: the archive says it expands to {total:,} bytes, over prefcli's limit of "
            f"{ZIP_MAX_BYTES:,}; refused unread"
        )
    if total > _ZIP_SMALL and total > ZIP_MAX_RATIO * stored:
        raise WeightsError(
            f"{path}: the archive says it expands {total / stored:,.0f}-fold ({stored:,} bytes to "
            f"{total:,}); a PyTorch file stores its tensors uncompressed, so this is refused unread "
            f"(limit {ZIP_MAX_RATIO}-fold)"
        )


def refuse_torchscript(path: str | os.PathLike) -> None:
    """Raise TorchScriptError when `path` is a TorchScript archive, or WeightsError when it would expand past
    the bounds (check_zip_size); read only the zip's directory."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise WeightsError(f"{path}: cannot be read ({e.strerror or one_line(e, 200)})") from None
    if magic != b"PK\x03\x04":
        return  # not a zip: torch.load's legacy format, which weights_only reads the same way
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable PyTorch file (damaged zip: {one_line(e, 200)})") from None
    names = [i.filename for i in infos]
    # torch.jit.save writes <name>/constants.pkl and <name>/code/...; mobile archives bytecode.pkl.
    tails = {n.split("/", 1)[-1] for n in names}
    if tails & {"constants.pkl", "bytecode.pkl"} or any(t.startswith("code/") for t in tails):
        raise TorchScriptError(
            f"{path}: is a TorchScript archive (torch.jit.save); prefcli refuses it unread, because loading one "
            f"runs the code it contains; save the tensors with torch.save(module.state_dict()) or as safetensors"
        )
    check_zip_size(path, infos)


def _needed_globals(path: Path) -> list[str]:
    """Globals the pickle names that weights_only does not allow, read statically (no opcode executed)."""
    import torch

    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - a legacy (non-zip) file or a damaged one: the load itself reports it
        return []


def _unsupported_global(msg: str) -> str | None:
    m = re.search(r"(?:Unsupported global: GLOBAL|global)\s+([\w.]+)", msg)
    return m.group(1) if m else None


def torch_load(
    path: str | os.PathLike,
    *,
    stand_ins: bool = False,
    map_location: str = "cpu",
    convert_hint: str = "an explicit conversion to safetensors is needed (see docs/weights.md)",
) -> Any:
    """Read a torch.save file with ``weights_only=True`` (TorchScript refused first); errors name the file.

    `stand_ins` lets classes the file names be rebuilt as inert :class:`Opaque`
    records (for releases that pickle whole modules); without it such a file
    is refused with `convert_hint`.
    """
    import pickle

    import torch

    path = Path(path)
    why = not_a_file(path)
    if why:
        raise WeightsError(f"{path}: {why}")
    refuse_torchscript(path)
    extra = [(_stand_in(n), n) for n in _needed_globals(path)] if stand_ins else []
    try:
        with torch.serialization.safe_globals(extra):
            return torch.load(str(path), map_location=map_location, weights_only=True)
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except WeightsError:
        raise
    except pickle.UnpicklingError as e:
        msg = _wo_reason(str(e))
        blocked = re.search(r"unsupported GLOBAL ([\w.]+) whose module ([\w.]+) is blocked", msg)
        if blocked:
            raise UnsafePickleError(
                f"{path}: the pickle calls {blocked.group(1)} while loading (module "
                f"{blocked.group(2)} is never loaded); refused"
            ) from None
        if re.search(r"Unsupported global", msg) and not stand_ins:
            name = _unsupported_global(msg)
            what = f" (it needs {name})" if name else ""
            raise WeightsError(
                f"{path}: the file holds pickled Python objects{what} that prefcli will not execute; {convert_hint}"
            ) from None
        raise WeightsError(
            f"{path}: not a readable PyTorch file, refused by the restricted loader ({one_line(msg, 200)})"
        ) from None
    except MemoryError:
        raise WeightsError(f"{path}: not a readable PyTorch file (it declares more data than fits in memory)") from None
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file fails in many ways
        raise WeightsError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {one_line(e, 200)})") from None


# --------------------------------------------------------------------------- safetensors and state dicts


# safetensors' own limit on the JSON header; a larger length field is garbage.
_ST_MAX_HEADER = 100_000_000
_ST_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
    "C64": 8,
}


def check_safetensors(path: str | os.PathLike) -> None:
    """WeightsError naming `path` unless it is a well-formed safetensors file.

    Reads only the 8-byte length and the JSON header and checks every
    tensor's byte range against the file's size, so a garbage, truncated or
    lying file is one clear line here instead of a Rust error (or a huge
    allocation) inside safetensors or transformers.
    """
    import json
    import stat as stat_

    path = Path(path)

    def bad(reason: str) -> WeightsError:
        return WeightsError(f"{path}: not a valid safetensors file ({reason})")

    try:
        st = os.stat(path)
        if not stat_.S_ISREG(st.st_mode):
            raise WeightsError(f"{path}: not a regular file")
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise bad(f"only {len(head)} bytes long")
            n = int.from_bytes(head, "little")
            if n < 2 or n > _ST_MAX_HEADER or n > st.st_size - 8:
                raise bad(f"its header length field says {n:,} bytes in a {st.st_size:,}-byte file")
            raw = f.read(n)
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot be read ({e.strerror or one_line(e, 200)})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("its header is not JSON") from None
    except RecursionError:
        raise bad("its header is JSON nested too deep") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data_len = st.st_size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise bad(f"tensor {name!r} has no description")
        offsets, shape, dtype = entry.get("data_offsets"), entry.get("shape"), entry.get("dtype")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            raise bad(f"tensor {name!r} has a malformed shape or byte range")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise bad(
                f"tensor {name!r} lies at bytes {begin:,}-{end:,} but the file holds {data_len:,} bytes of data: truncated?"
            )
        numel = 1
        for d in shape:
            numel *= d
        itemsize = _ST_ITEMSIZE.get(str(dtype))
        if itemsize is not None and numel * itemsize != end - begin:
            raise bad(f"tensor {name!r} ({dtype} {shape}) needs {numel * itemsize:,} bytes but has {end - begin:,}")


def load_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """{name: tensor} from a safetensors file, checked first; any problem is one WeightsError naming the file."""
    from safetensors.torch import load_file

    check_safetensors(path)
    try:
        return load_file(str(path), device=device)
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends
        raise WeightsError(f"{path}: not a valid safetensors file ({one_line(e, 200)})") from None


# pytorch_model.bin and its shards, as transformers names them.
_HF_BIN = "pytorch_model.bin"
_HF_BIN_INDEX = "pytorch_model.bin.index.json"


def hf_folder_state(directory: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """Check a Hugging Face model folder's weights before transformers opens it.

    Safetensors files present: each is checked (`check_safetensors`) and None
    is returned: transformers then reads them itself. Only a pickled
    `pytorch_model.bin` (or its shards): it is loaded here through the
    restricted loader (`safe_load.torch_load`: weights_only, TorchScript
    refused unread) and the state dict returned, to be handed to
    `from_pretrained(None, config=..., state_dict=...)`, so transformers never
    unpickles anything. Neither: WeightsError.
    """
    import json

    d = Path(directory)
    tensors = sorted(d.glob("*.safetensors"))
    if tensors:
        for f in tensors:
            check_safetensors(f)
        return None
    index = d / _HF_BIN_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise WeightsError(f"{index}: not a readable shard index ({one_line(e, 200)})") from None
        except RecursionError:
            raise WeightsError(f"{index}: not a readable shard index (JSON nested too deep)") from None
        bins = []
        for name in shards:
            shard = (d / str(name)).resolve()
            if shard.parent != d.resolve() or not shard.name.endswith(".bin"):
                raise WeightsError(f"{index}: names a shard outside the folder or not a .bin file: {name!r}")
            bins.append(shard)
    elif (d / _HF_BIN).is_file():
        bins = [d / _HF_BIN]
    else:
        raise WeightsError(f"{d}: no model weights here (model.safetensors or pytorch_model.bin)")
    state: dict[str, Any] = {}
    for b in bins:
        state.update(load_state_dict(b))
    return state


def check_safetensors_folder(directory: str | os.PathLike, what: str = "model") -> None:
    """Check every *.safetensors in a model folder that transformers will open itself.

    Used for the large models (IDEFICS2, Qwen-VL, LoRA adapters), which
    transformers loads shard by shard, quantized, onto a device: a folder
    with only pickled *.bin weights is refused rather than unpickled in one
    piece into memory (tens of GB) by prefcli's loader or by transformers'.
    """
    d = Path(directory)
    files = sorted(d.glob("*.safetensors"))
    for f in files:
        check_safetensors(f)
    if not files and any(d.glob("*.bin")):
        raise WeightsError(
            f"{d}: holds only pickled *.bin weights; prefcli loads {what} weights from safetensors only "
            "(load the folder once with transformers and save_pretrained it: that writes model.safetensors)"
        )


def load_state_dict(
    path: str | os.PathLike, *, key: str | None = None, map_location: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Load a flat {name: tensor} dict without executing code from the file.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickled Python objects.
    `key` (e.g. "state_dict") descends into that entry when the file holds a
    dict with it.
    """
    import torch

    path = Path(path)
    why = not_a_file(path)
    if why:
        raise WeightsError(f"{path}: {'weights file not found' if why == 'file not found' else why}")
    if path.suffix.lower() == ".safetensors":
        obj: Any = load_safetensors(path, device=map_location)
    else:
        # The restricted loader: weights_only=True, a TorchScript archive refused unread.
        obj = torch_load(path, map_location=map_location)

    if key is not None and isinstance(obj, dict) and key in obj:
        obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        nested = [k for k in bad if isinstance(k, str) and isinstance(obj[k], dict)]
        hint = f"; the tensors may be under {nested[0]!r} (pass key={nested[0]!r})" if nested else ""
        shown = ", ".join(repr(k) for k in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise WeightsError(
            f"{path}: expected a flat dict of tensors, but {shown} {'is' if len(bad) == 1 else 'are'} not tensors{hint}"
        )
    return dict(obj)


def save_state_dict(state: dict, path: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> None:
    """Write {name: tensor} as safetensors, atomically (tied tensors are stored as copies)."""
    import torch
    from safetensors.torch import save_file

    from prefcli.atomic import atomic_path

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"{path}: cannot save {k!r}: not a tensor ({type(v).__name__})")
        v = v.detach()
        if v.device.type != "cpu":
            v = v.cpu()
        # safetensors refuses tensors that share memory (tied weights): copy them.
        ident = (v.untyped_storage().data_ptr(), v.storage_offset())
        if ident in seen or not v.is_contiguous():
            v = v.clone().contiguous()
        else:
            seen.add(ident)
        tensors[k] = v
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except RuntimeError as e:
        if "share memory" not in str(e).lower() and "shared" not in str(e).lower():
            raise
        with atomic_path(path) as tmp:
            save_file({k: v.clone().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
