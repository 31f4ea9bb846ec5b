"""The one JSON shape every `prefcli analyze` command writes, and the model it analyzed.

``{"command", "results", "scorer", "weights", "revision", "options",
"skipped", "provenance"}``: ``results`` holds the command's numbers,
``weights`` the checkpoint as given, ``revision`` a fingerprint of its files
(so a retrained model in the same folder is told apart), ``skipped`` every
input that was left out and why (``[{"item", "reason"}]``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def folder_fingerprint(root: str | os.PathLike) -> str:
    """sha256 (12 hex) over the names and bytes of a model folder's files."""
    root = Path(root)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.relative_to(root).as_posix()}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:12]


def model_folder(ckpt: str | os.PathLike) -> Path:
    """The model folder a checkpoint argument names (run dir, checkpoint, model folder or shipped name)."""
    from prefcli.errors import WeightsError
    from prefcli.train import pretrained
    from prefcli.vlm.folders import model_dir_of

    p = Path(ckpt)
    if not p.exists():
        if str(ckpt) in pretrained.names():
            p = pretrained.path(str(ckpt))
        else:
            raise WeightsError(f"{ckpt}: no such model folder (shipped tiny models: {', '.join(pretrained.names())})")
    return model_dir_of(p)


def load_model(ckpt: str | os.PathLike, device: str = "cpu", **overrides: Any) -> tuple[Any, dict]:
    """(PrefVLM in eval mode, {"weights", "revision", "model_dir"}) for a checkpoint argument.

    `overrides` change the model's spec (e.g. ``attn_implementation="eager"`` to read attention weights).
    """
    from prefcli.train.checkpoint import load_checkpoint

    folder = model_folder(ckpt)
    vlm = load_checkpoint(folder, device=device, **overrides)
    return vlm, {"weights": str(ckpt), "revision": folder_fingerprint(folder), "model_dir": str(folder)}


def envelope(
    command: str,
    results: Any,
    *,
    model: dict | None = None,
    options: dict | None = None,
    skipped: list | None = None,
    scorer: str | None = "preftoken",
) -> dict:
    """The command's document in the one envelope of every command (prefcli/envelope.py)."""
    from prefcli import envelope as env
    from prefcli.harness.results import package_versions

    prov = env.provenance()
    prov["versions"] = {**prov["versions"], **package_versions(("matplotlib",))}
    return env.envelope(
        command,
        results,
        scorer=scorer,
        weights=(model or {}).get("weights"),
        revision=(model or {}).get("revision"),
        options=options,
        skipped=skipped,
        provenance=prov,
    )


def write(path: str | os.PathLike, doc: dict) -> Path:
    from prefcli import envelope as env

    return env.write(path, doc)
