"""The one place prefcli opens a pickled PyTorch file, and how it does so without running the file's code.

Every read goes through :func:`torch_load`:

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
from typing import Any

from prefcli.errors import WeightsError

__all__ = ["Opaque", "TorchScriptError", "UnsafePickleError", "check_zip_size", "not_a_file", "refuse_torchscript", "torch_load"]


class UnsafePickleError(WeightsError):
    """A pickle that would run code (a call to something other than torch's tensor rebuilders)."""


class TorchScriptError(WeightsError):
    """A TorchScript archive: loading it would run the code inside it."""


class Opaque:
    """Stands in for a class named in a pickle: it records what the pickle gives it and runs nothing."""

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


_STAND_INS: dict[str, type] = {}


def _stand_in(full_name: str) -> type:
    if full_name not in _STAND_INS:
        safe = re.sub(r"\W", "_", full_name.rsplit(".", 1)[-1]) or "Global"
        _STAND_INS[full_name] = type(safe, (Opaque,), {"_pickle_global": full_name, "__module__": "prefcli.safe_load.opaque"})
    return _STAND_INS[full_name]


def _wo_reason(msg: str) -> str:
    """The line of torch's weights_only error that says what was refused (not its boilerplate)."""
    m = re.search(r"WeightsUnpickler error:\s*([^\n]+)", msg)
    if m:
        return m.group(1).strip()
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Check the documentation", "(1)", "(2)"))]
    return keep[0] if keep else (lines[-1] if lines else msg)


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


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
        return f"cannot be read ({e.strerror or _one_line(e)})"
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
        raise WeightsError(f"{path}: the archive says it expands to {total:,} bytes, over prefcli's limit of "
                           f"{ZIP_MAX_BYTES:,}; refused unread")
    if total > _ZIP_SMALL and total > ZIP_MAX_RATIO * stored:
        raise WeightsError(f"{path}: the archive says it expands {total / stored:,.0f}-fold ({stored:,} bytes to "
                           f"{total:,}); a PyTorch file stores its tensors uncompressed, so this is refused unread "
                           f"(limit {ZIP_MAX_RATIO}-fold)")


def refuse_torchscript(path: str | os.PathLike) -> None:
    """Raise TorchScriptError when `path` is a TorchScript archive, or WeightsError when it would expand past
    the bounds (check_zip_size); read only the zip's directory."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise WeightsError(f"{path}: cannot be read ({e.strerror or _one_line(e)})") from None
    if magic != b"PK\x03\x04":
        return  # not a zip: torch.load's legacy format, which weights_only reads the same way
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable PyTorch file (damaged zip: {_one_line(e)})") from None
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


def torch_load(path: str | os.PathLike, *, stand_ins: bool = False, map_location: str = "cpu",
               convert_hint: str = "an explicit conversion to safetensors is needed (see docs/weights.md)") -> Any:
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
            raise UnsafePickleError(f"{path}: the pickle calls {blocked.group(1)} while loading (module "
                                    f"{blocked.group(2)} is never loaded); refused") from None
        if re.search(r"Unsupported global", msg) and not stand_ins:
            name = _unsupported_global(msg)
            what = f" (it needs {name})" if name else ""
            raise WeightsError(f"{path}: the file holds pickled Python objects{what} that prefcli will not execute; "
                               f"{convert_hint}") from None
        raise WeightsError(f"{path}: not a readable PyTorch file, refused by the restricted loader ({_one_line(msg)})") from None
    except MemoryError:
        raise WeightsError(f"{path}: not a readable PyTorch file (it declares more data than fits in memory)") from None
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file fails in many ways
        raise WeightsError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {_one_line(e)})") from None
