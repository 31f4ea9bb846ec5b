"""Result records and their provenance: what was run, on what, with which versions.

A result file is JSON written atomically: `{"provenance": ..., "runs": [...]}`
for `bench`, `{"provenance": ..., "run": ..., "tasks": [...]}` for `eval`.
Every number in a table can be traced to the scorer's weights id, the
dataset's name and build parameters, the seeds and the package versions.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from prefcli import atomic

PACKAGES = (
    "prefcli",
    "torch",
    "transformers",
    "open_clip_torch",
    "numpy",
    "scikit-learn",
    "accelerate",
    "peft",
    "timm",
    "pillow",
    "pyarrow",
)


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_commit() -> str | None:
    """The commit of the prefcli checkout (with '+dirty' when modified), or None outside git."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def dataset_provenance(info: dict | None, path: str | os.PathLike | None = None) -> dict:
    info = dict(info or {})
    keep = {
        k: info[k] for k in ("name", "format_version", "source", "params", "build", "counts", "created") if k in info
    }
    if path is not None:
        keep["path"] = str(path)
    return keep


def run_facts() -> dict:
    """What every provenance block says about the run itself: versions, git commit, command line, time."""
    return {
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "argv": list(sys.argv),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def provenance(*, command: str, config: dict, seeds: dict, scorers: dict, dataset: dict | None = None) -> dict:
    """The provenance block every result file carries."""
    return {
        "command": command,
        "config": config,
        "seeds": seeds,
        "scorers": scorers,  # name -> {"weights": spec, "weights_id": id}
        "dataset": dataset or {},
        **run_facts(),
    }


def clean_nan(obj: Any) -> Any:
    """NaN and infinity are not JSON: write null instead, so every reader can load the file."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_nan(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic.write_text(
        path, json.dumps(clean_nan(obj), indent=2, default=str, ensure_ascii=False, allow_nan=False) + "\n"
    )
